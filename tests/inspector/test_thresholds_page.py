"""The threshold tuning page and the thresholds API: who may see and save, validation, the
recorded change, and what saving does to the waiting queue."""

import pytest
from django.urls import reverse

from labeling.access import Role
from labeling.answers import item_finalize
from labeling.machine.certification import heldout_labels
from labeling.machine.predict import items_predict
from labeling.machine.threshold_tuning import threshold_preview
from labeling.models import Item, ItemSource, ItemStatus, Project, ThresholdChange
from labeling.project_setup import member_add
from tests.machine.fixtures import (
    add_shapes,
    install_model,
    shapes_project,
    tiny_checkpoint,  # noqa: F401
)

pytestmark = pytest.mark.django_db

NEVER = {"circle": None, "square": None, "triangle": None}
# With three classes the top confidence is ≥ 1/3: at a target of 0.34 (thresholds are never
# below the target precision) these thresholds auto-label practically every image.
LAX = 0.34
ALWAYS = {"circle": LAX, "square": LAX, "triangle": LAX}


def page_url(slug="reviews"):
    return reverse("thresholds", args=[slug])


def api_url(slug="reviews"):
    return reverse("api-thresholds", args=[slug])


def preview_url(slug="reviews"):
    return reverse("api-thresholds-preview", args=[slug])


# --- who may do what -------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [("admin", 200), ("inspector", 403), ("manager", 403)])
def test_only_admins_see_the_page(client, people, role, status):
    client.force_login(people[role])
    assert client.get(page_url()).status_code == status


def test_outsiders_get_404_and_anonymous_users_log_in(client, people):
    client.force_login(people["outsider"])
    assert client.get(page_url()).status_code == 404
    assert client.post(page_url(), {"mode": "manual"}).status_code == 404
    assert client.post(reverse("thresholds-resume", args=["reviews"])).status_code == 404
    client.logout()
    response = client.get(page_url())
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_wrong_methods_are_refused(client, people):
    client.force_login(people["admin"])
    assert client.put(page_url()).status_code == 405
    assert client.get(reverse("thresholds-resume", args=["reviews"])).status_code == 405
    assert client.delete(api_url()).status_code == 405
    assert client.get(preview_url()).status_code == 405


def test_the_project_page_links_admins_here(client, people):
    client.force_login(people["admin"])
    page = client.get(reverse("project", args=["reviews"])).content.decode()
    assert (
        f'href="{page_url()}"' in page and f'href="{reverse("models", args=["reviews"])}"' in page
    )
    client.force_login(people["manager"])
    assert page_url() not in client.get(reverse("project", args=["reviews"])).content.decode()


def test_without_a_model_the_page_says_so(client, people):
    client.force_login(people["admin"])
    response = client.get(page_url())
    assert b"No active model" in response.content
    assert b"curve-chart" not in response.content
    # Every class is listed with the reason it has no derived threshold.
    for name in ("package", "product", "full_body", "half_body"):
        assert f'data-class="{name}"'.encode() in response.content


@pytest.mark.parametrize(
    ("role", "get", "put", "preview"),
    [
        ("admin", 200, 200, 200),
        ("manager", 200, 403, 403),
        ("inspector", 403, 403, 403),
        ("outsider", 404, 404, 404),
    ],
)
def test_api_permissions(client, people, role, get, put, preview):
    client.force_login(people[role])
    body = {"target_precision": 0.95}
    assert client.get(api_url()).status_code == get
    assert client.put(api_url(), body, content_type="application/json").status_code == put
    assert client.post(preview_url(), body, content_type="application/json").status_code == preview


def test_api_refuses_anonymous_callers(client, project):
    assert client.get(api_url()).status_code in (401, 403)
    assert client.post(preview_url(), {}, content_type="application/json").status_code in (
        401,
        403,
    )


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"target_precision": 1.0}, "target_precision", "between 0 and 1"),
        ({"target_precision": 0}, "target_precision", "between 0 and 1"),
        ({"threshold_confidence": 1.2}, "threshold_confidence", "between 0 and 1"),
        ({"mode": "sometimes"}, "mode", "valid choice"),
        ({"manual_thresholds": {"product": 1.5}}, "manual_thresholds", "1"),
        ({"manual_thresholds": {"shoe": 0.9}}, "manual_thresholds", "package, product"),
    ],
)
def test_invalid_settings_are_refused_with_the_reason(client, people, body, field, words):
    client.force_login(people["admin"])
    for response in (
        client.put(api_url(), body, content_type="application/json"),
        client.post(preview_url(), body, content_type="application/json"),
    ):
        assert response.status_code == 400
        assert words in str(response.json()[field])
    assert not ThresholdChange.objects.exists()


