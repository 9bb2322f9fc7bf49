"""The shift check's math (ml.shift): conformal p-values, the reference, the drift alarm."""

import numpy as np
import pytest

from ml.shift import (
    Cusum,
    DriftState,
    ShiftReference,
    WindowState,
    conformal_pvalues,
    cusum_arl,
    cusum_threshold,
    drift_update,
    flag_rate_upper,
    image_statistics,
    reference_from_heldout,
    shrunk_covariance,
    window_test,
    window_update,
)


def test_conformal_pvalues_are_valid_for_exchangeable_scores():
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(400):
        calibration, new = rng.normal(size=300), rng.normal(size=50)
        hits.append((conformal_pvalues(calibration, new) <= 0.05).mean())
    assert np.mean(hits) <= 0.05 + 0.005
    assert conformal_pvalues([1.0, 2.0, 3.0], [10.0, 0.0]).tolist() == [0.25, 1.0]


def test_shrunk_covariance_is_well_conditioned_with_fewer_images_than_dimensions():
    rng = np.random.default_rng(1)
    cov = shrunk_covariance(rng.normal(size=(40, 200)))
    assert np.linalg.eigvalsh(cov).min() > 0.05


def _features(rng, n, shift=0.0, k=3, d=64):
    labels = rng.integers(0, k, n)
    centres = np.eye(k, d) * 6
    return centres[labels] + rng.normal(size=(n, d)) + shift, labels


def test_the_reference_flags_shifted_images_and_few_ordinary_ones():
    rng = np.random.default_rng(2)
    train, train_y = _features(rng, 2000)
    stats = rng.normal(size=(2000, 9))
    reference = ShiftReference.fit(train, train_y, stats, alpha=0.02)
    held, _ = _features(rng, 1000)
    reference.calibrate(held, rng.normal(size=(1000, 9)))
    ordinary, _ = _features(rng, 2000)
    shifted, _ = _features(rng, 500, shift=1.0)
    ordinary_flags = reference.flags(reference.score(ordinary, rng.normal(size=(2000, 9))))
    shifted_flags = reference.flags(reference.score(shifted, rng.normal(size=(500, 9))))
    assert ordinary_flags.mean() <= 0.03
    assert shifted_flags.mean() >= 0.8
    # Image statistics alone can flag too (a brighter, tinted photo).
    tinted = reference.flags(reference.score(ordinary[:500], rng.normal(size=(500, 9)) + 3))
    assert tinted.mean() >= 0.8


def test_a_reference_from_held_out_images_calibrates_on_the_half_it_was_not_fitted_on(tmp_path):
    rng = np.random.default_rng(3)
    held, labels = _features(rng, 600)
    reference = reference_from_heldout(held, labels, rng.normal(size=(600, 9)), alpha=0.05)
    assert reference.fitted_on == "heldout" and 298 <= len(reference.feature_calibration) <= 302
    reference.save(tmp_path)
    loaded = ShiftReference.load(tmp_path)
    new, _ = _features(rng, 100)
    stats = rng.normal(size=(100, 9))
    assert np.allclose(loaded.score(new, stats).pvalue, reference.score(new, stats).pvalue)
    summary = loaded.summary()
    assert summary["cusum"]["h"] > 0 and summary["drift_level"] == 0.1


def test_image_statistics_see_tint_padding_and_blur():
    rng = np.random.default_rng(4)
    grey = np.repeat(rng.integers(0, 255, (1, 1, 32, 32), dtype=np.uint8), 3, axis=1)
    tinted = grey.copy()
    tinted[:, 2] //= 3
    padded = np.full_like(grey, 255)
    padded[:, :, 8:24, 8:24] = grey[:, :, 8:24, 8:24]
    smooth = np.full_like(grey, 128)
    s = image_statistics(np.concatenate([grey, tinted, padded, smooth]))
    assert s[1, 4] > s[0, 4] + 0.1  # colourfulness
    assert s[2, 5] > 0.99 and s[2, 6] < 0.01  # a white, uniform border
    assert s[3, 7] == 0 < s[0, 7]  # no edges


def test_the_cusum_run_length_matches_simulation():
    cusum = Cusum(0.02, 0.1, 6.0)
    rng = np.random.default_rng(5)
    runs = []
    for _ in range(400):
        state, n = DriftState(), 0
        while True:
            n += 1
            if drift_update(state, bool(rng.random() < 0.15), cusum):
                break
        runs.append(n)
    assert np.mean(runs) == pytest.approx(cusum_arl(cusum, 0.15), rel=0.12)


