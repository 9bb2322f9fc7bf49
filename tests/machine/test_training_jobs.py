"""Training through the service: ModelVersions, the promotion gate, re-routing, one at a time."""

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command

from labeling.errors import ServiceError
from labeling.machine.certification import item_held_out
from labeling.machine.predictors import checkpoint_path, heldout_load
from labeling.machine.promotion import model_promote, model_rollback
from labeling.machine.training import (
    TrainingRefused,
    training_run,
    training_start,
    trainings_start_due,
)
from labeling.models import Item, ItemStatus, ModelStatus, ModelVersion, Project
from labeling.queue import assignment_next
from ml.inference import Predictor
from tests.machine.fixtures import TINY, add_shapes, install_model, recalibrated, shapes_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project(settings):
    settings.THRESHOLD_MIN_SUPPORT = 5
    project = shapes_project(
        target_precision=0.8, threshold_confidence=0.6, gold_rate=0, audit_rate=0
    )
    ids = add_shapes(project, 45, label_them=True)
    # Every other image was drawn for the calibration share: the evidence models are judged on.
    Item.objects.filter(pk__in=ids[::2]).update(is_calibration=True)
    return project


def train_now(project, **overrides) -> ModelVersion:
    model = training_start(project=project, overrides={**TINY, **overrides}, queue=False)
    return training_run(model_version_id=model.pk)


def test_a_tiny_training_creates_a_calibrated_version_that_reloads_identically(project):
    model = train_now(project)

    assert model.status == ModelStatus.ACTIVE  # the first model passes the gate
    project.refresh_from_db()
    assert project.active_model_id == model.pk
    assert {"accuracy", "macro_f1", "ece", "per_class"} <= set(model.metrics)
    assert model.temperature and model.temperature > 0
    assert model.manifest.line_count == 45
    # Held out: the calibration items and, of the rest, those the fixed per-item hash picks.
    held = {
        i.pk
        for i in Item.objects.filter(project=project)
        if item_held_out(sha256=i.sha256, is_calibration=i.is_calibration)
    }
    assert set(model.validation_items) == held
    assert 23 <= len(held) < 45
    # The thresholds were certified on the evidence: the held-out calibration items.
    assert model.thresholds["evidence"] == len(held)
    # The checkpoint reloads to the very predictions saved at training time.
    heldout = heldout_load(model)
    items = Item.objects.in_bulk(heldout["item_ids"].tolist())
    images = [items[i].image.open("rb").read() for i in heldout["item_ids"].tolist()]
    again = Predictor.load(checkpoint_path(model)).predict(images).probs
    np.testing.assert_allclose(again, heldout["probs"], atol=1e-6)


def test_a_worse_candidate_is_not_promoted(project):
    good = train_now(project)
    worse = train_now(project, learning_rates=[1e-7], epochs=[1])

    assert worse.status == ModelStatus.READY
    assert "Not promoted" in worse.status_reason
    gate = worse.metrics["promotion_gate"]
    assert gate["candidate"]["coverage"] < gate["active"]["coverage"]
    project.refresh_from_db()
    assert project.active_model_id == good.pk


def test_a_second_training_is_refused_while_one_runs(project):
    first = training_start(project=project, overrides=TINY, queue=False)
    with pytest.raises(TrainingRefused, match=f"v{first.version} is already training"):
        training_start(project=project, overrides=TINY, queue=False)
    assert ModelVersion.objects.filter(project=project).count() == 1


def test_a_crash_fails_the_version_and_keeps_the_active_model(project, tiny_checkpoint):
    active = install_model(project, tiny_checkpoint)  # imported; the first model is promoted
    assert active.status == ModelStatus.ACTIVE
    model = training_start(project=project, overrides=TINY, queue=False)
    lost = Item.objects.filter(project=project).first()
    default_storage.delete(lost.image.name)  # storage lost an image the manifest names

    model = training_run(model_version_id=model.pk)

    assert model.status == ModelStatus.FAILED and model.status_reason
    project.refresh_from_db()
    assert project.active_model_id == active.pk
    assert ModelVersion.objects.get(pk=active.pk).status == ModelStatus.ACTIVE


def test_too_few_labels_is_refused_with_the_reason(settings):
    project = shapes_project(slug="empty")
    with pytest.raises(ServiceError, match="at least 20 human labels"):
        training_start(project=project)


