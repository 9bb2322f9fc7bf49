"""The setup pages: a site admin creates a project from the form, an admin changes it, archives
it, and adds people; error pages say what happened and lead back."""

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from labeling.models import Membership, Project

pytestmark = pytest.mark.django_db


def form(**overrides) -> dict:
    data = {
        "name": "Summer reviews",
        "description": "Label each review photo.",
        "label_name": ["package", "product", "full_body", "half_body", ""],
        "label_display": ["Package", "Product", "Full body", "Half body", ""],
        "label_key": ["", "", "", "", ""],
        "min_answers": "2",
        "max_answers": "4",
        "consensus_target": "0.95",
        "lease_seconds": "300",
        "audit_rate": "0.05",
        "gold_rate": "0.05",
        "retrain_every": "500",
        "cost_mode": "per_answer",
        "price_per_answer": "0.03",
        "hourly_rate": "18",
        "machine_price_per_1000": "0.05",
        "currency": "USD",
        "credit_grant_threshold": "0.95",
        "credit_deny_threshold": "0.05",
        "rule_type": ["product", "style", ""],
        "rule_label": ["product", "full_body", ""],
    }
    data.update(overrides)
    return data


def test_a_site_admin_creates_a_project_from_the_form(client, people):
    client.force_login(people["admin"])
    home = client.get(reverse("home")).content.decode()
    assert reverse("project-new") in home  # the New project button
    assert b"Labels" in client.get(reverse("project-new")).content

    response = client.post(reverse("project-new"), form())

    project = Project.objects.get(slug="summer-reviews")
    assert response.status_code == 302 and response["Location"] == reverse(
        "members", args=[project.slug]
    )
    assert [str(label) for label in project.labels.all()] == [
        "Package",
        "Product",
        "Full body",
        "Half body",
    ]
    assert project.credit_rules == {"product": "product", "style": "full_body"}
    assert Membership.objects.get(project=project, user=people["admin"]).role == "admin"


def test_inspectors_and_managers_see_no_new_project_button(client, people):
    for who in ("inspector", "manager"):
        client.force_login(people[who])
        assert reverse("project-new") not in client.get(reverse("home")).content.decode()
        refused = client.get(reverse("project-new"))
        assert refused.status_code == 403
        assert b"Only site admins may create projects" in refused.content
        assert b"Back to your projects" in refused.content


def test_a_refused_form_keeps_what_was_typed_and_names_the_field(client, people):
    client.force_login(people["admin"])
    response = client.post(reverse("project-new"), form(min_answers="5", max_answers="3"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Max answers (3) must be at least min answers (5)" in page
    assert 'data-error-field="max_answers"' in page
    assert 'value="Summer reviews"' in page and 'value="Full body"' in page
    assert not Project.objects.filter(slug="summer-reviews").exists()


def test_an_admin_changes_settings_and_labels(client, people, project):
    client.force_login(people["admin"])
    page = client.get(reverse("project-settings", args=["reviews"])).content.decode()
    assert 'value="full_body"' in page and "Archive the project" in page
    data = form(name="Review photos", max_answers="6")
    data["rule_type"], data["rule_label"] = ["product"], ["product"]
    response = client.post(reverse("project-settings", args=["reviews"]), data, follow=True)
    assert response.status_code == 200
    message = response.content.decode()
    assert "Saved: labels, description, max answers, retrain every, credit rules." in message
    project.refresh_from_db()
    assert project.max_answers == 6 and project.credit_rules == {"product": "product"}
    assert project.labels.get(name="full_body").display_name == "Full body"


def test_archive_and_restore_from_the_settings_page(client, people, project):
    client.force_login(people["admin"])
    client.post(reverse("project-archive", args=["reviews"]))
    project.refresh_from_db()
    assert project.archived_at is not None
    home = client.get(reverse("home")).content.decode()
    assert "Archived projects (1)" in home
    assert b"Archived since" in client.get(reverse("project", args=["reviews"])).content
    client.post(reverse("project-restore", args=["reviews"]))
    project.refresh_from_db()
    assert project.archived_at is None


def test_a_new_members_password_is_shown_once(client, people, project):
    client.force_login(people["admin"])
    url = reverse("members", args=["reviews"])
    response = client.post(
        url, {"action": "create", "username": "nina", "role": "inspector", "invite": "password"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    start = page.index('id="one-time-password">') + len('id="one-time-password">')
    password = page[start : page.index("</code>", start)]
    assert authenticate(username="nina", password=password) is not None
    assert password not in client.get(url).content.decode()  # never again


def test_members_are_added_and_roles_changed_on_the_page(client, people, project, make_user):
    client.force_login(people["admin"])
    make_user("walt")
    url = reverse("members", args=["reviews"])
    client.post(url, {"action": "add", "user": "walt", "role": "manager"})
    walt = Membership.objects.get(project=project, user__username="walt")
    assert walt.role == "manager"
    client.post(reverse("member-role", args=["reviews", walt.user_id]), {"role": "admin"})
    walt.refresh_from_db()
    assert walt.role == "admin"
    unknown = client.post(url, {"action": "add", "user": "nobody", "role": "manager"})
    assert unknown.status_code == 400 and b"No active user" in unknown.content
    client.post(reverse("member-remove", args=["reviews", walt.user_id]))
    assert not Membership.objects.filter(project=project, user__username="walt").exists()


def test_the_inspectors_page_says_how_inspectors_are_added(client, people, project):
    client.force_login(people["admin"])
    page = client.get(reverse("inspectors", args=["reviews"])).content.decode()
    assert reverse("members", args=["reviews"]) in page
    assert "plus 15 points" not in page and "picking one of the" in page


def test_every_page_links_to_the_api_docs(client, people):
    client.force_login(people["inspector"])
    assert reverse("api-docs") in client.get(reverse("home")).content.decode()


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/p/no-such-project/", 404, b"There is nothing here"),
        ("/no/such/page/", 404, b"There is nothing here"),
        ("/p/reviews/upload/", 403, b"Your role in this project does not allow this."),
    ],
)
def test_error_pages_say_what_happened_and_lead_back(client, people, url, status, words):
    client.force_login(people["inspector"])
    response = client.get(url)
    assert response.status_code == status
    assert words in response.content
    assert b"Back to your projects" in response.content
    assert b"css/app.css" in response.content  # styled like the rest


def test_the_404_page_is_styled_in_debug_mode_too(client, people, settings):
    settings.DEBUG = True
    client.force_login(people["inspector"])
    response = client.get("/p/no-such-project/")
    assert response.status_code == 404 and b"Back to your projects" in response.content
    assert b"URLconf" not in response.content  # not Django's technical page


def test_the_500_page_leads_back():
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content
    assert b"Back to your projects" in response.content
