"""Predict and route through the Django services with a real (tiny) trained model."""

import random

import pytest
from django.core.files.storage import default_storage

from labeling.machine.predict import items_predict
from labeling.machine.predictors import predictor_for
from labeling.models import Item, ItemStatus, Prediction, Project
from labeling.queue import assignment_next
from tests.machine.fixtures import add_shapes, install_model, shapes_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project(db):
    return shapes_project(audit_rate=0.0, gold_rate=0.0)


def active_model(project, tiny_checkpoint, settings, **thresholds):
    """The tiny model imported (scored on 30 labeled images, promoted as the first model), with
    the admin's thresholds set by hand."""
    install_model(project, tiny_checkpoint)
    project.refresh_from_db()
    project.threshold_mode = Project.ThresholdMode.MANUAL
    project.manual_thresholds = thresholds
    # Thresholds never go below the target precision (the floor): a low target lets 0.0 mean
    # "auto-label (almost) everything" with three classes, whose top confidence is ≥ 1/3.
    project.target_precision = 0.34
    project.save()
    return project.active_model


def new_items(project, n, offset=500):
    return add_shapes(project, n, offset=offset, queue_prediction=False)


def test_routing_at_the_threshold_boundary(project, tiny_checkpoint, settings):
    model = active_model(project, tiny_checkpoint, settings)
    [at, above] = new_items(project, 2)
    probs = (
        predictor_for(model)
        .predict([Item.objects.get(pk=i).image.open("rb").read() for i in (at, above)])
        .probs
    )
    name_at = project.labels.get(position=int(probs[0].argmax())).name
    name_above = project.labels.get(position=int(probs[1].argmax())).name
    thresholds = {name_above: float(probs[1].max()) + 1e-6}
    thresholds[name_at] = float(probs[0].max())  # exactly the confidence: auto-labels
    if name_at == name_above:
        pytest.skip("both images predicted as one class")
    project.manual_thresholds = thresholds
    project.save()

    items_predict(item_ids=[at, above])

    first, second = Item.objects.get(pk=at), Item.objects.get(pk=above)
    assert (first.status, first.final_source, first.final_label.name) == (
        ItemStatus.AUTO_LABELED,
        "machine",
        name_at,
    )
    assert second.status == ItemStatus.QUEUED and second.final_label is None


def test_class_without_enough_calibration_data_is_never_auto_labeled(
    project, tiny_checkpoint, settings
):
    model = active_model(project, tiny_checkpoint, settings)
    project.threshold_mode = Project.ThresholdMode.TARGET
    project.save()
    # 30 held-out images (10 per class) cannot prove 98% precision with 95% confidence.
    from labeling.machine.certification import project_thresholds

    assert project_thresholds(project, model) == [None, None, None]
    ids = new_items(project, 6)
    items_predict(item_ids=ids)
    assert set(Item.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        ItemStatus.QUEUED
    }
    assert Prediction.objects.filter(item_id__in=ids, decision="queued").count() == 6


def test_audit_sample_reaches_the_human_queue(project, tiny_checkpoint, settings, people_for):
    active_model(project, tiny_checkpoint, settings, circle=0.0, square=0.0, triangle=0.0)
    project.audit_rate = 1.0
    project.save()
    ids = new_items(project, 3)
    items_predict(item_ids=ids, rng=random.Random(0))
    items = Item.objects.filter(pk__in=ids)
    assert {(i.status, i.is_audit) for i in items} == {(ItemStatus.QUEUED, True)}
    assert set(Prediction.objects.filter(item_id__in=ids).values_list("decision", flat=True)) == {
        "audit"
    }
    inspector = people_for(project)
    lease = assignment_next(project=project, user=inspector)
    assert lease is not None and lease.item_id in ids


def test_a_duplicate_task_creates_no_second_prediction(project, tiny_checkpoint, settings):
    active_model(project, tiny_checkpoint, settings, circle=2.0, square=2.0, triangle=2.0)
    ids = new_items(project, 3)
    items_predict(item_ids=ids)
    Item.objects.filter(pk__in=ids).update(status=ItemStatus.NEW)  # a redelivered batch
    counts = items_predict(item_ids=ids)
    assert counts["skipped"] == 3
    assert Prediction.objects.filter(item_id__in=ids).count() == 3


def test_a_corrupt_stored_image_fails_alone_with_its_reason(project, tiny_checkpoint, settings):
    active_model(project, tiny_checkpoint, settings, circle=0.0, square=0.0, triangle=0.0)
    ids = new_items(project, 4)
    broken = Item.objects.get(pk=ids[1])
    default_storage.delete(broken.image.name)
    default_storage.save(
        broken.image.name, __import__("io").BytesIO(b"\x89PNG\r\n\x1a\n rotten bits")
    )

    counts = items_predict(item_ids=ids)

    assert counts["failed"] == 1 and counts["auto_labeled"] == 3
    broken.refresh_from_db()
    assert broken.status == ItemStatus.QUEUED and broken.prediction_error
    failed = Prediction.objects.get(item=broken)
    assert failed.decision == "failed" and failed.error
    assert Item.objects.filter(pk__in=ids, status=ItemStatus.AUTO_LABELED).count() == 3


def test_review_credit_between_the_two_thresholds_goes_to_humans(
    project, tiny_checkpoint, settings
):
    project.credit_rules = {"product": "circle"}
    project.credit_grant_threshold, project.credit_deny_threshold = 1.01, -0.01  # nothing is sure
    project.save()
    active_model(project, tiny_checkpoint, settings, circle=0.0, square=0.0, triangle=0.0)
    ids = new_items(project, 2)
    Item.objects.filter(pk=ids[0]).update(metadata={"review_type": "product", "review_id": "R1"})
    items_predict(item_ids=ids)
    with_review, without = Item.objects.get(pk=ids[0]), Item.objects.get(pk=ids[1])
    assert with_review.status == ItemStatus.QUEUED
    assert with_review.credit.outcome == "pending" and with_review.credit.review_id == "R1"
    assert without.status == ItemStatus.AUTO_LABELED


def test_confident_review_photo_is_credited_by_the_machine(project, tiny_checkpoint, settings):
    project.credit_rules = {"product": "circle"}
    project.credit_grant_threshold, project.credit_deny_threshold = 0.0, -0.01  # always sure
    project.save()
    active_model(project, tiny_checkpoint, settings, circle=0.0, square=0.0, triangle=0.0)
    [item_id] = new_items(project, 1)
    Item.objects.filter(pk=item_id).update(metadata={"review_type": "product", "review_id": "R7"})
    items_predict(item_ids=[item_id])
    item = Item.objects.get(pk=item_id)
    assert item.status == ItemStatus.AUTO_LABELED
    assert (item.credit.outcome, item.credit.source, item.credit.review_id) == (
        "granted",
        "machine",
        "R7",
    )
