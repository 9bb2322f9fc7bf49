"""The live audit: humans re-label a random share of auto-labels; their answers measure the
machine's real precision per class, and a class whose precision is below target stops being
auto-labeled until an admin resumes it.

The test is sequential and anytime-valid (``ml.live_precision``): after every audited item of a
class its evidence against the class is updated, and the class pauses as soon as that evidence
reaches ``1/δ`` (δ = 1 − the project's threshold confidence); a class that meets the target is
paused with probability at most δ however long the audit runs. There is no minimum number of
audits: four wrong answers in a row pause a class at target 0.95.

When a class pauses, its auto-labels since the last audit point that passed go back to humans
and their credits reopen (``labeling.machine.recheck``). While a class is *suspect* (evidence
≥ 2), and for every class after a shift alarm until it has passed ``AUDIT_PROBATION`` audits,
its auto-labels are audited at ``AUDIT_SUSPECT_RATE`` instead of the project's audit rate.
"""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labeling.machine.recheck import autolabels_recheck
from labeling.models import Item, ItemSource, Prediction, PredictionDecision, Project
from ml.live_precision import PrecisionVerdict, precision_verdict

logger = logging.getLogger(__name__)


def _since(project: Project, name: str) -> datetime | None:
    """When the class's test (re)started: the admin's last resume of it."""
    value = (project.audit_state or {}).get("since", {}).get(name)
    return datetime.fromisoformat(value) if value else None


def _outcomes(project: Project, model_version_id: int) -> dict[str, list[tuple]]:
    """Per machine-predicted class: the decided audits as ``(wrong, routed at, item id)``, in
    the order the human decisions arrived (what the sequential test runs on), counting only
    audits routed since the class's test last restarted."""
    rows = (
        Prediction.objects.filter(
            model_version_id=model_version_id,
            decision=PredictionDecision.AUDIT,
            item__project=project,
            item__final_source__in=(ItemSource.CONSENSUS, ItemSource.EXPERT),
        )
        .order_by("item__finished_at", "item_id")
        .values_list("label__name", "item__final_label__name", "created_at", "item_id")
    )
    out: dict[str, list[tuple]] = {}
    starts: dict[str, datetime | None] = {}
    for machine, human, routed_at, item_id in rows:
        if machine not in starts:
            starts[machine] = _since(project, machine)
        if starts[machine] is not None and routed_at < starts[machine]:
            continue
        out.setdefault(machine, []).append((machine != human, routed_at, item_id))
    return out


def _verdict(project: Project, outcomes: list[tuple]) -> PrecisionVerdict:
    return precision_verdict(
        [wrong for wrong, _, _ in outcomes],
        target=project.target_precision,
        delta=1 - project.threshold_confidence,
    )


def live_precision(*, project: Project, model_version_id: int | None = None) -> dict[str, dict]:
    """Per machine-predicted class: decided audits since its test (re)started, how many the
    machine got right, the precision, and the sequential test's evidence (for the active model
    unless another is named)."""
    model_version_id = model_version_id or project.active_model_id
    if model_version_id is None:
        return {}
    stats: dict[str, dict] = {}
    for name, outcomes in _outcomes(project, model_version_id).items():
        verdict = _verdict(project, outcomes)
        audited = len(outcomes)
        correct = audited - sum(wrong for wrong, _, _ in outcomes)
        stats[name] = {
            "audited": audited,
            "correct": correct,
            "precision": correct / audited,
            "evidence": round(verdict.evalue, 3),
            "pause_at": round(1 / (1 - project.threshold_confidence), 3),
            "suspect": verdict.suspect,
        }
    return stats


