"""Metrics of a calibrated model on labelled data, as training and the benchmarks report them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ml import calibration, thresholds
from ml.metrics import classification_report


def evaluation_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    target: float = thresholds.DEFAULT_TARGET_PRECISION,
    delta: float = thresholds.DEFAULT_DELTA,
    min_support: int = thresholds.DEFAULT_MIN_SUPPORT,
    chosen: Sequence[float | None] | None = None,
) -> dict:
    """Accuracy, macro F1, per-class precision/recall, ECE and coverage at ``target``.

    Without ``chosen`` thresholds they are selected on these very items (Learn-then-Test) and
    returned under ``"thresholds"``; that is what training reports for its validation split.
    Pass ``chosen`` to evaluate thresholds picked elsewhere (e.g. on a test set).
    """
    labels = np.asarray(labels, dtype=np.int64)
    report = classification_report(labels, probs.argmax(1), list(class_names))
    selected = None
    if chosen is None:
        selected = thresholds.select_thresholds(
            probs,
            None,
            labels,
            len(class_names),
            target=target,
            delta=delta,
            min_support=min_support,
        )
        chosen = thresholds.threshold_values(selected)
    result = thresholds.evaluate_thresholds(probs, labels, chosen)
    overall_curve, _ = thresholds.risk_coverage_curve(probs, labels)
    metrics = {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
        "ece": calibration.expected_calibration_error(probs, labels),
        "target_precision": target,
        "coverage_at_target": result.coverage,
        "precision_of_auto_labels": None if math.isnan(result.precision) else result.precision,
        "auto_labels_per_class": [
            {**row, "precision": None if math.isnan(row["precision"]) else row["precision"]}
            for row in result.per_class
        ],
        "oracle_coverage_at_target": thresholds.coverage_at_precision(overall_curve, target),
        "items": int(len(labels)),
    }
    if selected is not None:
        metrics["threshold_details"] = [
            {
                "class": class_names[c],
                "threshold": t.threshold,
                "support": t.support,
                "accepted": t.accepted,
                "errors": t.errors,
                "upper_bound": t.upper_bound,
                "reason": t.reason,
            }
            for c, t in enumerate(selected)
        ]
    metrics["thresholds"] = list(chosen)
    return metrics


def jsonable(value):
    """``value`` with numpy scalars made Python numbers and NaN or infinity made None, so that
    metrics go into a JSON field (which refuses NaN) unchanged otherwise."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
