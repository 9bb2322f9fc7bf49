"""The project's own calibration of a model's confidence, fitted on the project's evidence.

A model's temperature and per class map (``ml.calibration``) are fitted when it is trained, on
its own held-out labels: in a live project those are mostly the queue's hard images, and a
checkpoint brought from elsewhere was calibrated on its own validation split (another shop's
photos, ~150 per class). The threshold floor reads that confidence image by image (a calibrated
confidence under the target is never an auto-label), so wherever it is too low for a class the
floor turns away images the project's own random sample shows to be right. Measured on the
10,000-label checkpoint with 1,000 evidence items at target 0.95 (``bench/recalibration.py``,
docs/ml.md): the floor cost 5.0 points of coverage on the checkpoint's calibration and 2.1 on a
per class map refitted on the evidence.

So each time a model is certified, a second per class Platt map (``ml.calibration``'s, fitted
on the model's probabilities) is fitted on the evidence: the random calibration share and the
other confidence-independent labels (``labeling.machine.certification``), the sample drawn like
the images the thresholds are applied to. It is stored with the certification
(``ModelVersion.thresholds["recalibration"]``), and every place that compares a confidence with
a threshold reads the mapped one: certification and its floor, routing, the evidence rechecks,
the thresholds page and its preview. Predictions keep the model's own probabilities; their
``confidence`` is the mapped one routing compared.

Why fitting it on the evidence that also certifies leaves the guarantee as it was: the map rises
with the confidence within each predicted class (slope > 0), so it keeps every class's order of
images. The Learn-then-Test walk (``ml.thresholds``) therefore tests the same nested sets of
evidence images in the same order with the same outcomes, and a stream image lies above a
threshold exactly when it lay above the corresponding unmapped one. The map moves only where the
floor cuts the walk, and the floor only ever stops the walk earlier: a fixed-sequence test
stopped early, even for a reason that looked at the labels, rejects nothing the whole walk would
not have rejected. Above the walk's start the floor relies on calibration, as before; now on one
fitted on the stream's own sample. What it assumes is what certification assumes: the evidence
is drawn like the images that arrive (``ml.shift`` and the audit watch that). The argument is
per class; the overall scope compares confidences across classes with one level, and a map
fitted on the certifying evidence would reorder them, so that scope keeps the model's own
calibration.

Human label errors in the evidence pull the map down (a confident image "wrong" by a mislabel
costs the likelihood most), which costs coverage, never precision.
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings

from labeling.models import ModelVersion
from ml import overall_scope
from ml.calibration import ClassCalibration, fit_class_calibration

logger = logging.getLogger(__name__)


def recalibration_fit(probs: np.ndarray, labels: np.ndarray) -> ClassCalibration | None:
    """The per class map fitted on the evidence's (model-calibrated) ``probs`` and human
    ``labels``; None, when the model's own calibration stands, while there are fewer than
    ``settings.EVIDENCE_RECALIBRATION_MIN`` items (0 turns it off). The map is pulled towards
    the model's own calibration with ``settings.EVIDENCE_RECALIBRATION_STRENGTH``."""
    minimum = settings.EVIDENCE_RECALIBRATION_MIN
    if minimum <= 0 or len(labels) < minimum:
        return None
    return fit_class_calibration(
        np.asarray(probs, dtype=np.float64),
        labels,
        strength=settings.EVIDENCE_RECALIBRATION_STRENGTH,
    )


def scope_calibration(scope: str, calibration: ClassCalibration | None) -> ClassCalibration | None:
    """The map a ``scope``'s thresholds are certified and routed on: the evidence's in per class
    scope, none (the model's own calibration) in any other. One level for all classes compares
    confidences across classes, and a map fitted on the certifying evidence reorders them: the
    family tested would depend on its labels."""
    return calibration if scope == overall_scope.PER_CLASS else None


def routing_calibration(model: ModelVersion | None) -> ClassCalibration | None:
    """The map stored with ``model``'s certification, or None (its own calibration stands)."""
    rows = ((model.thresholds or {}) if model is not None else {}).get("recalibration")
    if not rows:
        return None
    try:
        return ClassCalibration.from_list(rows)
    except ValueError:
        # A hand-edited or corrupt record must not stop routing: the model's calibration stands.
        logger.warning("Model v%s has an unusable recalibration record", model.version)
        return None


def routing_probs(calibration: ClassCalibration | None, probs: np.ndarray) -> np.ndarray:
    """``probs`` (one row of K or N×K, the model's calibrated probabilities) as the thresholds
    read them: mapped by ``calibration``; unchanged without one or when it does not fit K."""
    probs = np.asarray(probs, dtype=np.float64)
    if calibration is None or probs.shape[-1] != len(calibration.slopes) or probs.size == 0:
        return probs
    if probs.ndim == 1:
        return calibration.apply(probs[None, :])[0]
    return calibration.apply(probs)
