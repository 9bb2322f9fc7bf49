"""The inspector queue: leases (Assignments) on items that still need answers.

On PostgreSQL the pick locks the chosen item row with ``SELECT … FOR UPDATE SKIP LOCKED``, so two
inspectors asking at once never take the same slot: the second skips the locked row and gets the
next item. SQLite (the embedded demo) serialises writers instead.
"""

import random
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from labeling.errors import LeaseNotYours, ServiceError, project_require_open
from labeling.models import (
    Annotation,
    AnnotatorSkill,
    Assignment,
    AssignmentStatus,
    GoldItem,
    Item,
    ItemStatus,
    Project,
)

MAX_OPEN_LEASES = 10


def leases_expire(*, project: Project | None = None, now=None) -> int:
    """Close leases past their expiry; items nobody answered or holds go back to ``queued``."""
    now = now or timezone.now()
    stale = Assignment.objects.filter(status=AssignmentStatus.OPEN, expires_at__lte=now)
    if project is not None:
        stale = stale.filter(project=project)
    expired = stale.update(status=AssignmentStatus.EXPIRED, updated_at=now)
    if expired:
        _requeue_idle(project=project)
    return expired


def _requeue_idle(*, project: Project | None, item_ids=None) -> None:
    open_lease = Assignment.objects.filter(item=OuterRef("pk"), status=AssignmentStatus.OPEN)
    idle = Item.objects.filter(status=ItemStatus.IN_REVIEW, answer_count=0).exclude(
        Exists(open_lease)
    )
    if project is not None:
        idle = idle.filter(project=project)
    if item_ids is not None:
        idle = idle.filter(pk__in=item_ids)
    idle.update(status=ItemStatus.QUEUED)


def _open_leases_of(user: AbstractBaseUser, project: Project):
    return Assignment.objects.filter(
        project=project, annotator=user, status=AssignmentStatus.OPEN, expires_at__gt=timezone.now()
    )


def leases_open(*, project: Project, user: AbstractBaseUser) -> list[Assignment]:
    """The user's open leases, oldest first (a reopened page resumes them)."""
    return list(_open_leases_of(user, project).select_related("item").order_by("created_at", "pk"))


def _not_seen_by(user: AbstractBaseUser):
    """Items the user has never been given nor answered: nobody sees an item twice."""
    return ~Exists(Assignment.objects.filter(item=OuterRef("pk"), annotator=user)) & ~Exists(
        Annotation.objects.filter(item=OuterRef("pk"), annotator=user)
    )


def _pick_gold(project: Project, user: AbstractBaseUser, rng) -> Item | None:
    gold = (
        Item.objects.filter(project=project)
        .filter(Exists(GoldItem.objects.filter(item=OuterRef("pk"))))
        .filter(_not_seen_by(user))
    )
    ids = list(gold.values_list("pk", flat=True)[:200])
    return Item.objects.get(pk=rng.choice(ids)) if ids else None


def _open_lease_count(item_id: int, now) -> int:
    return Assignment.objects.filter(
        item_id=item_id, status=AssignmentStatus.OPEN, expires_at__gt=now
    ).count()


