"""Human answers: submit, undo, consensus after every answer, expert resolution, gold items."""

from collections.abc import Sequence
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
    project_require_open,
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
from labeling.queue import assignments_lease, leases_expire_due
from labeling.trust import (
    class_prior,
    confusions_for,
    current_answers,
    linked_pairs,
    skills_add_evidence,
)

UNDO_WINDOW = timedelta(minutes=2)
MAX_TIME_ON_TASK_MS = 60 * 60 * 1000


def _labels(project: Project) -> list[Label]:
    # By position alone: the model's default order (project, position) joins the project table.
    return list(project.labels.order_by("position"))


def label_for(project: Project, name: str, labels: Sequence[Label] | None = None) -> Label:
    """The project's label called ``name``; ``labels``: the project's labels, when the caller
    has them already (no query then)."""
    if labels is None:
        label = project.labels.filter(name=name).first()
    else:
        label = next((label for label in labels if label.name == name), None)
    if label is None:
        names = ", ".join(
            project.label_names() if labels is None else [label.name for label in labels]
        )
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
    labels: Sequence[Label] | None = None,
    answers: list[Annotation] | None = None,
) -> str:
    """Recompute the item's posterior from its current answers and apply the stopping rule.
    Returns ``labeled``, ``disputed`` or ``open``. Caller holds the item's row lock.
    ``labels`` and ``answers`` (``current_answers``): when the caller has them already."""
    project = item.project
    labels = _labels(project) if labels is None else labels
    k = len(labels)
    column = {label.pk: i for i, label in enumerate(labels)}
    answers = current_answers(item) if answers is None else answers
    who = [a.annotator_id for a in answers]
    confusions = confusions_for(project, who, k)
    update = consensus.answer_update(
        item_prior(item, k),
        who,
        [confusions[a] for a in who],
        [column[a.label_id] for a in answers],
        target=project.consensus_target,
        min_answers=project.min_answers,
        max_answers=project.max_answers,
        linked_pairs=linked_pairs(project),
    )
    posterior, decision = update.posterior, update.decision
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
        # Closing an item is when its answers become evidence about the people who gave them,
        # each judged by the item's other answers (leave-one-out, see consensus.answer_update).
        for annotator_id, increment in update.evidence.items():
            evidence[annotator_id] = evidence.get(annotator_id, np.zeros((k, k))) + increment
    else:
        item.status = ItemStatus.DISPUTED if decision == "disputed" else ItemStatus.IN_REVIEW
        # Only what the update changed: not the image path, metadata and the rest again.
        item.save(
            update_fields=["posterior", "posterior_max", "answer_count", "status", "updated_at"]
        )
    # One pass over the touched inspectors' trust rows (locked in id order: no deadlocks).
    skills_add_evidence(project=project, evidence=evidence, answers=answers_delta, k=k)
    return decision


def _item_rows(item: Item) -> list[Annotation]:
    """All of the item's annotation rows, oldest first: the chain heads and the current answers
    both come from this one read."""
    return list(Annotation.objects.filter(item=item).order_by("created_at", "id"))


def _chain_head(rows: Sequence[Annotation], annotator_id: int) -> Annotation | None:
    """The annotator's row on the item that no later row supersedes."""
    superseded = {row.supersedes_id for row in rows if row.supersedes_id is not None}
    return next(
        (r for r in rows if r.annotator_id == annotator_id and r.pk not in superseded), None
    )


def _checked_time_on_task(time_on_task_ms: int) -> int:
    if (
        not isinstance(time_on_task_ms, int)
        or isinstance(time_on_task_ms, bool)
        or time_on_task_ms < 0
    ):
        raise ServiceError("time_on_task_ms must be a whole number of milliseconds, 0 or more.")
    return min(time_on_task_ms, MAX_TIME_ON_TASK_MS)


def annotation_submit(
    *,
    project: Project,
    assignment_id: int,
    user: AbstractBaseUser,
    label_name: str,
    time_on_task_ms: int,
) -> Annotation:
    """Record one answer under a valid lease and update the item's consensus at once."""
    time_on_task_ms = _checked_time_on_task(time_on_task_ms)
    project_require_open(project)
    with transaction.atomic():
        return _submit(project, assignment_id, user, label_name, time_on_task_ms)


def annotation_submit_and_lease(
    *,
    project: Project,
    assignment_id: int,
    user: AbstractBaseUser,
    label_name: str,
    time_on_task_ms: int,
    lease_next: int,
) -> tuple[Annotation, list[Assignment]]:
    """Record one answer, then lease up to ``lease_next`` more items to the same inspector, in
    one transaction: one round trip and one commit per answer instead of two.

    The answer never depends on the leasing: when the inspector already holds the most leases
    allowed, or nothing is left, the answer is stored and fewer leases (or none) come back.
    Leasing skips locked items and so never waits while this answer's locks are held."""
    time_on_task_ms = _checked_time_on_task(time_on_task_ms)
    project_require_open(project)
    now = timezone.now()
    # Outside the transaction: the sweep waits for item locks, which must not happen while
    # holding this answer's.
    leases_expire_due(project=project, now=now)
    with transaction.atomic():
        annotation = _submit(project, assignment_id, user, label_name, time_on_task_ms)
        try:
            leases = assignments_lease(project=project, user=user, count=lease_next, now=now)
        except ServiceError:
            leases = []  # at the lease cap: raised before the leasing wrote anything
    return annotation, leases


