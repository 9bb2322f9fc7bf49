"""Importing a model trained elsewhere: checked against the project, scored on its held-out
labels, judged by the same promotion gate; anything that does not fit is refused with a reason
and leaves nothing behind."""

import io
import json
import shutil
import tarfile
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from labeling.access import Role
from labeling.machine.certification import evidence_items, heldout_labels
from labeling.machine.model_import import (
    ModelImportRefused,
    model_import,
    model_import_score,
    model_import_upload,
)
from labeling.machine.predictors import heldout_load
from labeling.machine.training import training_run, training_start
from labeling.models import ModelStatus, ModelVersion
from labeling.project_setup import member_add, project_create
from tests.machine.fixtures import TINY, add_shapes, shapes_project
from tests.ml.shapes import SHAPES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def project(settings):
    settings.THRESHOLD_MIN_SUPPORT = 5
    project = shapes_project(
        target_precision=0.8, threshold_confidence=0.6, gold_rate=0, audit_rate=0
    )
    add_shapes(project, 45, label_them=True)
    return project


def _zip(folder, inner="") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("config.json", "model.pt"):
            archive.write(folder / name, f"{inner}{name}")
    return buffer.getvalue()


def _models_on_disk(settings) -> list:
    return sorted(p for p in settings.MODEL_ROOT.rglob("model.pt"))


def test_an_imported_checkpoint_is_scored_on_the_projects_labels_and_promoted(
    project, tiny_checkpoint
):
    folder, _ = tiny_checkpoint

    call_command("import_model", project.slug, str(folder), stdout=io.StringIO())

    model = ModelVersion.objects.get(project=project)
    assert model.status == ModelStatus.ACTIVE  # no model before: the gate promotes it
    assert model.hyperparameters["imported"] is True
    # judged on the project's held-out labels: the fixed held-out side of every human label,
    # the same images every version trained here holds out
    held = heldout_labels(project)
    assert model.metrics["heldout_items"] == held.count() > 0
    assert "fixed per image" in model.metrics["heldout_source"]
    assert set(model.thresholds["per_class"]) == set(SHAPES)
    assert model.thresholds["evidence"] == evidence_items(project).count()
    heldout = heldout_load(model)
    assert heldout["probs"].shape == (held.count(), 3)
    assert model.metrics["accuracy"] > 0.5


def test_after_a_training_an_import_is_judged_on_the_held_out_labels_only(project, tiny_checkpoint):
    trained = training_run(
        model_version_id=training_start(project=project, overrides=TINY, queue=False).pk
    )
    folder, _ = tiny_checkpoint

    imported = model_import(project=project, checkpoint_dir=folder, queue=False)
    imported = model_import_score(model_version_id=imported.pk)

    assert imported.version == trained.version + 1
    assert sorted(imported.validation_items) == sorted(trained.validation_items)
    assert "fixed per image" in imported.metrics["heldout_source"]
    assert imported.status in (ModelStatus.ACTIVE, ModelStatus.READY)
    assert "promotion_gate" in imported.metrics  # the same gate as a trained version


def test_a_model_for_other_labels_is_refused_with_the_reason(settings, tiny_checkpoint):
    project = project_create(name="Reviews", slug="reviews", labels=["package", "product"])
    folder, _ = tiny_checkpoint

    with pytest.raises(ModelImportRefused, match="does not fit the project.*package, product"):
        model_import(project=project, checkpoint_dir=folder)

    assert not ModelVersion.objects.exists()
    assert _models_on_disk(settings) == []


def test_labels_in_another_order_are_refused(settings, tiny_checkpoint):
    project = project_create(name="Shapes", slug="shapes", labels=list(reversed(SHAPES)))
    with pytest.raises(ModelImportRefused, match="same order"):
        model_import(project=project, checkpoint_dir=tiny_checkpoint[0])
    assert _models_on_disk(settings) == []


