"""Overall-scope thresholds: one confidence level for all classes, pooled precision guaranteed."""

import numpy as np
import pytest

from ml.overall_scope import (
    OVERALL,
    PER_CLASS,
    certify,
    guarantee_curve,
    select_overall_thresholds,
)
from ml.thresholds import evaluate_thresholds, naive_thresholds

TARGET, DELTA, K = 0.98, 0.05, 4
# Classes differ in how sure the model is: class 3 is the hard one (a shirt among T-shirts).
SHARPNESS = (80.0, 40.0, 20.0, 4.0)


def _stream(rng, n):
    """A calibrated model over K classes: confidence c ~ Beta(a_class, 1) and the predicted
    label is right with probability c, so every class's precision is known exactly."""
    pred = rng.integers(0, K, n)
    conf = rng.beta(np.asarray(SHARPNESS)[pred], 1.0)
    correct = rng.random(n) < conf
    labels = np.where(correct, pred, (pred + 1 + rng.integers(0, K - 1, n)) % K)
    probs = np.full((n, K), 0.0)
    probs[np.arange(n), pred] = conf
    rest = (1 - conf) / (K - 1)
    for c in range(K):
        probs[pred != c, c] = rest[pred != c]
    return probs, labels


def _true_precision(level: float) -> float:
    """Pooled precision of {conf ≥ level} under the stream model, exactly: for Beta(a, 1),
    P(c ≥ t) = 1 - t^a and E[c; c ≥ t] = a/(a+1) (1 - t^(a+1))."""
    accepted = sum(1 - level**a for a in SHARPNESS)
    right = sum(a / (a + 1) * (1 - level ** (a + 1)) for a in SHARPNESS)
    return right / accepted


def test_overall_thresholds_hold_their_guarantee_over_resampled_calibration_sets():
    # 300 calibration sets of 3,000 items from the same stream: the pooled precision of the
    # auto-labels the chosen level lets through, computed exactly, must miss the target in at
    # most about delta of them; the naive level (empirical precision = target) misses often.
    rng = np.random.default_rng(7)
    misses, naive_misses, levels = 0, 0, []
    draws = 300
    for _ in range(draws):
        probs, labels = _stream(rng, 3000)
        chosen = select_overall_thresholds(probs, None, labels, K, target=TARGET, delta=DELTA)
        assert chosen.level is not None
        levels.append(chosen.level)
        misses += _true_precision(chosen.level) < TARGET
        conf, correct = probs.max(1), probs.argmax(1) == labels
        order = np.argsort(-conf)
        running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
        naive_level = conf[order][np.flatnonzero(running >= TARGET).max()]
        naive_misses += _true_precision(naive_level) < TARGET
    assert misses / draws <= DELTA + 0.02  # binomial noise on 300 draws
    assert naive_misses / draws > 0.3
    # And it is not vacuous: the level auto-labels a good share of the stream.
    coverage = np.mean([np.mean([1 - lv**a for a in SHARPNESS]) for lv in levels])
    # (The floor keeps the level at or above the target itself: about 44 % of this stream.)
    assert coverage > 0.4


def test_every_class_gets_the_same_level_and_none_goes_below_its_floor():
    rng = np.random.default_rng(1)
    probs, labels = _stream(rng, 3000)
    free = select_overall_thresholds(probs, None, labels, K, target=TARGET, delta=DELTA)
    assert free.per_class == [free.level] * K
    floors = [None, 0.999, None, None]
    floored = select_overall_thresholds(
        probs, None, labels, K, target=TARGET, delta=DELTA, floor=floors
    )
    assert floored.per_class[1] >= 0.999
    assert all(t >= floored.level for t in floored.per_class)
    # A floor of the target itself (the design's floor) is respected by every class.
    at_target = select_overall_thresholds(
        probs, None, labels, K, target=TARGET, delta=DELTA, floor=TARGET
    )
    assert min(at_target.per_class) >= TARGET
    assert evaluate_thresholds(probs, labels, at_target.per_class).precision >= TARGET


def test_overall_scope_auto_labels_more_than_per_class_when_one_class_is_hard():
    # The hard class can never show 98 % on its own, so per class it is never auto-labeled;
    # overall, its most confident images join the pool.
    rng = np.random.default_rng(3)
    probs, labels = _stream(rng, 4000)
    per_class, details = certify(probs, labels, scope=PER_CLASS, target=TARGET, delta=DELTA)
    overall, outcome = certify(probs, labels, scope=OVERALL, target=TARGET, delta=DELTA)
    assert per_class[3] is None and details[3].threshold is None
    assert overall[3] is not None
    cover_pc = evaluate_thresholds(probs, labels, per_class).coverage
    cover_all = evaluate_thresholds(probs, labels, overall).coverage
    assert cover_all > cover_pc
    assert outcome.upper_bound <= 1 - TARGET


def test_too_few_calibration_items_certify_nothing():
    rng = np.random.default_rng(2)
    probs, labels = _stream(rng, 100)  # 149 accepted items, no error, is the least at 0.98
    chosen = select_overall_thresholds(probs, None, labels, K, target=TARGET, delta=DELTA)
    assert chosen.level is None and chosen.per_class == [None] * K
    assert "100" in chosen.reason


def test_guarantee_curve_has_both_scopes_and_coverage_falls_with_the_target():
    rng = np.random.default_rng(4)
    probs, labels = _stream(rng, 3000)
    curves = guarantee_curve(probs, labels, targets=[0.9, 0.95, 0.98, 0.99], delta=DELTA)
    for scope in (PER_CLASS, OVERALL):
        coverage = [row["coverage"] for row in curves[scope]]
        assert coverage == sorted(coverage, reverse=True)
    for pc, ov in zip(curves[PER_CLASS], curves[OVERALL], strict=True):
        assert ov["coverage"] >= pc["coverage"]


def test_an_unknown_scope_is_refused():
    probs = np.eye(2)[[0, 1, 0]]
    with pytest.raises(ValueError, match="scope"):
        certify(probs, np.array([0, 1, 0]), scope="sometimes", target=0.9, delta=0.1)


def test_naive_thresholds_still_available_for_comparison():
    rng = np.random.default_rng(5)
    probs, labels = _stream(rng, 2000)
    assert len(naive_thresholds(probs, None, labels, K, target=TARGET)) == K


def test_a_walk_raised_to_a_target_no_item_reaches_accepts_nothing_and_says_why():
    # Every item right but only 0.85 sure: the walk passes at 0.85, the floor lifts it to 0.9,
    # where nothing is left (this used to fail formatting a missing error bound).
    probs = np.tile([0.85, 0.15], (200, 1))
    chosen = select_overall_thresholds(probs, None, np.zeros(200, int), 2, target=0.9)
    assert chosen.accepted == 0 and chosen.upper_bound is None
    assert "floor" in chosen.reason
