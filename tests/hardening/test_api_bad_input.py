"""Bad input to the JSON queue API: every refusal is a 4xx with a JSON message, never a 500."""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from labeling.ingest import Upload, item_ingest
from labeling.models import Annotation, Assignment, Item, ItemStatus
from labeling.project_setup import member_add
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db


def queue(project, n: int = 3) -> list[int]:
    uploads = [Upload(f"{i}.png", image_bytes(color=(i * 40, 90, 30))) for i in range(n)]
    ids = item_ingest(project=project, uploads=uploads, queue_prediction=False).created_ids
    # Prediction would queue them once the upload commits; these tests never commit.
    Item.objects.filter(pk__in=ids).update(status=ItemStatus.QUEUED)
    return ids


def url(project, action: str) -> str:
    return reverse(f"api-queue-{action}", args=[project.slug])


def post(client, project, action: str, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(url(project, action), data, content_type="application/json", **extra)


def assert_json_refusal(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    text = json.dumps(body)
    for word in words:
        assert word in text, text
    return body


@pytest.fixture
def inspector(client, people, project):
    queue(project)
    client.force_login(people["inspector"])
    return client


@pytest.fixture
def lease(inspector, project) -> int:
    response = post(inspector, project, "next", {})
    assert response.status_code == 200
    return response.json()["assignment"]


@pytest.mark.parametrize(
    "raw",
    ['{"assignment": 1, "label": ', "not json at all", "[1, 2, 3]", '"just a string"', "null"],
)
def test_malformed_json_is_a_400_with_a_message(inspector, project, lease, raw):
    response = post(inspector, project, "answer", raw)

    assert_json_refusal(response, 400)
    assert not Annotation.objects.exists()


def test_a_label_outside_the_project_is_refused_with_the_valid_ones(inspector, project, lease):
    response = post(inspector, project, "answer", {"assignment": lease, "label": "cat"})

    body = assert_json_refusal(response, 400, "'cat' is not a label", "package")
    assert body["code"] == "invalid_label"
    assert Assignment.objects.get(pk=lease).status == "open"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"label": "package"}, "assignment"),
        ({"assignment": "seven", "label": "package"}, "assignment"),
        ({"assignment": None, "label": "package"}, "assignment"),
        ({"assignment": 1}, "label"),
        ({"assignment": 1, "label": ["package"]}, "label"),
        ({"assignment": 1, "label": "x" * 500}, "label"),
        ({"assignment": 1, "label": "package", "time_on_task_ms": -5}, "time_on_task_ms"),
        ({"assignment": 1, "label": "package", "time_on_task_ms": 10**12}, "time_on_task_ms"),
        ({"assignment": 1, "label": "package", "time_on_task_ms": "soon"}, "time_on_task_ms"),
        ({"assignment": 2**70, "label": "package"}, ""),
        ({"assignment": 1, "label": "package", "next": 6}, "next"),
        ({"assignment": 1, "label": "package", "next": -1}, "next"),
        ({"assignment": 1, "label": "package", "next": "more"}, "next"),
    ],
)
def test_invalid_fields_are_named_in_the_refusal(inspector, project, lease, body, field):
    response = post(inspector, project, "answer", body)

    assert response.status_code in (400, 403), response.content[:300]
    assert_json_refusal(response, response.status_code, field)
    assert not Annotation.objects.exists()


def test_a_lease_of_another_project_is_not_yours(inspector, project, people, make_user):
    from labeling.models import Project

    other = Project.objects.get(slug="other-shop")
    queue(other, 1)
    stranger = make_user("stranger", None)
    member_add(project=other, user=stranger)
    from labeling.queue import assignment_next

    foreign = assignment_next(project=other, user=stranger)

    response = post(inspector, project, "answer", {"assignment": foreign.pk, "label": "package"})

    assert_json_refusal(response, 403, "not yours")
    # And the other project itself does not exist for this inspector.
    response = post(inspector, other, "answer", {"assignment": foreign.pk, "label": "a"})
    assert_json_refusal(response, 404)
    assert not Annotation.objects.exists()


def test_another_inspectors_lease_is_not_yours(inspector, project, people_for, client):
    from labeling.queue import assignment_next

    colleague = people_for(project, "colleague")
    theirs = assignment_next(project=project, user=colleague)

    for action, body in (
        ("answer", {"assignment": theirs.pk, "label": "package"}),
        ("skip", {"assignment": theirs.pk}),
    ):
        assert_json_refusal(post(inspector, project, action, body), 403, "not yours")
    renewed = post(inspector, project, "renew", {"assignments": [theirs.pk]})
    assert renewed.status_code == 200 and renewed.json() == []
    theirs.refresh_from_db()
    assert theirs.status == "open"


def test_an_expired_lease_is_a_409_and_the_answer_is_not_recorded(inspector, project, lease):
    Assignment.objects.filter(pk=lease).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = post(inspector, project, "answer", {"assignment": lease, "label": "package"})

    body = assert_json_refusal(response, 409, "expired")
    assert body["code"] == "lease_expired"
    assert not Annotation.objects.exists()


def test_answering_the_same_lease_twice_is_a_409(inspector, project, lease):
    first = post(inspector, project, "answer", {"assignment": lease, "label": "package"})
    again = post(inspector, project, "answer", {"assignment": lease, "label": "product"})

    assert first.status_code == 201
    assert assert_json_refusal(again, 409)["code"] == "already_answered"
    assert Annotation.objects.count() == 1


def test_a_request_body_over_the_limit_is_refused_with_json(inspector, project, lease, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps({"assignment": lease, "label": "package", "pad": "x" * 10_000})

    response = post(inspector, project, "answer", body)

    assert response.status_code in (400, 413), response.content[:300]
    assert_json_refusal(response, response.status_code, "large")
    assert not Annotation.objects.exists()


def test_too_many_files_in_one_upload_is_refused_with_json(client, people, project, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    client.force_login(people["admin"])
    files = [SimpleUploadedFile(f"{i}.png", image_bytes(color=(i, 0, 0))) for i in range(5)]

    response = client.post(reverse("api-items-upload", args=[project.slug]), {"files": files})

    assert response.status_code in (400, 413), response.content[:300]
    assert_json_refusal(response, response.status_code, "files")


def test_renewing_too_many_leases_at_once_is_refused(inspector, project, lease):
    response = post(inspector, project, "renew", {"assignments": list(range(1, 60))})

    assert_json_refusal(response, 400, "assignments")


def test_the_wrong_method_is_a_405_with_json(inspector, project):
    response = inspector.get(url(project, "answer"))

    assert_json_refusal(response, 405, "GET")


def test_an_anonymous_caller_gets_a_json_401_or_403(client, project):
    response = post(client, project, "next", {})

    assert response.status_code in (401, 403)
    assert "detail" in response.json()
