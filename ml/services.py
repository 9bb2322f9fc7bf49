"""Django wiring of the model side: load the active model, save predictions, route items."""

import logging

from django.db import transaction

from labeling.models import Item, ItemStatus

logger = logging.getLogger(__name__)


def items_predict(*, item_ids: list[int]) -> dict:
    """Route new items: without an active calibrated model everything goes to the human queue."""
    routed = {"queued": 0, "skipped": 0}
    with transaction.atomic():
        items = list(
            Item.objects.select_for_update().filter(pk__in=item_ids).select_related("project")
        )
        for item in items:
            if item.status != ItemStatus.NEW:
                # Already routed by an earlier (or duplicated) delivery of this task.
                routed["skipped"] += 1
                continue
            item.status = ItemStatus.QUEUED
            item.save(update_fields=["status", "updated_at"])
            routed["queued"] += 1
    return routed
