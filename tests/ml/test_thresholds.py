"""Accept thresholds: the Learn-then-Test guarantee, support rules and routing."""

import json
from pathlib import Path

import numpy as np
import pytest

from ml.thresholds import (
    binom_cdf_many,
    clopper_pearson_upper,
    evaluate_thresholds,
    naive_thresholds,
    risk_coverage_curve,
    route,
    route_batch,
    select_class_threshold,
    select_thresholds,
    threshold_floor,
    walk_starts,
)

TARGET, DELTA = 0.98, 0.05


def test_clopper_pearson_matches_known_values():
    # Zero errors in n: the bound is 1 - delta^(1/n) exactly.
    assert clopper_pearson_upper(0, 150, 0.05) == pytest.approx(1 - 0.05 ** (1 / 150), rel=1e-9)
    assert clopper_pearson_upper(0, 0, 0.05) == 1.0
    assert clopper_pearson_upper(7, 7, 0.05) == 1.0
    # By definition: at the bound u, P(Binomial(n, u) <= k) = delta.
    for k, n in [(3, 500), (10, 200), (40, 2000)]:
        u = clopper_pearson_upper(k, n, 0.05)
        assert binom_cdf_many(np.array([k]), np.array([n]), u)[0] == pytest.approx(0.05, rel=1e-6)
    # A tail sum done by hand.
    assert binom_cdf_many(np.array([1]), np.array([3]), 0.5)[0] == pytest.approx(0.5)


BEFORE_SCIPY = Path(__file__).parent / "data" / "thresholds_before_scipy.json"


