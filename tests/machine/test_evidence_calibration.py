"""Where the deployment turns it on, a model's calibration is fitted on random evidence once
there is enough of it, and the items it was fitted on never certify that model (docs/loop.md,
labeling.machine.certification)."""

import pytest
from django.urls import reverse

from labeling.access import Role
from labeling.machine import certification
from labeling.machine.certification import (
    evidence_items,
    item_calibration_fit,
    thresholds_recertify,
)
from labeling.machine.training import training_run, training_start
from labeling.models import Item
from labeling.project_setup import member_add
from tests.machine.fixtures import TINY, add_shapes, shapes_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project(settings):
    """45 labels from the queue and 36 from the random calibration share (evidence)."""
    settings.THRESHOLD_MIN_SUPPORT = 2
    project = shapes_project(target_precision=0.8, threshold_confidence=0.6, gold_rate=0)
    add_shapes(project, 45, label_them=True)
    drawn = add_shapes(project, 36, offset=1000, label_them=True)
    Item.objects.filter(pk__in=drawn).update(is_calibration=True)
    return project


def train_now(project):
    model = training_start(project=project, overrides=TINY, queue=False)
    return training_run(model_version_id=model.pk)


def test_with_enough_evidence_the_calibration_is_fitted_on_it_and_left_out_of_certification(
    project, settings, monkeypatch
):
    evidence = {i.pk: i.sha256 for i in evidence_items(project)}
    fit_side = {pk for pk, sha in evidence.items() if item_calibration_fit(sha256=sha)}
    assert 0 < len(fit_side) < len(evidence)
    settings.CALIBRATION_FIT_MIN = len(fit_side)

    model = train_now(project)

    assert model.metrics["calibrated_on"] == "evidence"
    assert set(model.metrics["calibration_fit_items"]) == fit_side
    assert model.metrics["calibration_items"] == len(fit_side)
    # certified on the other side of the evidence only
    record = model.thresholds
    assert record["calibration_fit"] == len(fit_side)
    assert record["evidence"] == len(evidence) - len(fit_side)
    # and the evidence has not grown since: the items left out do not count as new ones
    project.refresh_from_db()  # the model is active now
    monkeypatch.setattr(certification, "RECERTIFY_AFTER", 1)
    calls = []
    monkeypatch.setattr(certification, "model_certify", lambda **kw: calls.append(kw) or {})
    assert thresholds_recertify(project=project) is False and calls == []


def test_the_thresholds_page_says_how_much_evidence_calibrated_the_model(
    project, settings, client, make_user
):
    fit_side = [i for i in evidence_items(project) if item_calibration_fit(sha256=i.sha256)]
    settings.CALIBRATION_FIT_MIN = len(fit_side)
    train_now(project)
    admin = make_user("ada-admin", Role.ADMIN)
    member_add(project=project, user=admin)
    client.force_login(admin)
    page = client.get(reverse("thresholds", args=[project.slug])).text
    assert f"{len(fit_side)} more calibrated this model's confidences" in page


@pytest.mark.parametrize("minimum", [0, 10_000], ids=["off, the default", "too little evidence"])
def test_off_or_with_too_little_evidence_the_calibration_is_fitted_on_all_held_out_labels(
    project, settings, minimum
):
    settings.CALIBRATION_FIT_MIN = minimum

    model = train_now(project)

    assert model.metrics["calibrated_on"] == "held-out labels"
    assert model.metrics["calibration_fit_items"] == []
    assert model.metrics["calibration_items"] == model.metrics["heldout_items"]
    assert model.thresholds["calibration_fit"] == 0
    assert model.thresholds["evidence"] == evidence_items(project).count()


def test_the_calibration_side_of_an_image_never_changes_and_takes_half():
    shas = [f"{i:064x}" for i in range(2000)]
    first = [item_calibration_fit(sha256=s) for s in shas]
    assert first == [item_calibration_fit(sha256=s) for s in shas]
    assert 0.45 < sum(first) / len(first) < 0.55
