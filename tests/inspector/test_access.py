"""Who sees what: members see their projects, outsiders get 404s, anonymous users log in."""

import pytest
from django.urls import reverse

from labeling.ingest import Upload, item_ingest
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(project):
    report = item_ingest(project=project, uploads=[Upload("a.png", image_bytes())])
    return report.results[0].item_id


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ["admin", "inspector", "manager"])
def test_members_see_their_project(client, people, role, item):
    login(client, people[role])
    home = client.get(reverse("home"))
    assert b"Review photos" in home.content
    assert b"Other shop" not in home.content
    page = client.get(reverse("project", args=["reviews"]))
    assert page.status_code == 200
    assert b"full_body" in page.content
    assert client.get(reverse("item-image", args=["reviews", item])).status_code == 200


def test_outsider_cannot_learn_the_project_exists(client, people, item):
    login(client, people["outsider"])
    assert b"Review photos" not in client.get(reverse("home")).content
    for url in (
        reverse("project", args=["reviews"]),
        reverse("upload", args=["reviews"]),
        reverse("item-image", args=["reviews", item]),
        reverse("item-thumbnail", args=["reviews", item]),
    ):
        assert client.get(url).status_code == 404, url
    # Same answer as for a project that does not exist at all.
    assert client.get(reverse("project", args=["no-such-project"])).status_code == 404


def test_anonymous_is_sent_to_login(client, project, item):
    for url in (
        reverse("home"),
        reverse("project", args=["reviews"]),
        reverse("item-image", args=["reviews", item]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("inspector", 403), ("manager", 403)])
def test_only_admins_upload(client, people, role, status):
    login(client, people[role])
    assert client.get(reverse("upload", args=["reviews"])).status_code == status


def test_wrong_method_is_refused(client, people):
    login(client, people["admin"])
    assert client.post(reverse("project", args=["reviews"])).status_code == 405


def test_images_are_served_with_their_validated_type(client, people, item):
    login(client, people["inspector"])
    response = client.get(reverse("item-image", args=["reviews", item]))
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_login_and_logout_pages(client, people):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(
        reverse("login"), {"username": "ivan-inspector", "password": "pw-Secret-123"}
    )
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_a_role_holds_in_its_own_project_only(client, people, project):
    """An admin of one project who is an inspector in another may label there, not set it up."""
    from labeling.access import Role
    from labeling.models import Project
    from labeling.project_setup import member_add

    other = Project.objects.get(slug="other-shop")
    member_add(project=other, user=people["admin"], role=Role.INSPECTOR)
    login(client, people["admin"])
    assert client.get(reverse("upload", args=["reviews"])).status_code == 200
    assert client.get(reverse("inspect", args=["other-shop"])).status_code == 200
    for name in ("upload", "project-settings", "members", "models"):
        assert client.get(reverse(name, args=["other-shop"])).status_code == 403, name