def _pick_regular(project: Project, user: AbstractBaseUser, now) -> Item | None:
    """Lock the best item that still has a free slot (caller holds a transaction)."""
    open_leases = (
        Assignment.objects.filter(
            item=OuterRef("pk"), status=AssignmentStatus.OPEN, expires_at__gt=now
        )
        .values("item")
        .annotate(n=Count("pk"))
        .values("n")
    )
    # Lease only as many slots as the item surely still needs: the missing minimum, else one
    # at a time, so an item that becomes confident takes no further answers.
    candidates = (
        Item.objects.filter(project=project, status__in=(ItemStatus.QUEUED, ItemStatus.IN_REVIEW))
        .filter(_not_seen_by(user))
        .exclude(Exists(GoldItem.objects.filter(item=OuterRef("pk"))))
        .annotate(
            open_leases=Coalesce(Subquery(open_leases, output_field=IntegerField()), Value(0)),
            needed=Greatest(Value(project.min_answers) - F("answer_count"), Value(1)),
        )
        .filter(open_leases__lt=F("needed"))
        .order_by("-answer_count", "-posterior_max", "created_at", "pk")
    )
    passed_over: list[int] = []
    for _ in range(8):
        item = (
            candidates.exclude(pk__in=passed_over)
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if item is None:
            return None
        # The candidate query ran on a snapshot from before we got the lock; an inspector who
        # held it meanwhile may have taken its last slot. Count again now that we hold it: a
        # new statement sees everything committed before our lock.
        fresh = Item.objects.get(pk=item.pk)
        needed = max(project.min_answers - fresh.answer_count, 1)
        if (
            fresh.status in (ItemStatus.QUEUED, ItemStatus.IN_REVIEW)
            and _open_lease_count(item.pk, now) < needed
        ):
            return fresh
        passed_over.append(item.pk)
    return None


def assignment_next(
    *, project: Project, user: AbstractBaseUser, rng: random.Random | None = None
) -> Assignment | None:
    """Lease the next item to ``user``: a gold item at the project's gold rate, else the queued
    item closest to a decision, else the oldest. None when nothing is left for them."""
    rng = rng or random
    project_require_open(project)
    now = timezone.now()
    leases_expire(project=project, now=now)
    if _open_leases_of(user, project).count() >= MAX_OPEN_LEASES:
        raise ServiceError(f"You already hold {MAX_OPEN_LEASES} images; answer or skip some first.")
    with transaction.atomic():
        item = None
        is_gold = False
        if project.gold_rate > 0 and rng.random() < project.gold_rate:
            item = _pick_gold(project, user, rng)
            is_gold = item is not None
        if item is None:
            item = _pick_regular(project, user, now)
        if item is None:
            return None
        lease = Assignment.objects.create(
            project=project,
            item=item,
            annotator=user,
            expires_at=now + timedelta(seconds=project.lease_seconds),
            is_gold=is_gold,
        )
        if item.status == ItemStatus.QUEUED:
            Item.objects.filter(pk=item.pk, status=ItemStatus.QUEUED).update(
                status=ItemStatus.IN_REVIEW
            )
    lease.item = item
    return lease


def lease_renew(
    *, project: Project, user: AbstractBaseUser, assignment_ids: list[int]
) -> list[Assignment]:
    """Extend the user's open, unexpired leases (the page does this while it is open)."""
    until = timezone.now() + timedelta(seconds=project.lease_seconds)
    leases = _open_leases_of(user, project).filter(pk__in=assignment_ids)
    leases.update(expires_at=until, updated_at=timezone.now())
    return list(_open_leases_of(user, project).filter(pk__in=assignment_ids))


def assignment_skip(
    *, project: Project, user: AbstractBaseUser, assignment_id: int, reason: str = ""
) -> None:
    """Give an item back without answering; it returns to the queue for others."""
    with transaction.atomic():
        lease = (
            Assignment.objects.select_for_update(of=("self",))
            .filter(pk=assignment_id, project=project)
            .first()
        )
        if lease is None or lease.annotator_id != user.pk:
            raise LeaseNotYours("This lease is not yours.")
        if lease.status != AssignmentStatus.OPEN:
            raise ServiceError("This lease is no longer open.")
        lease.status = AssignmentStatus.SKIPPED
        lease.skip_reason = (reason or "")[:200]
        lease.save(update_fields=["status", "skip_reason", "updated_at"])
        _requeue_idle(project=project, item_ids=[lease.item_id])


def inspector_today(*, project: Project, user: AbstractBaseUser) -> dict:
    """Today's answer count and gold accuracy, for the inspector's own page."""
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    answered = Annotation.objects.filter(
        project=project,
        annotator=user,
        label__isnull=False,
        superseded_by__isnull=True,
        created_at__gte=start,
    ).count()
    skill = AnnotatorSkill.objects.filter(project=project, annotator=user).first()
    return {
        "answers_today": answered,
        "gold_answers": skill.gold_answers if skill else 0,
        "gold_accuracy": skill.gold_accuracy if skill else None,
    }
