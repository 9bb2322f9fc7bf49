"""The calibration share: a random share of new images goes to humans whatever the model says,
stays with them, and (with the blind images) is the evidence thresholds are certified on."""

import json
import random

import numpy as np
import pytest
from scipy import stats

from labeling.answers import item_finalize, item_prior
from labeling.machine.audit import audit_top_up_rate, live_precision
from labeling.machine.certification import evidence_items, item_held_out, model_certify
from labeling.machine.predict import items_predict, project_repredict
from labeling.machine.promotion import model_promote
from labeling.manifests import GT_TYPE, manifest_import
from labeling.models import Item, ItemSource, ItemStatus, Prediction, Project
from labeling.trust import class_prior
from tests.machine.fixtures import SHAPES, add_shapes, install_model, shape_png, shapes_project

pytestmark = pytest.mark.django_db(transaction=True)

# Manual thresholds never go below the target precision (the floor), so "auto-label every image"
# is a target just above chance among three classes with thresholds at it.
ANY = 0.34
ALWAYS = {"circle": ANY, "square": ANY, "triangle": ANY}


def sure_model(project, tiny_checkpoint, settings, *, share: float):
    """An active model whose manual thresholds auto-label every image it sees."""
    project.threshold_mode = Project.ThresholdMode.MANUAL
    project.target_precision = ANY
    project.manual_thresholds = ALWAYS
    project.calibration_share = share
    project.save()
    model = install_model(project, tiny_checkpoint)
    model_promote(model=model)
    project.refresh_from_db()
    return project.active_model


def test_the_calibration_share_is_random_and_goes_to_humans_whatever_the_confidence(
    tiny_checkpoint, settings
):
    # given a model that would auto-label every image, and a calibration share of 30 %
    project = shapes_project(audit_rate=0.0, gold_rate=0.0)
    sure_model(project, tiny_checkpoint, settings, share=0.3)
    ids = add_shapes(project, 200, offset=3000, queue_prediction=False)

    # when the worker routes them
    items_predict(item_ids=ids, rng=random.Random(11))

    # then about 30 % went to humans, every one of them queued however sure the model was
    items = Item.objects.filter(pk__in=ids)
    drawn = items.filter(is_calibration=True)
    assert set(drawn.values_list("status", flat=True)) == {ItemStatus.QUEUED}
    assert set(items.filter(is_calibration=False).values_list("status", flat=True)) == {
        ItemStatus.AUTO_LABELED
    }
    n = drawn.count()
    assert stats.binomtest(n, 200, 0.3).pvalue > 0.001, n
    # the draw ignores the confidence: drawn and auto-labeled images are equally confident
    conf = dict(Prediction.objects.filter(item_id__in=ids).values_list("item_id", "confidence"))
    drawn_conf = [conf[i] for i in drawn.values_list("pk", flat=True)]
    other_conf = [conf[i] for i in ids if i not in set(drawn.values_list("pk", flat=True))]
    assert stats.mannwhitneyu(drawn_conf, other_conf).pvalue > 0.001
    # another draw picks other images: it is random, not a rule about the images
    again = add_shapes(project, 200, offset=6000, queue_prediction=False)
    items_predict(item_ids=again, rng=random.Random(12))
    picked_again = set(
        Item.objects.filter(pk__in=again, is_calibration=True).values_list("sha256", flat=True)
    )
    picked = set(drawn.values_list("sha256", flat=True))
    assert picked_again and picked_again != picked


def test_calibration_images_stay_with_humans_when_the_queue_is_routed_again(
    tiny_checkpoint, settings, django_capture_on_commit_callbacks
):
    project = shapes_project(audit_rate=0.0, gold_rate=0.0)
    model = sure_model(project, tiny_checkpoint, settings, share=1.0)
    ids = add_shapes(project, 12, offset=4000, queue_prediction=False)
    items_predict(item_ids=ids, rng=random.Random(1))
    assert Item.objects.filter(pk__in=ids, is_calibration=True).count() == 12

    with django_capture_on_commit_callbacks(execute=True):
        project_repredict(project=project)  # what a save or a promotion does

    assert set(Item.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        ItemStatus.QUEUED
    }
    assert model.pk == project.active_model_id