def test_unknown_label_names_list_the_valid_ones(client, people):
    client.force_login(people["admin"])
    response = client.put(
        api_url(), {"manual_thresholds": {"shoe": 0.9}}, content_type="application/json"
    )
    assert response.json() == {
        "manual_thresholds": [
            "Unknown label shoe; the labels are package, product, full_body, half_body."
        ]
    }


def test_page_form_with_text_for_a_number_shows_a_message(client, people, project):
    client.force_login(people["admin"])
    response = client.post(page_url(), {"mode": "target", "target_precision": "lots"}, follow=True)
    assert "Target precision must be a number" in response.content.decode()
    project.refresh_from_db()
    assert project.target_precision == 0.98


# --- saving ----------------------------------------------------------------------------------


def test_saving_records_who_changed_what_and_the_page_lists_it(client, people, project):
    client.force_login(people["admin"])
    response = client.post(
        page_url(),
        {
            "mode": "manual",
            "target_precision": "0.85",
            "threshold_confidence": "0.95",
            "manual_package": "0.9",
            "manual_product": "",
            "manual_full_body": "0.85",
            "manual_half_body": "",
        },
        follow=True,
    )
    assert "Thresholds saved" in response.content.decode()
    project.refresh_from_db()
    assert project.threshold_mode == Project.ThresholdMode.MANUAL
    assert project.manual_thresholds == {
        "package": 0.9,
        "product": None,
        "full_body": 0.85,
        "half_body": None,
    }
    change = ThresholdChange.objects.get(project=project)
    assert change.changed_by == people["admin"]
    assert change.before["mode"] == "target" and change.after["mode"] == "manual"
    assert change.after["thresholds"]["package"] == 0.9
    page = client.get(page_url()).content.decode()
    assert "mode target → manual" in page and "alice-admin" in page
    # The same setting again changes nothing and records nothing.
    client.post(
        page_url(),
        {
            "mode": "manual",
            "manual_package": "0.9",
            "manual_full_body": "0.85",
        },
    )
    assert ThresholdChange.objects.count() == 1


def test_a_manual_threshold_below_the_target_precision_is_refused(client, people, project):
    # A calibrated confidence under the target is never an auto-label: the page and the API
    # refuse such a setting and say which classes and why; nothing is saved.
    client.force_login(people["admin"])
    response = client.post(
        page_url(),
        {"mode": "manual", "target_precision": "0.95", "manual_package": "0.5"},
        follow=True,
    )
    page = response.content.decode()
    assert "Below the target precision 0.95: package (0.5)" in page
    api = client.put(
        api_url(),
        {"mode": "manual", "target_precision": 0.95, "manual_thresholds": {"product": 0.9}},
        content_type="application/json",
    )
    assert api.status_code == 400
    assert "product (0.9)" in str(api.json())
    project.refresh_from_db()
    assert project.threshold_mode == Project.ThresholdMode.TARGET
    assert not ThresholdChange.objects.exists()
    # At or above the target it is saved.
    ok = client.put(
        api_url(),
        {"mode": "manual", "target_precision": 0.95, "manual_thresholds": {"product": 0.95}},
        content_type="application/json",
    )
    assert ok.status_code == 200 and ok.json()["manual_thresholds"]["product"] == 0.95


