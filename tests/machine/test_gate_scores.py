"""The promotion gate's held-out score: guaranteed thresholds, or the admin's by hand."""

import numpy as np
import pytest

from labeling.machine.promotion import heldout_score, less_precise_than_active


@pytest.fixture(autouse=True)
def _support(settings):
    settings.THRESHOLD_MIN_SUPPORT = 5


def test_manual_thresholds_score_what_they_would_auto_label():
    # Two classes; the model is sure (0.95) on 6 items, unsure (0.55) on 4; one sure one is wrong.
    probs = np.array([[0.95, 0.05]] * 6 + [[0.55, 0.45]] * 4)
    labels = np.array([0, 0, 0, 0, 0, 1, 0, 1, 0, 1])

    at_09 = heldout_score(probs, labels, target=0.98, confidence=0.95, manual=[0.9, 0.9])
    at_05 = heldout_score(probs, labels, target=0.98, confidence=0.95, manual=[0.5, None])
    never = heldout_score(probs, labels, target=0.98, confidence=0.95, manual=[None, None])

    assert at_09["coverage"] == pytest.approx(0.6)
    assert at_09["precision"] == pytest.approx(5 / 6)
    assert at_05["coverage"] == pytest.approx(1.0)
    assert at_05["precision"] == pytest.approx(7 / 10)
    assert never["coverage"] == 0.0 and never["precision"] is None
    # Target mode on the same ten labels cannot prove 98 %: nothing is auto-labeled.
    assert heldout_score(probs, labels, target=0.98, confidence=0.95)["coverage"] == 0.0


def test_manual_mode_refuses_only_a_candidate_below_both_the_active_model_and_the_target():
    def score(precision):
        return {"coverage": 0.2, "precision": precision}

    # An active model that accepts three held-out images, all right, must not block 98 %.
    assert not less_precise_than_active(score(0.981), score(1.0), target=0.98)
    # Below the target and below the active model: an over-confident candidate.
    assert less_precise_than_active(score(0.95), score(0.99), target=0.98)
    # Below the target but no worse than the active model: coverage decides.
    assert not less_precise_than_active(score(0.95), score(0.95), target=0.98)
    # Nothing accepted on one side: coverage decides.
    assert not less_precise_than_active(score(None), score(0.99), target=0.98)
