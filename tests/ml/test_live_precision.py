"""The anytime-valid test of a class's live precision (ml.live_precision)."""

import numpy as np

from ml.live_precision import precision_verdict

OLD_MINIMUM = 20  # audits the service waited for before its first (fixed-sample) test


def first_pause(rng, precision: float, target: float, n: int = 400) -> int | None:
    wrong = rng.random(n) >= precision
    return precision_verdict(wrong, target=target, delta=0.05).paused_at


def test_a_clearly_bad_class_pauses_after_fewer_audits_than_the_old_minimum():
    rng = np.random.default_rng(0)
    for precision, target in ((0.5, 0.95), (0.6, 0.98)):
        pauses = [first_pause(rng, precision, target) for _ in range(200)]
        assert all(p is not None for p in pauses)
        assert np.median(pauses) < OLD_MINIMUM / 2
        assert np.mean(np.array(pauses) < OLD_MINIMUM) >= 0.9
    at_70 = [first_pause(rng, 0.7, 0.95) for _ in range(200)]
    assert np.median(at_70) < OLD_MINIMUM


def test_three_wrong_audits_in_a_row_pause_at_target_095():
    verdict = precision_verdict([True] * 5, target=0.95, delta=0.05)
    assert verdict.paused and verdict.paused_at == 3 and verdict.last_pass == 0


def test_a_class_at_target_is_rarely_paused_however_long_the_audit_runs():
    # Anytime-valid: at exactly the target, the chance of ever pausing is at most delta, even
    # though the test looks after every one of 1,500 audits.
    rng = np.random.default_rng(1)
    paused = [first_pause(rng, 0.95, 0.95, n=1500) is not None for _ in range(300)]
    assert np.mean(paused) <= 0.05 + 0.03  # delta plus sampling slack for 300 runs


def test_a_late_failure_is_caught_as_fast_as_an_early_one():
    # Good audits do not bank credit that a later failure must burn first.
    rng = np.random.default_rng(2)
    delays = []
    for _ in range(100):
        good = rng.random(1000) >= 0.99
        bad = rng.random(200) >= 0.5
        paused_at = precision_verdict(np.r_[good, bad], target=0.95, delta=0.05).paused_at
        if paused_at is not None and paused_at > 1000:
            delays.append(paused_at - 1000)
    assert len(delays) >= 95 and np.median(delays) < OLD_MINIMUM


def test_the_last_passing_point_is_the_last_right_audit_before_the_evidence_run():
    outcomes = [False] * 10 + [True, False] + [True] * 4 + [False] * 3  # True: wrong
    verdict = precision_verdict(outcomes, target=0.95, delta=0.05)
    assert verdict.paused and verdict.paused_at == 16
    # One early error is not evidence yet: the right audit after it leaves E below 1. The run
    # of errors that paused the class began after that 12th audit.
    assert verdict.last_pass == 12
    assert verdict.audited == 16 and verdict.wrong == 5
