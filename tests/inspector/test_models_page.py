"""The model page and the models API: who may see and act, training progress, the promotion
gate's outcome, and promote / roll back / start training."""

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.access import Role
from labeling.models import ItemSource, ModelStatus, ModelVersion
from labeling.project_setup import member_add
from tests.machine.fixtures import (
    add_shapes,
    install_model,
    shapes_project,
    tiny_checkpoint,  # noqa: F401
)

pytestmark = pytest.mark.django_db

METRICS = {
    "accuracy": 0.912,
    "macro_f1": 0.9,
    "ece": 0.021,
    "coverage_at_target": 0.64,
    "target_precision": 0.98,
    "per_class": {
        "package": {"precision": 0.95, "recall": 0.9, "support": 40},
        "product": {"precision": 0.88, "recall": 0.93, "support": 41},
    },
    "promotion_gate": {"decision": "Not promoted: auto-labels 61.0% of held-out images"},
}


def page_url(slug="reviews"):
    return reverse("models", args=[slug])


@pytest.fixture
def versions(project):
    ready = ModelVersion.objects.create(
        project=project,
        version=1,
        status=ModelStatus.READY,
        metrics=METRICS,
        hyperparameters={"learning_rate": 0.003, "epochs": 6},
        temperature=1.3,
        checkpoint_dir="1/v1",
        status_reason="Not promoted: auto-labels 61.0% of held-out images",
    )
    training = ModelVersion.objects.create(
        project=project,
        version=2,
        status=ModelStatus.TRAINING,
        progress={
            "state": "training",
            "trial": 2,
            "trials": 3,
            "epoch": 4,
            "epochs": 6,
            "percent": 55.0,
            "eta_seconds": 120,
            "message": "trial 2: lr 0.003",
            "updated_at": timezone.now().isoformat(),
        },
    )
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
    assert client.get(reverse("api-model", args=["reviews", 2])).status_code == read
    # Admins reach the service, which refuses: v2 is training.
    assert client.post(reverse("api-models-train", args=["reviews"])).status_code == write


def test_api_refuses_anonymous_callers(client, versions):
    assert client.get(reverse("api-models", args=["reviews"])).status_code in (401, 403)
    assert client.post(reverse("api-models-rollback", args=["reviews"])).status_code in (401, 403)


# --- what the page shows ---------------------------------------------------------------------


def test_page_shows_metrics_gate_progress_and_actions(client, people, versions):
    client.force_login(people["admin"])
    page = client.get(page_url()).content.decode()
    assert "91.2%" in page and "90.0%" in page and "0.021" in page and "64.0%" in page
    assert "Not promoted: auto-labels 61.0% of held-out images" in page
    assert "88.0%" in page and "93.0%" in page  # product precision / recall
    # Hyperparameters in words, not raw JSON; classes by their display names, not slugs.
    assert '<th scope="row">Learning rate</th><td>0.003</td>' in page
    assert "&quot;learning_rate&quot;" not in page
    # v1 is ready: it can be promoted; v2 trains: progress is polled from the API.
    assert reverse("models-promote", args=["reviews", 1]) in page
    assert reverse("models-promote", args=["reviews", 2]) not in page
    assert f'data-url="{reverse("api-model", args=["reviews", 2])}"' in page
    assert "Trial 2 of 3" in page and "epoch 4 of 6" in page
    assert "js/models.js" in page


def test_progress_endpoint_reports_trial_epoch_and_eta(client, people, versions):
    client.force_login(people["manager"])
    body = client.get(reverse("api-model", args=["reviews", 2])).json()
    assert body["status"] == "training"
    assert {k: body["progress"][k] for k in ("trial", "epoch", "percent", "eta_seconds")} == {
        "trial": 2,
        "epoch": 4,
        "percent": 55.0,
        "eta_seconds": 120,
    }
    listing = client.get(reverse("api-models", args=["reviews"])).json()
    assert [m["version"] for m in listing["results"]] == [2, 1]
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
        "Model v2 is already training for this project; wait for it to finish."
    )
    page = client.post(reverse("models-train", args=["reviews"]), follow=True)
    assert "Model v2 is already training" in page.content.decode()
    assert ModelVersion.objects.filter(project__slug="reviews").count() == 2


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
    response = client.post(reverse("api-model-promote", args=["reviews", 2]))
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
    settings,
    django_capture_on_commit_callbacks,
):
    project, admin = shapes
    first = install_model(project, tiny_checkpoint, settings, version=1)
    second = install_model(project, tiny_checkpoint, settings, version=2)
    client.force_login(admin)

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(reverse("models-promote", args=["shapes", 1]), follow=True)
    assert "v1 is now the active model" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("api-model-promote", args=["shapes", 2]))
    assert response.status_code == 200 and response.json()["status"] == "active"
    first.refresh_from_db()
    assert first.status == ModelStatus.RETIRED
    assert b"Roll back" in client.get(page_url("shapes")).content

    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(reverse("models-rollback", args=["shapes"]), follow=True)
    assert "v1 is the active model again" in page.content.decode()
    project.refresh_from_db()
    second.refresh_from_db()
    assert project.active_model_id == first.pk and second.status == ModelStatus.RETIRED

    # Enough human labels: training starts (queued to a worker; not run here).
    add_shapes(project, 21, offset=900, label_them=True, queue_prediction=False)
    assert project.items.filter(final_source=ItemSource.CONSENSUS).count() == 21
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
