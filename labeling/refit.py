"""The periodic trust refit: EM over all of a project's answers, then every item still
collecting answers is re-scored with the refreshed confusions (some may now be decided).

Kept apart from ``labeling.trust`` because re-scoring an item is the consensus update of
``labeling.answers``, which itself stores trust evidence through ``labeling.trust``.
"""

from django.db import transaction

from labeling.answers import item_consensus_update
from labeling.models import Item, ItemStatus, Project
from labeling.trust import skills_refit


def project_refit(*, project: Project) -> dict:
    """Refit the project's confusions by EM and re-score its open items. Returns the refit's
    figures plus ``rescored``, the number of open items whose posterior was recomputed."""
    figures = skills_refit(project=project)
    open_items = Item.objects.filter(
        project=project, status=ItemStatus.IN_REVIEW, answer_count__gt=0
    )
    rescored = 0
    # Oldest first, as the benchmark's replay does: an item that closes here gives evidence
    # that the next ones are scored with.
    for item_id in open_items.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            item = Item.objects.select_for_update(of=("self",)).get(pk=item_id)
            if item.status == ItemStatus.IN_REVIEW:
                item_consensus_update(item)
                rescored += 1
    return {**figures, "rescored": rescored}
