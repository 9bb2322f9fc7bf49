"""The inspector queue: leases (Assignments) on items that still need answers.

On PostgreSQL the pick locks the chosen item row with ``SELECT … FOR UPDATE SKIP LOCKED``, so two
inspectors asking at once never take the same slot: the second skips the locked row and gets the
next item. SQLite (the embedded demo) serialises writers instead.
"""

import random
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
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
# The item fields a lease needs: the pick reads no image path, metadata or posterior.
PICK_FIELDS = ("id", "project_id", "status", "answer_count")

_swept_at: dict[int, float] = {}


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


def leases_expire_due(*, project: Project, now=None) -> int:
    """``leases_expire`` for one project, at most once every ``LEASE_SWEEP_SECONDS`` in this
    process. Leasing and answering judge a lease by its expiry time, not its status, so this is
    bookkeeping (items nobody holds go back to ``queued``); the beat task sweeps every minute as
    well. Run it outside any transaction that holds item locks: it waits for item locks itself."""
    tick = time.monotonic()
    # A process's first lease of the project starts its clock.
    if tick - _swept_at.setdefault(project.pk, tick) < settings.LEASE_SWEEP_SECONDS:
        return 0
    _swept_at[project.pk] = tick
    return leases_expire(project=project, now=now)


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


def _open_leases_of(user: AbstractBaseUser, project: Project, now=None):
    return Assignment.objects.filter(
        project=project,
        annotator=user,
        status=AssignmentStatus.OPEN,
        expires_at__gt=now or timezone.now(),
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


# The pick runs once per lease, so it is written in SQL: building it with the ORM (three
# correlated subqueries, computed columns, row locks) cost about 2 ms of Python per lease, more
# than the database spends running it. It is the ORM version's statement, less the noise: the
# same filters, and the same order, which the partial index ``item_queue_order`` serves so the
# database walks the queue in order and stops at the first free item.
PICK_SQL = """
SELECT i.id, i.project_id, i.status, i.answer_count,
       (SELECT count(*) FROM labeling_assignment h
        WHERE h.project_id = %s AND h.annotator_id = %s AND h.status = %s AND h.expires_at > %s)
FROM labeling_item i
WHERE i.project_id = %s
  AND i.status IN (%s, %s)
  AND NOT EXISTS (SELECT 1 FROM labeling_assignment s
                  WHERE s.item_id = i.id AND s.annotator_id = %s)
  AND NOT EXISTS (SELECT 1 FROM labeling_annotation a
                  WHERE a.item_id = i.id AND a.annotator_id = %s)
  AND NOT EXISTS (SELECT 1 FROM labeling_golditem g WHERE g.item_id = i.id)
  AND (SELECT count(*) FROM labeling_assignment s
       WHERE s.item_id = i.id AND s.status = %s AND s.expires_at > %s)
      < CASE WHEN %s - i.answer_count > 1 THEN %s - i.answer_count ELSE 1 END
  {passed_over}
ORDER BY i.answer_count DESC, i.posterior_max DESC, i.created_at, i.id
LIMIT 1
{lock}
"""
RECOUNT_SQL = """
SELECT COALESCE(SUM(CASE WHEN status = %s AND expires_at > %s THEN 1 ELSE 0 END), 0),
       COALESCE(SUM(CASE WHEN annotator_id = %s THEN 1 ELSE 0 END), 0)
FROM labeling_assignment WHERE item_id = %s
"""


def _pick_regular(project: Project, user: AbstractBaseUser, now) -> Item | None:
    """Lock the best item that still has a free slot (caller holds a transaction).

    Lease only as many slots as the item surely still needs: the missing minimum, else one at a
    time, so an item that becomes confident takes no further answers. On PostgreSQL the row is
    locked with ``FOR UPDATE SKIP LOCKED``: an item another inspector is being given right now
    is skipped, never waited for. SQLite has no row locks; there the transaction takes the
    database's write lock when it begins (``transaction_mode: IMMEDIATE`` in settings), so
    leases are handed out one at a time."""
    at = connection.ops.adapt_datetimefield_value(now)
    lock = (
        "FOR UPDATE OF i SKIP LOCKED"
        if connection.features.has_select_for_update_skip_locked
        else ""
    )
    passed_over: list[int] = []
    with connection.cursor() as cursor:
        for _ in range(8):
            sql = PICK_SQL.format(
                passed_over=f"AND i.id NOT IN ({', '.join(['%s'] * len(passed_over))})"
                if passed_over
                else "",
                lock=lock,
            )
            cursor.execute(
                sql,
                [
                    project.pk,
                    user.pk,
                    AssignmentStatus.OPEN.value,
                    at,
                    project.pk,
                    ItemStatus.QUEUED.value,
                    ItemStatus.IN_REVIEW.value,
                    user.pk,
                    user.pk,
                    AssignmentStatus.OPEN.value,
                    at,
                    project.min_answers,
                    project.min_answers,
                    *passed_over,
                ],
            )
            row = cursor.fetchone()
            if row is None:
                return None
            # The user's open leases, counted by the same statement (this transaction's new
            # ones included): the cap costs no query of its own.
            _check_lease_cap(row[-1])
            item = Item.from_db(connection.alias, PICK_FIELDS, row[:-1])
            # The row we locked is its latest version (PostgreSQL re-reads a row that changed
            # before the lock), but the candidate's lease counts ran on a snapshot from before
            # we got the lock: an inspector who held it meanwhile may have taken its last slot,
            # or this user may have been given it from another tab. Count again now that we
            # hold it: a new statement sees everything committed before our lock.
            cursor.execute(RECOUNT_SQL, [AssignmentStatus.OPEN.value, at, user.pk, item.pk])
            open_now, mine = cursor.fetchone()
            needed = max(project.min_answers - item.answer_count, 1)
            if open_now < needed and not mine:
                return item
            passed_over.append(item.pk)
    return None


def assignment_next(
    *, project: Project, user: AbstractBaseUser, rng: random.Random | None = None
) -> Assignment | None:
    """Lease the next item to ``user``: a gold item at the project's gold rate, else the queued
    item closest to a decision, else the oldest. None when nothing is left for them."""
    leases = assignments_next(project=project, user=user, count=1, rng=rng)
    return leases[0] if leases else None


def assignments_next(
    *, project: Project, user: AbstractBaseUser, count: int, rng: random.Random | None = None
) -> list[Assignment]:
    """Lease up to ``count`` next items to ``user`` in one transaction (fewer when the queue
    runs dry). Raises ``ServiceError`` when the user already holds ``MAX_OPEN_LEASES``, and
    ``ProjectArchived`` on an archived project."""
    project_require_open(project)
    now = timezone.now()
    leases_expire_due(project=project, now=now)
    with transaction.atomic():
        return assignments_lease(project=project, user=user, count=count, now=now, rng=rng)


def assignments_lease(
    *,
    project: Project,
    user: AbstractBaseUser,
    count: int,
    now,
    rng: random.Random | None = None,
) -> list[Assignment]:
    """The leasing itself; the caller holds a transaction (``annotation_submit_and_lease`` runs
    it in the answer's). It never waits for a lock: taken items are skipped. Raises
    ``ServiceError`` when the user already holds ``MAX_OPEN_LEASES`` and there is an item left
    for them; stops early when they reach it."""
    leases: list[Assignment] = []
    for _ in range(count):
        try:
            lease = _lease_one(project, user, now, rng or random)
        except ServiceError:
            if leases:
                break
            raise
        if lease is None:
            break
        leases.append(lease)
    return leases


def _check_lease_cap(held: int) -> None:
    if held >= MAX_OPEN_LEASES:
        raise ServiceError(f"You already hold {MAX_OPEN_LEASES} images; answer or skip some first.")


def _lease_one(project: Project, user: AbstractBaseUser, now, rng) -> Assignment | None:
    item = None
    is_gold = False
    if project.gold_rate > 0 and rng.random() < project.gold_rate:
        _check_lease_cap(_open_leases_of(user, project, now).count())
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
