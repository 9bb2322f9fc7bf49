"""Prototype classes: a new class from a few examples, decided by distance to their centroid.

Until a trained model knows the class, an image's cosine distance ``d`` to the centroid of the
class's examples (in the active model's embedding space) routes it with two thresholds:

    d ≤ TL          accept as the new class
    TL < d ≤ TH     maybe: a human decides
    d > TH          not this class: the model's own routing goes on

Both are calibrated on the project's own images:
  - TL on images of the other classes (labels a human gave): at most ``false_accept`` of them lie
    within TL, so accepting costs the other classes at most that share;
  - TH on the examples themselves, each measured against the centroid of the others
    (leave-one-out, since an example is always close to a centroid it helped make): TH is
    where ``target_recall`` of them fall within, capped so that at most ``human_share`` of the
    other classes' images land between TL and TH and go to humans.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ml.embeddings import cosine_distance, normalize

ACCEPT, HUMAN, REJECT = "accept", "human", "reject"


@dataclass(frozen=True)
class PrototypeCalibration:
    accept_distance: float  # TL
    reject_distance: float  # TH
    examples: int
    negatives: int
    # What the thresholds are expected to do, measured on the calibration data.
    example_accept_share: float  # leave-one-out examples within TL
    example_human_share: float  # between TL and TH
    negative_accept_share: float  # other classes' images within TL
    negative_human_share: float  # between TL and TH

    def as_dict(self) -> dict:
        return asdict(self)


def centroid(examples: np.ndarray) -> np.ndarray:
    """The normalised mean of normalised example vectors."""
    return normalize(normalize(examples).mean(axis=0)[None])[0]


def leave_one_out_distances(examples: np.ndarray) -> np.ndarray:
    """Each example's distance to the centroid of the others."""
    unit = normalize(examples)
    total = unit.sum(axis=0)
    return np.array(
        [float(cosine_distance(unit[i : i + 1], total - unit[i])[0]) for i in range(len(unit))]
    )


def _kth_smallest_below(values: np.ndarray, share: float) -> float:
    """A threshold with at most ``share`` of ``values`` at or below it."""
    ordered = np.sort(values)
    k = int(np.floor(share * len(ordered)))
    if k >= len(ordered):
        return float(ordered[-1])
    return float(np.nextafter(ordered[k], -np.inf))


def calibrate(
    examples: np.ndarray,
    negatives: np.ndarray,
    *,
    false_accept: float = 0.005,
    human_share: float = 0.05,
    target_recall: float = 0.95,
) -> tuple[np.ndarray, PrototypeCalibration]:
    """The centroid and the two thresholds (see the module's docstring)."""
    if len(examples) < 2:
        raise ValueError("a prototype needs at least two examples")
    if len(negatives) == 0:
        raise ValueError("no images of other classes to calibrate against")
    center = centroid(examples)
    neg = cosine_distance(negatives, center)
    pos = leave_one_out_distances(examples)
    accept = max(0.0, _kth_smallest_below(neg, false_accept))
    reach = float(np.quantile(pos, target_recall))
    cap = _kth_smallest_below(neg, false_accept + human_share)
    reject = max(accept, min(reach, cap))
    return center, PrototypeCalibration(
        accept_distance=accept,
        reject_distance=reject,
        examples=int(len(examples)),
        negatives=int(len(negatives)),
        example_accept_share=float((pos <= accept).mean()),
        example_human_share=float(((pos > accept) & (pos <= reject)).mean()),
        negative_accept_share=float((neg <= accept).mean()),
        negative_human_share=float(((neg > accept) & (neg <= reject)).mean()),
    )


def route(distances: np.ndarray, accept_distance: float, reject_distance: float) -> np.ndarray:
    """``accept`` / ``human`` / ``reject`` per distance."""
    d = np.asarray(distances, dtype=float)
    return np.where(d <= accept_distance, ACCEPT, np.where(d <= reject_distance, HUMAN, REJECT))


def nearest(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each vector, the index of the nearest centroid and the distance to it."""
    d = 1.0 - normalize(vectors) @ normalize(centroids).T
    which = d.argmin(axis=1)
    return which, d[np.arange(len(d)), which]
