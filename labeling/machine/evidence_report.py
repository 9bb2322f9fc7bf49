"""What the thresholds page shows about the evidence: how much there is, what the calibration
share costs, and the coverage each guarantee scope certifies on it.

The calibration share is paid in human answers on images the model might have auto-labeled; its
cost is estimated from the project's own figures (images arriving per day, answers a human label
has taken, the price of an answer) so the admin sees it in money before changing it.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, Count
from django.utils import timezone

from labeling.costs import answer_cost
from labeling.machine.certification import evidence_items, evidence_scores
from labeling.machine.recalibration import routing_probs, scope_calibration
from labeling.models import (
    Annotation,
    Item,
    ItemSource,
    LabelReview,
    ModelVersion,
    Project,
    ReviewReason,
    ReviewStatus,
)
from ml import overall_scope

# Targets the guarantee curve is drawn at (the admin's own target is added).
CURVE_TARGETS = (0.9, 0.925, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995)
RATE_DAYS = 7  # images per day: the average over the last week (or the project's life)
DEFAULT_ANSWERS_PER_LABEL = 2.0  # before the project has any human label of its own


def calibration_cost(*, project: Project, share: float | None = None) -> dict:
    """Expected human answers and money the calibration share costs per day and per 1,000
    images, from the project's arrival rate, answers per human label and answer price."""
    share = project.calibration_share if share is None else share
    now = timezone.now()
    first = Item.objects.filter(project=project).order_by("created_at").first()
    since = now - timedelta(days=RATE_DAYS)
    if first is not None and first.created_at > since:
        since = first.created_at
    days = max((now - since).total_seconds() / 86400, 1 / 24)
    recent = Item.objects.filter(project=project, created_at__gte=since).count()
    human = Item.objects.filter(
        project=project, final_source__in=(ItemSource.CONSENSUS, ItemSource.EXPERT)
    ).count()
    answers = Annotation.objects.filter(project=project, label__isnull=False)
    per_label = answers.count() / human if human else DEFAULT_ANSWERS_PER_LABEL
    seconds = (answers.aggregate(s=Avg("time_on_task_ms"))["s"] or 3000) / 1000
    price = answer_cost(project, seconds)
    per_1000 = Decimal(str(round(1000 * share * per_label, 1)))
    per_day_images = recent / days
    return {
        "share": share,
        "images_per_day": round(per_day_images, 1),
        "answers_per_label": round(per_label, 2),
        "answers_per_1000_images": float(per_1000),
        "cost_per_1000_images": str((per_1000 * price).quantize(Decimal("0.01"))),
        "answers_per_day": round(per_day_images * share * per_label, 1),
        "cost_per_day": str(
            (Decimal(str(per_day_images * share * per_label)) * price).quantize(Decimal("0.01"))
        ),
        "currency": project.currency,
    }


def evidence_summary(*, project: Project) -> dict:
    """Counts behind the certification: calibration items drawn and labeled, blind items held
    out, the evidence in all, and its labels in the expert recheck queue."""
    drawn = Item.objects.filter(project=project, is_calibration=True).aggregate(
        n=Count("pk"),
    )["n"]
    evidence = evidence_items(project)
    labeled_calibration = evidence.filter(is_calibration=True).count()
    total = evidence.count()
    rechecks = LabelReview.objects.filter(project=project, reason=ReviewReason.EVIDENCE)
    return {
        "calibration_drawn": drawn,
        "calibration_labeled": labeled_calibration,
        "blind_labeled": total - labeled_calibration,
        "evidence": total,
        # Evidence labels a confident model contradicts (labeling.machine.evidence_recheck):
        # waiting for an expert (counted as they are until then), and corrected so far.
        "rechecks_open": rechecks.filter(status=ReviewStatus.OPEN).count(),
        "rechecks_relabeled": rechecks.filter(status=ReviewStatus.RELABELED).count(),
    }


def guarantee_curves(*, project: Project, model: ModelVersion) -> dict | None:
    """Coverage of the evidence that each scope certifies, target by target (None without
    evidence scored for ``model``)."""
    scored = evidence_scores(project, model, predict_missing=False)
    if not len(scored["labels"]):
        return None
    targets = sorted({*CURVE_TARGETS, project.target_precision})
    curves = {}
    # Each scope on the confidence it would be certified on (labeling.machine.recalibration).
    for scope in overall_scope.SCOPES:
        remap = scope_calibration(scope, scored["recalibration"])
        curves[scope] = overall_scope.guarantee_curve(
            routing_probs(remap, scored["model_probs"]),
            scored["labels"],
            targets=targets,
            delta=1 - project.threshold_confidence,
            min_support=settings.THRESHOLD_MIN_SUPPORT,
            scopes=(scope,),
        )[scope]
    return {"n": int(len(scored["labels"])), "confidence": project.threshold_confidence, **curves}
