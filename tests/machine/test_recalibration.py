"""The project's evidence calibrates the model's confidence again (labeling.machine.recalibration):
a class the model is right about but unsure of clears the floor once the project's own random
sample shows it, and routing reads the same confidence the thresholds were certified on."""

import random

import numpy as np
import pytest
from django.urls import reverse

from labeling.access import Role
from labeling.machine.certification import certify, model_certify, project_thresholds
from labeling.machine.evidence_report import guarantee_curves
from labeling.machine.predict import items_predict
from labeling.models import Item, ItemStatus, ModelVersion, Prediction, PredictionDecision
from labeling.project_setup import member_add
from tests.machine.fixtures import add_shapes, shapes_project

pytestmark = pytest.mark.django_db(transaction=True)

UNSURE = 0.85  # the model's confidence on every image: right every time, yet under the target


def unsure(position: int, k: int = 3) -> list[float]:
    probs = [(1 - UNSURE) / (k - 1)] * k
    probs[position] = UNSURE
    return probs


@pytest.fixture
def project(settings):
    """Target 0.9: a model that is always right but only 0.85 sure, 90 random calibration
    labels (evidence) it was scored on, and 6 images waiting in the queue it has scored too."""
    settings.THRESHOLD_MIN_SUPPORT = 2
    settings.EVIDENCE_RECALIBRATION_MIN = 50
    project = shapes_project(
        target_precision=0.9, threshold_confidence=0.9, audit_rate=0.0, gold_rate=0
    )
    positions = {label.name: label.position for label in project.labels.all()}
    model = ModelVersion.objects.create(
        project=project,
        version=1,
        temperature=1.0,
        status=ModelVersion.Status.ACTIVE,
        metrics={"class_names": project.label_names()},
    )
    project.active_model = model
    project.save()
    evidence = add_shapes(project, 90, label_them=True, queue_prediction=False)
    Item.objects.filter(pk__in=evidence).update(is_calibration=True)
    waiting = add_shapes(project, 6, offset=500, queue_prediction=False)
    Item.objects.filter(pk__in=waiting).update(status=ItemStatus.QUEUED)
    Prediction.objects.bulk_create(
        Prediction(
            item=item,
            model_version=model,
            probabilities=unsure(positions[item.metadata["truth"]]),
            label=project.labels.get(name=item.metadata["truth"]),
            confidence=UNSURE,
            decision=PredictionDecision.QUEUED,
        )
        for item in Item.objects.filter(pk__in=[*evidence, *waiting])
    )
    project.waiting = waiting
    return project


def reroute(project):
    items_predict(item_ids=project.waiting, reroute=True, rng=random.Random(0))
    return Item.objects.filter(pk__in=project.waiting)


def test_evidence_showing_an_unsure_model_right_lets_its_images_clear_the_floor(project):
    record = model_certify(project=project, model=project.active_model)

    assert record["recalibrated_on"] == 90
    # certified on the recalibrated confidence, never under the target
    thresholds = project_thresholds(project, project.active_model)
    assert all(t is not None and t >= 0.9 for t in thresholds)
    items = reroute(project)
    assert {i.status for i in items} == {ItemStatus.AUTO_LABELED}
    assert all(i.final_label.name == i.metadata["truth"] for i in items)
    # Predictions keep the model's own probabilities; the confidence is the one routing read.
    prediction = Prediction.objects.filter(item_id=project.waiting[0]).get()
    assert max(prediction.probabilities) == pytest.approx(UNSURE)
    assert prediction.confidence >= 0.9 and prediction.decision == PredictionDecision.AUTO_LABELED


@pytest.mark.parametrize("minimum", [0, 1000], ids=["off", "too little evidence"])
def test_without_the_refit_the_floor_keeps_the_unsure_model_images_with_humans(
    project, settings, minimum
):
    settings.EVIDENCE_RECALIBRATION_MIN = minimum

    record = model_certify(project=project, model=project.active_model)

    assert record["recalibration"] is None and record["recalibrated_on"] == 0
    assert {i.status for i in reroute(project)} == {ItemStatus.QUEUED}


