"""A Fashion-MNIST checkpoint's held-out pool (its validation split, then the test split) as raw
logits with labels, cached beside the checkpoint so threshold studies need not run the network
again."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.checkpoint import read_config  # noqa: E402
from ml.fashion_mnist import checkpoint_validation, load_split  # noqa: E402
from ml.inference import Predictor  # noqa: E402

CACHE = "small_evidence_logits.npz"


def pool_logits(checkpoint: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """``(logits, labels, n_validation)``: the first ``n_validation`` rows are the checkpoint's
    own validation split (what its temperature was fitted on), the rest the test split."""
    config = read_config(checkpoint)
    x_train, y_train = load_split("train")
    x_test, y_test = load_split("test")
    val_idx = checkpoint_validation(y_train, config)
    cached = checkpoint / CACHE
    if cached.exists() and cached.stat().st_mtime > (checkpoint / "model.pt").stat().st_mtime:
        with np.load(cached) as npz:
            return npz["logits"], npz["labels"], len(val_idx)
    predictor = Predictor.load(checkpoint, num_threads=2)
    images = list(x_train[val_idx]) + list(x_test)
    logits = predictor.score(images, batch_size=256).logits
    labels = np.concatenate([y_train[val_idx], y_test])
    np.savez(cached, logits=logits, labels=labels)
    return logits, labels, len(val_idx)


def shifted_test_logits(checkpoint: Path, kind: str, seed: int = 0) -> np.ndarray:
    """The test split's logits with every image made a ``kind`` photo (``bench/photo_shifts.py``,
    as PNG bytes like an upload; image i drawn with seed ``seed + i``), cached beside the
    checkpoint."""
    from bench.photo_shifts import shifted_png

    cached = checkpoint / f"shifted_{kind}_{seed}_logits.npz"
    if cached.exists() and cached.stat().st_mtime > (checkpoint / "model.pt").stat().st_mtime:
        with np.load(cached) as npz:
            return npz["logits"]
    x_test, _ = load_split("test")
    predictor = Predictor.load(checkpoint, num_threads=2)
    images = [shifted_png(pixels, kind, seed + i) for i, pixels in enumerate(x_test)]
    logits = predictor.score(images, batch_size=256).logits
    np.savez(cached, logits=logits)
    return logits