def label_all(project, ids):
    labels = {label.name: label for label in project.labels.all()}
    for item in Item.objects.filter(pk__in=ids, final_label__isnull=True):
        item_finalize(
            item=item,
            label=labels[item.metadata["truth"]],
            source=ItemSource.CONSENSUS,
            confidence=0.99,
        )


def test_the_evidence_is_calibration_and_blind_images_never_the_queue(
    tiny_checkpoint, settings, django_capture_on_commit_callbacks
):
    # given images routed while no model existed (blind): humans label 40 of them, 20 wait
    project = shapes_project(audit_rate=0.0, gold_rate=0.0, calibration_share=0.0)
    blind = add_shapes(project, 60, offset=5000)
    assert Item.objects.filter(pk__in=blind, routed_blind=True).count() == 60
    label_all(project, blind[:40])
    # a model with thresholds in force arrives: the 20 untouched images are routed again, and
    # those it keeps for humans stayed because it was unsure of them (no longer blind)
    project.threshold_mode = Project.ThresholdMode.MANUAL
    project.manual_thresholds = {"circle": 0.99, "square": 0.99, "triangle": 0.99}
    project.save()
    model = install_model(project, tiny_checkpoint)
    with django_capture_on_commit_callbacks(execute=True):
        model_promote(model=model)
    project.refresh_from_db()
    rerouted = Item.objects.filter(pk__in=blind[40:], status=ItemStatus.QUEUED)
    assert not rerouted.filter(routed_blind=True).exists()
    later = add_shapes(project, 40, offset=5100, queue_prediction=False)
    items_predict(item_ids=later, rng=random.Random(2))
    queue = Item.objects.filter(pk__in=later, status=ItemStatus.QUEUED)
    assert not queue.filter(routed_blind=True).exists()
    project.calibration_share = 1.0
    project.save()
    drawn = add_shapes(project, 10, offset=5200, queue_prediction=False)
    items_predict(item_ids=drawn, rng=random.Random(3))

    # when humans label everything still waiting
    label_all(project, [*blind, *later, *drawn])

    # then the evidence is the calibration images and the held-out blind ones, nothing else
    evidence = set(evidence_items(project).values_list("pk", flat=True))
    held_blind = {
        i.pk
        for i in Item.objects.filter(pk__in=blind[:40])
        if item_held_out(sha256=i.sha256, is_calibration=False)
    }
    assert evidence == set(drawn) | held_blind
    assert not evidence & ({i.pk for i in queue} | {i.pk for i in rerouted})
    # and the active model is scored on every evidence image when certified
    record = model_certify(project=project, model=model)
    assert record["evidence"] == len(evidence) and record["unscored"] == 0


def test_the_held_out_side_of_an_image_never_changes():
    shas = [f"{i:064x}" for i in range(2000)]
    first = [item_held_out(sha256=s, is_calibration=False) for s in shas]
    assert first == [item_held_out(sha256=s, is_calibration=False) for s in shas]
    assert 0.15 < np.mean(first) < 0.25
    assert all(item_held_out(sha256=s, is_calibration=True) for s in shas)


def test_a_calibration_label_is_decided_without_the_models_opinion(tiny_checkpoint, settings):
    # the consensus prior of a queued image leans on the model; of a calibration image it must
    # not, or the evidence the model is judged on would agree with the model by construction
    project = shapes_project(audit_rate=0.0, gold_rate=0.0)
    project.threshold_mode = Project.ThresholdMode.MANUAL
    project.manual_thresholds = {"circle": None, "square": None, "triangle": None}
    project.save()
    model_promote(model=install_model(project, tiny_checkpoint))
    project.refresh_from_db()
    queued, drawn = add_shapes(project, 2, offset=7000, queue_prediction=False)
    items_predict(item_ids=[queued, drawn], rng=random.Random(0))
    Item.objects.filter(pk=drawn).update(is_calibration=True)

    balance = class_prior(project, 3)
    leaning = item_prior(Item.objects.get(pk=queued), 3)
    blind = item_prior(Item.objects.get(pk=drawn), 3)

    np.testing.assert_allclose(blind, balance)
    assert not np.allclose(leaning, balance)


