"""Label-error review: human labels that the model's earlier, confident predictions contradict
go to the recheck queue; an expert's decision keeps or changes the label."""

import numpy as np
import pytest
from django.test import Client

from labeling.answers import item_finalize
from labeling.embeddings.label_review import label_review_run
from labeling.ingest import Upload, item_ingest
from labeling.machine.certification import heldout_labels
from labeling.models import Item, ItemSource, LabelReview, ModelStatus, Prediction
from tests.conftest import image_bytes
from tests.machine.fixtures import add_colours, install_model

pytestmark = pytest.mark.django_db


HELDOUT = 8  # human labels the imported model is scored on


@pytest.fixture
def labeled(project, settings, review_checkpoint):
    """The project's model, imported (scored on the held-out side of 8 labeled colour images)
    and promoted; 120 images it predicted before humans labeled them, 12 of whose human labels
    contradict a prediction more confident than the model usually is for that class."""
    add_colours(project, HELDOUT)
    model = install_model(project, review_checkpoint)
    assert model.status == ModelStatus.ACTIVE
    # The held-out side (fixed per image) of those labels: what the import was scored on.
    held_out = heldout_labels(project).count()
    project.refresh_from_db()
    labels = list(project.labels.all())
    rng = np.random.default_rng(0)
    uploads = [Upload(f"i{i}.png", image_bytes(color=(i, 2 * i % 256, 7))) for i in range(120)]
    ids = item_ingest(project=project, uploads=uploads, queue_prediction=False).created_ids
    wrong = set(ids[::10])
    for n, item in enumerate(Item.objects.filter(pk__in=ids).order_by("pk")):
        truth = n % 4
        top = 0.97 if item.pk in wrong else rng.uniform(0.75, 0.95)
        probs = np.full(4, (1 - top) / 3)
        probs[truth] = top
        Prediction.objects.create(
            item=item,
            model_version=model,
            probabilities=(probs / probs.sum()).round(5).tolist(),
            label=labels[truth],
            confidence=float(probs.max()),
            decision="queued",
        )
        given = labels[(truth + 1) % 4] if item.pk in wrong else labels[truth]
        item_finalize(item=item, label=given, source=ItemSource.CONSENSUS, confidence=0.97)
    return ids, wrong, held_out


def test_contradicted_labels_go_to_the_recheck_queue(project, labeled):
    ids, wrong, held_out = labeled
    result = label_review_run(project=project)
    # Evidence: the 120 earlier predictions and the model's held-out predictions.
    # The 120 earlier predictions, and the imported model's predictions on its held-out labels.
    assert result["checked"] == 120 + held_out
    flagged = set(LabelReview.objects.values_list("item_id", flat=True))
    assert flagged == wrong
    review = LabelReview.objects.first()
    assert review.suggested_probability > 0.9 and review.given_probability < 0.1
    again = label_review_run(project=project)  # nothing flagged twice
    assert again["flagged"] == 0 and LabelReview.objects.count() == len(wrong)


def test_an_expert_keeps_or_changes_the_label(project, people, labeled):
    label_review_run(project=project)
    admin = Client()
    admin.force_login(people["admin"])
    listed = admin.get("/api/projects/reviews/rechecks/").json()["results"]
    assert len(listed) == len(labeled[1])
    first, second = listed[0], listed[1]
    changed = admin.post(
        f"/api/projects/reviews/rechecks/{first['id']}/decide/",
        {"label": first["suggested_label"]},
        content_type="application/json",
    )
    assert changed.status_code == 200 and changed.json()["status"] == "relabeled"
    item = Item.objects.get(pk=first["item"])
    assert (item.final_label.name, item.final_source) == (first["suggested_label"], "expert")
    kept = admin.post(f"/p/reviews/recheck/{second['id']}/decide", {"label": second["given_label"]})
    assert kept.status_code == 302
    assert LabelReview.objects.get(pk=second["id"]).status == "kept"
    twice = admin.post(
        f"/api/projects/reviews/rechecks/{first['id']}/decide/",
        {"label": "package"},
        content_type="application/json",
    )
    assert twice.status_code == 400 and "already decided" in twice.json()["detail"]
    page = admin.get("/p/reviews/recheck/")
    assert page.status_code == 200 and page.content.count(b'class="card" id="review-') == (
        len(labeled[1]) - 2
    )


def test_without_a_model_nothing_is_flagged(project):
    assert label_review_run(project=project)["flagged"] == 0
