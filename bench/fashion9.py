"""A Fashion-MNIST model trained on nine classes (all but Ankle boot), shared by
bench/prototypes.py and bench/label_errors.py, with its outputs cached.

Training takes minutes on two cores, so the checkpoint and the model's probabilities and
embeddings of the images the benchmarks use are kept under ``--cache`` and reused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ml.fashion_mnist import CLASS_NAMES, load_split

NEW_CLASS = 9  # Ankle boot: the class added later from a few examples
KNOWN = [c for c in range(10) if c != NEW_CLASS]
DEFAULT_CACHE = Path("/tmp/i17-bench")


def split_indices(seed: int = 0, per_class_train: int = 600, per_class_val: int = 150) -> dict:
    """Disjoint parts of the training split: training and validation images of the nine known
    classes, calibration images (the project's other labeled images) and the pool the few
    examples of the new class are drawn from."""
    _, labels = load_split("train")
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "calibration": [], "pool": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if c == NEW_CLASS:
            parts["pool"] = idx[:500]
            continue
        parts["train"].extend(idx[:per_class_train])
        parts["val"].extend(idx[per_class_train : per_class_train + per_class_val])
        start = per_class_train + per_class_val
        parts["calibration"].extend(idx[start : start + 560])
    return {k: np.sort(np.asarray(v)) for k, v in parts.items()}


def trained_model(cache: Path = DEFAULT_CACHE, *, threads: int = 2, budget_s: float = 900) -> Path:
    """The nine-class checkpoint, trained once (ml.training.train, the service's recipe)."""
    from ml.training import TrainConfig, train

    out = cache / "fashion9"
    if (out / "config.json").exists():
        return out
    images, labels = load_split("train")
    parts = split_indices()
    remap = {c: i for i, c in enumerate(KNOWN)}
    started = time.perf_counter()
    result = train(
        TrainConfig(
            samples=[(images[i], remap[int(labels[i])]) for i in parts["train"]],
            validation_samples=[(images[i], remap[int(labels[i])]) for i in parts["val"]],
            class_names=[CLASS_NAMES[c] for c in KNOWN],
            output_dir=out,
            time_budget_s=budget_s,
            num_threads=threads,
        )
    )
    (cache / "fashion9_training.json").write_text(
        json.dumps(
            {
                "seconds": round(time.perf_counter() - started, 1),
                "val_accuracy": result.metrics.get("accuracy"),
                "train_images": int(len(parts["train"])),
            }
        )
    )
    return out


def outputs(cache: Path = DEFAULT_CACHE, *, threads: int = 2) -> dict[str, np.ndarray]:
    """The nine-class model's calibrated probabilities and embeddings of: the calibration
    images, the new-class example pool, and the whole test split (cached)."""
    path = cache / "fashion9_outputs.npz"
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    from ml.inference import Predictor

    predictor = Predictor.load(trained_model(cache, threads=threads), num_threads=threads)
    train_images, train_labels = load_split("train")
    test_images, test_labels = load_split("test")
    parts = split_indices()
    found = {}
    for name, images, labels in (
        ("calibration", train_images[parts["calibration"]], train_labels[parts["calibration"]]),
        ("pool", train_images[parts["pool"]], train_labels[parts["pool"]]),
        ("test", test_images, test_labels),
    ):
        result = predictor.predict_and_embed(list(images), batch_size=256)
        found[f"{name}_probs"] = result.probs
        found[f"{name}_embeddings"] = result.embeddings.astype(np.float16)
        found[f"{name}_labels"] = labels
    np.savez(path, **found)
    return found
