"""Taking auto-labels back: when the evidence says the machine was wrong too often, the labels it
gave since the evidence began go back to humans, and the credits decided on them reopen.

Two things trigger it: a class failing the live audit's sequential test (``audit``: the class's
auto-labels since the last audit point that passed) and a shift alarm (``shift_guard``: every
auto-label since the estimated start of the shift). Nothing decided on a label that failed its
audit stays final silently: the item returns to the human queue (its prediction's decision
becomes ``recheck``), and a credit the machine had granted or denied becomes pending again with
``reopened_at`` and the reason, so the shop's systems see that a decision was taken back.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from labeling.models import (
    CreditDecision,
    CreditOutcome,
    Item,
    ItemSource,
    ItemStatus,
    Prediction,
    PredictionDecision,
    Project,
)


def autolabels_recheck(
    *,
    project: Project,
    model_version_id: int,
    since: datetime,
    reason: str,
    label_name: str | None = None,
) -> dict[str, int]:
    """Send the model's auto-labels routed at or after ``since`` (of one class, or all) back to
    humans and reopen the credits the machine decided on them. Returns the counts."""
    with transaction.atomic():
        predictions = Prediction.objects.filter(
            model_version_id=model_version_id,
            decision=PredictionDecision.AUTO_LABELED,
            created_at__gte=since,
            item__project=project,
            item__status=ItemStatus.AUTO_LABELED,
            item__final_source=ItemSource.MACHINE,
        )
        if label_name is not None:
            predictions = predictions.filter(label__name=label_name)
        item_ids = list(predictions.values_list("item_id", flat=True))
        if not item_ids:
            return {"rechecked": 0, "credits_reopened": 0}
        # Lock in id order (as every batch does), then re-check under the lock.
        locked = list(
            Item.objects.select_for_update(of=("self",))
            .filter(
                pk__in=item_ids, status=ItemStatus.AUTO_LABELED, final_source=ItemSource.MACHINE
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        now = timezone.now()
        Item.objects.filter(pk__in=locked).update(
            status=ItemStatus.QUEUED,
            final_label=None,
            final_source="",
            final_confidence=None,
            finished_at=None,
            is_audit=False,
            updated_at=now,
        )
        Prediction.objects.filter(model_version_id=model_version_id, item_id__in=locked).update(
            decision=PredictionDecision.RECHECK, updated_at=now
        )
        reopened = CreditDecision.objects.filter(
            item_id__in=locked, source=ItemSource.MACHINE
        ).update(
            outcome=CreditOutcome.PENDING,
            source="",
            decided_at=None,
            reopened_at=now,
            reopen_reason=reason[:300],
            updated_at=now,
        )
    return {"rechecked": len(locked), "credits_reopened": reopened}
