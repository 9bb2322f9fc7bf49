"""Classification metrics in numpy (no scikit-learn dependency)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = items of true class i predicted as j."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    flat = labels * num_classes + predictions
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_report(
    labels: np.ndarray, predictions: np.ndarray, class_names: list[str] | tuple[str, ...]
) -> dict:
    """Accuracy, macro F1 and per-class precision/recall/F1/support.

    A class never predicted has precision 0 (and so F1 0), as scikit-learn's default does, so a
    model that ignores a class cannot look good on macro F1.
    """
    k = len(class_names)
    cm = confusion_matrix(labels, predictions, k).astype(np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = actual > 0
    total = cm.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(actual[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }
