"""Human answers: submit, undo, consensus after every answer, expert resolution, gold items."""

from datetime import timedelta

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling import consensus
from labeling.costs import cost_record_answer
from labeling.credits import credit_decide
from labeling.errors import (
    AlreadyAnswered,
    InvalidLabel,
    LeaseExpired,
    LeaseNotYours,
    NotDisputed,
    NothingToUndo,
    ServiceError,
)
from labeling.machine.audit import audit_record
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    GoldItem,
    GoldOrigin,
    Item,
    ItemSource,
    ItemStatus,
    Label,
    Prediction,
    Project,
)
from labeling.trust import (
    class_prior,
    confusions_for,
    current_answers,
    skills_add_evidence,
)

UNDO_WINDOW = timedelta(minutes=2)
MAX_TIME_ON_TASK_MS = 60 * 60 * 1000


def _labels(project: Project) -> list[Label]:
    return list(project.labels.all())


def label_for(project: Project, name: str) -> Label:
    label = project.labels.filter(name=name).first()
    if label is None:
        names = ", ".join(project.label_names())
        raise InvalidLabel(f"'{name}' is not a label of this project; use one of: {names}.")
    return label


def item_prior(item: Item, k: int) -> np.ndarray:
    """Class balance, tempered with the active calibrated model's probabilities if it has any.

    Not for calibration and audit images: their human label is the evidence the model is judged
    on, and a consensus nudged towards the model's own guess would agree with it more often than
    the truth does, overstating its precision."""
    project = item.project
    balance = class_prior(project, k)
    model = project.active_model
    if model is None or not model.is_calibrated or item.is_calibration or item.is_audit:
        return balance
    probs = (
        Prediction.objects.filter(item=item, model_version=model)
        .exclude(probabilities=[])
        .values_list("probabilities", flat=True)
        .first()
    )
    if not probs or len(probs) != k:
        return balance
    return consensus.model_prior(balance, np.asarray(probs, dtype=float))


def item_finalize(*, item: Item, label: Label, source: str, confidence: float | None) -> None:
    """Give an item its final label and decide its credit (caller holds the item's row lock)."""
    item.final_label = label
    item.final_source = source
    item.final_confidence = confidence
    item.status = ItemStatus.LABELED if source != ItemSource.MACHINE else ItemStatus.AUTO_LABELED
    item.finished_at = timezone.now()
    item.save()
    if source != ItemSource.MACHINE:
        # A machine label's credit was already decided by the router's two-threshold rule.
        credit_decide(item=item, source=source, label_name=label.name)
    if item.is_audit and source in (ItemSource.CONSENSUS, ItemSource.EXPERT):
        audit_record(item=item)


def item_consensus_update(
    item: Item,
    *,
    answers_delta: dict[int, int] | None = None,
    extra_evidence: dict[int, np.ndarray] | None = None,
) -> str:
    """Recompute the item's posterior from its current answers and apply the stopping rule.
    Returns ``labeled``, ``disputed`` or ``open``. Caller holds the item's row lock."""
    project = item.project
    labels = _labels(project)
    k = len(labels)
    column = {label.pk: i for i, label in enumerate(labels)}
    answers = current_answers(item)
    confusions = confusions_for(project, [a.annotator_id for a in answers], k)
    posterior = consensus.item_posterior(
        item_prior(item, k),
        [confusions[a.annotator_id] for a in answers],
        [column[a.label_id] for a in answers],
    )
    decision = consensus.stopping_decision(
        posterior,
        len(answers),
        target=project.consensus_target,
        min_answers=project.min_answers,
        max_answers=project.max_answers,
    )
    item.posterior = posterior.round(6).tolist()
    item.posterior_max = float(posterior.max())
    item.answer_count = len(answers)
    evidence = dict(extra_evidence or {})
    if decision == "labeled":
        best = int(posterior.argmax())
        item_finalize(
            item=item,
            label=labels[best],
            source=ItemSource.CONSENSUS,
            confidence=float(posterior[best]),
        )
        # Closing an item is when its answers become evidence about the people who gave them.
        for a in answers:
            evidence[a.annotator_id] = evidence.get(
                a.annotator_id, np.zeros((k, k))
            ) + consensus.answer_evidence(posterior, column[a.label_id])
    else:
        item.status = ItemStatus.DISPUTED if decision == "disputed" else ItemStatus.IN_REVIEW
        item.save()
    # One pass over the touched inspectors' trust rows (locked in id order: no deadlocks).
    skills_add_evidence(project=project, evidence=evidence, answers=answers_delta, k=k)
    return decision


def _chain_head(item: Item, annotator_id: int) -> Annotation | None:
    return Annotation.objects.filter(
        item=item, annotator_id=annotator_id, superseded_by__isnull=True
    ).first()


def annotation_submit(
    *,
    project: Project,
    assignment_id: int,
    user: AbstractBaseUser,
    label_name: str,
    time_on_task_ms: int,
) -> Annotation:
    """Record one answer under a valid lease and update the item's consensus at once."""
    if (
        not isinstance(time_on_task_ms, int)
        or isinstance(time_on_task_ms, bool)
        or time_on_task_ms < 0
    ):
        raise ServiceError("time_on_task_ms must be a whole number of milliseconds, 0 or more.")
    time_on_task_ms = min(time_on_task_ms, MAX_TIME_ON_TASK_MS)
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("project")
            .filter(pk=assignment_id, project=project)
            .first()
        )
        if assignment is None or assignment.annotator_id != user.pk:
            # Someone else's lease looks the same as no lease: nothing to learn from probing ids.
            raise LeaseNotYours("This lease is not yours.")
        project = assignment.project
        if assignment.status == AssignmentStatus.SUBMITTED:
            raise AlreadyAnswered("You already answered this image.")
        if assignment.status != AssignmentStatus.OPEN or assignment.expires_at <= timezone.now():
            raise LeaseExpired(
                "Your lease on this image expired; it went back to the queue. Take the next image."
            )
        label = label_for(project, label_name)
        item = (
            Item.objects.select_for_update(of=("self",))
            .select_related("project__active_model")
            .get(pk=assignment.item_id)
        )
        head = _chain_head(item, user.pk)
        if head is not None and head.label_id is not None:
            raise AlreadyAnswered("You already answered this image.")
        annotation = Annotation.objects.create(
            project=project,
            item=item,
            annotator=user,
            label=label,
            time_on_task_ms=time_on_task_ms,
            assignment=assignment,
            supersedes=head,
        )
        assignment.status = AssignmentStatus.SUBMITTED
        assignment.save(update_fields=["status", "updated_at"])
        cost_record_answer(
            project=project, item=item, annotator_id=user.pk, seconds=time_on_task_ms / 1000
        )
        _apply_answer(item, annotation, assignment.is_gold, sign=+1)
    return annotation


def _apply_answer(item: Item, annotation: Annotation, is_gold: bool, *, sign: int) -> None:
    """What one answer changes: gold answers only move trust; others move the item's consensus."""
    project = item.project
    labels = _labels(project)
    k = len(labels)
    column = {label.pk: i for i, label in enumerate(labels)}
    gold = GoldItem.objects.filter(item=item).first() if is_gold else None
    if gold is not None:
        given, truth = column[annotation.label_id], column[gold.label_id]
        skills_add_evidence(
            project=project,
            evidence={annotation.annotator_id: sign * consensus.gold_evidence(truth, given, k)},
            gold_results={annotation.annotator_id: (sign, sign * int(given == truth))},
            answers={annotation.annotator_id: sign},
            k=k,
        )
        return
    counted = {annotation.annotator_id: sign}
    if (
        item.status in (ItemStatus.LABELED, ItemStatus.AUTO_LABELED)
        and item.final_source != ItemSource.CONSENSUS
    ):
        # Decided by an expert or import: the late answer is kept but decides nothing.
        skills_add_evidence(project=project, evidence={}, answers=counted, k=k)
    elif item.status == ItemStatus.LABELED and sign > 0:
        # Closed by others while this lease was open: the answer is evidence about its giver.
        posterior = np.asarray(item.posterior, dtype=float)
        evidence = consensus.answer_evidence(posterior, column[annotation.label_id])
        skills_add_evidence(
            project=project, evidence={annotation.annotator_id: evidence}, answers=counted, k=k
        )
    else:
        item_consensus_update(item, answers_delta=counted)


