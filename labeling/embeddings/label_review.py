"""Label-error review: final human labels that a confident model contradicts go to a recheck
queue for experts (``ml.label_errors``: confident learning).

The model's probabilities must be out-of-sample. Two sources qualify: the prediction each queued
image got before any human saw it (from the model active then, which had not trained on it),
and the active model's held-out predictions saved after its training.
"""

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.answers import item_finalize, label_for
from labeling.errors import ServiceError
from labeling.machine.certification import evidence_items
from labeling.machine.evidence_recheck import recheck_open
from labeling.machine.predictors import heldout_load
from labeling.models import (
    Item,
    ItemSource,
    LabelReview,
    ModelVersion,
    Prediction,
    PredictionDecision,
    Project,
    ReviewReason,
    ReviewStatus,
)
from ml.label_errors import find_label_issues

HUMAN_SOURCES = (ItemSource.CONSENSUS, ItemSource.EXPERT, ItemSource.IMPORTED)
MIN_ITEMS = 50


def _evidence(project: Project, model: ModelVersion) -> dict[int, tuple[np.ndarray, int]]:
    """item id → (out-of-sample probabilities over the model's classes, given label index)."""
    names = (model.metrics or {}).get("class_names") or []
    labels = {label.pk: i for i, label in enumerate(project.labels.all()) if label.name in names}
    same_classes = [
        m.pk
        for m in ModelVersion.objects.filter(project=project)
        if (m.metrics or {}).get("class_names") == names
    ]
    found: dict[int, tuple[np.ndarray, int]] = {}
    rows = (
        Prediction.objects.filter(
            model_version_id__in=same_classes,
            item__project=project,
            item__final_source__in=HUMAN_SOURCES,
        )
        .exclude(decision=PredictionDecision.FAILED)
        .order_by("created_at")
        .values_list("item_id", "probabilities", "item__final_label_id")
    )
    for item_id, probs, label_id in rows:
        if label_id in labels and probs and len(probs) == len(names):
            found[item_id] = (np.asarray(probs, dtype=float), labels[label_id])
    heldout = heldout_load(model)
    if heldout is not None and heldout["probs"].shape[1] == len(names):
        current = dict(
            Item.objects.filter(
                pk__in=heldout["item_ids"].tolist(), final_source__in=HUMAN_SOURCES
            ).values_list("pk", "final_label_id")
        )
        for item_id, probs in zip(heldout["item_ids"].tolist(), heldout["probs"], strict=True):
            if current.get(item_id) in labels:
                found[item_id] = (np.asarray(probs, dtype=float), labels[current[item_id]])
    return found


def label_review_run(*, project: Project) -> dict:
    """Flag contradicted human labels of ``project`` into the recheck queue (idempotent: an
    item is flagged again only if its label changed since its last review)."""
    model = project.active_model
    if model is None or not model.is_calibrated:
        return {"checked": 0, "flagged": 0, "reason": "no calibrated active model"}
    evidence = _evidence(project, model)
    if len(evidence) < MIN_ITEMS:
        return {"checked": len(evidence), "flagged": 0, "reason": "too few labeled images"}
    ids = list(evidence)
    probs = np.stack([evidence[i][0] for i in ids])
    given = np.array([evidence[i][1] for i in ids])
    issues = find_label_issues(probs, given)
    labels = list(project.labels.all())
    in_evidence = set(evidence_items(project).values_list("pk", flat=True))
    reviewed = set(
        LabelReview.objects.filter(project=project).values_list("item_id", "given_label_id")
    )
    created = 0
    for index, suggested in zip(issues.flagged.tolist(), issues.suggested.tolist(), strict=True):
        item_id = ids[index]
        given_label = labels[given[index]]
        if (item_id, given_label.pk) in reviewed:
            continue
        created += recheck_open(
            project=project,
            item_id=item_id,
            given_label=given_label,
            suggested_label=labels[suggested],
            model=model,
            given_probability=float(probs[index, given[index]]),
            suggested_probability=float(probs[index, suggested]),
            reason=ReviewReason.LABEL_ERROR,
            was_evidence=item_id in in_evidence,
        )
    return {"checked": len(ids), "flagged": created, "model_version": model.version}


def label_review_decide(
    *, project: Project, review_id: int, label_name: str, by: AbstractBaseUser
) -> LabelReview:
    """An expert rechecks: the label they give becomes the item's final label (source
    ``expert``); the same label as before keeps it."""
    label = label_for(project, label_name)
    with transaction.atomic():
        review = (
            LabelReview.objects.select_for_update().filter(pk=review_id, project=project).first()
        )
        if review is None:
            raise ServiceError("No such recheck in this project.")
        if review.status != ReviewStatus.OPEN:
            raise ServiceError("This recheck was already decided.")
        item = (
            Item.objects.select_for_update(of=("self",))
            .select_related("project")
            .get(pk=review.item_id)
        )
        if label.pk == item.final_label_id:
            review.status = ReviewStatus.KEPT
        else:
            item_finalize(item=item, label=label, source=ItemSource.EXPERT, confidence=1.0)
            review.status = ReviewStatus.RELABELED
        review.decided_by = by
        review.decided_at = timezone.now()
        review.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
    return review