def test_an_imported_history_is_evidence_on_its_held_out_side(tiny_checkpoint, tmp_path):
    # given a shop's earlier labels, imported as a Ground Truth manifest (never routed here)
    project = shapes_project(audit_rate=0.0, gold_rate=0.0, calibration_share=0.0)
    lines = []
    for i in range(150):
        name = f"shape-{i}.png"
        (tmp_path / name).write_bytes(shape_png(i % 3, seed=9000 + i))
        label = SHAPES[i % 3]
        lines.append(
            {
                "source-ref": f"s3://shop/{name}",
                "category": i % 3,
                "category-metadata": {"class-name": label, "type": GT_TYPE, "job-name": "shop"},
            }
        )
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    report = manifest_import(project=project, content=content, images_dir=tmp_path)
    assert not report.errors
    imported = Item.objects.filter(project=project, final_source=ItemSource.IMPORTED)
    held = {i.pk for i in imported if item_held_out(sha256=i.sha256, is_calibration=False)}
    assert 0 < len(held) < 150

    # then exactly its held-out side is evidence, and a model is certified on it
    assert set(evidence_items(project).values_list("pk", flat=True)) == held
    model = install_model(project, tiny_checkpoint)
    record = model_certify(project=project, model=model)
    assert record["evidence"] == len(held)


def test_a_calibration_draw_the_model_would_have_auto_labeled_is_also_its_audit(
    tiny_checkpoint, settings
):
    # given a model that would auto-label every image, a 30 % calibration share and a 30 % audit
    project = shapes_project(audit_rate=0.3, gold_rate=0.0)
    model = sure_model(project, tiny_checkpoint, settings, share=0.3)
    ids = add_shapes(project, 200, offset=8000, queue_prediction=False)

    # when the worker routes them
    items_predict(item_ids=ids, rng=random.Random(5))

    # then every calibration draw is audited as well, and no second audit is drawn on top: humans
    # check about 30 % of the would-be auto-labels, not 51 %
    items = Item.objects.filter(pk__in=ids)
    drawn = items.filter(is_calibration=True)
    assert drawn.exists() and set(drawn.values_list("is_audit", flat=True)) == {True}
    assert not items.filter(is_calibration=False, is_audit=True).exists()
    n = items.filter(status=ItemStatus.QUEUED).count()
    assert stats.binomtest(n, 200, 0.3).pvalue > 0.001, n

    # and a human label on one counts in the live audit of the model's class
    item = drawn.first()
    machine = Prediction.objects.get(item=item, model_version=model).label.name
    wrong = project.labels.exclude(name=machine).first()
    item_finalize(item=item, label=wrong, source=ItemSource.CONSENSUS, confidence=0.99)
    stats_now = live_precision(project=project)
    assert stats_now[machine]["audited"] == 1 and stats_now[machine]["correct"] == 0


def test_an_audit_above_the_calibration_share_is_made_up_by_a_second_draw(
    tiny_checkpoint, settings
):
    project = shapes_project(audit_rate=0.5, gold_rate=0.0)
    sure_model(project, tiny_checkpoint, settings, share=0.2)
    ids = add_shapes(project, 300, offset=9000, queue_prediction=False)
    items_predict(item_ids=ids, rng=random.Random(6))
    items = Item.objects.filter(pk__in=ids)
    # 20 % drawn for calibration (all audited) plus (0.5 - 0.2) / 0.8 of the rest: 50 % checked
    checked = items.filter(is_audit=True).count()
    assert stats.binomtest(checked, 300, 0.5).pvalue > 0.001, checked
    assert items.filter(is_calibration=False, is_audit=True).exists()
    assert audit_top_up_rate(0.5, 0.2) == pytest.approx(0.375)
    assert audit_top_up_rate(0.05, 0.05) == 0.0
    assert audit_top_up_rate(0.25, 0.0) == 0.25
