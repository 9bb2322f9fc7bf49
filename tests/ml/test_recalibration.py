"""A per class confidence map refitted on the same evidence that certifies the thresholds
(labeling.machine.recalibration): it keeps each class's order of images, so the Learn-then-Test
guarantee holds as before, while the floor reads a confidence the evidence calibrated."""

import numpy as np

from ml.calibration import fit_class_calibration
from ml.thresholds import select_class_threshold

TARGET, DELTA = 0.95, 0.05


def _stream(rng, n, power):
    """Two classes, always predicted 0 with confidence c in [0.5, 1), right with probability
    c ** power: power < 1 is an under-confident model, > 1 an over-confident one."""
    conf = 0.5 + 0.5 * rng.beta(8, 1, n)
    right = rng.random(n) < conf**power
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.where(right, 0, 1)
    return probs, labels


def test_the_map_keeps_each_class_order_of_images():
    rng = np.random.default_rng(0)
    probs, labels = _stream(rng, 800, 0.3)
    mapped = fit_class_calibration(probs, labels).apply(probs)
    order = np.argsort(probs[:, 0])
    assert np.all(np.diff(mapped[order, 0]) >= 0)
    assert (mapped.argmax(1) == probs.argmax(1)).all()


def test_refitted_on_the_certifying_evidence_the_guarantee_holds_over_resampled_sets():
    rng = np.random.default_rng(1)
    for power in (0.3, 3.0):  # under- and over-confident
        fresh, fresh_labels = _stream(rng, 100_000, power)
        misses = certified = 0
        for _ in range(80):
            probs, labels = _stream(rng, 1500, power)
            remap = fit_class_calibration(probs, labels)
            conf = remap.apply(probs)[:, 0]
            chosen = select_class_threshold(conf, labels == 0, target=TARGET, delta=DELTA)
            if chosen.threshold is None:
                continue
            certified += 1
            accepted = remap.apply(fresh)[:, 0] >= chosen.threshold
            misses += accepted.any() and (fresh_labels[accepted] == 0).mean() < TARGET
        assert certified >= 60
        assert misses / certified <= DELTA
