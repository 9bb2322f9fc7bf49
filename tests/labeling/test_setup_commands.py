"""The same setup from the command line: project, members, site_admin and export_answers call
the services the pages and the API call."""

import csv
import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from labeling.access import may_create_projects
from labeling.models import Membership, Project

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_create_edit_archive_restore_and_show(make_user):
    make_user("ada")
    out = run(
        "project",
        "create",
        "Summer reviews",
        "--label",
        "package",
        "--label",
        "product:Product shot:p",
        "--label",
        "full_body:Full body",
        "--min-answers",
        "2",
        "--consensus-target",
        "0.9",
        "--credit-rule",
        "style=full_body",
        "--price-per-answer",
        "0.04",
        "--admin",
        "ada",
    )
    assert "Created summer-reviews" in out and "p=product (Product shot)" in out
    project = Project.objects.get(slug="summer-reviews")
    assert project.credit_rules == {"style": "full_body"} and project.min_answers == 2
    assert Membership.objects.get(project=project).user.username == "ada"

    out = run("project", "edit", "summer-reviews", "--max-answers", "7", "--currency", "eur")
    assert "Saved: max answers, currency." in out
    run("project", "archive", "summer-reviews")
    project.refresh_from_db()
    assert project.archived_at is not None
    run("project", "restore", "summer-reviews")
    assert '"EUR"' in run("project", "show", "summer-reviews")


def test_a_bad_setting_names_the_field():
    with pytest.raises(CommandError, match="max_answers: Max answers"):
        run("project", "create", "Bad", "--label", "a", "--label", "b", "--max-answers", "0")
    with pytest.raises(CommandError, match="Give the labels"):
        run("project", "create", "No labels")


def test_members_from_the_command_line(project, people, make_user):
    make_user("walt")
    assert "Added walt as manager." in run("members", "add", "reviews", "walt", "--role", "manager")
    out = run("members", "create", "reviews", "nina", "--role", "inspector")
    password = out.split("Password (shown once): ")[1].strip()
    assert authenticate(username="nina", password=password) is not None
    out = run("members", "create", "reviews", "omar", "--role", "inspector", "--invite", "link")
    assert "http://127.0.0.1:8000/password/set/" in out
    assert "walt is now admin." in run("members", "role", "reviews", "walt", "admin")
    run("members", "remove", "reviews", "walt")
    listed = run("members", "list", "reviews")
    assert "nina\tinspector" in listed and "walt" not in listed
    with pytest.raises(CommandError, match="only admin"):
        run("members", "remove", "reviews", "alice-admin")
    assert not Membership.objects.filter(user__username="walt").exists()


def test_operators_decide_who_creates_projects(make_user):
    user = make_user("sam")
    assert "sam may create projects." in run("site_admin", "sam")
    assert may_create_projects(user)
    assert "sam may not create projects." in run("site_admin", "sam", "--remove")


@pytest.mark.django_db(transaction=True)
def test_every_answer_as_csv(project, people, tmp_path):
    from tests.labeling.test_api_projects import _answers

    _answers(project, people)
    target = tmp_path / "answers.csv"
    run("export_answers", "reviews", "-o", str(target))
    rows = list(csv.DictReader(target.open()))
    assert [(r["label"], r["state"]) for r in rows] == [
        ("package", "current"),
        ("product", "undone"),
        ("", "undo"),
        ("half_body", "current"),
    ]
    assert rows[0]["inspector"] == "ivan-inspector" and rows[0]["time_on_task_ms"] == "1200"
    current = run("export_answers", "reviews", "--state", "current")
    assert len(current.strip().splitlines()) == 3  # header + 2
