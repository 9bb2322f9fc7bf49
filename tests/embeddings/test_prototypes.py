"""A label added from a few examples: calibrated by a worker, it routes new images near its
examples (accepted or sent to humans) while the model, which does not know it, routes the rest;
a model trained with the label absorbs it."""

import io

import numpy as np
import pytest
from django.test import Client
from PIL import Image, ImageDraw

from labeling.embeddings.prototypes import prototype_create
from labeling.errors import ServiceError
from labeling.ingest import Upload, item_ingest
from labeling.machine.model_import import model_import, model_import_score
from labeling.machine.promotion import model_promote
from labeling.models import Item, ItemStatus, ModelStatus, Prediction, Prototype
from tests.machine.fixtures import (
    add_shapes,
    install_model,
    shape_png,
    shapes_project,
    train_tiny,
)
from tests.ml.shapes import SHAPES

pytestmark = pytest.mark.django_db


def cross_png(seed: int, size: int = 40, fmt: str = "PNG") -> bytes:
    """The new class: a bright cross on a dark background (the model knows only dark circles,
    squares and triangles on light backgrounds)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 40, 3)))
    draw = ImageDraw.Draw(image)
    c, r = int(rng.integers(14, 26)), int(rng.integers(8, 13))
    colour = tuple(int(v) for v in rng.integers(200, 256, 3))
    draw.rectangle((c - r, c - 3, c + r, c + 3), fill=colour)
    draw.rectangle((c - 3, c - r, c + 3, c + r), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture
def project(db, tiny_checkpoint, settings, run_jobs):
    project = shapes_project(audit_rate=0.0, gold_rate=0.0)
    model = install_model(project, tiny_checkpoint)
    model_promote(model=model)
    run_jobs(add_shapes, project=project, n=45, label_them=True)  # labeled history
    project.refresh_from_db()
    return project


def crosses(n, offset=0):
    return [Upload(f"x{offset + i}.png", cross_png(offset + i)) for i in range(n)]


def test_a_new_label_routes_images_near_its_examples(project, run_jobs):
    prototype = run_jobs(prototype_create, project=project, name="Cross", uploads=crosses(8))
    prototype.refresh_from_db()
    assert prototype.status == "active", prototype.status_reason
    assert prototype.label.name == "cross" and prototype.label.position == 3
    assert 0 <= prototype.accept_distance <= prototype.reject_distance
    examples = Item.objects.filter(pk__in=prototype.examples.values("pk"))
    assert {(i.status, i.final_label.name, i.final_source) for i in examples} == {
        ("labeled", "cross", "expert")
    }
    # New crosses: other drawings, and JPEG copies of the examples (as near as an image gets).
    again = [Upload(f"j{i}.jpg", cross_png(i, fmt="JPEG")) for i in range(4)]
    new = run_jobs(
        item_ingest, project=project, uploads=crosses(10, offset=100) + again
    ).created_ids
    items = Item.objects.filter(pk__in=new).select_related("final_label")
    # The model cannot say "cross": each new cross is accepted as one or goes to humans.
    for item in items:
        assert item.status in (ItemStatus.AUTO_LABELED, ItemStatus.QUEUED)
        if item.status == ItemStatus.AUTO_LABELED:
            assert item.final_label.name == "cross"
    copies = items.filter(original_name__startswith="j")
    assert set(copies.values_list("status", flat=True)) == {ItemStatus.AUTO_LABELED}
    auto = Prediction.objects.filter(item__in=items, decision="auto_labeled").first()
    assert auto.label.name == "cross" and len(auto.probabilities) == 3  # the model's classes
    # Images of the known classes are still routed by the model.
    shapes = run_jobs(add_shapes, project=project, n=9, offset=900)
    assert not Item.objects.filter(pk__in=shapes, final_label__name="cross").exists()


def test_before_calibration_images_go_to_humans(project, run_jobs):
    prototype = prototype_create(project=project, name="cross", uploads=crosses(6))
    assert prototype.status == "pending"  # its build job has not run (no commit yet)
    new = run_jobs(add_shapes, project=project, n=3, offset=700)
    assert set(Item.objects.filter(pk__in=new).values_list("status", flat=True)) == {"queued"}


def test_bad_requests_are_refused_and_lose_nothing(project, people_for):
    with pytest.raises(ServiceError, match="between 5 and 200"):
        prototype_create(project=project, name="cross", uploads=crosses(2))
    with pytest.raises(ServiceError, match="already has a label"):
        prototype_create(project=project, name="circle", uploads=crosses(6))
    bad = [Upload(f"b{i}.png", b"not an image") for i in range(4)] + crosses(2)
    with pytest.raises(ServiceError, match="usable images"):
        prototype_create(project=project, name="cross", uploads=bad)
    assert not project.labels.filter(name="cross").exists()  # all or nothing


def shape_or_cross(label: int, seed: int) -> bytes:
    return cross_png(seed) if label == len(SHAPES) else shape_png(label, seed)


def test_a_model_trained_with_the_label_absorbs_it(project, run_jobs, tmp_path):
    prototype = run_jobs(prototype_create, project=project, name="cross", uploads=crosses(6))
    prototype.refresh_from_db()
    assert prototype.status == "active", prototype.status_reason
    # A model trained elsewhere on all four classes, imported and scored like any other. The
    # gate judges it on the project's held-out shapes only (none is a cross), where it need not
    # beat the active model; then an admin promotes it by hand.
    folder, _ = train_tiny(tmp_path / "model", [*SHAPES, "cross"], shape_or_cross)
    newer = run_jobs(model_import, project=project, checkpoint_dir=folder, queue=False)
    newer = run_jobs(model_import_score, model_version_id=newer.pk)
    assert newer.version == 2 and newer.metrics["class_names"][-1] == "cross"
    if newer.status != ModelStatus.ACTIVE:
        newer = run_jobs(model_promote, model=newer)
    assert newer.status == ModelStatus.ACTIVE
    # New crosses are routed by the model, which knows the label: the prototype is absorbed.
    new = run_jobs(item_ingest, project=project, uploads=crosses(6, offset=300)).created_ids
    prototype.refresh_from_db()
    assert prototype.status == "absorbed" and prototype.status_reason == "learned by model v2"
    predictions = Prediction.objects.filter(item__in=new).select_related("label")
    assert {p.model_version_id for p in predictions} == {newer.pk}
    assert all(len(p.probabilities) == 4 for p in predictions)  # the model's own four classes
    assert {p.label.name for p in predictions} == {"cross"}


def test_the_api_creates_and_lists_prototypes(project, make_user, run_jobs):
    from labeling.access import Role
    from labeling.project_setup import member_add

    admin = make_user("proto-admin", Role.ADMIN)
    member_add(project=project, user=admin)
    client = Client()
    client.force_login(admin)
    files = [io.BytesIO(cross_png(i)) for i in range(6)]
    for i, f in enumerate(files):
        f.name = f"x{i}.png"
    response = run_jobs(
        client.post, path="/api/projects/shapes/prototypes/", data={"name": "cross", "files": files}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["label"] == "cross" and len(body["examples"]) == 6
    listed = client.get("/api/projects/shapes/prototypes/").json()["results"]
    assert listed[0]["status"] == "active"
    detail = client.get(f"/api/projects/shapes/prototypes/{body['id']}/").json()
    assert detail["accept_distance"] <= detail["reject_distance"]
    page = client.get("/p/shapes/prototypes/")
    assert page.status_code == 200 and b"cross" in page.content
    refused = client.post("/api/projects/shapes/prototypes/", {"name": "x", "files": []})
    assert refused.status_code == 400 and Prototype.objects.count() == 1


def test_when_the_embedding_step_fails_humans_decide(project, run_jobs, monkeypatch):
    run_jobs(prototype_create, project=project, name="cross", uploads=crosses(6))

    def broken(**kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("labeling.embeddings.record.embeddings_save", broken)
    new = run_jobs(add_shapes, project=project, n=3, offset=800)
    # No distance, so the cross class cannot be ruled out: nothing is auto-labeled.
    assert set(Item.objects.filter(pk__in=new).values_list("status", flat=True)) == {"queued"}