def annotation_undo(*, project: Project, user: AbstractBaseUser) -> Assignment:
    """Take back the user's last answer in ``project`` within the undo window: append an undo row,
    reopen the item if that answer had closed it, and lease the item to the user again."""
    with transaction.atomic():
        last = (
            Annotation.objects.filter(
                project=project, annotator=user, superseded_by__isnull=True, label__isnull=False
            )
            .order_by("-created_at", "-id")
            .first()
        )
        if last is None or last.created_at < timezone.now() - UNDO_WINDOW:
            raise NothingToUndo("There is no answer of yours from the last two minutes to undo.")
        item = (
            Item.objects.select_for_update(of=("self",))
            .select_related("project__active_model")
            .get(pk=last.item_id)
        )
        if (
            item.final_source == ItemSource.EXPERT
            and not GoldItem.objects.filter(item=item).exists()
        ):
            raise NothingToUndo(
                "An admin already decided this image; the answer can no longer be undone."
            )
        is_gold = bool(last.assignment and last.assignment.is_gold)
        labels = _labels(project)
        k = len(labels)
        column = {label.pk: i for i, label in enumerate(labels)}
        taken_back: dict[int, np.ndarray] = {}
        if (
            not is_gold
            and item.status == ItemStatus.LABELED
            and item.final_source == ItemSource.CONSENSUS
        ):
            # Take back the evidence its closing gave every answer, then reopen it.
            posterior = np.asarray(item.posterior, dtype=float)
            taken_back = {
                a.annotator_id: -consensus.answer_evidence(posterior, column[a.label_id])
                for a in current_answers(item)
            }
            item.final_label, item.final_source, item.final_confidence, item.finished_at = (
                None,
                "",
                None,
                None,
            )
            item.status = ItemStatus.IN_REVIEW
            item.save()
            credit_decide(item=item, source="", label_name=None)
        undo = Annotation.objects.create(
            project=project, item=item, annotator=user, label=None, supersedes=last
        )
        if is_gold:
            _apply_answer(item, last, True, sign=-1)
        elif item.status in (ItemStatus.IN_REVIEW, ItemStatus.DISPUTED, ItemStatus.QUEUED):
            item_consensus_update(item, answers_delta={user.pk: -1}, extra_evidence=taken_back)
        else:
            skills_add_evidence(project=project, evidence=taken_back, answers={user.pk: -1}, k=k)
        lease = Assignment.objects.create(
            project=project,
            item=item,
            annotator=user,
            expires_at=timezone.now() + timedelta(seconds=project.lease_seconds),
            is_gold=is_gold,
        )
        undo.assignment = lease
        Annotation.objects.filter(pk=undo.pk).update(assignment=lease)
    return lease


def gold_item_add(
    *, item: Item, label: Label, origin: str = GoldOrigin.SEEDED, by=None
) -> GoldItem:
    """Mark an item's answer as known; it is then mixed into queues to measure inspectors."""
    with transaction.atomic():
        item = Item.objects.select_for_update(of=("self",)).get(pk=item.pk)
        gold, _ = GoldItem.objects.update_or_create(
            item=item,
            defaults={"project": item.project, "label": label, "origin": origin, "created_by": by},
        )
        if item.final_source != ItemSource.EXPERT or item.final_label_id != label.pk:
            item_finalize(item=item, label=label, source=ItemSource.EXPERT, confidence=1.0)
    return gold


def item_resolve_expert(
    *, item_id: int, project: Project, label_name: str, user: AbstractBaseUser
) -> Item:
    """An admin decides a disputed item. The decision becomes gold, so it also updates the trust
    of everyone who answered it."""
    label = label_for(project, label_name)
    with transaction.atomic():
        item = (
            Item.objects.select_for_update(of=("self",))
            .select_related("project")
            .filter(pk=item_id, project=project)
            .first()
        )
        if item is None:
            raise NotDisputed("No such image in this project.")
        if item.status != ItemStatus.DISPUTED:
            raise NotDisputed("Only disputed images are resolved by an expert.")
        labels = _labels(project)
        k = len(labels)
        column = {lab.pk: i for i, lab in enumerate(labels)}
        truth = column[label.pk]
        answers = current_answers(item)
        GoldItem.objects.update_or_create(
            item=item,
            defaults={
                "project": project,
                "label": label,
                "origin": GoldOrigin.EXPERT,
                "created_by": user,
            },
        )
        item_finalize(item=item, label=label, source=ItemSource.EXPERT, confidence=1.0)
        skills_add_evidence(
            project=project,
            evidence={
                a.annotator_id: consensus.gold_evidence(truth, column[a.label_id], k)
                for a in answers
            },
            gold_results={a.annotator_id: (1, int(column[a.label_id] == truth)) for a in answers},
            k=k,
        )
    return item
