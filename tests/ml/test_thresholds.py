"""Accept thresholds: the Learn-then-Test guarantee, support rules and routing."""

import numpy as np
import pytest

from ml.thresholds import (
    binom_cdf,
    binom_cdf_many,
    clopper_pearson_upper,
    evaluate_thresholds,
    naive_thresholds,
    risk_coverage_curve,
    route,
    route_batch,
    select_class_threshold,
    select_thresholds,
    walk_starts,
)

TARGET, DELTA = 0.98, 0.05


def test_clopper_pearson_matches_known_values():
    # Zero errors in n: the bound is 1 - delta^(1/n) exactly.
    assert clopper_pearson_upper(0, 150, 0.05) == pytest.approx(1 - 0.05 ** (1 / 150), rel=1e-9)
    assert clopper_pearson_upper(0, 0, 0.05) == 1.0
    # Against scipy when it is around (dev dependency of scikit-image).
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(3, 500), (10, 200), (40, 2000)]:
        assert clopper_pearson_upper(k, n, 0.05) == pytest.approx(
            stats.beta.ppf(0.95, k + 1, n - k), rel=1e-8
        )
        assert binom_cdf(k, n, 0.02) == pytest.approx(stats.binom.cdf(k, n, 0.02), rel=1e-9)
    ks, ns = np.array([0, 5, 50]), np.array([10, 300, 4000])
    assert binom_cdf_many(ks, ns, 0.02) == pytest.approx(stats.binom.cdf(ks, ns, 0.02), rel=1e-8)


def test_class_with_too_little_support_gets_none():
    conf = np.full(10, 0.999)
    result = select_class_threshold(conf, np.ones(10, bool), min_support=30)
    assert result.threshold is None
    assert "only 10" in result.reason


def test_flawless_class_needs_enough_items_to_prove_precision():
    # 100 perfect items cannot show 98% at 95% confidence (needs n ≥ 149 with zero errors).
    assert select_class_threshold(np.linspace(0.9, 1, 100), np.ones(100, bool)).threshold is None
    assert select_class_threshold(np.linspace(0.9, 1, 200), np.ones(200, bool)).threshold == 0.9


def test_one_confidently_wrong_item_does_not_disable_a_good_class():
    # 1,000 items, the 3rd most confident one wrong (say a mislabeled held-out image), and a few
    # more errors low down: a single walk from the top fails at once; a later start passes.
    conf = np.linspace(1.0, 0.5, 1000)
    correct = np.ones(1000, bool)
    correct[[2, 700, 800, 900]] = False
    single = select_class_threshold(conf, correct, start_errors=(0,))
    several = select_class_threshold(conf, correct)

    assert single.threshold is None
    assert several.threshold is not None and several.accepted >= 600
    assert several.upper_bound <= 1 - TARGET


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