def test_the_overall_scope_keeps_the_model_calibration(project):
    # One level for every class compares confidences across classes; a map fitted on the
    # certifying evidence would reorder them.
    project.threshold_scope = "overall"
    project.save()

    record = model_certify(project=project, model=project.active_model)

    assert record["scope"] == "overall" and record["recalibration"] is None
    # and a preview of the per class scope reads the map choosing that scope would certify on
    preview = certify(
        project,
        project.active_model,
        target=0.9,
        confidence=0.9,
        scope="per_class",
        predict_missing=False,
    )
    assert preview["recalibration"] is not None and preview["coverage"] == 1.0


def test_a_preview_of_the_overall_scope_reads_the_model_own_confidence(project):
    # What the thresholds page shows for the other scope is what choosing it would certify.
    model = project.active_model
    per_class = certify(
        project, model, target=0.9, confidence=0.9, scope="per_class", predict_missing=False
    )
    overall = certify(
        project, model, target=0.9, confidence=0.9, scope="overall", predict_missing=False
    )

    assert per_class["coverage"] == 1.0 and per_class["recalibration"] is not None
    assert overall["coverage"] == 0.0 and overall["recalibration"] is None
    curves = guarantee_curves(project=project, model=model)
    at = {
        scope: {row["target"]: row["coverage"] for row in curves[scope]}
        for scope in ("per_class", "overall")
    }
    assert at["per_class"][0.9] == 1.0 and at["overall"][0.9] == 0.0


def test_evidence_that_the_model_is_often_wrong_keeps_its_images_with_humans(project):
    # Half of the evidence, in every class, says the model's guess was wrong: the map lowers
    # its confidence.
    labels = list(project.labels.all())
    evidence = Item.objects.filter(project=project, is_calibration=True).order_by("pk")
    for item in list(evidence)[::2]:
        right = next(lab for lab in labels if lab.name == item.metadata["truth"])
        wrong = labels[(right.position + 1) % len(labels)]
        Item.objects.filter(pk=item.pk).update(final_label=wrong)

    record = model_certify(project=project, model=project.active_model)

    assert record["recalibrated_on"] == 90
    assert all(value is None for value in record["per_class"].values())
    assert {i.status for i in reroute(project)} == {ItemStatus.QUEUED}


def test_the_thresholds_page_says_the_evidence_calibrated_the_confidences(
    project, client, make_user
):
    model_certify(project=project, model=project.active_model)
    admin = make_user("ada-admin", Role.ADMIN)
    member_add(project=project, user=admin)
    client.force_login(admin)
    page = client.get(reverse("thresholds", args=[project.slug])).text
    assert "calibrated again on 90 of them" in page


def test_a_corrupt_stored_map_leaves_the_model_calibration_in_force(project):
    model = project.active_model
    model_certify(project=project, model=model)
    ModelVersion.objects.filter(pk=model.pk).update(
        thresholds={**model.thresholds, "recalibration": [[-1.0, 0.0]] * 3}
    )
    project.refresh_from_db()
    # routing goes on, on the model's own confidence: 0.85 is under the stored thresholds
    assert {i.status for i in reroute(project)} == {ItemStatus.QUEUED}
    assert np.isclose(Prediction.objects.filter(item_id=project.waiting[0]).get().confidence, 0.85)


def test_a_stronger_pull_keeps_the_map_nearer_the_model_calibration(project, settings):
    # An operator who expects uploads to drift unseen trades coverage for robustness: the
    # strongest pull leaves the model's own calibration, and its unsure images with humans.
    record = model_certify(project=project, model=project.active_model)
    free_slopes = [slope for slope, _ in record["recalibration"]]

    settings.EVIDENCE_RECALIBRATION_STRENGTH = 1e9
    record = model_certify(project=project, model=project.active_model)

    pulled = record["recalibration"]
    assert all(abs(slope - 1) < 1e-3 and abs(intercept) < 1e-3 for slope, intercept in pulled)
    assert max(abs(s - 1) for s in free_slopes) > 0.1
    assert {i.status for i in reroute(project)} == {ItemStatus.QUEUED}