def test_the_alarm_level_gives_the_false_alarm_run_length_asked_for():
    cusum = cusum_threshold(alpha=0.01, n_calibration=1500, arl=100_000)
    assert cusum.p0 == pytest.approx(flag_rate_upper(0.01, 1500))
    assert cusum_arl(cusum, cusum.p0) >= 100_000
    assert cusum_arl(cusum, 0.3) < 40  # a 30 % unusual stream is caught within tens of images
    # Too few held-out images to flag anything: no alarm at all rather than a meaningless one.
    assert cusum_threshold(alpha=0.01, n_calibration=150) is None


def test_drift_update_remembers_where_the_run_began():
    cusum = Cusum(0.01, 0.2, 5.0)
    state = DriftState()
    for _ in range(50):
        assert not drift_update(state, False, cusum)
    alarms = [drift_update(state, True, cusum) for _ in range(5)]
    assert alarms[-1] and state.run_start == 50 and state.run_flagged == 5


def _window_alarms(rng, test, draws: int, shift: float = 0.0, window: int = 250) -> int:
    """Windows that alarm, each with a fresh calibration draw of ``test.n_calibration`` scores
    and ``window`` new scores moved by ``shift`` (in standard deviations) in one signal."""
    alarms = 0
    for _ in range(draws):
        cal_f, cal_i = rng.normal(size=test.n_calibration), rng.normal(size=test.n_calibration)
        new_f, new_i = rng.normal(size=window), rng.normal(size=window) + shift
        pf, pi = conformal_pvalues(cal_f, new_f), conformal_pvalues(cal_i, new_i)
        state = WindowState()
        fired = [window_update(state, (f, i), test) for f, i in zip(pf, pi, strict=True)]
        assert not any(fired[:-1]) and state.count == 0 and state.windows == 1
        alarms += fired[-1]
    return alarms


def test_the_window_test_alarms_at_its_level_on_exchangeable_images():
    rng = np.random.default_rng(7)
    # Designed for 1 false alarm per 25,000 images: 1 % per window of 250 (0.5 % per signal).
    test = window_test(n_calibration=300, size=250, arl=25_000)
    assert test is not None and 2.5 < test.z < 2.6
    alarms = _window_alarms(rng, test, draws=3000)
    # 30 expected over 3,000 windows, each with its own calibration draw (the test's variance
    # counts that draw); a test that ignored it would fire several times as often.
    assert alarms <= 45


def test_the_window_test_catches_a_mild_shift_the_per_image_check_misses():
    rng = np.random.default_rng(8)
    test = window_test(n_calibration=1000, size=250)  # the defaults: 1 false alarm per 1e6
    assert test is not None and test.z > 3.5
    # Scores 0.4 standard deviations higher: AUROC 0.61, like re-encoded photos' image
    # statistics (docs/ml.md), where only about 1 image in 40 reaches p ≤ 0.01.
    assert _window_alarms(rng, test, draws=200, shift=0.4) >= 180
    assert _window_alarms(rng, test, draws=200) == 0


def test_the_window_test_needs_random_calibration_images(tmp_path):
    rng = np.random.default_rng(9)
    train, train_y = _features(rng, 1500)
    reference = ShiftReference.fit(train, train_y, rng.normal(size=(1500, 9)))
    held, _ = _features(rng, 600)
    random_rows = np.arange(600) < 150  # the rest came from the human queue
    reference.calibrate(held, rng.normal(size=(600, 9)), random_rows)
    assert len(reference.feature_calibration) == 600
    assert len(reference.window_feature_calibration) == 150
    summary = reference.summary()
    assert summary["window"] is None and summary["random_calibration_items"] == 150
    reference.calibrate(held, rng.normal(size=(600, 9)), np.arange(600) < 400)
    summary = reference.summary(window=100)
    assert summary["window"]["n_calibration"] == 400 and summary["window"]["size"] == 100
    assert reference.summary(window=0)["window"] is None
    reference.save(tmp_path)
    loaded = ShiftReference.load(tmp_path)
    new, _ = _features(rng, 20)
    scores = loaded.score(new, rng.normal(size=(20, 9)))
    assert scores.window_pvalues(0) is not None
    # A reference saved before the window test has no random calibration: no window p-values.
    loaded.window_feature_calibration = np.zeros(0)
    assert loaded.score(new, rng.normal(size=(20, 9))).window_pvalues(0) is None
