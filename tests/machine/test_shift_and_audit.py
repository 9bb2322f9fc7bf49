"""Images unlike the calibration images go to humans and raise a shift alert; a class that fails
the sequential audit pauses, and its recent auto-labels and their credits are taken back.

A real tiny model, imported the way an admin imports one (checked, scored on the project's human
labels, which also fit and calibrate its shift reference), routes real images through the same
service the worker runs."""

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image, ImageFilter, ImageOps

from labeling.access import Role
from labeling.answers import gold_item_add
from labeling.ingest import Upload, item_ingest
from labeling.machine.audit import audit_rates
from labeling.machine.model_import import model_import, model_import_score
from labeling.machine.predict import items_predict, reroutable_items
from labeling.machine.threshold_changes import change_summary
from labeling.models import (
    CreditDecision,
    CreditOutcome,
    Item,
    ItemStatus,
    ModelStatus,
    Prediction,
    PredictionDecision,
    Project,
    ThresholdChange,
)
from labeling.project_setup import member_add
from tests.machine.fixtures import add_shapes, shapes_project
from tests.ml.shapes import SHAPES, shape_image

pytestmark = pytest.mark.django_db(transaction=True)

TARGET = 0.9
REVIEW = {"shape_review": "circle"}  # a circle earns the credit


def shifted_png(label: int, seed: int) -> bytes:
    """The same shapes photographed differently: inverted (dark background), tinted, and small
    on a larger canvas."""
    img = ImageOps.invert(shape_image(SHAPES[label], np.random.default_rng(seed), size=40))
    array = np.asarray(img, dtype=np.float32) * np.array([1.0, 0.55, 0.35])
    canvas = Image.new("RGB", (96, 96), (20, 0, 40))
    canvas.paste(Image.fromarray(array.astype(np.uint8)), (8 + seed % 40, 50 - seed % 30))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def ingest(project, pngs: list[tuple[int, bytes]], offset: int) -> list[int]:
    uploads = [
        Upload(
            f"u{offset + i}.png",
            png,
            {"truth": SHAPES[label], "review_type": "shape_review", "review_id": f"r{offset + i}"},
        )
        for i, (label, png) in enumerate(pngs)
    ]
    return item_ingest(project=project, uploads=uploads, queue_prediction=False).created_ids


def ordinary(project, n: int, offset: int) -> list[int]:
    from tests.machine.fixtures import shape_png

    return ingest(project, [(i % 3, shape_png(i % 3, offset + i)) for i in range(n)], offset)


def _project_with_model(settings, tiny_checkpoint, *, history_random: bool):
    """A project with 600 human labels (a fifth of them held out, fixed per image) and the tiny
    model imported and active. A 5 % level (instead of 1 %) lets the held-out half the shift
    reference is calibrated on (about 60 images) flag anything at all. ``history_random``: the
    labels were routed blind (as before any model), so the held-out ones are evidence, drawn at
    random from the stream."""
    settings.SHIFT_ALPHA = 0.05
    settings.SHIFT_FALSE_ALARM_IMAGES = 10_000
    project = shapes_project(
        audit_rate=0.0,
        gold_rate=0.0,
        threshold_mode=Project.ThresholdMode.MANUAL,
        manual_thresholds=dict.fromkeys(SHAPES, TARGET),
        target_precision=TARGET,
        credit_rules=REVIEW,
    )
    history = add_shapes(project, 600, offset=40_000, label_them=True, queue_prediction=False)
    if history_random:
        Item.objects.filter(pk__in=history).update(routed_blind=True)
    checkpoint, _ = tiny_checkpoint
    model = model_import(project=project, checkpoint_dir=checkpoint, queue=False)
    model = model_import_score(model_version_id=model.pk)
    assert model.status == ModelStatus.ACTIVE, model.status_reason
    assert model.metrics["shift"]["cusum"] is not None
    project.refresh_from_db()
    return project


@pytest.fixture
def project(settings, tiny_checkpoint):
    return _project_with_model(settings, tiny_checkpoint, history_random=False)


def statuses(ids) -> list[str]:
    return list(Item.objects.filter(pk__in=ids).order_by("pk").values_list("status", flat=True))


