"""The model page and the models API: who may see and act, training progress, the promotion
gate's outcome, and promote / roll back / start training."""

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.access import Role
from labeling.machine.training import training_start
from labeling.models import ItemSource, ModelStatus, ModelVersion
from labeling.project_setup import member_add
from tests.machine.fixtures import (
    add_colours,
    install_model,
    recalibrated,
    review_checkpoint,  # noqa: F401
    shapes_project,
    tiny_checkpoint,  # noqa: F401
)

pytestmark = pytest.mark.django_db


def _pct(value) -> str:
    return f"{100 * value:.1f}%"


PROGRESS = {
    "state": "training",
    "trial": 2,
    "trials": 3,
    "epoch": 4,
    "epochs": 6,
    "percent": 55.0,
    "eta_seconds": 120,
    "message": "trial 2: lr 0.003",
}


def page_url(slug="reviews"):
    return reverse("models", args=[slug])


@pytest.fixture
def versions(project, review_checkpoint, tmp_path):  # noqa: F811
    """Reached through the services, as in a real project: 24 human labels; v1 imported and
    promoted (the first model); v2 the same weights, worse calibrated, imported after it, which
    the gate keeps ``ready``; v3 a training a worker is running."""
    add_colours(project, 24)
    install_model(project, review_checkpoint)
    ready = install_model(project, recalibrated(review_checkpoint, tmp_path / "v2"))
    assert ready.status == ModelStatus.READY and "Not promoted" in ready.status_reason
    training = training_start(project=project, queue=False)
    # The worker's progress heartbeat, as labeling.machine.training writes it mid-training.
    ModelVersion.objects.filter(pk=training.pk).update(
        progress={**PROGRESS, "updated_at": timezone.now().isoformat()}
    )
    training.refresh_from_db()
    return ready, training


# --- who may do what -------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("inspector", 403), ("manager", 403)])
def test_only_admins_see_the_page(client, people, role, status):
    client.force_login(people[role])
    assert client.get(page_url()).status_code == status


@pytest.mark.parametrize(
    "name", ["models-train", "models-rollback", ("models-promote", 1)], ids=str
)
@pytest.mark.parametrize(
    ("role", "status"), [("inspector", 403), ("manager", 403), ("outsider", 404)]
)
def test_only_admins_act(client, people, versions, name, role, status):
    args = ["reviews", name[1]] if isinstance(name, tuple) else ["reviews"]
    url = reverse(name[0] if isinstance(name, tuple) else name, args=args)
    client.force_login(people[role])
    assert client.post(url).status_code == status


def test_outsiders_get_404_and_anonymous_users_log_in(client, people):
    client.force_login(people["outsider"])
    assert client.get(page_url()).status_code == 404
    client.logout()
    response = client.get(page_url())
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_wrong_methods_are_refused(client, people):
    client.force_login(people["admin"])
    assert client.post(page_url()).status_code == 405
    assert client.get(reverse("models-train", args=["reviews"])).status_code == 405
    assert client.get(reverse("api-models-train", args=["reviews"])).status_code == 405
    assert client.delete(reverse("api-models", args=["reviews"])).status_code == 405


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("admin", 200, 409), ("manager", 200, 403), ("inspector", 403, 403), ("outsider", 404, 404)],
)
def test_api_permissions(client, people, versions, role, read, write):
    client.force_login(people[role])
    assert client.get(reverse("api-models", args=["reviews"])).status_code == read
    assert client.get(reverse("api-model", args=["reviews", 3])).status_code == read
    # Admins reach the service, which refuses: v3 is training.
    assert client.post(reverse("api-models-train", args=["reviews"])).status_code == write


def test_api_refuses_anonymous_callers(client, versions):
    assert client.get(reverse("api-models", args=["reviews"])).status_code in (401, 403)
    assert client.post(reverse("api-models-rollback", args=["reviews"])).status_code in (401, 403)


# --- what the page shows ---------------------------------------------------------------------


def test_page_shows_metrics_gate_progress_and_actions(client, people, versions):
    ready, _ = versions
    client.force_login(people["admin"])
    page = client.get(page_url()).content.decode()
    metrics = ready.metrics  # measured when the import was scored on the project's labels
    assert _pct(metrics["accuracy"]) in page and _pct(metrics["macro_f1"]) in page
    assert f"{metrics['ece']:.3f}" in page
    assert ready.status_reason in page  # the promotion gate's reason
    product = metrics["per_class"]["product"]
    assert _pct(product["precision"]) in page and _pct(product["recall"]) in page
    # Hyperparameters in words, not raw JSON (the imported checkpoint's learning rate).
    assert '<th scope="row">Learning rate</th><td>0.003</td>' in page
    assert "&quot;learning_rate&quot;" not in page
    # v2 is ready: it can be promoted; v3 trains: progress is polled from the API.
    assert reverse("models-promote", args=["reviews", 2]) in page
    assert reverse("models-promote", args=["reviews", 3]) not in page
    assert f'data-url="{reverse("api-model", args=["reviews", 3])}"' in page
    assert "Trial 2 of 3" in page and "epoch 4 of 6" in page
    assert "js/models.js" in page


