"""Temperature scaling fixes an overconfident model without changing its answers; the per class
map fixes what one temperature cannot."""

import numpy as np
import pytest

from ml.calibration import (
    ClassCalibration,
    calibrated,
    expected_calibration_error,
    fit_class_calibration,
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


def _classes_apart(n: int = 3000, k: int = 4, seed: int = 1):
    """Held-out predictions where class 0 is under-confident (says ~0.7, right 99 % of the time)
    and class 1 over-confident (says ~0.9, right 70 %): one temperature cannot fix both."""
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, k, size=n)
    top = np.where(pred == 0, rng.uniform(0.6, 0.8, n), rng.uniform(0.85, 0.95, n))
    right_rate = np.select([pred == 0, pred == 1], [0.99, 0.70], default=top)
    right = rng.random(n) < right_rate
    probs = np.full((n, k), 0.0)
    probs[np.arange(n), pred] = top
    for i in range(n):
        others = [c for c in range(k) if c != pred[i]]
        probs[i, others] = (1 - top[i]) / (k - 1)
    labels = np.where(right, pred, (pred + 1 + rng.integers(0, k - 1, n)) % k)
    return probs, labels, pred


def _class_gap(probs, labels, pred, c):
    sel = pred == c
    return abs(probs[sel].max(1).mean() - (labels[sel] == c).mean())


def test_class_calibration_fixes_what_one_temperature_cannot():
    probs, labels, pred = _classes_apart()
    fitted = fit_class_calibration(probs, labels)
    # Judged on fresh items from the same source, not the ones it was fitted on.
    test_probs, test_labels, test_pred = _classes_apart(seed=2)
    after = fitted.apply(test_probs)
    for c in (0, 1):
        assert _class_gap(after, test_labels, test_pred, c) < 0.03
        assert _class_gap(test_probs, test_labels, test_pred, c) > 0.15
    # The reliable class now clears a 0.95 floor; the unreliable one no longer reaches 0.85.
    assert (after[test_pred == 0].max(1) >= 0.95).mean() > 0.9
    assert (after[test_pred == 1].max(1) >= 0.85).mean() == 0.0


def test_class_calibration_keeps_answers_order_and_sums():
    probs, labels, pred = _classes_apart(800)
    after = fit_class_calibration(probs, labels).apply(probs)
    assert np.array_equal(after.argmax(1), pred)
    np.testing.assert_allclose(after.sum(1), 1.0)
    for c in range(probs.shape[1]):  # within a class the images keep their order
        sel = pred == c
        order = np.argsort(probs[sel].max(1), kind="stable")
        assert np.all(np.diff(after[sel].max(1)[order]) >= -1e-12)


def test_a_map_that_would_demote_the_top_class_stops_at_the_tie():
    harsh = ClassCalibration(np.array([1.0, 1.0, 1.0]), np.array([-6.0, 0.0, 0.0]))
    probs = np.array([[0.5, 0.45, 0.05], [np.nan, np.nan, np.nan]])
    after = harsh.apply(probs)
    assert after[0].argmax() == 0 and after[0, 0] == pytest.approx(after[0, 1])
    assert np.isnan(after[1]).all()


def test_identity_and_checkpoint_form():
    logits = np.random.default_rng(3).normal(0, 2, size=(50, 3))
    identity = ClassCalibration.identity(3)
    np.testing.assert_allclose(calibrated(logits, 1.5, identity), softmax(logits, 1.5))
    np.testing.assert_allclose(calibrated(logits, 1.5), softmax(logits, 1.5))
    back = ClassCalibration.from_list(identity.to_list())
    assert back.to_list() == [[1.0, 0.0]] * 3
    with pytest.raises(ValueError, match="slope > 0"):
        ClassCalibration.from_list([[0.0, 1.0]])
