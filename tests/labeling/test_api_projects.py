"""The project-setup API as every kind of caller: create (site admins), edit, archive, members,
and the raw answer export."""

import pytest
from django.contrib.auth import authenticate
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.access import Role
from labeling.models import Membership, ModelStatus, Project
from labeling.project_setup import member_add
from tests.machine.fixtures import add_colours, install_model

pytestmark = pytest.mark.django_db

CALLERS = ("admin", "inspector", "manager", "outsider", "anonymous")
NEW_PROJECT = {
    "name": "Summer reviews",
    "labels": [
        {"name": "package"},
        {"name": "product", "display_name": "Product shot"},
        {"name": "full_body", "display_name": "Full body", "key": "f"},
        {"name": "half_body"},
    ],
    "min_answers": 2,
    "max_answers": 3,
    "consensus_target": 0.9,
    "audit_rate": 0.1,
    "gold_rate": 0.05,
    "price_per_answer": "0.04",
    "machine_price_per_1000": "0.2",
    "credit_rules": {"product": "product", "style": "full_body"},
    "credit_grant_threshold": 0.9,
    "credit_deny_threshold": 0.1,
    "retrain_every": 300,
}


def api(people, who: str) -> APIClient:
    client = APIClient()
    if who != "anonymous":
        client.force_authenticate(people[who])
    return client


@pytest.mark.parametrize("who", CALLERS)
def test_who_may_create_a_project(project, people, who):
    response = api(people, who).post(reverse("api-projects"), NEW_PROJECT, format="json")
    if who in ("admin", "outsider"):  # both are site admins (the ``admin`` group)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["slug"] == "summer-reviews" and body["your_role"] == "admin"
        assert [label["key"] for label in body["labels"]] == ["1", "2", "f", "3"]
        assert body["labels"][1]["display_name"] == "Product shot"
        assert body["price_per_answer"] == "0.0400" and body["retrain_every"] == 300
        created = Project.objects.get(slug="summer-reviews")
        assert created.memberships.get().user == people[who]
    elif who == "anonymous":
        assert response.status_code in (401, 403)
    else:
        assert response.status_code == 403
        assert "site admins" in response.json()["detail"]
        assert not Project.objects.filter(slug="summer-reviews").exists()


def test_a_project_admin_who_is_no_site_admin_cannot_create_projects(project, make_user):
    ada = make_user("ada")  # no site group
    member_add(project=project, user=ada, role=Role.ADMIN)
    client = APIClient()
    client.force_authenticate(ada)
    assert client.post(reverse("api-projects"), NEW_PROJECT, format="json").status_code == 403
    # …nor give themselves more than admin of this project.
    url = reverse("api-member", args=["reviews", ada.pk])
    response = client.patch(url, {"role": "superuser"}, format="json")
    assert response.status_code == 400
    ada.refresh_from_db()
    assert not ada.is_superuser and not ada.is_staff and not ada.groups.exists()


