"""Evidence recheck: before thresholds are certified at a target near the humans' own accuracy,
an expert checks the evidence labels a confident model contradicts.

Certification counts every disagreement between a model and an evidence label as the model's
error. When the labels themselves are ~98-99 % right, a few label errors land among the model's
most confident images and alone sink a 0.98 target: on the 20,000-image loop six of the eight
disagreements among the last model's 631 most confident evidence items were human-label errors
(docs/loop.md), so nothing was ever certified. The items that decide the walk are few (those
the model would accept at the floor and disagrees on), so an expert can look at each of them.

What this does to the guarantee (docs/ml.md): on the rechecked items the evidence label is the
expert's, elsewhere the consensus. Counted errors are then the model's errors against the
expert, except where the model and the consensus are wrong the same way, which the evidence
could not see before either. An open recheck keeps its human label (counted as an error) until
the expert decides: leaving the flagged items out would remove exactly the disagreements and
overstate precision.
"""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from labeling.models import (
    Label,
    LabelReview,
    ModelVersion,
    Project,
    ReviewReason,
    ReviewStatus,
)


def evidence_recheck_open(
    *, project: Project, model: ModelVersion, scored: dict[str, np.ndarray], floor: float
) -> int:
    """Open an expert recheck for each evidence item whose label ``model`` contradicts at a
    confidence its thresholds could accept (at or above ``floor``), most confident first, while
    fewer than ``EVIDENCE_RECHECK_LIMIT`` evidence rechecks are open. ``scored`` is the model's
    evidence as certification scored it (``certification.evidence_scores``). An item whose
    current label was already rechecked is not flagged again. Returns the rechecks opened."""
    limit = int(settings.EVIDENCE_RECHECK_LIMIT)
    if limit <= 0 or project.threshold_mode != Project.ThresholdMode.TARGET:
        return 0
    names = project.label_names()
    if (model.metrics or {}).get("class_names", names) != names:
        return 0  # a model of another label set: its columns are not the labels' positions
    room = (
        limit
        - LabelReview.objects.filter(
            project=project, reason=ReviewReason.EVIDENCE, status=ReviewStatus.OPEN
        ).count()
    )
    if room <= 0:
        return 0
    probs, given, ids = scored["probs"], scored["labels"], scored["item_ids"]
    if len(ids) == 0:
        return 0
    confidence = probs.max(axis=1)
    predicted = probs.argmax(axis=1)
    contradicted = np.flatnonzero((confidence >= floor) & (predicted != given))
    if len(contradicted) == 0:
        return 0
    contradicted = contradicted[np.argsort(-confidence[contradicted], kind="stable")]
    by_position = {label.position: label for label in project.labels.all()}
    reviewed = set(
        LabelReview.objects.filter(
            project=project, item_id__in=ids[contradicted].tolist()
        ).values_list("item_id", "given_label_id")
    )
    opened = 0
    for index in contradicted.tolist():
        if opened >= room:
            break
        given_label = by_position.get(int(given[index]))
        suggested = by_position.get(int(predicted[index]))
        item_id = int(ids[index])
        if given_label is None or suggested is None or (item_id, given_label.pk) in reviewed:
            continue
        opened += recheck_open(
            project=project,
            item_id=item_id,
            given_label=given_label,
            suggested_label=suggested,
            model=model,
            given_probability=float(probs[index, given[index]]),
            suggested_probability=float(confidence[index]),
            reason=ReviewReason.EVIDENCE,
            was_evidence=True,
        )
    return opened


def recheck_open(
    *,
    project: Project,
    item_id: int,
    given_label: Label,
    suggested_label: Label,
    model: ModelVersion,
    given_probability: float,
    suggested_probability: float,
    reason: str,
    was_evidence: bool,
) -> bool:
    """Put one label in the expert recheck queue (both flaggers come here); False when an open
    recheck of the item exists already (one at a time per item)."""
    try:
        with transaction.atomic():
            LabelReview.objects.create(
                project=project,
                item_id=item_id,
                given_label=given_label,
                suggested_label=suggested_label,
                model_version=model,
                given_probability=round(given_probability, 5),
                suggested_probability=round(suggested_probability, 5),
                reason=reason,
                was_evidence=was_evidence,
            )
    except IntegrityError:
        return False
    return True


def evidence_relabeled(project: Project) -> int:
    """How many evidence labels experts have changed: certification is redone when it grows."""
    return LabelReview.objects.filter(
        project=project, was_evidence=True, status=ReviewStatus.RELABELED
    ).count()
