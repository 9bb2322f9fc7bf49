"""The inspector page and the queue API it drives, as an inspector would notice them."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.access import Role
from labeling.ingest import Upload, item_ingest
from labeling.models import Annotation, Assignment, Item, ItemStatus
from labeling.project_setup import member_add
from tests.conftest import image_bytes

# The queue services lock rows with select_for_update; items are queued on commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued(project):
    """Three queued images (no gold items, so the queue order is the regular one)."""
    uploads = [Upload(f"{i}.png", image_bytes(color=(40 * i, 90, 200))) for i in range(3)]
    ids = item_ingest(project=project, uploads=uploads).created_ids
    assert Item.objects.filter(pk__in=ids, status=ItemStatus.QUEUED).count() == 3
    return ids


@pytest.fixture
def second_inspector(project, make_user):
    user = make_user("ines-inspector", Role.INSPECTOR)
    member_add(project=project, user=user)
    return user


def api(name: str) -> str:
    return reverse(f"api-queue-{name}", args=["reviews"])


def take_next(client) -> dict:
    response = client.post(api("next"))
    assert response.status_code == 200, response.content
    return response.json()


# --- the page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["inspector", "admin"])
def test_labelers_get_the_inspect_page_with_their_keys(client, people, role):
    client.force_login(people[role])
    response = client.get(reverse("inspect", args=["reviews"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="loading"' in html
    assert "js/inspect.js" in html
    for key, name in (("1", "package"), ("2", "product"), ("3", "full_body"), ("4", "half_body")):
        assert f'data-label="{name}" data-key="{key}"' in html
    # The API endpoints the script uses are rendered into the page.
    assert api("next") in html and api("answer") in html


def test_managers_are_refused_the_inspect_page(client, people):
    client.force_login(people["manager"])
    assert client.get(reverse("inspect", args=["reviews"])).status_code == 403


def test_outsiders_cannot_learn_the_inspect_page_exists(client, people):
    client.force_login(people["outsider"])
    assert client.get(reverse("inspect", args=["reviews"])).status_code == 404


def test_anonymous_is_sent_to_login(client, project):
    response = client.get(reverse("inspect", args=["reviews"]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_inspect_page_refuses_post(client, people):
    client.force_login(people["inspector"])
    assert client.post(reverse("inspect", args=["reviews"])).status_code == 405


def test_project_page_links_to_inspecting_for_labelers_only(client, people):
    url = reverse("inspect", args=["reviews"])
    for role, linked in (("inspector", True), ("admin", True), ("manager", False)):
        client.force_login(people[role])
        page = client.get(reverse("project", args=["reviews"])).content.decode()
        assert (url in page) is linked, role


# --- the API flow -----------------------------------------------------------------------------


def test_next_answer_then_the_item_collects_answers(client, people, queued, second_inspector):
    client.force_login(people["inspector"])
    lease = take_next(client)
    assert lease["item"] in queued
    assert lease["image_url"] == reverse("item-image", args=["reviews", lease["item"]])
    assert lease["suggestion"] is None  # the project does not show the model's guess
    assert Item.objects.get(pk=lease["item"]).status == ItemStatus.IN_REVIEW

    answer = client.post(
        api("answer"),
        {"assignment": lease["assignment"], "label": "product", "time_on_task_ms": 1800},
        content_type="application/json",
    )
    assert answer.status_code == 201
    # The project wants two answers at least: one is not enough to decide.
    assert answer.json()["item_status"] == "in_review"
    assert client.get(api("me")).json()["answers_today"] == 1

    # The next inspector is served the item closest to a decision: the one already answered.
    client.force_login(second_inspector)
    other = take_next(client)
    assert other["item"] == lease["item"]


def test_the_same_inspector_never_sees_an_item_twice(client, people, queued):
    client.force_login(people["inspector"])
    items = [take_next(client)["item"] for _ in range(3)]
    assert sorted(items) == sorted(queued)
    assert client.post(api("next")).status_code == 204


def test_open_leases_are_resumed(client, people, queued):
    client.force_login(people["inspector"])
    first, second = take_next(client), take_next(client)
    resumed = client.get(api("leases")).json()
    assert [lease["assignment"] for lease in resumed] == [
        first["assignment"],
        second["assignment"],
    ]


def test_a_late_answer_after_the_lease_expired_is_refused_with_a_message(client, people, queued):
    client.force_login(people["inspector"])
    lease = take_next(client)
    Assignment.objects.filter(pk=lease["assignment"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.post(
        api("answer"),
        {"assignment": lease["assignment"], "label": "package", "time_on_task_ms": 500},
        content_type="application/json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "lease_expired"
    assert "expired" in response.json()["detail"]
    assert not Annotation.objects.exists()


def test_answering_under_someone_elses_lease_is_forbidden(client, people, queued, second_inspector):
    client.force_login(people["inspector"])
    lease = take_next(client)
    client.force_login(second_inspector)
    response = client.post(
        api("answer"),
        {"assignment": lease["assignment"], "label": "package", "time_on_task_ms": 500},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "lease_not_yours"
    assert not Annotation.objects.exists()


def test_a_double_submit_is_refused_and_only_one_answer_counts(client, people, queued):
    client.force_login(people["inspector"])
    lease = take_next(client)
    body = {"assignment": lease["assignment"], "label": "package", "time_on_task_ms": 700}
    first = client.post(api("answer"), body, content_type="application/json")
    second = client.post(api("answer"), body, content_type="application/json")
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["code"] == "already_answered"
    assert Annotation.objects.filter(item_id=lease["item"]).count() == 1


def test_an_unknown_label_is_refused_with_the_labels_to_use(client, people, queued):
    client.force_login(people["inspector"])
    lease = take_next(client)
    response = client.post(
        api("answer"),
        {"assignment": lease["assignment"], "label": "selfie", "time_on_task_ms": 700},
        content_type="application/json",
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "selfie" in detail
    assert "package, product, full_body, half_body" in detail
    # The lease stays usable: a correct answer still goes in.
    retry = client.post(
        api("answer"),
        {"assignment": lease["assignment"], "label": "product", "time_on_task_ms": 700},
        content_type="application/json",
    )
    assert retry.status_code == 201


def test_a_negative_time_on_task_is_refused(client, people, queued):
    client.force_login(people["inspector"])
    lease = take_next(client)
    response = client.post(
        api("answer"),
        {"assignment": lease["assignment"], "label": "product", "time_on_task_ms": -5},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "time_on_task_ms" in response.json()
    assert not Annotation.objects.exists()


def test_a_skipped_item_goes_back_to_the_queue_for_others(client, people, queued, second_inspector):
    client.force_login(people["inspector"])
    lease = take_next(client)
    response = client.post(
        api("skip"),
        {"assignment": lease["assignment"], "reason": "too dark"},
        content_type="application/json",
    )
    assert response.status_code == 204
    assert Item.objects.get(pk=lease["item"]).status == ItemStatus.QUEUED
    assert Assignment.objects.get(pk=lease["assignment"]).skip_reason == "too dark"
    # Skipping twice is refused; the skipper is not served it again, others are.
    again = client.post(api("skip"), {"assignment": lease["assignment"]}, "application/json")
    assert again.status_code == 400
    served = {take_next(client)["item"] for _ in range(2)}
    assert lease["item"] not in served
    client.force_login(second_inspector)
    assert take_next(client)["item"] == lease["item"]


def test_undo_gives_back_a_lease_on_the_same_item(client, people, queued):
    client.force_login(people["inspector"])
    lease = take_next(client)
    client.post(
        api("answer"),
        {"assignment": lease["assignment"], "label": "package", "time_on_task_ms": 700},
        content_type="application/json",
    )
    undone = client.post(api("undo"))
    assert undone.status_code == 200
    assert undone.json()["item"] == lease["item"]
    assert undone.json()["assignment"] != lease["assignment"]
    assert client.get(api("me")).json()["answers_today"] == 0
    nothing = client.post(api("undo"))
    assert nothing.status_code == 409
    assert nothing.json()["code"] == "nothing_to_undo"


def test_renew_extends_only_the_callers_open_leases(client, people, queued, second_inspector):
    client.force_login(people["inspector"])
    mine = take_next(client)
    client.force_login(second_inspector)
    theirs = take_next(client)
    client.force_login(people["inspector"])
    before = Assignment.objects.get(pk=mine["assignment"]).expires_at
    response = client.post(
        api("renew"),
        {"assignments": [mine["assignment"], theirs["assignment"]]},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert [lease["assignment"] for lease in response.json()] == [mine["assignment"]]
    assert Assignment.objects.get(pk=mine["assignment"]).expires_at >= before


@pytest.mark.parametrize(("role", "status"), [("manager", 403), ("outsider", 404)])
def test_the_queue_api_refuses_non_labelers(client, people, queued, role, status):
    client.force_login(people[role])
    assert client.post(api("next")).status_code == status
    assert client.get(api("me")).status_code == status