def audit_rates(*, project: Project, model_version_id: int) -> dict[str, float]:
    """The audit rate per class name for routing: the project's rate, raised to
    ``AUDIT_SUSPECT_RATE`` for a suspect class and for every class on probation after a shift
    alarm (until it has ``AUDIT_PROBATION`` decided audits since the admin resumed)."""
    base = project.audit_rate
    raised = max(base, settings.AUDIT_SUSPECT_RATE)
    rates = dict.fromkeys(project.label_names(), base)
    if raised == base:
        return rates
    outcomes = _outcomes(project, model_version_id)
    probation = (project.audit_state or {}).get("probation_since")
    probation_at = datetime.fromisoformat(probation) if probation else None
    for name in rates:
        rows = outcomes.get(name, [])
        if rows and _verdict(project, rows).suspect:
            rates[name] = raised
        elif probation_at is not None:
            since = sum(1 for _, routed_at, _ in rows if routed_at >= probation_at)
            if since < settings.AUDIT_PROBATION:
                rates[name] = raised
    return rates


def audit_top_up_rate(rate: float, calibration_share: float) -> float:
    """The audit draw among would-be auto-labels the calibration draw left to the machine, so
    that humans check ``rate`` of them in all. A calibration draw ignores the image, so the
    would-be auto-labels it takes are a uniform sample of them, exactly what the audit needs;
    they are audited (``labeling.machine.predict``), and a second, independent draw only makes
    up the difference: ``share + (1 − share) · top_up = rate`` (0 once the share covers it)."""
    if calibration_share >= rate:
        return 0.0
    return (rate - calibration_share) / (1.0 - calibration_share)


def audit_record(*, item: Item) -> None:
    """Called when an audited item gets its human label: update its class's sequential test, and
    pause the class (sending its recent auto-labels back) if the test now rejects it."""
    project = item.project
    prediction = (
        Prediction.objects.filter(item=item, decision=PredictionDecision.AUDIT)
        .select_related("label", "model_version")
        .first()
    )
    if prediction is None or prediction.label is None:
        return
    name = prediction.label.name
    if name in (project.autolabel_paused or {}):
        return
    outcomes = _outcomes(project, prediction.model_version_id).get(name, [])
    verdict = _verdict(project, outcomes)
    if not verdict.paused:
        return
    # Auto-labels routed after the last audit that passed are in doubt; with no passing point
    # since the test started, every auto-label of the class since then is.
    if verdict.last_pass > 0:
        since = outcomes[verdict.last_pass - 1][1]
    else:
        since = _since(project, name) or prediction.model_version.created_at
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if name in locked.autolabel_paused:
            return
        recheck = autolabels_recheck(
            project=locked,
            model_version_id=prediction.model_version_id,
            since=since,
            label_name=name,
            reason=(
                f"{name} failed the live audit ({verdict.audited - verdict.wrong} of "
                f"{verdict.audited} audited auto-labels right, target {locked.target_precision})"
            ),
        )
        paused = dict(locked.autolabel_paused)
        paused[name] = {
            "since": timezone.now().isoformat(timespec="seconds"),
            "audited": verdict.audited,
            "correct": verdict.audited - verdict.wrong,
            "precision": round(verdict.precision, 4),
            "target": locked.target_precision,
            "evidence": round(verdict.evalue, 2),
            "model_version": prediction.model_version_id,
            "recheck_since": since.isoformat(timespec="seconds"),
            **recheck,
        }
        locked.autolabel_paused = paused
        locked.save(update_fields=["autolabel_paused", "updated_at"])
    logger.warning(
        "Auto-labeling of %s paused in %s: %d of %d audited auto-labels right (target %.3f); "
        "%d auto-labels returned to humans, %d credits reopened",
        name,
        project.slug,
        verdict.audited - verdict.wrong,
        verdict.audited,
        project.target_precision,
        recheck["rechecked"],
        recheck["credits_reopened"],
    )


def autolabel_resume(*, project: Project, label_name: str) -> None:
    """An admin resumes a paused class: its sequential test restarts from now."""
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        paused = dict(locked.autolabel_paused)
        paused.pop(label_name, None)
        locked.autolabel_paused = paused
        state = dict(locked.audit_state or {})
        state["since"] = {**state.get("since", {}), label_name: timezone.now().isoformat()}
        locked.audit_state = state
        locked.save(update_fields=["autolabel_paused", "audit_state", "updated_at"])