def test_a_bad_project_is_refused_with_the_field(people):
    body = {**NEW_PROJECT, "min_answers": 3, "max_answers": 2}
    response = api(people, "admin").post(reverse("api-projects"), body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "max_answers"
    assert "at least min answers" in response.json()["detail"]
    body = {**NEW_PROJECT, "labels": [{"name": "solo"}]}
    response = api(people, "admin").post(reverse("api-projects"), body, format="json")
    assert response.status_code == 400 and "labels" in response.json()


@pytest.mark.parametrize("who", CALLERS)
def test_who_may_edit_a_project(project, people, who):
    url = reverse("api-project", args=["reviews"])
    response = api(people, who).patch(url, {"min_answers": 1, "currency": "eur"}, format="json")
    expected = {"admin": 200, "inspector": 403, "manager": 403, "outsider": 404}
    assert response.status_code == expected.get(who, 403) or (
        who == "anonymous" and response.status_code == 401
    )
    project.refresh_from_db()
    if who == "admin":
        assert response.json()["changed"] == ["min_answers", "currency"]
        assert (project.min_answers, project.currency) == (1, "EUR")
    else:
        assert project.min_answers == 2


def test_a_label_change_that_breaks_the_model_is_a_409_with_the_reason(
    project, people, review_checkpoint
):
    # The project's first model, imported (scored on 8 human labels, too few to train on) and
    # promoted by the gate.
    add_colours(project, 8)
    model = install_model(project, review_checkpoint)
    assert model.status == ModelStatus.ACTIVE and model.version == 1
    url = reverse("api-project", args=["reviews"])
    labels = [{"name": n} for n in ("package", "product", "full_body", "half_body", "detail")]
    response = api(people, "admin").patch(url, {"labels": labels}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "label_set_change_refused"
    assert "Model v1 is active" in response.json()["detail"]
    response = api(people, "admin").patch(
        url, {"labels": labels, "retire_model": True}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["retired_model"] == 1 and response.json()["training"] is None
    assert "at least 20 human labels" in response.json()["training_refused"]
    model.refresh_from_db()
    project.refresh_from_db()
    assert model.status == ModelStatus.RETIRED and project.active_model is None


def test_archive_and_restore(project, people):
    client = api(people, "admin")
    archived = client.post(reverse("api-project-archive", args=["reviews"])).json()
    assert archived["archived"] is True
    listed = [p["slug"] for p in client.get(reverse("api-projects")).json()["results"]]
    assert "reviews" not in listed
    everything = client.get(reverse("api-projects"), {"archived": "true"}).json()["results"]
    assert "reviews" in [p["slug"] for p in everything]
    # Uploads are refused with the reason; the project is still readable.
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import image_bytes

    upload = client.post(
        reverse("api-items-upload", args=["reviews"]),
        {"files": [SimpleUploadedFile("a.png", image_bytes())]},
        format="multipart",
    )
    assert upload.status_code == 409 and upload.json()["code"] == "project_archived"
    assert client.get(reverse("api-project", args=["reviews"])).status_code == 200
    restored = client.post(reverse("api-project-restore", args=["reviews"])).json()
    assert restored["archived"] is False


@pytest.mark.parametrize("who", CALLERS)
def test_who_may_manage_members(project, people, who, make_user):
    client = api(people, who)
    target = make_user("tess")
    member_add(project=project, user=target, role=Role.INSPECTOR)
    members = reverse("api-members", args=["reviews"])
    member = reverse("api-member", args=["reviews", target.pk])
    calls = [
        client.get(members),
        client.post(members, {"username": f"new-{who}", "role": "inspector"}, format="json"),
        client.patch(member, {"role": "manager"}, format="json"),
        client.delete(member),
    ]
    codes = [response.status_code for response in calls]
    if who == "admin":
        assert codes == [200, 201, 200, 204]
    elif who == "outsider":
        assert codes == [404] * 4
    elif who == "anonymous":
        assert all(code in (401, 403) for code in codes)
    else:
        assert codes == [403] * 4
        assert Membership.objects.get(project=project, user=target).role == "inspector"


def test_members_are_listed_added_created_and_changed(project, people, make_user):
    client = api(people, "admin")
    members = reverse("api-members", args=["reviews"])
    listed = client.get(members).json()
    assert {m["username"]: m["role"] for m in listed} == {
        "alice-admin": "admin",
        "ivan-inspector": "inspector",
        "mona-manager": "manager",
    }
    make_user("walt")
    added = client.post(members, {"user": "walt", "role": "manager"}, format="json")
    assert added.status_code == 201 and added.json()["password"] is None

    created = client.post(members, {"username": "xena", "role": "inspector"}, format="json")
    assert created.status_code == 201
    password = created.json()["password"]
    assert authenticate(username="xena", password=password) is not None

    linked = client.post(
        members, {"username": "yuri", "role": "inspector", "invite": "link"}, format="json"
    )
    assert linked.json()["password"] is None
    assert linked.json()["set_password_url"].startswith("http://testserver/password/set/")

    both = client.post(members, {"user": "walt", "username": "z", "role": "admin"}, format="json")
    assert both.status_code == 400
    taken = client.post(members, {"username": "xena", "role": "inspector"}, format="json")
    assert taken.status_code == 409 and "is taken" in taken.json()["detail"]
    missing = client.post(members, {"user": "nobody", "role": "inspector"}, format="json")
    assert missing.status_code == 404

    admin = people["admin"]
    demote = client.patch(
        reverse("api-member", args=["reviews", admin.pk]), {"role": "inspector"}, format="json"
    )
    assert demote.status_code == 409 and "only admin" in demote.json()["detail"]


def _answers(project, people):
    """An inspector answers, corrects nothing, undoes one answer and answers it again."""
    from labeling.answers import annotation_submit, annotation_undo
    from labeling.ingest import Upload, item_ingest
    from labeling.queue import assignment_next
    from tests.conftest import image_bytes

    project.gold_rate = 0
    project.min_answers = 1
    project.save()
    uploads = [Upload(f"{i}.png", image_bytes(color=(i * 20, 9, 9))) for i in range(3)]
    item_ingest(project=project, uploads=uploads)
    inspector = people["inspector"]
    for label in ("package", "product"):
        lease = assignment_next(project=project, user=inspector)
        annotation_submit(
            project=project,
            assignment_id=lease.pk,
            user=inspector,
            label_name=label,
            time_on_task_ms=1200,
        )
    again = annotation_undo(project=project, user=inspector)
    annotation_submit(
        project=project,
        assignment_id=again.pk,
        user=inspector,
        label_name="half_body",
        time_on_task_ms=800,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", CALLERS)
def test_every_raw_answer_is_exported(project, people, who):
    _answers(project, people)
    response = api(people, who).get(reverse("api-answers", args=["reviews"]))
    if who in ("inspector",):
        assert response.status_code == 403
        return
    if who == "outsider":
        assert response.status_code == 404
        return
    if who == "anonymous":
        assert response.status_code in (401, 403)
        return
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    rows = body["results"]
    assert [(r["label"], r["state"]) for r in rows] == [
        ("package", "current"),
        ("product", "undone"),
        (None, "undo"),
        ("half_body", "current"),
    ]
    assert rows[1]["superseded_by"] == rows[2]["id"] and rows[2]["supersedes"] == rows[1]["id"]
    assert rows[0]["inspector"] == "ivan-inspector" and rows[0]["time_on_task_ms"] == 1200
    assert {r["item_id"] for r in rows} == {rows[0]["item_id"], rows[1]["item_id"]}


@pytest.mark.django_db(transaction=True)
def test_answers_are_filtered_and_paginated(project, people):
    _answers(project, people)
    client = api(people, "manager")
    url = reverse("api-answers", args=["reviews"])
    assert client.get(url, {"state": "current"}).json()["count"] == 2
    assert client.get(url, {"label": "product"}).json()["count"] == 1
    assert client.get(url, {"inspector": "alice-admin"}).json()["count"] == 0
    page = client.get(url, {"page_size": 3}).json()
    assert len(page["results"]) == 3 and page["next"]
    bad = client.get(url, {"state": "lost"})
    assert bad.status_code == 400 and "'state' must be one of" in bad.json()["detail"]
    bad = client.get(url, {"start": "yesterday"})
    assert bad.status_code == 400