def _submit(
    project: Project,
    assignment_id: int,
    user: AbstractBaseUser,
    label_name: str,
    time_on_task_ms: int,
) -> Annotation:
    """The answer itself (caller holds a transaction): lock the lease and its item in one
    statement, read the item's answers once, write the answer, its cost and the consensus."""
    assignment = (
        Assignment.objects.select_for_update(of=("self", "item"))
        .select_related("item")
        .filter(pk=assignment_id, project=project)
        .first()
    )
    if assignment is None or assignment.annotator_id != user.pk:
        # Someone else's lease looks the same as no lease: nothing to learn from probing ids.
        raise LeaseNotYours("This lease is not yours.")
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise AlreadyAnswered("You already answered this image.")
    if assignment.status != AssignmentStatus.OPEN or assignment.expires_at <= timezone.now():
        raise LeaseExpired(
            "Your lease on this image expired; it went back to the queue. Take the next image."
        )
    labels = _labels(project)
    label = label_for(project, label_name, labels)
    item = assignment.item
    item.project = assignment.project = project
    rows = _item_rows(item)
    head = _chain_head(rows, user.pk)
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
    _apply_answer(
        item,
        annotation,
        assignment.is_gold,
        sign=+1,
        labels=labels,
        answers=current_answers(item, [*rows, annotation]),
    )
    return annotation


def _apply_answer(
    item: Item,
    annotation: Annotation,
    is_gold: bool,
    *,
    sign: int,
    labels: Sequence[Label] | None = None,
    answers: list[Annotation] | None = None,
) -> None:
    """What one answer changes: gold answers only move trust; others move the item's consensus.
    ``labels`` and ``answers`` (the item's current answers): when the caller has them."""
    project = item.project
    labels = _labels(project) if labels is None else labels
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
        # Closed by others while this lease was open: the closing posterior does not contain
        # this answer, so it may judge it (if it is sure enough, as for leave-one-out evidence).
        posterior = np.asarray(item.posterior, dtype=float)
        evidence = {}
        if posterior.max() >= consensus.EVIDENCE_MIN_CONFIDENCE:
            evidence[annotation.annotator_id] = consensus.answer_evidence(
                posterior, column[annotation.label_id]
            )
        skills_add_evidence(project=project, evidence=evidence, answers=counted, k=k)
    else:
        item_consensus_update(item, answers_delta=counted, labels=labels, answers=answers)


def annotation_undo(
    *, project: Project, user: AbstractBaseUser, assignment_id: int | None = None
) -> Assignment:
    """Take back the user's last answer in ``project`` within the undo window: append an undo row,
    reopen the item if that answer had closed it, and lease the item to the user again.
    ``assignment_id``: the answer given on that lease instead. The inspect page names the one
    the inspector gave last: answers it sends in quick succession travel concurrently and may be
    saved in another order, so "the latest saved" need not be the one they mean."""
    project_require_open(project)
    with transaction.atomic():
        answers = Annotation.objects.filter(
            project=project, annotator=user, superseded_by__isnull=True, label__isnull=False
        )
        if assignment_id is not None:
            answers = answers.filter(assignment_id=assignment_id)
        last = answers.select_related("assignment").order_by("-created_at", "-id").first()
        if last is None or last.created_at < timezone.now() - UNDO_WINDOW:
            raise NothingToUndo(
                "There is no answer of yours from the last two minutes to undo."
                if assignment_id is None
                else "That answer is no longer yours to undo (taken back already, or older "
                "than two minutes)."
            )
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
        rows = _item_rows(item) if not is_gold else []
        if (
            not is_gold
            and item.status == ItemStatus.LABELED
            and item.final_source == ItemSource.CONSENSUS
        ):
            # Take back the evidence its closing gave every answer, then reopen it.
            answers = current_answers(item, rows)
            who = [a.annotator_id for a in answers]
            confusions = confusions_for(project, who, k)
            given = consensus.closing_evidence(
                np.asarray(item.posterior, dtype=float),
                who,
                [confusions[a] for a in who],
                [column[a.label_id] for a in answers],
                linked_pairs(project),
            )
            taken_back = {annotator_id: -ev for annotator_id, ev in given.items()}
            item.final_label, item.final_source, item.final_confidence, item.finished_at = (
                None,
                "",
                None,
                None,
            )
            item.status = ItemStatus.IN_REVIEW
            item.save()
            credit_decide(item=item, source="", label_name=None)
        # The new lease first, so the undo row is written once, already pointing at it.
        lease = Assignment.objects.create(
            project=project,
            item=item,
            annotator=user,
            expires_at=timezone.now() + timedelta(seconds=project.lease_seconds),
            is_gold=is_gold,
        )
        undo = Annotation.objects.create(
            project=project,
            item=item,
            annotator=user,
            label=None,
            supersedes=last,
            assignment=lease,
        )
        if is_gold:
            _apply_answer(item, last, True, sign=-1, labels=labels)
        elif item.status in (ItemStatus.IN_REVIEW, ItemStatus.DISPUTED, ItemStatus.QUEUED):
            item_consensus_update(
                item,
                answers_delta={user.pk: -1},
                extra_evidence=taken_back,
                labels=labels,
                answers=current_answers(item, [*rows, undo]),
            )
        else:
            skills_add_evidence(project=project, evidence=taken_back, answers={user.pk: -1}, k=k)
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
    project_require_open(project)
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