def test_api_put_keeps_fields_left_out(client, people, project):
    client.force_login(people["admin"])
    response = client.put(api_url(), {"target_precision": 0.9}, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["changed"] is True and body["target_precision"] == 0.9
    assert body["threshold_confidence"] == 0.95 and body["mode"] == "target"
    assert [c["name"] for c in body["classes"]] == ["package", "product", "full_body", "half_body"]
    assert body["changes"][0]["by"] == "alice-admin"
    assert client.get(api_url()).json()["target_precision"] == 0.9


def test_resuming_a_paused_class_records_it(client, people, project):
    project.autolabel_paused = {"product": {"since": "2025-01-01T00:00:00", "precision": 0.8}}
    project.save()
    client.force_login(people["admin"])
    assert b"Resume" in client.get(page_url()).content
    response = client.post(
        reverse("thresholds-resume", args=["reviews"]), {"label": "product"}, follow=True
    )
    assert "Auto-labeling of product resumed" in response.content.decode()
    project.refresh_from_db()
    assert project.autolabel_paused == {}
    change = ThresholdChange.objects.get(project=project)
    assert change.before["paused"] == ["product"] and change.after["paused"] == []
    again = client.post(
        reverse("thresholds-resume", args=["reviews"]), {"label": "product"}, follow=True
    )
    assert "is not paused" in again.content.decode()


# --- with a model: curve, preview, re-routing ------------------------------------------------


@pytest.fixture
def shapes(db, make_user):
    project = shapes_project(audit_rate=0.0, gold_rate=0.0)
    admin = make_user("ada-admin", Role.ADMIN)
    manager = make_user("max-manager", Role.MANAGER)
    for user in (admin, manager):
        member_add(project=project, user=user)
    return project, admin


@pytest.fixture
def queued(shapes, tiny_checkpoint, django_capture_on_commit_callbacks):  # noqa: F811
    """An active tiny model that auto-labels nothing, and six images it predicted, queued."""
    project, _admin = shapes
    project.threshold_mode = Project.ThresholdMode.MANUAL
    project.manual_thresholds = NEVER
    project.save()
    with django_capture_on_commit_callbacks(execute=True):
        # Imported, scored on the held-out side (about a fifth) of 150 labels; the first model
        # is promoted.
        model = install_model(project, tiny_checkpoint, heldout=150)
    assert model.status == "active"
    ids = add_shapes(project, 6, offset=700, queue_prediction=False)
    items_predict(item_ids=ids)
    project.refresh_from_db()
    assert set(Item.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"queued"}
    return ids


def test_lowering_a_manual_threshold_reroutes_the_queue(
    client, shapes, queued, django_capture_on_commit_callbacks
):
    project, admin = shapes
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.put(
            api_url("shapes"),
            {"mode": "manual", "manual_thresholds": ALWAYS, "target_precision": LAX},
            content_type="application/json",
        )
    assert response.status_code == 200
    assert response.json()["rerouted"] == 6
    items = Item.objects.filter(pk__in=queued)
    assert {i.status for i in items} == {ItemStatus.AUTO_LABELED}
    assert {i.final_source for i in items} == {"machine"}
    change = ThresholdChange.objects.get(project=project)
    assert change.before["thresholds"] == NEVER and change.after["thresholds"] == ALWAYS


def calibrate(project, n: int) -> list[int]:
    """``n`` images the active model predicted, drawn for the calibration share and labeled."""
    ids = add_shapes(project, n, offset=900, queue_prediction=False)
    Item.objects.filter(pk__in=ids).update(is_calibration=True)
    items_predict(item_ids=ids)
    labels = {label.name: label for label in project.labels.all()}
    for item in Item.objects.filter(pk__in=ids):
        item_finalize(
            item=item,
            label=labels[item.metadata["truth"]],
            source=ItemSource.CONSENSUS,
            confidence=0.99,
        )
    return ids


def test_preview_counts_follow_the_setting(client, shapes, queued, settings):
    project, admin = shapes
    client.force_login(admin)

    def preview(body):
        response = client.post(preview_url("shapes"), body, content_type="application/json")
        assert response.status_code == 200
        return response.json()

    none = preview({"mode": "manual", "manual_thresholds": NEVER})
    assert (none["queued"], none["auto_label"], none["expected_errors_calibrated"]) == (6, 0, 0)
    every = preview({"mode": "manual", "manual_thresholds": ALWAYS, "target_precision": LAX})
    assert every["auto_label"] == 6
    assert 0 < every["expected_errors_calibrated"] < 6
    # The held-out side of the labels the import was scored on (fixed per image).
    held_out = heldout_labels(project).count()
    assert every["heldout"]["n"] == held_out and every["heldout"]["coverage"] == 1.0
    assert every["expected_errors_heldout"] is not None
    assert sum(row["auto_label"] for row in every["per_class"]) == 6
    # Target mode certifies on the calibration sample: without one, nothing is certified.
    settings.THRESHOLD_MIN_SUPPORT = 1
    lax = preview({"mode": "target", "target_precision": 0.34, "threshold_confidence": 0.5})
    assert lax["auto_label"] == 0
    # With 30 calibration labels (images the model predicted, sent to humans at random), a lax
    # target derives thresholds, a strict one cannot be shown on 30 images.
    calibrate(project, 30)
    lax = preview({"mode": "target", "target_precision": 0.34, "threshold_confidence": 0.5})
    strict = preview({"mode": "target", "target_precision": 0.99, "threshold_confidence": 0.95})
    assert lax["auto_label"] > strict["auto_label"] == 0
    # Nothing was saved by previewing.
    project.refresh_from_db()
    assert project.manual_thresholds == NEVER and not ThresholdChange.objects.exists()


def test_paused_classes_are_never_auto_labeled_in_the_preview(shapes, queued):
    project, _admin = shapes
    project.autolabel_paused = {name: {} for name in ALWAYS}
    project.save()
    outcome = threshold_preview(
        project=project, mode="manual", manual_thresholds=ALWAYS, target_precision=LAX
    )
    assert outcome["auto_label"] == 0
    assert set(outcome["thresholds"].values()) == {None}


def test_the_page_draws_the_curve_and_per_class_reasons(client, shapes, queued):
    project, admin = shapes
    client.force_login(admin)
    response = client.get(page_url("shapes"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "curve-chart" in page and "chart.umd.min.js" in page
    curve = response.context["curve"]
    assert curve["model"] == 1 and curve["heldout"]["n"] == heldout_labels(project).count()
    assert len(curve["heldout"]["overall"]) > 2
    assert set(curve["heldout"]["per_class"]) == {"circle", "square", "triangle"}
    assert curve["audit"] is None  # no audited images decided yet
    # A few held-out images per class: too few for the default guarantee. Each class
    # says why, and how many more held-out images it needs.
    # No calibration image is labeled yet, so nothing is certified: each class says so.
    assert "no calibration items labeled yet" in page
    rows = response.context["classes"]
    assert all(row["needed"] and row["needed"] > 0 for row in rows)
    assert "Needs at least" in page
    assert response.context["preview"]["queued"] == 6


def test_managers_read_the_thresholds_of_a_project_with_a_model(client, shapes, queued):
    project, _admin = shapes
    client.force_login(project.members.get(username="max-manager"))
    body = client.get(api_url("shapes")).json()
    assert body["model"] == 1 and body["mode"] == "manual"
    assert {c["name"]: c["in_force"] for c in body["classes"]} == NEVER


# --- scope and calibration share -----------------------------------------------------------


def test_scope_and_calibration_share_are_saved_recorded_and_validated(client, shapes, queued):
    project, admin = shapes
    client.force_login(admin)
    response = client.put(
        api_url("shapes"),
        {"mode": "target", "scope": "overall", "calibration_share": 0.1},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["scope"], body["calibration_share"]) == ("overall", 0.1)
    project.refresh_from_db()
    assert (project.threshold_scope, project.calibration_share) == ("overall", 0.1)
    summary = ThresholdChange.objects.get(project=project).after
    assert summary["scope"] == "overall" and summary["calibration_share"] == 0.1
    for bad, field in (
        ({"scope": "some"}, "scope"),
        ({"calibration_share": 1.0}, "calibration_share"),
    ):
        refused = client.put(api_url("shapes"), bad, content_type="application/json")
        assert refused.status_code == 400 and field in refused.json()


def test_the_page_shows_both_guarantee_curves_and_what_the_share_costs(
    client, shapes, queued, settings
):
    project, admin = shapes
    settings.THRESHOLD_MIN_SUPPORT = 1
    calibrate(project, 30)
    client.force_login(admin)
    response = client.get(page_url("shapes"))
    page = response.content.decode()
    assert 'id="guarantee-chart"' in page and 'name="scope"' in page
    guarantee = response.context["curve"]["guarantee"]
    assert guarantee["n"] == 30
    # the overall guarantee certifies at least as much of the sample as the per-class one
    for per_class, overall in zip(guarantee["per_class"], guarantee["overall"], strict=True):
        assert overall["coverage"] >= per_class["coverage"]
    # the cost follows the share being previewed: twice the share, twice the answers
    cost = response.context["calibration"]["cost"]
    doubled = client.post(
        preview_url("shapes"),
        {"calibration_share": 2 * project.calibration_share or 0.1},
        content_type="application/json",
    ).json()["calibration_cost"]
    assert doubled["share"] == (2 * project.calibration_share or 0.1)
    assert doubled["answers_per_1000_images"] >= cost["answers_per_1000_images"]
    assert "per 1,000 images" in page
