"""The human loop through its services: leases, answers, consensus, trust and disputes."""

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from labeling.answers import annotation_submit, annotation_undo, gold_item_add, item_resolve_expert
from labeling.errors import AlreadyAnswered, LeaseExpired, LeaseNotYours, NothingToUndo
from labeling.ingest import Upload, item_ingest
from labeling.models import (
    Annotation,
    AnnotatorSkill,
    Assignment,
    Item,
    ItemSource,
    ItemStatus,
)
from labeling.queue import assignment_next, leases_expire
from labeling.refit import project_refit
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def add_items(project, n, offset=0):
    uploads = [
        Upload(f"{i}.png", image_bytes(color=(i % 256, (i // 256) % 256, 7)))
        for i in range(offset, offset + n)
    ]
    return item_ingest(project=project, uploads=uploads).created_ids


def answer(project, user, label, rng=None):
    lease = assignment_next(project=project, user=user, rng=rng)
    assert lease is not None
    annotation_submit(
        project=project, assignment_id=lease.pk, user=user, label_name=label, time_on_task_ms=1500
    )
    return lease


def train_on_gold(project, user, n, correct: bool, offset):
    """``user`` answers ``n`` gold items, all right or all wrong."""
    labels = list(project.labels.all())
    ids = add_items(project, n, offset=offset)
    for i, item_id in enumerate(ids):
        gold_item_add(item=Item.objects.get(pk=item_id), label=labels[i % len(labels)])
    always_gold = random.Random(0)
    project.gold_rate = 1.0
    project.save()
    for _ in range(n):
        lease = assignment_next(project=project, user=user, rng=always_gold)
        truth = lease.item.gold.label
        given = truth if correct else next(label for label in labels if label != truth)
        annotation_submit(
            project=project,
            assignment_id=lease.pk,
            user=user,
            label_name=given.name,
            time_on_task_ms=900,
        )
    project.gold_rate = 0.0
    project.save()


def test_trusted_inspector_outvotes_two_spammers(project, make_user):
    from labeling.access import Role
    from labeling.project_setup import member_add

    expert, spam1, spam2 = (make_user(name, Role.INSPECTOR) for name in ("erin", "sam", "sid"))
    for user in (expert, spam1, spam2):
        member_add(project=project, user=user)
    train_on_gold(project, expert, 20, correct=True, offset=1000)
    train_on_gold(project, spam1, 20, correct=False, offset=2000)
    train_on_gold(project, spam2, 20, correct=False, offset=3000)
    assert AnnotatorSkill.objects.get(annotator=expert).gold_correct == 20
    assert AnnotatorSkill.objects.get(annotator=spam1).gold_correct == 0
    project_refit(project=project)  # the periodic EM refit (beat) also refreshes the pool

    project.min_answers, project.max_answers, project.consensus_target = 3, 3, 0.9
    project.save()
    [item_id] = add_items(project, 1, offset=5000)
    answer(project, spam1, "package")
    answer(project, spam2, "package")
    answer(project, expert, "product")

    item = Item.objects.get(pk=item_id)
    assert item.status == ItemStatus.LABELED
    assert item.final_label.name == "product"  # majority vote would say "package"
    assert item.final_source == ItemSource.CONSENSUS


def test_agreeing_decent_inspectors_close_an_item_and_stop_collecting(project, people, make_user):
    from labeling.access import Role
    from labeling.project_setup import member_add

    project.min_answers, project.max_answers, project.gold_rate = 2, 5, 0
    project.save()
    [item_id] = add_items(project, 1)
    third, fourth = make_user("third", Role.INSPECTOR), make_user("fourth", Role.INSPECTOR)
    for user in (third, fourth):
        member_add(project=project, user=user)
    answer(project, people["inspector"], "product")
    answer(project, people["admin"], "product")
    # Two newcomers (trusted like the pool: probably decent) are not yet 95% sure.
    item = Item.objects.get(pk=item_id)
    assert item.status == ItemStatus.IN_REVIEW
    assert 0.9 < item.posterior_max < project.consensus_target
    answer(project, third, "product")
    item = Item.objects.get(pk=item_id)
    assert item.status == ItemStatus.LABELED
    assert item.final_confidence >= project.consensus_target
    # A closed item is not offered again.
    assert assignment_next(project=project, user=fourth) is None


def test_disagreement_at_the_cap_is_disputed_and_expert_resolution_updates_trust(project, people):
    project.min_answers, project.max_answers, project.gold_rate = 2, 2, 0
    project.save()
    [item_id] = add_items(project, 1)
    answer(project, people["inspector"], "package")
    answer(project, people["admin"], "half_body")
    assert Item.objects.get(pk=item_id).status == ItemStatus.DISPUTED

    item_resolve_expert(
        item_id=item_id, project=project, label_name="half_body", user=people["admin"]
    )

    item = Item.objects.get(pk=item_id)
    assert (item.status, item.final_source, item.final_label.name) == (
        ItemStatus.LABELED,
        "expert",
        "half_body",
    )
    assert item.gold.origin == "expert"
    inspector = AnnotatorSkill.objects.get(project=project, annotator=people["inspector"])
    admin = AnnotatorSkill.objects.get(project=project, annotator=people["admin"])
    assert (inspector.gold_answers, inspector.gold_correct) == (1, 0)
    assert (admin.gold_answers, admin.gold_correct) == (1, 1)
    assert admin.estimated_accuracy > inspector.estimated_accuracy


def test_expired_lease_returns_the_item_and_a_late_submit_changes_nothing(project, people):
    project.gold_rate = 0
    project.save()
    [item_id] = add_items(project, 1)
    lease = assignment_next(project=project, user=people["inspector"])
    assert Item.objects.get(pk=item_id).status == ItemStatus.IN_REVIEW
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert leases_expire(project=project) == 1
    assert Item.objects.get(pk=item_id).status == ItemStatus.QUEUED
    with pytest.raises(LeaseExpired):
        annotation_submit(
            project=project,
            assignment_id=lease.pk,
            user=people["inspector"],
            label_name="package",
            time_on_task_ms=5,
        )
    assert not Annotation.objects.exists()
    # Another inspector now gets it.
    assert assignment_next(project=project, user=people["admin"]).item_id == item_id


def test_foreign_and_double_submits_are_refused(project, people):
    project.gold_rate = 0
    project.save()
    add_items(project, 1)
    lease = assignment_next(project=project, user=people["inspector"])
    with pytest.raises(LeaseNotYours):
        annotation_submit(
            project=project,
            assignment_id=lease.pk,
            user=people["admin"],
            label_name="package",
            time_on_task_ms=5,
        )
    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=people["inspector"],
        label_name="package",
        time_on_task_ms=5,
    )
    with pytest.raises(AlreadyAnswered):
        annotation_submit(
            project=project,
            assignment_id=lease.pk,
            user=people["inspector"],
            label_name="product",
            time_on_task_ms=5,
        )
    assert Annotation.objects.count() == 1


def test_undo_appends_a_correction_and_reopens_the_item(project, people):
    project.min_answers, project.max_answers, project.gold_rate = 1, 3, 0
    project.consensus_target = 0.5
    project.save()
    [item_id] = add_items(project, 1)
    answer(project, people["inspector"], "package")
    assert Item.objects.get(pk=item_id).status == ItemStatus.LABELED

    lease = annotation_undo(project=project, user=people["inspector"])

    item = Item.objects.get(pk=item_id)
    assert (
        lease.item_id == item_id
        and item.status == ItemStatus.IN_REVIEW
        and item.final_label is None
    )
    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=people["inspector"],
        label_name="product",
        time_on_task_ms=5,
    )
    rows = list(
        Annotation.objects.filter(item_id=item_id)
        .order_by("pk")
        .values_list("label__name", "supersedes")
    )
    assert [r[0] for r in rows] == ["package", None, "product"]
    assert Item.objects.get(pk=item_id).final_label.name == "product"
    # Undo only reaches back two minutes.
    Annotation.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    with pytest.raises(NothingToUndo):
        annotation_undo(project=project, user=people["inspector"])


def test_undo_takes_back_the_answer_the_inspector_names_not_the_latest_saved(
    project, people, client
):
    """Answers sent in quick succession may be saved out of order; the inspect page names the
    answer it gave last, and that is the one taken back."""
    project.min_answers, project.max_answers, project.gold_rate = 1, 3, 0
    project.save()
    add_items(project, 2)
    inspector = people["inspector"]
    first = answer(project, inspector, "package")
    second = answer(project, inspector, "product")
    # The second answer's request finished first: the first one is the latest saved.
    Annotation.objects.filter(assignment=second).update(
        created_at=timezone.now() - timedelta(seconds=5)
    )
    client.force_login(inspector)
    url = f"/api/projects/{project.slug}/queue/undo/"

    lease = client.post(url, {"assignment": second.pk}, content_type="application/json")
    assert lease.status_code == 200 and lease.json()["item"] == second.item_id
    standing = Annotation.objects.filter(superseded_by__isnull=True, label__isnull=False)
    assert list(standing.values_list("assignment_id", flat=True)) == [first.pk]

    again = client.post(url, {"assignment": second.pk}, content_type="application/json")
    assert again.status_code == 409 and "no longer yours to undo" in again.json()["detail"]
    # Without a name, the latest saved answer, as before.
    plain = client.post(url, {}, content_type="application/json")
    assert plain.status_code == 200 and plain.json()["item"] == first.item_id


def test_nobody_gets_the_same_item_twice_and_open_leases_cover_slots(project, people):
    project.min_answers, project.max_answers, project.gold_rate = 1, 3, 0
    project.save()
    add_items(project, 2)
    first = assignment_next(project=project, user=people["inspector"])
    second = assignment_next(project=project, user=people["inspector"])
    assert first.item_id != second.item_id
    assert assignment_next(project=project, user=people["inspector"]) is None
    # Both items' single needed slot is held, so another inspector gets nothing yet.
    assert assignment_next(project=project, user=people["admin"]) is None


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED is a PostgreSQL feature")
def test_two_inspectors_racing_for_the_last_slot(project, people):
    # One answer closes an item (labeled or disputed), so each round offers exactly one slot.
    project.min_answers, project.max_answers, project.gold_rate = 1, 1, 0
    project.save()
    users = [people["inspector"], people["admin"]]
    for round_no in range(10):
        [item_id] = add_items(project, 1, offset=100 + round_no)
        barrier = threading.Barrier(2)
        results = {}

        def take(user, barrier=barrier, results=results):
            try:
                barrier.wait()
                results[user.pk] = assignment_next(project=project, user=user)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=take, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [lease for lease in results.values() if lease is not None]
        assert len(winners) == 1, (
            f"round {round_no}: {[(w.item_id, w.annotator_id) for w in winners]} "
            f"for item {item_id}; "
            f"{list(Item.objects.values_list('pk', 'status', 'answer_count'))}"
        )
        assert winners[0].item_id == item_id
        lease = winners[0]
        annotation_submit(
            project=project,
            assignment_id=lease.pk,
            user=lease.annotator,
            label_name="package",
            time_on_task_ms=1,
        )
    answered = list(Annotation.objects.values_list("item_id", flat=True))
    assert len(answered) == len(set(answered)) == 10
