"""Finding wrong human labels with confident learning (Northcutt, Jiang & Chuang, JAIR 2021).

cleanlab implements this but is AGPL-3.0, which would oblige every deployment of this service to
publish its source; the method itself is a few array operations, written here from the paper
(docs/decisions.md). Inputs are *out-of-sample* class probabilities (from a model that did not
train on the item: a prediction made before the human answered, or a held-out prediction) and
the given labels.

1. Per class j, the threshold t_j is the model's average probability of j over the items
   labeled j (how confident the model typically is when it agrees).
2. An item "confidently belongs" to class j when p_j ≥ t_j; among such classes the most probable
   one is its confident class. Counting (given label, confident class) pairs gives the
   confident joint C.
3. Prune by noise rate: C is calibrated to the label counts, and for each off-diagonal cell
   (given i, confident j) the C[i][j] items labeled i with the largest margin p_j - p_i are
   flagged. An item is flagged only if it is also off-diagonal itself ("both" in the paper),
   which keeps precision up when the model is less sure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelIssues:
    flagged: np.ndarray  # indices of items whose label is probably wrong, most certain first
    suggested: np.ndarray  # the confident class of each flagged item
    thresholds: np.ndarray  # t_j per class
    confident_joint: np.ndarray  # K×K counts (given × confident)


def per_class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = probs.shape[1]
    out = np.ones(k)
    for j in range(k):
        mine = labels == j
        if mine.any():
            out[j] = probs[mine, j].mean()
    return out


def confident_classes(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The confident class of each item, or -1 where no class reaches its threshold."""
    above = probs >= thresholds[None, :] - 1e-12
    masked = np.where(above, probs, -np.inf)
    best = masked.argmax(axis=1)
    return np.where(above.any(axis=1), best, -1)


def find_label_issues(
    probs: np.ndarray, labels: np.ndarray, *, min_margin: float = 0.0
) -> LabelIssues:
    """Items whose given label the model confidently contradicts (see the module docstring).

    ``min_margin``: also require ``p(suggested) - p(given)`` of at least this much.
    """
    probs = np.asarray(probs, dtype=float)
    labels = np.asarray(labels, dtype=int)
    n, k = probs.shape
    if len(labels) != n:
        raise ValueError(f"{n} probability rows for {len(labels)} labels")
    usable = ~np.isnan(probs).any(axis=1)
    thresholds = per_class_thresholds(probs[usable], labels[usable])
    confident = np.where(usable, confident_classes(np.nan_to_num(probs), thresholds), -1)
    joint = np.zeros((k, k), dtype=np.int64)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    # Calibrate each row to the number of items with that label (the paper's eq. 2).
    label_counts = np.bincount(labels[usable], minlength=k)
    row_sums = joint.sum(axis=1, keepdims=True)
    calibrated = np.where(row_sums > 0, joint / np.maximum(row_sums, 1) * label_counts[:, None], 0)
    flagged: list[int] = []
    suggested: list[int] = []
    margins: list[float] = []
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            quota = int(round(calibrated[i, j]))
            if quota <= 0:
                continue
            candidates = np.flatnonzero((labels == i) & usable)
            margin = probs[candidates, j] - probs[candidates, i]
            top = candidates[np.argsort(-margin, kind="stable")[:quota]]
            for index in top:
                gap = probs[index, j] - probs[index, i]
                if confident[index] == j and gap >= min_margin:
                    flagged.append(int(index))
                    suggested.append(j)
                    margins.append(float(gap))
    order = np.argsort(-np.asarray(margins), kind="stable") if margins else np.array([], int)
    return LabelIssues(
        flagged=np.asarray(flagged, dtype=np.int64)[order],
        suggested=np.asarray(suggested, dtype=np.int64)[order],
        thresholds=thresholds,
        confident_joint=joint,
    )
