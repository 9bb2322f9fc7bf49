"""Temperature scaling fixes an overconfident model without changing its answers."""

import numpy as np

from ml.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability,
    softmax,
)


def _overconfident(n: int = 4000, k: int = 5, seed: int = 0):
    # True logits give calibrated probabilities; the "model" reports them ×3 (overconfident).
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, size=(n, k))
    labels = np.array([rng.choice(k, p=p) for p in softmax(true_logits)])
    return true_logits * 3.0, labels


def test_temperature_scaling_lowers_ece_and_nll():
    logits, labels = _overconfident()
    before = expected_calibration_error(softmax(logits), labels)
    t = fit_temperature(logits, labels)
    after = expected_calibration_error(softmax(logits, t), labels)
    assert 2.5 < t < 3.5  # recovers the factor 3 it was inflated by
    assert after < before / 3
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)


def test_temperature_does_not_change_predictions():
    logits, _ = _overconfident(200)
    assert np.array_equal(softmax(logits, 0.3).argmax(1), softmax(logits, 7.0).argmax(1))


def test_reliability_bins_count_everything():
    logits, labels = _overconfident(500)
    bins = reliability(softmax(logits), labels, n_bins=10)
    assert bins.counts.sum() == 500
    assert len(bins.edges) == 11


def test_perfectly_calibrated_has_small_ece():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 20000)
    correct = rng.random(20000) < conf
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.where(correct, 0, 1)
    assert expected_calibration_error(probs, labels) < 0.02
