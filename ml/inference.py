"""Batch inference: ``Predictor.load(checkpoint_dir).predict(images)``.

Calibrated probabilities come out (the checkpoint's temperature, then its per class map when it
has one: ``ml.calibration``), which is what the routing thresholds were chosen on. A stored image
that cannot be decoded gets an error entry for its index and a row of NaNs; the rest of the batch
is predicted as usual.

``Predictor.score(images)`` also returns what the shift check (``ml.shift``) compares with the
model's reference: the penultimate features and the input's image statistics, from the same
forward pass, and ``Predictor.shift`` is the checkpoint's reference (``shift.npz``) if it has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ml import thresholds as routing
from ml.calibration import ClassCalibration, calibrated
from ml.checkpoint import load_checkpoint
from ml.embeddings import normalize as normalize_rows
from ml.factory import DEFAULT_ARCHITECTURE, create_model, preprocess_config
from ml.preprocess import ImageSource, PreprocessConfig, normalize, to_uint8_array
from ml.shift import ShiftReference, ShiftScores, image_statistics


class Predictions(NamedTuple):
    probs: np.ndarray  # N×K calibrated probabilities; NaN rows where decoding failed
    errors: dict[int, str]  # index in the input → why it could not be predicted


class Embedded(NamedTuple):
    probs: np.ndarray  # as Predictions.probs
    embeddings: np.ndarray  # N×D L2-normalised penultimate features (float32); NaN rows failed
    errors: dict[int, str]


class Scored(NamedTuple):
    """Everything one forward pass tells about a batch (NaN rows where decoding failed)."""

    probs: np.ndarray  # N×K calibrated probabilities
    logits: np.ndarray  # N×K before temperature
    features: np.ndarray  # N×D penultimate features (what the classifier reads)
    image_stats: np.ndarray  # N×9 statistics of the model input (ml.shift.image_statistics)
    errors: dict[int, str]


def embedded(scored: Scored) -> Embedded:
    """The probabilities and L2-normalised features of a scored batch: the vectors the
    embedding index stores (cosine similarity is then a dot product)."""
    return Embedded(scored.probs, normalize_rows(scored.features), scored.errors)


class Predictor:
    """A model ready for inference: eval mode, channels-last, fixed thread count."""

    def __init__(
        self,
        model: nn.Module,
        preprocess: PreprocessConfig,
        class_names: Sequence[str],
        *,
        temperature: float = 1.0,
        class_calibration: ClassCalibration | None = None,
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
        if class_calibration is not None and len(class_calibration.slopes) != len(class_names):
            raise ValueError(
                f"class_calibration has {len(class_calibration.slopes)} class maps for "
                f"{len(class_names)} classes"
            )
        self.class_calibration = class_calibration
        self.thresholds = list(thresholds) if thresholds is not None else None
        self.config = config or {}
        self.shift: ShiftReference | None = None  # set by load() when the checkpoint has one

    @classmethod
    def load(
        cls, checkpoint_dir: str | Path, *, num_threads: int | None = 2, verify: bool = True
    ) -> Predictor:
        """Load a checkpoint written by :func:`ml.training.train`."""
        model, config = load_checkpoint(checkpoint_dir, verify=verify)
        predictor = cls(
            model,
            PreprocessConfig.from_dict(config["preprocess"]),
            config["class_names"],
            temperature=config.get("temperature", 1.0),
            # Checkpoints from before per class calibration (or from elsewhere) have none.
            class_calibration=(
                ClassCalibration.from_list(config["class_calibration"])
                if config.get("class_calibration")
                else None
            ),
            thresholds=config.get("thresholds", {}).get("per_class"),
            config=config,
            num_threads=num_threads,
        )
        predictor.shift = ShiftReference.load(checkpoint_dir)
        return predictor

    @classmethod
    def imagenet(
        cls,
        *,
        weights: str = "offline",
        input_size: int = 224,
        num_threads: int | None = 2,
        resize_mode: str = "squash",
    ) -> Predictor:
        """The untouched ImageNet-1k EfficientNet-Lite0: a smoke test of weights and pipeline,
        and the embedding network of a project without a model (``resize_mode="pad"``, as the
        models are trained)."""
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        model = create_model(DEFAULT_ARCHITECTURE, num_classes=1000, weights=weights)
        names = [info.index_to_description(i) for i in range(info.num_classes())]
        pre = preprocess_config(
            DEFAULT_ARCHITECTURE, input_size=input_size, resize_mode=resize_mode
        )
        return cls(model, pre, names, num_threads=num_threads)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits for an already preprocessed ``N×3×S×S`` batch."""
        return self.model(batch.contiguous(memory_format=torch.channels_last)).float()

    @torch.inference_mode()
    def logits_and_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate (pooled, pre-classifier) features of a preprocessed batch, in
        one forward pass."""
        x = self.model.forward_features(batch.contiguous(memory_format=torch.channels_last))
        features = self.model.forward_head(x, pre_logits=True)
        return self.model.get_classifier()(features).float(), features.float()

    @property
    def embedding_dim(self) -> int:
        return int(self.model.num_features)

    def predict(self, images: Sequence[ImageSource], batch_size: int = 64) -> Predictions:
        """Calibrated class probabilities for ``images`` (paths, bytes, files, arrays, PIL)."""
        scored = self.score(images, batch_size=batch_size)
        return Predictions(scored.probs, scored.errors)

    def predict_and_embed(self, images: Sequence[ImageSource], batch_size: int = 64) -> Embedded:
        """Probabilities and L2-normalised penultimate features, from the same forward pass: the
        embedding costs no second run of the network."""
        return embedded(self.score(images, batch_size=batch_size))

    def score(self, images: Sequence[ImageSource], batch_size: int = 64) -> Scored:
        """Probabilities, logits, penultimate features and image statistics for ``images``."""
        n = len(images)
        probs = np.full((n, self.num_classes), np.nan, dtype=np.float64)
        logits_out = np.full((n, self.num_classes), np.nan, dtype=np.float64)
        features_out = np.full((n, self.embedding_dim), np.nan, dtype=np.float32)
        stats_out = np.full((n, 9), np.nan, dtype=np.float64)
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
            batch = np.stack(arrays)
            logits, features = self.logits_and_features(normalize(batch, self.preprocess))
            features_out[indices] = features.numpy()
            logits_out[indices] = logits.double().numpy()
            probs[indices] = calibrated(
                logits.double().numpy(), self.temperature, self.class_calibration
            )
            stats_out[indices] = image_statistics(batch)
        return Scored(probs, logits_out, features_out, stats_out, errors)

    def shift_scores(self, scored: Scored) -> ShiftScores | None:
        """How unusual each image is against the checkpoint's reference (None without one);
        failed rows get NaN scores and p-values."""
        if self.shift is None or not self.shift.calibrated or scored.features.shape[1] == 0:
            return None
        return self.shift.score(
            np.nan_to_num(scored.features), np.nan_to_num(scored.image_stats)
        ).masked(np.isnan(scored.probs).any(axis=1))

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
