"""Evidence recheck: the certification evidence's labels that a confident model contradicts go
to an expert, and the expert's answers are what certification counts next."""

import hashlib
import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from labeling.embeddings.label_review import label_review_decide
from labeling.machine.certification import (
    evidence_items,
    evidence_scores,
    item_held_out,
    model_certify,
    thresholds_recertify,
)
from labeling.manifests import GT_TYPE, manifest_import
from labeling.members import member_add
from labeling.models import Item, ItemSource, LabelReview, Project, ReviewReason, ReviewStatus
from tests.machine.fixtures import SHAPES, install_model, shape_png, shapes_project

pytestmark = pytest.mark.django_db(transaction=True)

TARGET = 0.9  # the tiny shapes model is sure of about a third of its shapes above it
IMAGES = 300


def history_with_wrong_labels(project, folder, *, wrong: int) -> dict[str, int]:
    """Import a shop's earlier labels (a Ground Truth manifest) whose held-out side has
    ``wrong`` images labeled as the next class; returns file name → true class."""
    truth, lines, flipped = {}, [], 0
    for i in range(IMAGES):
        name = f"shape-{i}.png"
        png = shape_png(i % 3, seed=9000 + i)
        (folder / name).write_bytes(png)
        truth[name] = i % 3
        given = i % 3
        held = item_held_out(sha256=hashlib.sha256(png).hexdigest(), is_calibration=False)
        if held and flipped < wrong:
            given, flipped = (i + 1) % 3, flipped + 1
        lines.append(
            {
                "source-ref": f"s3://shop/{name}",
                "category": given,
                "category-metadata": {
                    "class-name": SHAPES[given],
                    "type": GT_TYPE,
                    "job-name": "shop",
                },
            }
        )
    assert flipped == wrong
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    assert not manifest_import(project=project, content=content, images_dir=folder).errors
    return truth


def target_project(settings, **values):
    settings.THRESHOLD_MIN_SUPPORT = 5
    return shapes_project(
        audit_rate=0.0,
        gold_rate=0.0,
        threshold_mode=Project.ThresholdMode.TARGET,
        target_precision=TARGET,
        threshold_confidence=0.9,
        **values,
    )


def contradicted_at_the_floor(project, model) -> set[int]:
    scored = evidence_scores(project, model, predict_missing=False)
    probs, given = scored["probs"], scored["labels"]
    mask = (probs.max(axis=1) >= TARGET) & (probs.argmax(axis=1) != given)
    return set(scored["item_ids"][mask].tolist())


def test_wrong_evidence_labels_go_to_an_expert_and_their_answers_are_certified_on(
    tiny_checkpoint, settings, tmp_path
):
    # given a history whose evidence holds four wrong labels, and a model brought in
    project = target_project(settings)
    truth = history_with_wrong_labels(project, tmp_path, wrong=4)
    evidence_before = set(evidence_items(project).values_list("pk", flat=True))
    model = install_model(project, tiny_checkpoint)
    project.refresh_from_db()
    model.refresh_from_db()
    before = model.thresholds

    # then certifying it sent exactly the evidence labels it contradicts at an acceptable
    # confidence to the recheck queue, marked as certification evidence
    flagged = list(LabelReview.objects.filter(project=project, status=ReviewStatus.OPEN))
    assert {r.item_id for r in flagged} == contradicted_at_the_floor(project, model)
    assert len(flagged) >= 3  # the model is sure of the shapes given a wrong label
    assert {(r.reason, r.was_evidence) for r in flagged} == {(ReviewReason.EVIDENCE, True)}
    wrong_ones = {
        item.pk
        for item in Item.objects.filter(project=project)
        if item.final_label.position != truth[item.original_name]
    }
    assert wrong_ones & {r.item_id for r in flagged}

    # while they wait, nothing is certified again and the labels count as they are; the
    # Thresholds page says so and links to the queue
    assert thresholds_recertify(project=project) is False
    expert = User.objects.create_user("expert")
    member_add(project=project, user=expert, role="admin")
    client = Client()
    client.force_login(expert)
    page = client.get(f"/p/{project.slug}/thresholds/").content.decode()
    assert f"{len(flagged)}</strong> evidence labels the model contradicts wait" in page
    assert f"/p/{project.slug}/recheck/" in page

    # when an expert gives the right label to each
    for review in flagged:
        item = Item.objects.get(pk=review.item_id)
        label_review_decide(
            project=project,
            review_id=review.pk,
            label_name=SHAPES[truth[item.original_name]],
            by=expert,
        )

    # then the thresholds are certified again on the corrected labels: the same evidence (an
    # imported label an expert corrected stays evidence), fewer errors, as much coverage
    assert thresholds_recertify(project=project) is True
    model.refresh_from_db()
    after = model.thresholds
    assert set(evidence_items(project).values_list("pk", flat=True)) == evidence_before
    assert after["evidence"] == before["evidence"]
    assert after["relabeled"] > before["relabeled"] == 0
    # (four wrong labels among the sure images held back every auto-label; now none is held)
    assert before["coverage"] == 0 and after["coverage"] > 0.2
    assert after["precision"] == 1.0
    relabeled = Item.objects.filter(pk__in=[r.item_id for r in flagged])
    assert {i.final_source for i in relabeled if i.pk in wrong_ones} <= {ItemSource.EXPERT}
    # and a label the expert already answered is not flagged again
    assert model_certify(project=project, model=model)
    assert not LabelReview.objects.filter(project=project, status=ReviewStatus.OPEN).exists()
    page = client.get(f"/p/{project.slug}/thresholds/").content.decode()
    assert f"Experts have corrected {len(flagged)} evidence labels" in page


def test_at_most_the_limit_waits_most_confident_first_and_manual_mode_flags_none(
    tiny_checkpoint, settings, tmp_path
):
    # given the limit at one open evidence recheck
    settings.EVIDENCE_RECHECK_LIMIT = 1
    project = target_project(settings)
    history_with_wrong_labels(project, tmp_path, wrong=4)
    model = install_model(project, tiny_checkpoint)

    # then one waits: the contradicted label the model is surest of
    flagged = list(LabelReview.objects.filter(project=project, status=ReviewStatus.OPEN))
    assert len(flagged) == 1
    scored = evidence_scores(project, model, predict_missing=False)
    sure = {
        int(pk): float(p.max())
        for pk, p in zip(scored["item_ids"], scored["probs"], strict=True)
        if int(pk) in contradicted_at_the_floor(project, model)
    }
    assert flagged[0].item_id == max(sure, key=sure.get)
    model_certify(project=project, model=model)
    assert LabelReview.objects.filter(project=project, status=ReviewStatus.OPEN).count() == 1

    # and in manual mode certification asks no expert
    LabelReview.objects.all().delete()
    project.threshold_mode = Project.ThresholdMode.MANUAL
    project.save()
    model_certify(project=project, model=model)
    assert not LabelReview.objects.filter(project=project).exists()
