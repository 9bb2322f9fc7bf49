"""An admin tunes thresholds in real Chromium: the curve is drawn from the model's held-out
set and the preview follows the inputs."""

import os

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from labeling.access import Role
from labeling.machine.predict import items_predict
from labeling.machine.training import training_run, training_start
from labeling.models import ModelStatus, ModelVersion, Project
from labeling.project_setup import member_add
from tests.machine.fixtures import (
    add_shapes,
    install_model,
    shapes_project,
    tiny_checkpoint,  # noqa: F401
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = os.environ.get("SCREENSHOT_DIR", "/tmp")
CHART = "Chart.getChart(document.getElementById('curve-chart'))"


def log_in(page, client, url, user):
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}]
    )


@pytest.fixture
def tuned(make_user, tiny_checkpoint):  # noqa: F811
    """A shapes project with an active tiny model that auto-labels nothing, eight images in
    the queue, and an admin."""
    project = shapes_project(audit_rate=0.0, gold_rate=0.0)
    project.threshold_mode = Project.ThresholdMode.MANUAL
    project.manual_thresholds = {"circle": None, "square": None, "triangle": None}
    project.save()
    assert install_model(project, tiny_checkpoint).status == ModelStatus.ACTIVE  # the first
    items_predict(item_ids=add_shapes(project, 8, offset=300, queue_prediction=False))
    admin = make_user("ada-admin", Role.ADMIN)
    member_add(project=project, user=admin)
    return project, admin


def preview_settled(page):
    page.wait_for_function("document.getElementById('preview').dataset.state === 'ready'")
    return page.inner_text("#preview-auto")


def test_admin_sees_the_curve_and_the_preview_follows_the_inputs(server, page, client, tuned):
    project, admin = tuned
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, client, server, admin)
    page.goto(f"{server}/p/{project.slug}/thresholds/")

    page.wait_for_function(f"{CHART} && {CHART}.data.datasets[0].data.length > 2")
    assert page.evaluate(f"{CHART}.getDatasetMeta(0).data.length") > 2  # points laid out
    assert page.inner_text("#preview-queued") == "8"
    assert preview_settled(page) == "0"

    # Lowering one manual threshold: that class's queued images would be auto-labeled. No
    # threshold may be below the target precision (the floor), so the target goes down first, to
    # just above chance among three classes.
    page.fill("#target-precision", "0.34")
    preview_settled(page)
    page.fill("input[name=manual_circle]", "0.34")
    page.wait_for_function("document.getElementById('preview-auto').textContent !== '0'")
    circles = int(preview_settled(page))
    for name in ("square", "triangle"):
        page.fill(f"input[name=manual_{name}]", "0.34")
    page.wait_for_function("document.getElementById('preview-auto').textContent === '8'")
    assert 0 < circles < 8
    assert "Expected errors among them" in page.inner_text("#preview-errors")
    # The dot for this setting sits at full coverage on the held-out set.
    assert page.evaluate(f"{CHART}.data.datasets[3].data[0].x") == 1

    # A class's own curve.
    page.select_option("#curve-class", "square")
    assert page.evaluate(f"{CHART}.data.datasets[0].data.length") > 1

    # Target mode with a target the 30 held-out images cannot show: nothing auto-labeled.
    page.select_option("#curve-class", "")
    page.check("input[name=mode][value=target]")
    page.fill("#target-precision", "0.99")
    page.wait_for_function("document.getElementById('preview-auto').textContent === '0'")
    # An impossible target is refused with the reason, before anything is saved.
    page.fill("#target-precision", "1.5")
    page.wait_for_function("document.getElementById('preview').dataset.state === 'error'")
    assert "between 0 and 1" in page.inner_text("#preview-summary")
    page.fill("#target-precision", "0.98")
    preview_settled(page)
    # Back to the manual thresholds of 0.34: under the 0.98 target they are refused (the floor),
    # naming the classes.
    page.check("input[name=mode][value=manual]")
    page.wait_for_function("document.getElementById('preview').dataset.state === 'error'")
    assert "Below the target precision" in page.inner_text("#preview-summary")
    page.screenshot(path=f"{SHOTS}/thresholds.png", full_page=True)
    assert errors == []


def test_model_page_polls_training_progress(server, page, client, tuned):
    project, admin = tuned
    # A training through the service (the 30 labels the import was scored on are enough);
    # the worker's progress heartbeats are written as labeling.machine.training writes them.
    training = training_start(project=project, queue=False)
    progress = {"state": "training", "trial": 1, "trials": 3, "epoch": 1, "epochs": 6,
                "percent": 10.0, "eta_seconds": 300, "message": "trial 1",
                "updated_at": timezone.now().isoformat()}  # fmt: skip
    ModelVersion.objects.filter(pk=training.pk).update(progress=progress)
    log_in(page, client, server, admin)
    page.goto(f"{server}/p/{project.slug}/models/")
    assert "Trial 1 of 3" in page.inner_text("#progress-text")

    progress = {**progress, "trial": 2, "epoch": 3, "percent": 42.0, "eta_seconds": 600}
    ModelVersion.objects.filter(pk=training.pk).update(progress=progress)
    page.wait_for_function(
        "document.getElementById('progress-text').textContent.includes('Trial 2 of 3')"
    )
    text = page.inner_text("#progress-text")
    assert "epoch 3 of 6" in text and "42%" in text and "about 10 min left" in text
    page.screenshot(path=f"{SHOTS}/models.png", full_page=True)

    # The training fails in the worker (storage lost an image its manifest names): the page
    # reloads and shows the reason.
    lost = project.items.filter(final_source="consensus").first()
    default_storage.delete(lost.image.name)
    assert training_run(model_version_id=training.pk).status == ModelStatus.FAILED
    page.wait_for_selector("text=FileNotFoundError")
    assert page.query_selector("#training") is None


def test_without_a_model_the_page_says_so(server, page, client, project, people):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, client, server, people["admin"])
    page.goto(f"{server}/p/{project.slug}/thresholds/")
    assert "No active model" in page.inner_text("#no-model")
    page.fill("input[name=manual_product]", "0.99")
    page.check("input[name=mode][value=manual]")
    preview_state = "document.getElementById('preview').dataset.state === 'ready'"
    page.wait_for_function(preview_state)
    assert "nothing would be auto-labeled" in page.inner_text("#preview-summary")
    page.screenshot(path=f"{SHOTS}/thresholds-no-model.png", full_page=True)
    assert errors == []