@pytest.mark.parametrize(
    "damage, message",
    [
        ("weights", "does not load"),
        ("temperature", "not calibrated"),
        ("class_calibration", "does not load.*class_calibration"),
        ("config", "Not a checkpoint"),
    ],
)
def test_a_broken_checkpoint_is_refused_and_nothing_is_stored(
    project, tiny_checkpoint, tmp_path, settings, damage, message
):
    folder = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint[0], folder)
    config = json.loads((folder / "config.json").read_text())
    if damage == "weights":
        (folder / "model.pt").write_bytes(b"not a torch file")
    elif damage == "temperature":
        config.pop("temperature")
        (folder / "config.json").write_text(json.dumps(config))
    elif damage == "class_calibration":  # one class map too few
        config["class_calibration"] = config["class_calibration"][:-1]
        (folder / "config.json").write_text(json.dumps(config))
    else:
        (folder / "config.json").write_text("{ not json")

    with pytest.raises(ModelImportRefused, match=message):
        model_import(project=project, checkpoint_dir=folder)

    assert not ModelVersion.objects.exists()
    assert _models_on_disk(settings) == []


def test_the_command_says_why_it_refused(project, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CommandError, match="model.pt"):
        call_command("import_model", project.slug, str(tmp_path), stdout=io.StringIO())


def test_an_archive_with_the_checkpoint_in_a_folder_imports(project, tiny_checkpoint):
    model = model_import_upload(project=project, archive=_zip(tiny_checkpoint[0], "run-7/"))
    assert model.status == ModelStatus.TRAINING  # scored by a worker
    assert model_import_score(model_version_id=model.pk).status == ModelStatus.ACTIVE


def test_a_tar_gz_archive_imports(project, tiny_checkpoint):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("config.json", "model.pt"):
            archive.add(tiny_checkpoint[0] / name, name)
    model = model_import_upload(project=project, archive=buffer.getvalue())
    assert model.version == 1


@pytest.mark.parametrize(
    "names, message",
    [
        (["../config.json", "model.pt"], "outside itself"),
        (["config.json"], "no model.pt"),
        (["a/config.json", "b/model.pt"], "same folder"),
    ],
)
def test_hostile_or_incomplete_archives_are_refused(project, names, message):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"{}")
    with pytest.raises(ModelImportRefused, match=message):
        model_import_upload(project=project, archive=buffer.getvalue())


def test_not_an_archive_is_refused(project):
    with pytest.raises(ModelImportRefused, match=".zip or .tar.gz"):
        model_import_upload(project=project, archive=b"hello")


def test_an_admin_imports_through_the_api_and_others_may_not(
    project, tiny_checkpoint, django_user_model, django_capture_on_commit_callbacks
):
    people = {}
    for role in (Role.ADMIN, Role.INSPECTOR, Role.MANAGER):
        people[role] = django_user_model.objects.create_user(f"u-{role}", password="x")
        member_add(project=project, user=people[role], role=role)
    archive = _zip(tiny_checkpoint[0])
    url = reverse("api-models-import", kwargs={"slug": project.slug})

    for role in (Role.INSPECTOR, Role.MANAGER):
        client = Client()
        client.force_login(people[role])
        upload = io.BytesIO(archive)
        upload.name = "model.zip"
        assert client.post(url, {"archive": upload}).status_code == 403

    client = Client()
    client.force_login(people[Role.ADMIN])
    upload = io.BytesIO(archive)
    upload.name = "model.zip"
    with django_capture_on_commit_callbacks(execute=True):  # the worker's job runs eagerly
        response = client.post(url, {"archive": upload})
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 1
    assert ModelVersion.objects.get(project=project).status == ModelStatus.ACTIVE

    wrong = io.BytesIO(b"nope")
    wrong.name = "model.zip"
    refused = client.post(url, {"archive": wrong})
    assert refused.status_code == 400
    assert ".zip or .tar.gz" in refused.json()["detail"]


def test_the_models_page_imports_an_archive(project, tiny_checkpoint, django_user_model):
    admin = django_user_model.objects.create_user("boss", password="x")
    member_add(project=project, user=admin, role=Role.ADMIN)
    client = Client()
    client.force_login(admin)
    upload = io.BytesIO(_zip(tiny_checkpoint[0]))
    upload.name = "model.zip"

    response = client.post(
        reverse("models-import", kwargs={"slug": project.slug}), {"archive": upload}, follow=True
    )

    assert b"Imported as v1" in response.content
    assert ModelVersion.objects.filter(project=project, version=1).exists()


def test_an_import_waits_for_a_running_training(project, tiny_checkpoint):
    running = training_start(project=project, overrides=TINY, queue=False)
    with pytest.raises(ModelImportRefused, match=f"v{running.version} is being trained") as info:
        model_import(project=project, checkpoint_dir=tiny_checkpoint[0])
    assert info.value.status == 409
