"""Batch inference: ``Predictor.load(checkpoint_dir).predict(images)``.

Calibrated probabilities come out (the checkpoint's temperature is applied), which is what the
routing thresholds were chosen on. A stored image that cannot be decoded gets an error entry for
its index and a row of NaNs; the rest of the batch is predicted as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ml import thresholds as routing
from ml.checkpoint import load_checkpoint
from ml.factory import DEFAULT_ARCHITECTURE, create_model, preprocess_config
from ml.preprocess import ImageSource, PreprocessConfig, normalize, to_uint8_array


class Predictions(NamedTuple):
    probs: np.ndarray  # N×K calibrated probabilities; NaN rows where decoding failed
    errors: dict[int, str]  # index in the input → why it could not be predicted


class Predictor:
    """A model ready for inference: eval mode, channels-last, fixed thread count."""

    def __init__(
        self,
        model: nn.Module,
        preprocess: PreprocessConfig,
        class_names: Sequence[str],
        *,
        temperature: float = 1.0,
        thresholds: Sequence[float | None] | None = None,
        config: dict | None = None,
        num_threads: int | None = 2,
    ) -> None:
        if num_threads:
            # A worker process serves one predictor; more threads than cores only adds contention.
            torch.set_num_threads(num_threads)
        # Channels-last lets oneDNN use its fast NHWC kernels: about 1.5-2.5× faster on CPU for
        # this network (bench/throughput_inference.py).
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.preprocess = preprocess
        self.class_names = list(class_names)
        self.temperature = float(temperature)
        self.thresholds = list(thresholds) if thresholds is not None else None
        self.config = config or {}

    @classmethod
    def load(
        cls, checkpoint_dir: str | Path, *, num_threads: int | None = 2, verify: bool = True
    ) -> Predictor:
        """Load a checkpoint written by :func:`ml.training.train`."""
        model, config = load_checkpoint(checkpoint_dir, verify=verify)
        return cls(
            model,
            PreprocessConfig.from_dict(config["preprocess"]),
            config["class_names"],
            temperature=config.get("temperature", 1.0),
            thresholds=config.get("thresholds", {}).get("per_class"),
            config=config,
            num_threads=num_threads,
        )

    @classmethod
    def imagenet(
        cls, *, weights: str = "offline", input_size: int = 224, num_threads: int | None = 2
    ) -> Predictor:
        """The untouched ImageNet-1k EfficientNet-Lite0 (a smoke test of weights and pipeline)."""
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        model = create_model(DEFAULT_ARCHITECTURE, num_classes=1000, weights=weights)
        names = [info.index_to_description(i) for i in range(info.num_classes())]
        pre = preprocess_config(DEFAULT_ARCHITECTURE, input_size=input_size, resize_mode="squash")
        return cls(model, pre, names, num_threads=num_threads)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits for an already preprocessed ``N×3×S×S`` batch."""
        return self.model(batch.contiguous(memory_format=torch.channels_last)).float()

    def predict(self, images: Sequence[ImageSource], batch_size: int = 64) -> Predictions:
        """Calibrated class probabilities for ``images`` (paths, bytes, files, arrays, PIL)."""
        logits, errors = self.raw_logits(images, batch_size=batch_size)
        scaled = torch.from_numpy(logits) / self.temperature
        probs = torch.softmax(scaled, dim=1).numpy()  # NaN rows stay NaN
        return Predictions(probs, errors)

    def raw_logits(
        self, images: Sequence[ImageSource], batch_size: int = 64, *, flip: bool | None = None
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Logits before temperature (float64, NaN rows where decoding failed). With ``flip``
        (default: the checkpoint's ``tta.flip``), the mean of the image's and its mirror's
        logits: test-time augmentation, at twice the compute."""
        flip = bool(self.config.get("tta", {}).get("flip")) if flip is None else flip
        n = len(images)
        out = np.full((n, self.num_classes), np.nan, dtype=np.float64)
        errors: dict[int, str] = {}
        # Decode one batch at a time so memory stays bounded however many images come in.
        for start in range(0, n, batch_size):
            arrays, indices = [], []
            for i in range(start, min(start + batch_size, n)):
                try:
                    arrays.append(to_uint8_array(images[i], self.preprocess))
                    indices.append(i)
                except Exception as exc:  # a corrupt image must not block the batch
                    errors[i] = f"{type(exc).__name__}: {exc}"
            if not arrays:
                continue
            batch = normalize(np.stack(arrays), self.preprocess)
            logits = self.logits(batch).double()
            if flip:
                logits = (logits + self.logits(torch.flip(batch, dims=[3])).double()) / 2
            out[indices] = logits.numpy()
        return out, errors

    def route(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(labels, confidences, auto mask)`` with the checkpoint's thresholds.

        Rows of NaN (failed images) are never auto-labelled; their label is -1.
        """
        probs = np.asarray(probs, dtype=np.float64)
        failed = np.isnan(probs).any(axis=1)
        safe = np.where(failed[:, None], 0.0, probs)
        labels, conf, auto = routing.route_batch(safe, self.thresholds)
        labels = np.where(failed, -1, labels)
        conf = np.where(failed, np.nan, conf)
        return labels, conf, auto & ~failed