def test_a_shifted_batch_goes_to_humans_and_raises_the_shift_alert(project, client, make_user):
    usual = ordinary(project, 30, offset=50_000)
    items_predict(item_ids=usual)
    project.refresh_from_db()
    assert statuses(usual).count(ItemStatus.AUTO_LABELED) >= 24
    assert project.shift_alert == {}

    shifted = ingest(project, [(i % 3, shifted_png(i % 3, i)) for i in range(40)], offset=60_000)
    items_predict(item_ids=shifted)

    project.refresh_from_db()
    # Not one shifted photo keeps an auto-label: the unusual ones went straight to humans, and
    # any auto-labeled before the alarm were sent back when it rang.
    assert set(statuses(shifted)) == {ItemStatus.QUEUED}
    predictions = Prediction.objects.filter(item_id__in=shifted)
    assert predictions.filter(unusual=True).count() >= 30
    assert not predictions.filter(decision=PredictionDecision.AUTO_LABELED).exists()
    alert = project.shift_alert
    assert alert and "no longer look like" in alert["message"] and alert["run_odd"] >= 5
    # No machine credit decision stands on a shifted photo: a human decides.
    credits = CreditDecision.objects.filter(item_id__in=shifted)
    assert set(credits.values_list("outcome", flat=True)) == {CreditOutcome.PENDING}
    # Nor are they auto-labeled later by a threshold change or a new model's re-routing.
    assert not reroutable_items(project).filter(pk__in=shifted).exists()

    # While the alert stands, even ordinary images go to humans.
    later = ordinary(project, 9, offset=70_000)
    items_predict(item_ids=later)
    assert set(statuses(later)) == {ItemStatus.QUEUED}

    # The alert is visible: project page, thresholds page, API.
    admin = make_user("ada-admin", Role.ADMIN)
    member_add(project=project, user=admin)
    client.force_login(admin)
    assert "incoming images changed" in client.get(reverse("project", args=[project.slug])).text
    page = client.get(reverse("thresholds", args=[project.slug])).text
    assert "Resume auto-labeling" in page
    # Its held-out labels came from nowhere random, so there is nothing to compare windows with.
    assert "too few (200 needed) to compare new images with as a group" in page
    api = client.get(reverse("api-thresholds", args=[project.slug])).json()
    assert api["shift"]["alert"]["model_version"] == 1 and api["shift"]["checking"]

    # The admin resumes through the API: recorded, and every class audited more for a while.
    response = client.post(
        reverse("api-thresholds-resume", args=[project.slug]),
        {"shift": True},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["shift"]["alert"] is None
    change = ThresholdChange.objects.get(project=project)
    assert "resumed after a shift alert" in change_summary(change.before, change.after)
    project.refresh_from_db()
    rates = audit_rates(project=project, model_version_id=project.active_model_id)
    assert set(rates.values()) == {0.25}
    again = ordinary(project, 12, offset=80_000)
    items_predict(item_ids=again)
    assert ItemStatus.AUTO_LABELED in statuses(again)


def test_a_paused_class_sends_its_recent_auto_labels_back_and_reopens_their_credits(project):
    first = ordinary(project, 24, offset=90_000)
    items_predict(item_ids=first)
    circles = list(
        Item.objects.filter(
            pk__in=first, status=ItemStatus.AUTO_LABELED, final_label__name="circle"
        ).values_list("pk", flat=True)
    )
    others = list(
        Item.objects.filter(pk__in=first, status=ItemStatus.AUTO_LABELED)
        .exclude(pk__in=circles)
        .values_list("pk", flat=True)
    )
    assert len(circles) >= 5 and others
    granted = CreditDecision.objects.filter(item_id__in=circles)
    assert set(granted.values_list("outcome", flat=True)) == {CreditOutcome.GRANTED}

    # Audit everything now; the experts find the machine's circles are squares.
    Project.objects.filter(pk=project.pk).update(audit_rate=1.0)
    audited = ordinary(project, 18, offset=95_000)
    items_predict(item_ids=audited)
    audit_circles = Item.objects.filter(
        pk__in=audited, is_audit=True, predictions__label__name="circle"
    ).order_by("pk")
    square = project.labels.get(name="square")
    decided = 0
    for item in audit_circles:
        project.refresh_from_db()
        if "circle" in project.autolabel_paused:
            break
        gold_item_add(item=item, label=square)
        decided += 1

    project.refresh_from_db()
    pause = project.autolabel_paused.get("circle")
    # Clearly below target: paused after a handful of audits, not the 20 the old rule waited for.
    assert pause is not None and decided <= 5 and pause["audited"] == decided
    # Every circle auto-label given since the last audit point that passed (here: since the
    # model went live) is back with the humans, and the credits decided on them are reopened.
    assert pause["rechecked"] == len(circles)
    assert set(statuses(circles)) == {ItemStatus.QUEUED}
    assert not Item.objects.filter(pk__in=circles, final_label__isnull=False).exists()
    assert set(
        Prediction.objects.filter(item_id__in=circles).values_list("decision", flat=True)
    ) == {PredictionDecision.RECHECK}
    reopened = CreditDecision.objects.filter(item_id__in=circles)
    assert set(reopened.values_list("outcome", flat=True)) == {CreditOutcome.PENDING}
    assert all(c.reopened_at and "failed the live audit" in c.reopen_reason for c in reopened)
    assert pause["credits_reopened"] == len(circles)
    # Other classes keep their labels.
    assert set(statuses(others)) == {ItemStatus.AUTO_LABELED}
    # The rechecked images wait for inspectors; re-routing does not auto-label them again.
    assert not reroutable_items(project).filter(pk__in=circles).exists()


def softened_png(label: int, seed: int) -> bytes:
    """The same shapes, slightly out of focus and saved as a low-quality JPEG: every photo a
    little different, none of them strange on its own."""
    img = shape_image(SHAPES[label], np.random.default_rng(seed), size=40)
    buffer = io.BytesIO()
    img.filter(ImageFilter.GaussianBlur(0.8)).save(buffer, "JPEG", quality=15)
    return buffer.getvalue()


@pytest.fixture
def evidence_project(settings, tiny_checkpoint, monkeypatch):
    """``project`` with its labeled history drawn at random from the stream, so its held-out
    half calibrates the window test: windows of 40 images, at least 40 random calibration
    images (instead of 250 and 200, for a test-sized history)."""
    monkeypatch.setattr("ml.shift.MIN_WINDOW_CALIBRATION", 40)
    settings.SHIFT_WINDOW = 40
    project = _project_with_model(settings, tiny_checkpoint, history_random=True)
    assert project.active_model.metrics["shift"]["window"]["size"] == 40
    return project


def test_a_mild_shift_in_every_photo_raises_the_alert_after_one_window(
    evidence_project, client, make_user
):
    project = evidence_project
    usual = ordinary(project, 80, offset=50_000)
    items_predict(item_ids=usual)
    project.refresh_from_db()
    assert project.shift_alert == {}
    assert statuses(usual).count(ItemStatus.AUTO_LABELED) >= 60
    assert project.shift_monitor["window"]["windows"] == 2

    soft = ingest(project, [(i % 3, softened_png(i % 3, i)) for i in range(40)], offset=60_000)
    items_predict(item_ids=soft)
    project.refresh_from_db()
    predictions = Prediction.objects.filter(item_id__in=soft)
    alert = project.shift_alert
    assert alert and alert["detector"] == "window", project.shift_monitor
    assert "as a group" in alert["message"]
    # Few of them were unusual alone, so most were auto-labeled when they arrived; the alarm
    # sent every auto-label of the window back to humans, with its credit reopened.
    assert predictions.filter(unusual=True).count() <= 20
    assert alert["rechecked"] >= 10
    assert set(statuses(soft)) == {ItemStatus.QUEUED}
    assert set(
        CreditDecision.objects.filter(item_id__in=soft).values_list("outcome", flat=True)
    ) == {CreditOutcome.PENDING}
    # The ordinary images before the window keep their labels.
    assert statuses(usual).count(ItemStatus.AUTO_LABELED) >= 60

    admin = make_user("ada-admin", Role.ADMIN)
    member_add(project=project, user=admin)
    client.force_login(admin)
    page = client.get(reverse("thresholds", args=[project.slug])).text
    assert "as a group" in page and "Every 40 new images are also compared" in page


def test_a_re_routed_queue_does_not_feed_the_drift_monitors(evidence_project):
    """A newly promoted model re-routes the queue: images the last model was unsure of, not a
    random draw from the stream, so only an image's first routing is counted."""
    project = evidence_project
    soft = ingest(project, [(i % 3, softened_png(i % 3, i)) for i in range(30)], offset=61_000)
    items_predict(item_ids=soft)
    project.refresh_from_db()
    counted = (project.shift_monitor["window"]["count"], project.shift_monitor["state"]["seen"])
    assert counted == (30, 30) and not project.shift_alert
    # As a new model would find them: queued, with no prediction of its own.
    Item.objects.filter(pk__in=soft).update(status=ItemStatus.QUEUED)
    Prediction.objects.filter(item_id__in=soft).delete()
    items_predict(item_ids=soft, reroute=True)
    project.refresh_from_db()
    monitor = project.shift_monitor
    assert (monitor["window"]["count"], monitor["state"]["seen"]) == counted
    assert not project.shift_alert


def test_the_look_back_reaches_the_suspicious_window_before_the_alarm(evidence_project):
    """A change that begins mid-window moves that window too little to alarm; the next window
    alarms, and the auto-labels of the half-changed window go back to humans as well."""
    project = evidence_project
    usual = ordinary(project, 80, offset=50_000)
    items_predict(item_ids=usual)
    before = ordinary(project, 20, offset=52_000)
    changed = ingest(
        project, [(i % 3, softened_png(i % 3, 500 + i)) for i in range(20)], offset=62_000
    )
    items_predict(item_ids=before + changed)
    project.refresh_from_db()
    assert project.shift_alert == {}
    last = project.shift_monitor["window"]["last"]
    assert last["level"] < min(last["feature_z"], last["image_z"]) <= -2.0, last
    assert statuses(changed).count(ItemStatus.AUTO_LABELED) >= 10

    soft = ingest(project, [(i % 3, softened_png(i % 3, i)) for i in range(40)], offset=60_000)
    items_predict(item_ids=soft)
    project.refresh_from_db()
    assert project.shift_alert["detector"] == "window"
    assert set(statuses(changed + soft)) == {ItemStatus.QUEUED}
    assert set(
        CreditDecision.objects.filter(item_id__in=changed).values_list("outcome", flat=True)
    ) == {CreditOutcome.PENDING}
    # The look-back starts at the suspicious window: the ordinary windows before keep theirs.
    assert statuses(usual).count(ItemStatus.AUTO_LABELED) >= 60
