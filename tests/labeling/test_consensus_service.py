"""Consensus and trust through the service itself: answers submitted with annotation_submit,
the periodic refit through project_refit, what the admin sees on the Inspectors page. The
benchmark replays the same path without a database; the first test holds the two together."""

from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.access import Role
from labeling.answers import annotation_submit
from labeling.ingest import Upload, item_ingest
from labeling.models import AnnotatorSkill, Assignment, Item, ItemStatus
from labeling.project_setup import member_add
from labeling.refit import project_refit
from simulation import consensus_replay as cr
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)

K = 4


def add_items(project, n):
    uploads = [Upload(f"{i}.png", image_bytes(color=(i % 256, i // 256, 3))) for i in range(n)]
    return item_ingest(project=project, uploads=uploads).created_ids


def submit(project, user, item_id, label_name):
    """One answer on a given image: the lease the queue would have handed out, then the submit."""
    lease = Assignment.objects.create(
        project=project,
        item_id=item_id,
        annotator=user,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=user,
        label_name=label_name,
        time_on_task_ms=1200,
    )


def small_crowd_stream(accuracies, n_items, max_answers, seed, copy_pair=None) -> cr.Stream:
    """One-coin inspectors answering a 4-class project, each item's answers from distinct
    people, in the batch order the benchmark uses. ``copy_pair``: the second copies the first
    wherever both answer (and both answer every item)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(K, size=n_items)
    a = len(accuracies)
    rows_items, rows_workers, rows_labels = [], [], []
    for start in range(0, n_items, 10):
        block = range(start, min(start + 10, n_items))
        picks = {}
        for i in block:
            order = list(rng.permutation(a)[:max_answers])
            if copy_pair:
                order = [w for w in order if w not in copy_pair][: max_answers - 2]
                order = list(copy_pair) + order
            picks[i] = order
        for slot in range(max_answers):
            for i in block:
                w = int(picks[i][slot])
                if copy_pair and w == copy_pair[1]:
                    label = rows_labels[rows_items.index(i)]  # the first pair member's answer
                elif rng.random() < accuracies[w]:
                    label = int(truth[i])
                else:
                    label = int(rng.choice([c for c in range(K) if c != truth[i]]))
                rows_items.append(i)
                rows_workers.append(w)
                rows_labels.append(label)
    return cr.Stream(
        items=np.array(rows_items),
        workers=np.array(rows_workers),
        labels=np.array(rows_labels),
        n_items=n_items,
        n_workers=a,
        k=K,
        truth=truth,
    )


def run_through_service(project, stream, users, item_ids, refit_every):
    labels = project.label_names()
    used = 0
    for i, w, label in zip(stream.items, stream.workers, stream.labels, strict=True):
        status = Item.objects.values_list("status", flat=True).get(pk=item_ids[i])
        if status not in (ItemStatus.QUEUED, ItemStatus.IN_REVIEW):
            continue  # decided: the queue would not have asked
        submit(project, users[w], item_ids[i], labels[label])
        used += 1
        if used % refit_every == 0:
            project_refit(project=project)
            project.refresh_from_db()


def test_the_benchmark_replays_exactly_what_the_service_does(project, make_user):
    # given a project and a crowd of five, from very good to near chance
    project.min_answers, project.max_answers, project.consensus_target = 1, 4, 0.9
    project.gold_rate = 0
    project.save()
    accuracies = [0.95, 0.9, 0.85, 0.7, 0.3]
    users = []
    for n in range(len(accuracies)):
        user = make_user(f"crowd-{n}", Role.INSPECTOR)
        member_add(project=project, user=user)
        users.append(user)
    stream = small_crowd_stream(accuracies, n_items=40, max_answers=4, seed=3)
    item_ids = add_items(project, stream.n_items)
    # when the same answers go through annotation_submit (with the periodic refit) ...
    run_through_service(project, stream, users, item_ids, refit_every=25)
    # ... and through the benchmark's replay
    result = cr.replay(
        stream, cr.Settings(target=0.9, min_answers=1, max_answers=4, refit_every=25)
    )
    # then every image ends the same way with the same posterior, and trust agrees
    items = {item.pk: item for item in Item.objects.filter(pk__in=item_ids)}
    for i, item_id in enumerate(item_ids):
        item = items[item_id]
        assert item.answer_count == result.answers_used[i]
        expected = "in_review" if result.status[i] == "open" else result.status[i]
        assert item.status == expected, i
        np.testing.assert_allclose(item.posterior, result.posteriors[i], atol=1e-4)
    assert any(s == "labeled" for s in result.status) and result.refits
    for w, user in enumerate(users):
        skill = AnnotatorSkill.objects.get(project=project, annotator=user)
        np.testing.assert_allclose(skill.confusion, result.confusions[w], atol=1e-4)


def test_one_trusted_answer_that_closes_an_image_does_not_vouch_for_its_giver(project, make_user):
    # given a project that closes an image on one confident answer
    project.min_answers, project.max_answers, project.consensus_target = 1, 3, 0.6
    project.gold_rate = 0
    project.save()
    ann, ben, cem = (make_user(name, Role.INSPECTOR) for name in ("ann", "ben", "cem"))
    for user in (ann, ben, cem):
        member_add(project=project, user=user)
    first, second = add_items(project, 2)
    # when ann alone closes the first image
    submit(project, ann, first, "product")
    assert Item.objects.get(pk=first).status == ItemStatus.LABELED
    # then her trust has no new evidence: her own answer cannot confirm itself
    skill = AnnotatorSkill.objects.get(project=project, annotator=ann)
    assert skill.answers == 1
    assert np.asarray(skill.counts).sum() == 0
    # while three agreeing answers are evidence about each other: each one is judged by the
    # other two (two newcomers agreeing are 94 % sure, enough to judge by)
    project.min_answers = 3
    project.save()
    for user in (ann, ben, cem):
        submit(project, user, second, "package")
    assert Item.objects.get(pk=second).status == ItemStatus.LABELED
    for user in (ann, ben, cem):
        counts = np.asarray(AnnotatorSkill.objects.get(project=project, annotator=user).counts)
        assert counts[:, 0].sum() == pytest.approx(1.0, abs=1e-5) and counts[0, 0] > 0.9
        assert counts[:, 1:].sum() == 0


def test_a_copying_pair_is_flagged_on_the_inspectors_page(client, project, people, make_user):
    # given two careful inspectors and a pair who give the same (mostly wrong) answer
    project.min_answers, project.max_answers, project.consensus_target = 4, 4, 0.95
    project.gold_rate = 0
    project.save()
    names = ["hana", "hugo", "cora", "carl"]
    users = []
    for name in names:
        user = make_user(name, Role.INSPECTOR)
        member_add(project=project, user=user)
        users.append(user)
    stream = small_crowd_stream(
        [0.95, 0.95, 0.3, 0.3], n_items=40, max_answers=4, seed=5, copy_pair=(2, 3)
    )
    item_ids = add_items(project, stream.n_items)
    # when they answer and the periodic refit runs
    run_through_service(project, stream, users, item_ids, refit_every=10_000)
    figures = project_refit(project=project)
    # then the pair, and only the pair, is flagged as copying and counted as one from now on
    project.refresh_from_db()
    assert figures["pairs_flagged"] == 1
    pairs = [tuple(sorted(p[:2])) for p in project.consensus_state["linked_pairs"]]
    assert pairs == [tuple(sorted((users[2].pk, users[3].pk)))]
    # and the admin sees it on the Inspectors page, for both of them
    client.force_login(people["admin"])
    response = client.get(reverse("inspectors", args=[project.slug]))
    rows = {row["username"]: row for row in response.context["rows"]}
    assert [c["username"] for c in rows["cora"]["copies_with"]] == ["carl"]
    assert [c["username"] for c in rows["carl"]["copies_with"]] == ["cora"]
    assert not rows["hana"]["copies_with"] and not rows["hugo"]["copies_with"]
    html = response.content.decode()
    cora_row = html.split('data-inspector="cora"')[1].split("</tr>")[0]
    assert "copies carl" in cora_row
    assert "agree on 40 of 40 shared images" in cora_row


def test_a_refused_refit_is_shown_to_the_admin(client, project, people):
    project.consensus_state = {
        "last_refit": {
            "applied": False,
            "reason": "gold accuracy would fall from 80/80 to 70/80",
            "at": "2026-11-30T10:00:00+00:00",
        }
    }
    project.save()
    client.force_login(people["admin"])
    html = client.get(reverse("inspectors", args=[project.slug])).content.decode()
    assert "was not applied: gold accuracy would fall from 80/80 to 70/80" in html


def test_the_stopping_rule_monitor_warns_when_gold_says_it_breaks_its_word(client, project, people):
    project.consensus_state = {
        "last_refit": {
            "applied": True,
            "reason": "",
            "stopping_on_gold": {
                "target": 0.95, "gold_stopped": 120, "gold_stopped_right": 100, "p_value": 1e-6,
            },
        }
    }  # fmt: skip
    project.save()
    client.force_login(people["admin"])
    html = client.get(reverse("inspectors", args=[project.slug])).content.decode()
    assert "120 would have been labeled at the target of 0.95; 100 of them right" in html
    assert "Clearly fewer right than the target promises" in html
