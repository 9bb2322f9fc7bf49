"""One round trip per answer: the answer takes the next leases in its own transaction. What an
inspector (or an API client) must not be able to tell apart from the two-request way, and what
the shortcut must never do (hand a slot out twice, lose an answer, break the lease cap)."""

import random
import threading

import numpy as np
import pytest
from django.db import connection, connections

from labeling.access import Role
from labeling.answers import annotation_submit, annotation_submit_and_lease
from labeling.errors import ServiceError
from labeling.models import Annotation, AnnotatorSkill, Assignment, AssignmentStatus, Item
from labeling.project_setup import member_add, project_create
from labeling.queue import MAX_OPEN_LEASES, assignment_next, assignments_next
from tests.labeling.test_queue_consensus import add_items

pytestmark = pytest.mark.django_db(transaction=True)
LABELS = ["package", "product", "full_body", "half_body"]


def crowd(project, make_user, prefix: str, n: int = 4) -> list:
    users = []
    for i in range(n):
        user = make_user(f"{prefix}-{i}", Role.INSPECTOR)
        member_add(project=project, user=user)
        users.append(user)
    return users


def test_answering_with_next_ends_where_answer_then_next_ends(make_user):
    """The same crowd giving the same answers, once with next/ after every answer and once
    with the lease in the answer's reply: the same items get the same answers, posteriors,
    decisions and trust."""
    outcomes = []
    for one_trip in (False, True):
        project = project_create(
            name=f"Shop {one_trip}", labels=LABELS, min_answers=2, max_answers=4, gold_rate=0
        )
        add_items(project, 30, offset=1000 * one_trip)
        items = list(
            Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
        )
        position = {pk: i for i, pk in enumerate(items)}
        users = crowd(project, make_user, f"p{int(one_trip)}")
        rng = random.Random(5)
        leases = {user.pk: assignment_next(project=project, user=user) for user in users}
        for step in range(60):
            user = users[step % len(users)]
            lease = leases[user.pk]
            if lease is None:
                continue
            truth = LABELS[position[lease.item_id] % 4]
            label = truth if rng.random() < 0.8 else rng.choice(LABELS)
            answer = {
                "project": project,
                "assignment_id": lease.pk,
                "user": user,
                "label_name": label,
                "time_on_task_ms": 700,
            }
            if one_trip:
                _, taken = annotation_submit_and_lease(**answer, lease_next=1)
                leases[user.pk] = taken[0] if taken else None
            else:
                annotation_submit(**answer)
                leases[user.pk] = assignment_next(project=project, user=user)
        outcomes.append(
            {
                "items": [
                    (position[pk], status, round(top, 9), count, label)
                    for pk, status, top, count, label in Item.objects.filter(project=project)
                    .order_by("pk")
                    .values_list(
                        "pk", "status", "posterior_max", "answer_count", "final_label__name"
                    )
                ],
                "answers": sorted(
                    (position[pk], user_name[-1], label)
                    for pk, user_name, label in Annotation.objects.filter(
                        project=project
                    ).values_list("item_id", "annotator__username", "label__name")
                ),
                "trust": [
                    (
                        skill.annotator.username[-1],
                        skill.answers,
                        np.round(skill.confusion, 9).tolist(),
                    )
                    for skill in AnnotatorSkill.objects.filter(project=project)
                    .select_related("annotator")
                    .order_by("annotator__username")
                ],
            }
        )
    assert outcomes[0] == outcomes[1]
    assert any(status == "labeled" for _, status, *_ in outcomes[1]["items"])


def test_the_lease_cap_holds_and_the_answer_is_kept(project, people):
    project.gold_rate = 0
    project.save()
    add_items(project, MAX_OPEN_LEASES + 6)
    inspector = people["inspector"]
    held = assignments_next(project=project, user=inspector, count=MAX_OPEN_LEASES)
    assert len(held) == MAX_OPEN_LEASES

    annotation, leases = annotation_submit_and_lease(
        project=project,
        assignment_id=held[0].pk,
        user=inspector,
        label_name="product",
        time_on_task_ms=500,
        lease_next=5,
    )
    # The answer freed one slot of the cap: one lease comes back, not five.
    assert annotation.pk and annotation.label.name == "product"
    assert len(leases) == 1 and leases[0].item_id not in {lease.item_id for lease in held}
    mine = Assignment.objects.filter(annotator=inspector, status=AssignmentStatus.OPEN)
    assert mine.count() == MAX_OPEN_LEASES
    # At the cap, asking for more is refused with the reason, and takes nothing.
    with pytest.raises(ServiceError, match="already hold"):
        assignments_next(project=project, user=inspector, count=1)
    assert mine.count() == MAX_OPEN_LEASES


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED is a PostgreSQL feature")
def test_inspectors_answering_and_leasing_at_once_never_share_a_slot(project, make_user):
    """Answers that take the next lease in their own transaction race each other for slots: no
    item is leased beyond what it needs, and no answer is lost or stored twice."""
    project.min_answers, project.max_answers, project.gold_rate = 1, 1, 0
    project.save()
    item_ids = add_items(project, 40)
    users = crowd(project, make_user, "racer", n=6)
    barrier = threading.Barrier(len(users))
    answered: dict[int, list[int]] = {}

    def work(user):
        try:
            barrier.wait()
            lease = assignment_next(project=project, user=user)
            mine = answered.setdefault(user.pk, [])
            while lease is not None:
                annotation, leases = annotation_submit_and_lease(
                    project=project,
                    assignment_id=lease.pk,
                    user=user,
                    label_name="package",
                    time_on_task_ms=1,
                    lease_next=1,
                )
                mine.append(annotation.item_id)
                lease = leases[0] if leases else None
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each item needed exactly one answer: it got exactly one, from whoever leased it.
    given = [item for items in answered.values() for item in items]
    assert sorted(given) == sorted(item_ids)
    assert Annotation.objects.count() == len(item_ids)
    assert not Assignment.objects.filter(status=AssignmentStatus.OPEN).exists()
    assert sum(1 for items in answered.values() if items) > 1
