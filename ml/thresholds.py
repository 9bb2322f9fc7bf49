"""Per-class accept thresholds with a precision guarantee, and routing.

An image is auto-labelled with its predicted class c when its calibrated confidence is at least
c's threshold. Thresholds come from a held-out calibration set (human labels the model never
trained on) so that, with probability at least ``1 - delta`` over the draw of that set, the
precision of auto-labels of each class is at least ``target``.

How (Learn then Test, Angelopoulos et al. 2021, with fixed-sequence testing): for class c, walk
candidate thresholds from high to low. At each t, the auto-labels are the calibration items
predicted c with confidence ≥ t; with n of them and k wrong, the one-sided Clopper-Pearson upper
bound on their error rate at level ``delta`` is computed. While that bound is ≤ ``1 - target`` the
hypothesis "precision at t is below target" is rejected and the walk goes on; the first failure
stops it. The threshold is the last t that passed. Fixed-sequence testing needs no multiplicity
correction because each test is only reached if all earlier ones rejected. Candidates are the
class's own calibration confidences (a function of the confidences only, never of the labels),
which keeps the sequence fixed given the data the test conditions on.

Where a walk starts matters. Started at the smallest accepted set that could pass at all (149
items at 0.98 / 0.95, zero errors allowed), a single confidently wrong item among a class's most
confident ones (one mislabeled held-out image is enough) stops the walk at once, and the class is
never auto-labeled however good it is below. So there are several walks, each starting where a
few errors could still pass (``START_ERRORS``: 0, 2, 5 and 10 errors), each at level
``delta / walks`` (Bonferroni), and the lowest threshold any of them reaches is used. The
starting points depend on counts only, and a start the class's support cannot reach is dropped
before ``delta`` is split, so a small calibration set keeps the single walk at full ``delta``.

The naive alternative, the lowest t whose *empirical* held-out precision reaches the target,
sits where the true precision is about equal to the target, and so misses it about half the time.

**The floor.** No threshold is ever below the target precision itself. When every held-out item
of a class is right, the walk can go down to the class's lowest held-out confidence (0.43 for
Trouser on a 10,000-label model at target 0.95), and the service would auto-label images its own
calibrated model rates less than 50 % likely. On held-out images like those that is harmless,
but the guarantee is only as good as that likeness (``ml.shift``), and a calibrated confidence
under the target is, by the model's own account, an image more likely wrong than the target
allows. So :func:`select_class_threshold` raises such a threshold to ``target``
(:func:`threshold_floor`, also applied to thresholds set by hand). The floor lies above the walk's
result, so the accepted set shrinks to images that were tested on the way down or lie above the
walk's start; the stated guarantee is kept for the former and, for a calibrated model, holds by
calibration for the latter.

The guarantee assumes that the images routed later are exchangeable with the calibration images
(drawn the same way). ``ml.shift`` checks that per image and over the stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

DEFAULT_TARGET_PRECISION = 0.98
DEFAULT_DELTA = 0.05  # 1 - confidence
DEFAULT_MIN_SUPPORT = 30
# Errors each walk's first test tolerates (see the module doc): one walk per entry.
START_ERRORS = (0, 2, 5, 10)


# --- exact binomial tails (scipy.stats) --------------------------------------------------------


def binom_cdf_many(ks: np.ndarray, ns: np.ndarray, p: float) -> np.ndarray:
    """Exact P(Binomial(n, p) ≤ k) for arrays of (k, n) pairs."""
    return stats.binom.cdf(np.asarray(ks, dtype=np.int64), np.asarray(ns, dtype=np.int64), p)


def clopper_pearson_upper(k: int, n: int, delta: float) -> float:
    """One-sided exact upper confidence bound (level 1 - delta) on a binomial proportion: the u
    with P(Binomial(n, u) ≤ k) = delta, the (1 - delta) quantile of Beta(k + 1, n - k). 1.0
    when n = 0 (nothing observed, nothing known) or every trial was a success."""
    if n <= 0 or k >= n:
        return 1.0
    return float(stats.beta.ppf(1.0 - delta, k + 1, n - k))


# --- threshold selection ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClassThreshold:
    """Outcome for one class: ``threshold`` None means never auto-label that class."""

    threshold: float | None
    support: int  # calibration items predicted as this class
    accepted: int  # of those, confidence ≥ threshold
    errors: int  # of the accepted, wrong
    upper_bound: float | None  # Clopper-Pearson bound on the error rate at the threshold
    reason: str  # why, in words, for the admin page
    # For a class that is never auto-labeled: the fewest further calibration items predicted as
    # this class, all of them right, before a threshold could pass (None: it has a threshold).
    needed: int | None = None
    floored_from: float | None = None  # the walk's threshold when the floor raised it


def items_needed(
    support: int, errors: int, *, target: float, delta: float, min_support: int
) -> int:
    """How many more calibration items of a class, none of them wrong, its Learn-then-Test walk
    needs before any threshold can pass: with ``errors`` wrong among ``support``, the smallest
    n ≥ max(support, min_support) whose exact binomial test at ``delta`` passes with ``errors``
    errors, minus ``support``. A lower bound: more errors among the new items need more."""
    alpha = 1.0 - target
    start = max(support, min_support, 1)
    for low in range(start, start + 10_000_000, 100_000):
        n = np.arange(low, low + 100_000)
        passing = np.flatnonzero(binom_cdf_many(np.full(len(n), errors), n, alpha) <= delta)
        if len(passing):
            return int(n[passing[0]]) - support
    return 10_000_000


def _confidences_and_predictions(
    confidences: np.ndarray, predictions: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidences, dtype=np.float64)
    if predictions is None:  # an N×K probability matrix
        return conf.max(axis=1), conf.argmax(axis=1)
    return conf, np.asarray(predictions, dtype=np.int64)


def walk_starts(
    n: np.ndarray, alpha: float, delta: float, start_errors: Sequence[int] = START_ERRORS
) -> tuple[list[int], float]:
    """Where each walk starts (indices into the candidates' accepted counts ``n``, ascending)
    and the level each walk tests at. Walk j starts at the first candidate whose accepted count
    would pass with ``start_errors[j]`` errors at level ``delta / walks``; the walks are the
    longest prefix of ``start_errors`` that the counts can all reach. Counts only, no labels."""
    for walks in range(len(start_errors), 0, -1):
        level = delta / walks
        starts = []
        for errors in start_errors[:walks]:
            possible = np.flatnonzero(binom_cdf_many(np.full(len(n), errors), n, alpha) <= level)
            if len(possible) == 0:
                break
            starts.append(int(possible[0]))
        else:
            return starts, level
    return [], delta


def select_class_threshold(
    conf: np.ndarray,
    correct: np.ndarray,
    *,
    target: float = DEFAULT_TARGET_PRECISION,
    delta: float = DEFAULT_DELTA,
    min_support: int = DEFAULT_MIN_SUPPORT,
    start_errors: Sequence[int] = START_ERRORS,
) -> ClassThreshold:
    """Learn-then-Test threshold for one class from its items' confidences and correctness."""
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    support = len(conf)
    errors_total = int((~correct).sum())

    def needed() -> int:
        return items_needed(
            support, errors_total, target=target, delta=delta, min_support=min_support
        )

    if support < min_support:
        return ClassThreshold(
            None,
            support,
            0,
            0,
            None,
            f"only {support} held-out images predicted as this class (at least {min_support} "
            "needed)",
            needed(),
        )
    order = np.argsort(-conf, kind="stable")
    conf_sorted = conf[order]
    errors_cum = np.cumsum(~correct[order])
    alpha = 1.0 - target
    # Candidate thresholds: each distinct confidence, high to low; at a tie the accepted set is
    # everything with confidence ≥ t, so test at the last index of each run of equal values.
    last_of_run = np.flatnonzero(np.r_[conf_sorted[1:] != conf_sorted[:-1], True])
    n = last_of_run + 1
    k = errors_cum[last_of_run]
    starts, level = walk_starts(n, alpha, delta, start_errors)
    if not starts:
        return ClassThreshold(
            None,
            support,
            0,
            0,
            None,
            f"{support} held-out images are too few to show precision {target:.3g} at "
            f"confidence {1 - delta:.3g}",
            needed(),
        )
    # A binomial p-value ≤ level is the same event as "upper bound ≤ alpha", and cheap to compute
    # for all candidates at once; the bound itself is computed once, for the chosen threshold.
    passed = binom_cdf_many(k, n, alpha) <= level
    reached = []  # per walk, the index of its last pass (the lowest threshold it reached)
    for start in starts:
        walk = passed[start:]
        first_fail = int(np.argmin(walk)) if not walk.all() else len(walk)
        if first_fail > 0:
            reached.append(start + first_fail - 1)
    if not reached:
        return ClassThreshold(
            None,
            support,
            0,
            0,
            None,
            f"its most confident held-out images include wrong ones ({errors_total} of "
            f"{support}): precision {target:.3g} cannot be shown at confidence {1 - delta:.3g}",
            needed(),
        )
    chosen = max(reached)
    walked = float(conf_sorted[last_of_run[chosen]])
    if walked < target:  # the floor: see the module doc
        accepted = int((conf_sorted >= target).sum())
        errors = int(errors_cum[accepted - 1]) if accepted else 0
        bound = clopper_pearson_upper(errors, accepted, level) if accepted else None
        return ClassThreshold(
            float(target),
            support,
            accepted,
            errors,
            bound,
            f"raised to the floor {target:.3g} from {walked:.4f}: a calibrated confidence under "
            f"the target precision is never an auto-label",
            floored_from=walked,
        )
    accepted, errors = int(n[chosen]), int(k[chosen])
    bound = clopper_pearson_upper(errors, accepted, level)
    return ClassThreshold(
        walked,
        support,
        accepted,
        errors,
        bound,
        f"lowest threshold with error bound {bound:.4f} ≤ {alpha:.4f}",
    )


def threshold_floor(thresholds: Sequence[float | None], target: float) -> list[float | None]:
    """Every threshold below ``target`` raised to it (None, never auto-label, stays None): a
    calibrated confidence under the target precision is never an auto-label."""
    return [None if t is None else max(float(t), float(target)) for t in thresholds]


def below_floor(thresholds: dict[str, float | None], target: float) -> dict[str, float]:
    """The thresholds (by class name) that the floor would raise: what a manual setting must not
    contain."""
    return {name: t for name, t in thresholds.items() if t is not None and t < target}


def select_thresholds(
    confidences: np.ndarray,
    predictions: np.ndarray | None,
    labels: np.ndarray,
    num_classes: int,
    *,
    target: float = DEFAULT_TARGET_PRECISION,
    delta: float = DEFAULT_DELTA,
    min_support: int = DEFAULT_MIN_SUPPORT,
) -> list[ClassThreshold]:
    """Per-predicted-class thresholds with the Learn-then-Test guarantee (see module doc).

    ``confidences``: calibrated top-class confidences (N), with ``predictions`` (N); or an N×K
    probability matrix with ``predictions=None``. ``labels``: the true (human) labels.
    The guarantee holds per class at level ``delta``.
    """
    conf, pred = _confidences_and_predictions(confidences, predictions)
    correct = pred == np.asarray(labels, dtype=np.int64)
    return [
        select_class_threshold(
            conf[pred == c],
            correct[pred == c],
            target=target,
            delta=delta,
            min_support=min_support,
        )
        for c in range(num_classes)
    ]


def naive_thresholds(
    confidences: np.ndarray,
    predictions: np.ndarray | None,
    labels: np.ndarray,
    num_classes: int,
    *,
    target: float = DEFAULT_TARGET_PRECISION,
    min_support: int = DEFAULT_MIN_SUPPORT,
) -> list[float | None]:
    """Per class, the lowest threshold whose empirical held-out precision is ≥ ``target``.

    For comparison only: it has no guarantee and misses the target about half the time.
    """
    conf, pred = _confidences_and_predictions(confidences, predictions)
    correct = pred == np.asarray(labels, dtype=np.int64)
    out: list[float | None] = []
    for c in range(num_classes):
        cc, ok = conf[pred == c], correct[pred == c]
        if len(cc) < min_support:
            out.append(None)
            continue
        order = np.argsort(-cc, kind="stable")
        cs = cc[order]
        precision = np.cumsum(ok[order]) / np.arange(1, len(cs) + 1)
        last_of_run = np.flatnonzero(np.r_[cs[1:] != cs[:-1], True])
        passing = last_of_run[precision[last_of_run] >= target]
        out.append(float(cs[passing[-1]]) if len(passing) else None)
    return out


def threshold_values(thresholds: Sequence[ClassThreshold | float | None]) -> list[float | None]:
    """Plain per-class floats (None = never) from :func:`select_thresholds` output or floats."""
    return [t.threshold if isinstance(t, ClassThreshold) else t for t in thresholds]


# --- evaluation and routing -------------------------------------------------------------------


def accept_mask(
    confidences: np.ndarray,
    predictions: np.ndarray,
    thresholds: Sequence[ClassThreshold | float | None] | float | None,
) -> np.ndarray:
    """Boolean mask of items that would be auto-labelled (confidence ≥ its class threshold)."""
    conf = np.asarray(confidences, dtype=np.float64)
    pred = np.asarray(predictions, dtype=np.int64)
    if thresholds is None or isinstance(thresholds, (int, float)):
        if thresholds is None:
            return np.zeros(len(conf), dtype=bool)
        return conf >= float(thresholds)
    values = threshold_values(thresholds)
    # None → +inf: confidences never reach it.
    per_class = np.array([np.inf if v is None else v for v in values], dtype=np.float64)
    return conf >= per_class[pred]


@dataclass(frozen=True)
class CoverageResult:
    coverage: float  # fraction of all items auto-labelled
    precision: float  # fraction of auto-labelled items that are right (nan if none)
    accepted: int
    total: int
    per_class: list[dict]  # per predicted class: coverage within class, precision, counts


def evaluate_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    thresholds: Sequence[ClassThreshold | float | None] | float | None,
) -> CoverageResult:
    """Coverage and realised precision of auto-labelling ``probs`` with ``thresholds``."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    accepted = accept_mask(conf, pred, thresholds)
    correct = pred == labels
    per_class = []
    for c in range(probs.shape[1]):
        in_c = pred == c
        acc_c = accepted & in_c
        per_class.append(
            {
                "class": c,
                "predicted": int(in_c.sum()),
                "accepted": int(acc_c.sum()),
                "coverage": float(acc_c.sum() / in_c.sum()) if in_c.any() else 0.0,
                "precision": float(correct[acc_c].mean()) if acc_c.any() else float("nan"),
            }
        )
    n_acc = int(accepted.sum())
    return CoverageResult(
        coverage=float(n_acc / len(labels)) if len(labels) else 0.0,
        precision=float(correct[accepted].mean()) if n_acc else float("nan"),
        accepted=n_acc,
        total=len(labels),
        per_class=per_class,
    )


@dataclass(frozen=True)
class RiskCoverageCurve:
    """Coverage and precision as a single threshold moves from high to low."""

    thresholds: np.ndarray  # descending
    coverage: np.ndarray  # fraction of the items considered with confidence ≥ threshold
    precision: np.ndarray  # accuracy among them
    accepted: np.ndarray  # counts


def _curve(conf: np.ndarray, correct: np.ndarray, total: int) -> RiskCoverageCurve:
    order = np.argsort(-conf, kind="stable")
    cs = conf[order]
    ok = np.cumsum(correct[order])
    last_of_run = np.flatnonzero(np.r_[cs[1:] != cs[:-1], True]) if len(cs) else np.array([], int)
    n = last_of_run + 1
    return RiskCoverageCurve(
        thresholds=cs[last_of_run],
        coverage=n / max(total, 1),
        precision=ok[last_of_run] / n if len(n) else np.array([]),
        accepted=n,
    )


def risk_coverage_curve(
    probs: np.ndarray, labels: np.ndarray
) -> tuple[RiskCoverageCurve, list[RiskCoverageCurve]]:
    """Overall curve (one global threshold) and one curve per predicted class.

    Per-class coverage is relative to the items predicted as that class, which is what an admin
    moving that class's slider sees change.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    correct = pred == labels
    overall = _curve(conf, correct, len(conf))
    per_class = [
        _curve(conf[pred == c], correct[pred == c], int((pred == c).sum()))
        for c in range(probs.shape[1])
    ]
    return overall, per_class


def coverage_at_precision(curve: RiskCoverageCurve, target: float) -> float:
    """Largest coverage on ``curve`` whose precision is ≥ ``target`` (0 if none)."""
    ok = curve.precision >= target
    return float(curve.coverage[ok].max()) if ok.any() else 0.0


def route(
    probs: np.ndarray | Sequence[float],
    thresholds: Sequence[ClassThreshold | float | None] | float | None,
) -> tuple[int, float, bool]:
    """Decide one image: ``(predicted label, confidence, auto-labelled?)``.

    Auto-labels when the class has a threshold and confidence ≥ it (equality auto-labels).
    """
    p = np.asarray(probs, dtype=np.float64).ravel()
    label = int(p.argmax())
    confidence = float(p[label])
    auto = bool(accept_mask(np.array([confidence]), np.array([label]), thresholds)[0])
    return label, confidence, auto


def route_batch(
    probs: np.ndarray,
    thresholds: Sequence[ClassThreshold | float | None] | float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`route` for an N×K matrix: ``(labels, confidences, auto mask)``."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = probs.argmax(axis=1)
    conf = probs[np.arange(len(probs)), labels]
    return labels, conf, accept_mask(conf, labels, thresholds)
