"""Query budgets of the queue's hot path: how many SQL statements one request of each kind
costs, through the API with a token, as the inspector page and API clients call it.

Counting statements is behaviour, not timing: a change that adds a query to every answer shows
up here. The counts include BEGIN and COMMIT. They are the same on PostgreSQL and SQLite: the
row locks (``FOR UPDATE``) are clauses of statements that run on both, and SQLite ignores them.
See docs/hot_path.md for what each statement is.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.access import Role
from labeling.models import Annotation, Assignment, AssignmentStatus, Item, ItemStatus
from labeling.project_setup import member_add

# Real transactions (no test-wide one): BEGIN and COMMIT are counted as production sends them.
pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = {
    # Every request: the token and its user, then the project with the caller's roles (2).
    # next/: BEGIN, the pick (it counts the caller's open leases too), the recount under the
    # lock, the lease, the item's status (queued -> in_review), COMMIT.
    "next": 8,
    # answers/: BEGIN, lease and item locked together, labels, the item's answers, the answer,
    # the lease's status, the cost row, the trust rows read, the item, the answer count, COMMIT.
    "answer": 13,
    # An answer that closes the item and makes its three answers evidence (each judged by the
    # other two, which are sure enough): everyone's trust rows locked in one statement, then one
    # update each, instead of the one answer count (13 - 1 + 1 + 3).
    "answer_closing": 16,
    # answers/ with "next": 1, one transaction: the answer (11) and the lease (4).
    "answer_and_next": 17,
    "skip": 7,
    "undo": 12,
}


def api(name: str) -> str:
    return reverse(f"api-queue-{name}", args=["reviews"])


@pytest.fixture
def inspectors(project, make_user, settings):
    # Without the periodic sweep of lapsed leases (one UPDATE per process every 10 s).
    settings.LEASE_SWEEP_SECONDS = 3600
    project.gold_rate = 0
    project.min_answers, project.max_answers = 3, 5
    # Three agreeing answers close an item: the closing answer's budget is measured too.
    project.consensus_target = 0.6
    project.save()
    Item.objects.bulk_create(
        Item(
            project=project,
            image=f"items/{i}.png",
            sha256=f"{i:064x}",
            content_type="image/png",
            width=8,
            height=8,
            byte_size=10,
            status=ItemStatus.QUEUED,
        )
        for i in range(6)
    )
    clients = []
    for name in ("ann", "bob", "cy"):
        user = make_user(name, Role.INSPECTOR)
        member_add(project=project, user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        clients.append(client)
    return clients


def post(client, name: str, body: dict | None = None, *, status: int) -> tuple[dict, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(api(name), body or {}, format="json")
    assert response.status_code == status, response.content
    return (response.json() if response.content else {}), len(queries)


def answer(lease: dict, label: str = "package", **extra) -> dict:
    return {"assignment": lease["assignment"], "label": label, "time_on_task_ms": 900, **extra}


def test_each_queue_request_stays_within_its_query_budget(inspectors):
    ann, bob, cy = inspectors
    lease, count = post(ann, "next", status=200)
    assert count == BUDGET["next"]
    # Warm every inspector's trust row (made on their first answer, outside the budget).
    post(ann, "answer", answer(lease), status=201)
    post(bob, "answer", answer(post(bob, "next", status=200)[0]), status=201)
    post(cy, "answer", answer(post(cy, "next", status=200)[0]), status=201)

    first, _ = post(ann, "next", status=200)
    reply, count = post(ann, "answer", answer(first), status=201)
    assert (count, reply["item_status"], reply["next"]) == (BUDGET["answer"], "in_review", [])

    second, _ = post(bob, "next", status=200)
    assert second["item"] == first["item"]
    post(bob, "answer", answer(second), status=201)
    # Cy's agreeing answer closes the item: all three inspectors' trust moves.
    third, _ = post(cy, "next", status=200)
    assert third["item"] == first["item"]
    reply, count = post(cy, "answer", answer(third), status=201)
    assert (count, reply["item_status"]) == (BUDGET["answer_closing"], "labeled")

    reply, count = post(ann, "answer", answer(post(ann, "next", status=200)[0], next=1), status=201)
    assert count == BUDGET["answer_and_next"] and len(reply["next"]) == 1

    _, count = post(ann, "skip", {"assignment": reply["next"][0]["assignment"]}, status=204)
    assert count == BUDGET["skip"]

    _, count = post(ann, "undo", status=200)
    assert count == BUDGET["undo"]


def test_one_round_trip_leases_what_a_second_request_would_have(inspectors):
    """The answer with ``next`` hands out the same lease a separate next/ would: nobody gets an
    item twice, and the answer is stored whatever the leasing finds."""
    ann = inspectors[0]
    lease, _ = post(ann, "next", status=200)
    seen = {lease["item"]}
    for _ in range(10):
        reply, _ = post(ann, "answer", answer(lease, next=1), status=201)
        if not reply["next"]:
            break
        [lease] = reply["next"]
        assert lease["item"] not in seen
        seen.add(lease["item"])
    # Six items, each answered once by ann; the last answer found nothing more for her.
    assert len(seen) == 6 and reply["next"] == []
    assert Annotation.objects.filter(label__isnull=False).count() == 6
    assert not Assignment.objects.filter(status=AssignmentStatus.OPEN).exists()