def test_progress_endpoint_reports_trial_epoch_and_eta(client, people, versions):
    client.force_login(people["manager"])
    body = client.get(reverse("api-model", args=["reviews", 3])).json()
    assert body["status"] == "training"
    assert {k: body["progress"][k] for k in ("trial", "epoch", "percent", "eta_seconds")} == {
        "trial": 2,
        "epoch": 4,
        "percent": 55.0,
        "eta_seconds": 120,
    }
    listing = client.get(reverse("api-models", args=["reviews"])).json()
    assert [m["version"] for m in listing["results"]] == [3, 2, 1]
    assert client.get(reverse("api-model", args=["reviews", 9])).status_code == 404


def test_no_model_yet(client, people):
    client.force_login(people["admin"])
    page = client.get(page_url()).content.decode()
    assert "No model yet" in page and "Roll back" not in page


# --- actions ---------------------------------------------------------------------------------


def test_training_is_refused_while_one_runs(client, people, versions):
    client.force_login(people["admin"])
    response = client.post(reverse("api-models-train", args=["reviews"]))
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Model v3 is already training for this project; wait for it to finish."
    )
    page = client.post(reverse("models-train", args=["reviews"]), follow=True)
    assert "Model v3 is already training" in page.content.decode()
    assert ModelVersion.objects.filter(project__slug="reviews").count() == 3


def test_training_needs_enough_labels(client, people):
    client.force_login(people["admin"])
    response = client.post(reverse("api-models-train", args=["reviews"]))
    assert response.status_code == 409 and "at least 20 human labels" in response.json()["detail"]


def test_rollback_without_an_earlier_model_says_so(client, people, versions):
    client.force_login(people["admin"])
    response = client.post(reverse("api-models-rollback", args=["reviews"]))
    assert response.status_code == 400
    assert response.json()["detail"] == "There is no earlier model to roll back to."
    page = client.post(reverse("models-rollback", args=["reviews"]), follow=True)
    assert "no earlier model" in page.content.decode()


def test_a_training_version_cannot_be_promoted(client, people, versions):
    client.force_login(people["admin"])
    response = client.post(reverse("api-model-promote", args=["reviews", 3]))
    assert response.status_code == 400 and "only a trained model" in response.json()["detail"]


@pytest.fixture
def shapes(db, make_user):
    project = shapes_project(audit_rate=0.0, gold_rate=0.0)
    admin = make_user("ada-admin", Role.ADMIN)
    member_add(project=project, user=admin)
    return project, admin


def test_start_promote_and_roll_back(
    client,
    shapes,
    tiny_checkpoint,  # noqa: F811
    tmp_path,
    django_capture_on_commit_callbacks,
):
    project, admin = shapes
    first = install_model(project, tiny_checkpoint)  # the project's first model: promoted
    # The same weights, worse calibrated: the gate keeps it ready.
    second = install_model(project, recalibrated(tiny_checkpoint, tmp_path / "v2"))
    assert (first.status, second.status) == (ModelStatus.ACTIVE, ModelStatus.READY)
    client.force_login(admin)

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(reverse("models-promote", args=["shapes", 2]), follow=True)
    assert "v2 is now the active model" in page.content.decode()
    first.refresh_from_db()
    assert first.status == ModelStatus.RETIRED
    assert b"Roll back" in client.get(page_url("shapes")).content

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(reverse("models-rollback", args=["shapes"]), follow=True)
    assert "v1 is the active model again" in page.content.decode()
    project.refresh_from_db()
    second.refresh_from_db()
    assert project.active_model_id == first.pk and second.status == ModelStatus.RETIRED
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("api-model-promote", args=["shapes", 2]))
    assert response.status_code == 200 and response.json()["status"] == "active"

    # Enough human labels (the 30 the imports were scored on): training starts (queued to a
    # worker; not run here).
    assert project.items.filter(final_source=ItemSource.CONSENSUS).count() == 30
    response = client.post(reverse("api-models-train", args=["shapes"]))
    assert response.status_code == 201
    assert response.json()["version"] == 3 and response.json()["status"] == "training"
    assert response.json()["created_by"] == "ada-admin"


def test_classes_show_their_display_names(client, people, versions, project):
    project.labels.filter(name="product").update(display_name="Product shot")
    client.force_login(people["admin"])
    page = client.get(page_url()).content.decode()
    assert "<td>Product shot</td>" in page
    assert "<td>product</td>" not in page


def test_a_training_shows_its_phase(client, people, versions):
    _, model = versions
    model.progress = {
        "state": "training",
        "phase": "preparing",
        "done": 1200,
        "total": 5000,
        "percent": 8.0,
        "eta_seconds": None,
        "eta_max_seconds": 840,
        "updated_at": timezone.now().isoformat(),
    }
    model.save()
    client.force_login(people["admin"])
    page = client.get(page_url()).content.decode()
    assert "Preparing: reading 1200 of 5000 images" in page
