"""Thresholds whose guarantee covers all auto-labels together (the *overall* scope).

Per-class scope (``ml.thresholds.select_thresholds``) promises, with probability ≥ 1 - δ, that
each class's auto-labels are at least ``target`` precise. That is a strong promise and an
expensive one: every class must show it from its own calibration items (at least 149 accepted
ones with no error at 0.98 / 0.95), so a class the model is merely good at, or one with few
calibration items, is never auto-labeled.

Overall scope promises the precision of all auto-labels pooled: with probability ≥ 1 - δ over
the calibration set, P(label right | auto-labeled) ≥ ``target`` for images like the calibration
sample. It is what a shop that wants "98 % of the machine's labels right" asks for, and what
Ground Truth's single accuracy target means.

The thresholds form a one-parameter family ``t_c(λ) = max(λ, floor_c)``: one confidence level λ
for every class, never below a class's floor (``floor``: per class, or one number; None = no
floor). An image is auto-labeled at λ exactly when its calibrated confidence reaches both its
predicted class's floor and λ, so the accepted set shrinks as λ rises and the family is tested
in one fixed sequence from high λ to low, as Learn-then-Test does for one class
(``ml.thresholds.select_class_threshold``, with its count-chosen starting points). One test
sequence for all classes means no multiplicity across classes, and one pool of calibration
items means 149 items in all, not per class, are enough to start.

Why one λ for every class: with calibrated confidences, accepting the images most likely to be
right first is what maximises coverage at a pooled precision; a class-by-class trade would need
a second calibration split to learn, and the guarantee would be tested on half the data.

What it does not promise: any single class's precision. A class the model is poor at can sit
below target as long as the pool does not. The thresholds page shows both scopes' coverage so
the admin sees what the stronger promise costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml import thresholds as per_class
from ml.thresholds import (
    DEFAULT_DELTA,
    DEFAULT_MIN_SUPPORT,
    DEFAULT_TARGET_PRECISION,
    START_ERRORS,
    ClassThreshold,
)

PER_CLASS = "per_class"
OVERALL = "overall"
SCOPES = (PER_CLASS, OVERALL)

Floor = float | Sequence[float | None] | None


@dataclass(frozen=True)
class OverallThreshold:
    """Outcome of the overall rule: ``level`` is λ (None: auto-label nothing)."""

    level: float | None
    per_class: list[float | None]  # t_c(λ); None everywhere when level is None
    support: int  # calibration items
    accepted: int  # of those, auto-labeled at λ
    errors: int  # of the accepted, wrong
    upper_bound: float | None  # Clopper-Pearson bound on the pooled error rate at λ
    reason: str


def class_floors(floor: Floor, num_classes: int) -> np.ndarray:
    """Per class floor as an array (0 where there is none)."""
    if floor is None:
        return np.zeros(num_classes)
    if isinstance(floor, int | float):
        return np.full(num_classes, float(floor))
    values = [0.0 if f is None else float(f) for f in floor]
    if len(values) != num_classes:
        raise ValueError(f"{len(values)} floors for {num_classes} classes")
    return np.asarray(values)


def family_thresholds(level: float | None, floors: np.ndarray) -> list[float | None]:
    """``t_c(λ) = max(λ, floor_c)``, or None for every class when there is no λ."""
    if level is None:
        return [None] * len(floors)
    return [float(max(level, f)) for f in floors]


def single_start(n: int, alpha: float, delta: float) -> int:
    """Errors the single overall walk starts at: the most of ``START_ERRORS`` whose first
    passable accepted count is at most a quarter of the ``n`` calibration items (0 below that).

    Per class, several walks split δ (``ml.thresholds.walk_starts``) so that one confidently
    wrong image cannot disable a class with a few hundred items. Pooled over classes the sample
    is larger, and the price of splitting δ is paid at the level that matters: at 9,000 items,
    one walk at δ certifies several points more coverage than four walks at δ/4 (docs/ml.md).
    A start that tolerates a few errors keeps the robustness; starting within the first quarter
    keeps it well before any useful level. Counts only, never labels."""
    counts = np.arange(1, n + 1)
    best = 0
    for errors in START_ERRORS:
        passable = np.flatnonzero(
            per_class.binom_cdf_many(np.full(n, errors), counts, alpha) <= delta
        )
        if len(passable) and passable[0] + 1 <= n / 4:
            best = errors
    return best


def select_overall_thresholds(
    confidences: np.ndarray,
    predictions: np.ndarray | None,
    labels: np.ndarray,
    num_classes: int,
    *,
    target: float = DEFAULT_TARGET_PRECISION,
    delta: float = DEFAULT_DELTA,
    min_support: int = DEFAULT_MIN_SUPPORT,
    floor: Floor = None,
    start_errors: Sequence[int] | None = None,
) -> OverallThreshold:
    """The lowest λ whose pooled auto-label precision is ≥ ``target`` with confidence 1 - δ.

    ``confidences`` with ``predictions``, or an N×K probability matrix with ``predictions=None``
    (as :func:`ml.thresholds.select_thresholds`). Items below their class's floor are never
    auto-labeled, whatever λ, so they never enter a test; the rest are accepted at λ when their
    confidence is ≥ λ, which makes the walk over λ the single-class walk over their confidences.
    """
    conf, pred = per_class._confidences_and_predictions(confidences, predictions)
    labels = np.asarray(labels, dtype=np.int64)
    floors = class_floors(floor, num_classes)
    support = len(conf)
    if support < min_support:
        return OverallThreshold(
            None, [None] * num_classes, support, 0, 0, None, f"only {support} calibration items"
        )
    eligible = conf >= floors[pred]
    if not eligible.any():
        return OverallThreshold(
            None, [None] * num_classes, support, 0, 0, None, "no item reaches its class's floor"
        )
    if start_errors is None:
        start_errors = (single_start(int(eligible.sum()), 1 - target, delta),)
    walk: ClassThreshold = per_class.select_class_threshold(
        conf[eligible],
        (pred == labels)[eligible],
        target=target,
        delta=delta,
        min_support=0,
        start_errors=start_errors,
    )
    if walk.threshold is None:
        reason = walk.reason.replace(f"{int(eligible.sum())} items", f"{support} items")
        return OverallThreshold(None, [None] * num_classes, support, 0, 0, None, reason)
    reason = (
        f"lowest level with pooled error bound {walk.upper_bound:.4f} ≤ {1 - target:.4f}"
        if walk.upper_bound is not None
        # raised to the target and no item reaches it: the walk's own reason says so
        else walk.reason
    )
    return OverallThreshold(
        walk.threshold,
        family_thresholds(walk.threshold, floors),
        support,
        walk.accepted,
        walk.errors,
        walk.upper_bound,
        reason,
    )


def certify(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    scope: str,
    target: float,
    delta: float,
    min_support: int = DEFAULT_MIN_SUPPORT,
    floor: Floor = None,
) -> tuple[list[float | None], list[ClassThreshold] | OverallThreshold]:
    """Per class thresholds certified on ``probs``/``labels`` in ``scope``, and the details
    (a ClassThreshold per class, or one OverallThreshold). ``floor`` enters the overall
    family; the per-class rule's own floor belongs to ``ml.thresholds``."""
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    if scope == OVERALL:
        outcome = select_overall_thresholds(
            probs,
            None,
            labels,
            k,
            target=target,
            delta=delta,
            min_support=min_support,
            floor=floor,
        )
        return outcome.per_class, outcome
    if scope != PER_CLASS:
        raise ValueError(f"unknown scope {scope!r}; use one of {SCOPES}")
    details = per_class.select_thresholds(
        probs, None, labels, k, target=target, delta=delta, min_support=min_support
    )
    return per_class.threshold_values(details), details


def guarantee_curve(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    targets: Sequence[float],
    delta: float,
    min_support: int = DEFAULT_MIN_SUPPORT,
    floor: Floor = None,
    scopes: Sequence[str] = SCOPES,
) -> dict[str, list[dict]]:
    """For each of ``scopes`` and target: the share of the calibration items the certified
    thresholds auto-label, and their precision there (what the admin trades when choosing a
    scope)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    out: dict[str, list[dict]] = {scope: [] for scope in scopes}
    if not len(labels):
        return out
    for scope in scopes:
        for target in targets:
            values, _ = certify(
                probs,
                labels,
                scope=scope,
                target=target,
                delta=delta,
                min_support=min_support,
                floor=floor,
            )
            result = per_class.evaluate_thresholds(probs, labels, values)
            out[scope].append(
                {
                    "target": float(target),
                    "coverage": round(result.coverage, 5),
                    "precision": None if result.accepted == 0 else round(result.precision, 5),
                    "accepted": result.accepted,
                }
            )
    return out