def _recorded_cases():
    """The seeded synthetic calibration sets the thresholds in BEFORE_SCIPY were recorded on,
    with the hand-written continued fraction this module used before scipy.stats."""
    for seed in range(12):
        rng = np.random.default_rng(seed)
        k = [2, 4, 10][seed % 3]
        n = [300, 2000, 9000][seed % 3]
        quality = [0.8, 0.9, 0.97][(seed // 3) % 3]
        labels = rng.integers(0, k, n)
        logits = rng.normal(0, 1, (n, k))
        logits[np.arange(n), labels] += rng.normal(2.5 + 4 * (quality - 0.8), 1.0, n)
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        probs = np.round(probs, 4)  # ties, as stored probabilities have
        for target, delta in ((0.95, 0.05), (0.98, 0.05), (0.99, 0.1)):
            yield k, probs, labels, target, delta


def test_thresholds_are_unchanged_by_the_switch_to_scipy():
    recorded = json.loads(BEFORE_SCIPY.read_text())
    cases = list(_recorded_cases())
    assert len(cases) == len(recorded)
    for (k, probs, labels, target, delta), before in zip(cases, recorded, strict=True):
        now = select_thresholds(probs, None, labels, k, target=target, delta=delta, min_support=30)
        # The walks are unchanged; the floor (added later) then raises what lies below target.
        walked = [r.threshold if r.floored_from is None else r.floored_from for r in now]
        assert walked == before["thresholds"]
        for r, old in zip(now, before["thresholds"], strict=True):
            assert r.threshold == (None if old is None else max(old, target))
        unfloored = [r.floored_from is None for r in now]
        assert [r.accepted for r, u in zip(now, unfloored, strict=True) if u] == [
            a for a, u in zip(before["accepted"], unfloored, strict=True) if u
        ]
        kept = [(r, old) for r, old, u in zip(now, before["bounds"], unfloored, strict=True) if u]
        for r, old in kept:
            bound = r.upper_bound
            assert bound == pytest.approx(old, abs=1e-9) if old is not None else bound is None
    # The recording is not trivial: most classes got a threshold, some did not.
    chosen = [t for r in recorded for t in r["thresholds"]]
    assert 0 < sum(t is None for t in chosen) < sum(t is not None for t in chosen)


def test_class_with_too_little_support_gets_none():
    conf = np.full(10, 0.999)
    result = select_class_threshold(conf, np.ones(10, bool), min_support=30)
    assert result.threshold is None
    assert "only 10" in result.reason


def test_a_never_class_says_how_many_more_items_it_needs():
    # 98 % at 95 % confidence with no error needs 149 items: 16 have 133 to go.
    small = select_class_threshold(np.full(16, 0.999), np.ones(16, bool), min_support=30)
    assert small.threshold is None and small.needed == 133
    # Given that many more, all right, the class gets a threshold.
    enough = select_class_threshold(np.full(149, 0.999), np.ones(149, bool), min_support=30)
    assert enough.threshold is not None and enough.needed is None
    # Three confident errors: 160 items are not enough, and more are needed than a flawless
    # class of that size would need (none).
    flawed = np.ones(160, bool)
    flawed[-3:] = False
    result = select_class_threshold(np.linspace(0.9, 1, 160), flawed)
    assert result.threshold is None and result.needed > 100


def test_flawless_class_needs_enough_items_to_prove_precision():
    # 100 perfect items cannot show 98% at 95% confidence (needs n ≥ 149 with zero errors).
    assert select_class_threshold(np.linspace(0.9, 1, 100), np.ones(100, bool)).threshold is None
    flawless = select_class_threshold(np.linspace(0.9, 1, 200), np.ones(200, bool))
    # The walk reaches 0.9; the floor keeps the threshold at the target precision.
    assert (flawless.floored_from, flawless.threshold) == (0.9, 0.98)


def test_no_threshold_is_below_the_target_precision():
    # A flawless held-out class whose confidences reach down to 0.4: the walk would accept all
    # of them, but an image the calibrated model rates 40 % likely is never an auto-label.
    conf = np.linspace(1.0, 0.4, 600)
    result = select_class_threshold(conf, np.ones(600, bool), target=0.95)
    assert result.floored_from == pytest.approx(0.4)
    assert result.threshold == 0.95
    assert result.accepted == int((conf >= 0.95).sum())
    assert "floor" in result.reason
    probs = np.array([[0.6, 0.4], [0.94, 0.06], [0.95, 0.05], [0.99, 0.01]])
    _, _, auto = route_batch(probs, [result.threshold, result.threshold])
    assert auto.tolist() == [False, False, True, True]
    # Thresholds set by hand (or stored before the floor existed) are raised the same way.
    assert threshold_floor([0.3, None, 0.97], 0.95) == [0.95, None, 0.97]


def test_one_confidently_wrong_item_does_not_disable_a_good_class():
    # 1,000 items, the 3rd most confident one wrong (say a mislabeled held-out image), and a few
    # more errors low down: a single walk from the top fails at once; a later start passes.
    conf = np.linspace(1.0, 0.5, 1000)
    correct = np.ones(1000, bool)
    correct[[2, 700, 800, 900]] = False
    single = select_class_threshold(conf, correct, start_errors=(0,))
    several = select_class_threshold(conf, correct)

    assert single.threshold is None
    # The walk goes far down (to about 0.7); the floor then keeps only confidences ≥ target.
    assert several.floored_from is not None and several.floored_from < 0.75
    assert several.threshold == TARGET and several.accepted == int((conf >= TARGET).sum())


def test_small_calibration_sets_keep_one_walk_at_full_delta():
    n = np.arange(1, 201)
    starts, level = walk_starts(n, alpha=0.02, delta=0.05)
    assert (starts, level) == ([148], 0.05)  # 149 items, zero errors: (0.98)^149 ≤ 0.05
    starts, level = walk_starts(np.arange(1, 2001), alpha=0.02, delta=0.05)
    assert len(starts) == 4 and level == 0.05 / 4
    assert starts == sorted(starts)


def _population(rng, n):
    """A class whose P(correct | confidence c) = c: calibrated, so precision is computable."""
    conf = rng.beta(12, 1, n)
    correct = rng.random(n) < conf
    return conf, correct


def _true_precision(t: float) -> float:
    # Precision of {conf ≥ t} for conf ~ Beta(12, 1), correct ~ Bernoulli(conf):
    # E[c | c ≥ t] = (12/13) (1 - t^13) / (1 - t^12).
    return (12 / 13) * (1 - t**13) / (1 - t**12)


def test_guarantee_holds_across_resampled_calibration_sets():
    rng = np.random.default_rng(0)
    misses_ltt = misses_naive = trials = 0
    for _ in range(200):
        conf, correct = _population(rng, 2000)
        ltt = select_class_threshold(conf, correct, target=TARGET, delta=DELTA).threshold
        labels = np.where(correct, 0, 1)
        naive = naive_thresholds(conf, np.zeros(len(conf), int), labels, 1, target=TARGET)[0]
        trials += 1
        misses_ltt += ltt is not None and _true_precision(ltt) < TARGET
        misses_naive += naive is not None and _true_precision(naive) < TARGET
    assert misses_ltt / trials <= DELTA
    assert 0.3 < misses_naive / trials < 0.7  # "about half the time"


def test_select_thresholds_per_predicted_class():
    rng = np.random.default_rng(3)
    n = 4000
    probs = rng.dirichlet([0.2, 0.2, 0.2], n)
    probs[:, 2] = 0.0  # class 2 is predicted for 10 items only: too little support
    probs[:10] = [0.0, 0.0, 1.0]
    probs /= probs.sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in probs])  # calibrated by construction
    chosen = select_thresholds(probs, None, labels, 3, target=0.9)
    assert chosen[2].threshold is None
    assert chosen[0].threshold is not None and chosen[0].upper_bound <= 0.1
    result = evaluate_thresholds(probs, labels, [c.threshold for c in chosen])
    assert 0 < result.coverage < 1


def test_route_auto_labels_at_exactly_the_threshold():
    probs = np.array([0.1, 0.9, 0.0])
    assert route(probs, [0.5, 0.9, 0.5]) == (1, 0.9, True)
    assert route(probs, [0.5, np.nextafter(0.9, 1.0), 0.5]) == (1, 0.9, False)
    assert route(probs, [0.5, None, 0.5])[2] is False  # None: never auto-label


def test_route_batch_and_global_threshold():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
    labels, conf, auto = route_batch(probs, 0.75)
    assert labels.tolist() == [0, 1, 0]
    assert auto.tolist() == [False, True, False]


def test_risk_coverage_curve_is_monotone_in_coverage():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet([1, 1, 1], 500)
    labels = rng.integers(0, 3, 500)
    overall, per_class = risk_coverage_curve(probs, labels)
    assert np.all(np.diff(overall.coverage) > 0)
    assert overall.coverage[-1] == pytest.approx(1.0)
    assert len(per_class) == 3
    assert sum(c.accepted[-1] for c in per_class if len(c.accepted)) == 500
