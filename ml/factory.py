"""Model factory: ``create_model(name, num_classes=..., weights=...)`` and preprocessing configs.

Modelled on timm: a small registry of known architectures says where their weights can come from
and how their inputs are normalised; everything else is a plain ``timm.create_model`` call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn

from ml import weights as offline_weights
from ml.checkpoint_files import CONFIG_FILE, WEIGHTS_FILE
from ml.preprocess import PreprocessConfig

DEFAULT_ARCHITECTURE = offline_weights.OFFLINE_ARCHITECTURE


@dataclass(frozen=True)
class ModelSpec:
    """What the factory knows about one architecture beyond timm's own config."""

    architecture: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int = 224
    interpolation: str = "bilinear"
    # Loads ImageNet weights into a 1000-class model without a network; None if there is none.
    offline_loader: Callable[[nn.Module], None] | None = field(default=None, compare=False)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model_spec(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) an architecture's spec; returns it so it can be used as a one-liner."""
    _REGISTRY[spec.architecture] = spec
    return spec


def list_model_specs() -> list[str]:
    return sorted(_REGISTRY)


register_model_spec(
    ModelSpec(
        architecture=offline_weights.OFFLINE_ARCHITECTURE,
        mean=offline_weights.OFFLINE_MEAN,
        std=offline_weights.OFFLINE_STD,
        offline_loader=offline_weights.load_offline_state_dict,
    )
)


def model_spec(name: str) -> ModelSpec:
    """The registered spec, or one derived from timm's pretrained config for other models."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if not timm.is_model(name):
        raise ValueError(f"unknown architecture {name!r}")
    cfg = timm.get_pretrained_cfg(name)
    cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else {}
    return ModelSpec(
        architecture=name,
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        input_size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        interpolation=cfg.get("interpolation", "bilinear") or "bilinear",
    )


def preprocess_config(
    name: str = DEFAULT_ARCHITECTURE,
    *,
    input_size: int | None = None,
    resize_mode: str = "pad",
) -> PreprocessConfig:
    """The preprocessing a freshly created ``name`` model expects."""
    spec = model_spec(name)
    return PreprocessConfig(
        input_size=int(input_size or spec.input_size),
        mean=tuple(spec.mean),
        std=tuple(spec.std),
        interpolation=spec.interpolation,
        resize_mode=resize_mode,
    )


def create_model(
    name: str = DEFAULT_ARCHITECTURE,
    *,
    num_classes: int,
    weights: str | Path = "offline",
    drop_rate: float = 0.2,
    **timm_kwargs,
) -> nn.Module:
    """Build ``name`` with a ``num_classes`` head.

    ``weights``:
      - ``"offline"``: ImageNet weights from a local package (default; needs a registered loader),
      - ``"hub"``: ``timm.create_model(name, pretrained=True)`` (needs a network),
      - ``"none"``: random initialisation,
      - a checkpoint directory (``config.json`` + ``model.pt``) or a ``.pt``/``.pth`` state dict:
        warm start from an earlier model; its head is kept only if the class count matches.
    """
    weights_arg = str(weights)
    if weights_arg == "hub":
        return timm.create_model(
            name, pretrained=True, num_classes=num_classes, drop_rate=drop_rate, **timm_kwargs
        )
    if weights_arg == "none":
        return timm.create_model(
            name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate, **timm_kwargs
        )
    if weights_arg == "offline":
        spec = model_spec(name)
        if spec.offline_loader is None:
            raise ValueError(
                f"no offline weights registered for {name!r}; use weights='hub' or a checkpoint"
            )
        model = timm.create_model(name, pretrained=False, drop_rate=drop_rate, **timm_kwargs)
        spec.offline_loader(model)
        if num_classes != model.num_classes:
            # reset_classifier gives a freshly initialised head of the right size.
            model.reset_classifier(num_classes)
        return model
    return _from_checkpoint(name, Path(weights_arg), num_classes, drop_rate, timm_kwargs)


def _from_checkpoint(
    name: str, path: Path, num_classes: int, drop_rate: float, timm_kwargs: dict
) -> nn.Module:
    if path.is_dir():
        config = json.loads((path / CONFIG_FILE).read_text())
        name = config.get("architecture", name)
        path = path / WEIGHTS_FILE
    elif not path.is_file():
        raise ValueError(f"weights={str(path)!r}: not 'offline', 'hub', 'none' or an existing path")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(
        name, pretrained=False, num_classes=num_classes, drop_rate=drop_rate, **timm_kwargs
    )
    own = model.state_dict()
    # A warm start may change the label set; a head of the wrong shape is left freshly built.
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(compatible))
    head = {f"{model.default_cfg.get('classifier', 'classifier')}.{p}" for p in ("weight", "bias")}
    if set(skipped) - head - {k for k in skipped if k.endswith("num_batches_tracked")}:
        raise ValueError(f"{path}: checkpoint does not fit {name!r} (e.g. {skipped[:3]})")
    model.load_state_dict(compatible, strict=False)
    return model
