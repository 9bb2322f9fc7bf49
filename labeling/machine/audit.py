"""The live audit: humans re-label a random share of auto-labels; their consensus measures the
machine's real precision per class, and a class whose precision is confidently below target
stops being auto-labeled until an admin resumes it."""

import logging

from django.db import transaction
from django.utils import timezone

from labeling.models import Item, ItemSource, Prediction, PredictionDecision, Project
from ml.thresholds import clopper_pearson_upper

logger = logging.getLogger(__name__)

MIN_AUDITED = 20


def live_precision(*, project: Project, model_version_id: int | None = None) -> dict[str, dict]:
    """Per machine-predicted class: audited items decided by humans, how many the machine got
    right, and the precision (for the active model unless another is named)."""
    model_version_id = model_version_id or project.active_model_id
    rows = Prediction.objects.filter(
        model_version_id=model_version_id,
        decision=PredictionDecision.AUDIT,
        item__final_source__in=(ItemSource.CONSENSUS, ItemSource.EXPERT),
    ).values_list("label__name", "item__final_label__name")
    stats: dict[str, dict] = {}
    for machine, human in rows:
        entry = stats.setdefault(machine, {"audited": 0, "correct": 0})
        entry["audited"] += 1
        entry["correct"] += int(machine == human)
    for entry in stats.values():
        entry["precision"] = entry["correct"] / entry["audited"]
    return stats


def audit_record(*, item: Item) -> None:
    """Called when an audited item gets its human label: pause its class if the audit shows
    the machine is confidently below the target precision there."""
    project = item.project
    prediction = (
        Prediction.objects.filter(item=item, decision=PredictionDecision.AUDIT)
        .select_related("label")
        .first()
    )
    if prediction is None or prediction.label is None:
        return
    name = prediction.label.name
    stats = live_precision(project=project, model_version_id=prediction.model_version_id).get(name)
    if not stats or stats["audited"] < MIN_AUDITED:
        return
    # Pause only when even the optimistic end of the precision's confidence interval misses
    # the target: a few unlucky audits must not switch auto-labeling off.
    delta = 1 - project.threshold_confidence
    precision_upper = clopper_pearson_upper(stats["correct"], stats["audited"], delta)
    if precision_upper >= project.target_precision:
        return
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if name in locked.autolabel_paused:
            return
        paused = dict(locked.autolabel_paused)
        paused[name] = {
            "since": timezone.now().isoformat(timespec="seconds"),
            "audited": stats["audited"],
            "correct": stats["correct"],
            "precision": round(stats["precision"], 4),
            "target": locked.target_precision,
            "model_version": prediction.model_version_id,
        }
        locked.autolabel_paused = paused
        locked.save(update_fields=["autolabel_paused", "updated_at"])
    logger.warning(
        "Auto-labeling of %s paused in %s: live precision %.3f on %d audited items (target %.3f)",
        name,
        project.slug,
        stats["precision"],
        stats["audited"],
        project.target_precision,
    )


def autolabel_resume(*, project: Project, label_name: str) -> None:
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        paused = dict(locked.autolabel_paused)
        paused.pop(label_name, None)
        locked.autolabel_paused = paused
        locked.save(update_fields=["autolabel_paused", "updated_at"])