def test_promotion_reroutes_untouched_queued_items(project, tiny_checkpoint, people_for):
    untouched = add_shapes(project, 6, offset=900)
    assert set(Item.objects.filter(pk__in=untouched).values_list("status", flat=True)) == {"queued"}
    inspector = people_for(project)
    project.min_answers = 2
    project.save()
    lease = assignment_next(project=project, user=inspector)  # one item is in a human's hands
    from labeling.answers import annotation_submit

    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=inspector,
        label_name="circle",
        time_on_task_ms=5,
    )
    project.threshold_mode = Project.ThresholdMode.MANUAL
    project.manual_thresholds = {"circle": 0.0, "square": 0.0, "triangle": 0.0}
    project.target_precision = 0.34  # the floor: thresholds are never below the target
    project.save()

    # An imported model that passes the gate (the project's first) is promoted, which re-routes.
    assert install_model(project, tiny_checkpoint).status == ModelStatus.ACTIVE

    touched = Item.objects.get(pk=lease.item_id)
    assert touched.status == ItemStatus.IN_REVIEW and touched.answer_count == 1
    others = Item.objects.filter(pk__in=untouched).exclude(pk=lease.item_id)
    assert set(others.values_list("status", flat=True)) == {ItemStatus.AUTO_LABELED}
    assert set(others.values_list("final_source", flat=True)) == {"machine"}


def test_admin_can_roll_back(project, tiny_checkpoint, tmp_path):
    first = install_model(project, tiny_checkpoint)
    # The same weights, worse calibrated: the gate keeps the first; the admin promotes it.
    second = install_model(project, recalibrated(tiny_checkpoint, tmp_path / "v2"))
    assert (first.status, second.status) == (ModelStatus.ACTIVE, ModelStatus.READY)
    model_promote(model=second)
    assert ModelVersion.objects.get(pk=first.pk).status == ModelStatus.RETIRED

    model_rollback(project=project)

    project.refresh_from_db()
    assert project.active_model_id == first.pk
    assert ModelVersion.objects.get(pk=second.pk).status == ModelStatus.RETIRED


def test_train_command_shows_progress_and_result(project, capsys):
    call_command(
        "train",
        "shapes",
        "--time-budget",
        "60",
        "--input-size",
        "32",
        "--epochs",
        "2",
        "--trainable-blocks",
        "1",
    )
    out = capsys.readouterr()
    assert "v1 active" in out.out and "accuracy" in out.out


def test_manual_thresholds_judge_the_candidate_in_manual_mode(project):
    good = train_now(project)
    Project.objects.filter(pk=project.pk).update(
        threshold_mode=Project.ThresholdMode.MANUAL,
        manual_thresholds={name: 0.6 for name in project.label_names()},
    )
    worse = train_now(project, learning_rates=[1e-7], epochs=[1])

    assert worse.status == ModelStatus.READY
    assert "at the admin's thresholds" in worse.status_reason
    gate = worse.metrics["promotion_gate"]
    assert gate["manual_thresholds"] == [0.6] * len(project.label_names())
    assert gate["candidate"]["coverage"] < gate["active"]["coverage"]
    project.refresh_from_db()
    assert project.active_model_id == good.pk


@pytest.fixture
def tiny_settings(settings):
    settings.TRAIN_INPUT_SIZE = TINY["input_size"]
    settings.TRAIN_TRAINABLE_BLOCKS = TINY["trainable_blocks"]
    settings.TRAIN_EPOCHS = TINY["epochs"]
    settings.TRAIN_LEARNING_RATES = TINY["learning_rates"]
    return settings


def test_the_retrain_trigger_starts_a_training_once_enough_new_labels_arrived(tiny_settings):
    project = shapes_project(slug="trigger", retrain_every=30, gold_rate=0, audit_rate=0)
    add_shapes(project, 25, label_them=True)
    assert trainings_start_due(reason="new labels") == 0  # 25 of 30

    add_shapes(project, 5, offset=100, label_them=True)
    assert trainings_start_due(reason="new labels") == 1  # trained at once: tasks run eagerly
    assert ModelVersion.objects.get(project=project).manifest.line_count == 30
    assert trainings_start_due(reason="new labels") == 0  # nothing new since


def test_a_project_due_while_it_trains_is_skipped_not_counted(tiny_settings):
    project = shapes_project(slug="busy", retrain_every=30, gold_rate=0, audit_rate=0)
    add_shapes(project, 30, label_them=True)
    running = training_start(project=project, overrides=TINY, queue=False)
    add_shapes(project, 30, offset=200, label_them=True)

    assert trainings_start_due(reason="new labels") == 0
    assert list(ModelVersion.objects.filter(project=project)) == [running]


def test_the_nightly_run_skips_projects_without_new_labels_or_automatic_retraining(
    tiny_settings,
):
    quiet = shapes_project(slug="quiet", retrain_every=100)
    manual = shapes_project(slug="manual", retrain_every=0)
    busy = shapes_project(slug="busy", retrain_every=100)
    add_shapes(manual, 25, label_them=True)
    add_shapes(busy, 25, label_them=True)

    assert trainings_start_due(reason="nightly") == 1
    assert list(ModelVersion.objects.values_list("project__slug", flat=True)) == ["busy"]
    assert not ModelVersion.objects.filter(project__in=[quiet, manual]).exists()
