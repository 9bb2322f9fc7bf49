"""A model change: the new model's embedding space is built from every image while the old one
serves, then takes over as the label space; the photo space (ImageNet) stays where reused photos
are looked for; vectors of two networks are never compared."""

import pytest
from django.test import Client

from labeling.embeddings.build import space_build
from labeling.embeddings.spaces import space_active
from labeling.ingest import Upload, item_ingest
from labeling.models import (
    Embedding,
    EmbeddingSpace,
    Item,
    ModelStatus,
    Project,
    ReuseMatch,
    SpaceStatus,
)
from tests.embeddings.test_prototypes import cross_png
from tests.machine.fixtures import add_shapes, install_model, shapes_project

pytestmark = pytest.mark.django_db


def test_a_promoted_model_gets_its_own_space_built_from_every_image(
    db, tiny_checkpoint, settings, run_jobs, make_user
):
    project = shapes_project(audit_rate=0.0, gold_rate=0.0)
    first = run_jobs(add_shapes, project=project, n=12)  # no model: ImageNet space
    imagenet = EmbeddingSpace.objects.get(project=project)
    assert imagenet.status == SpaceStatus.ACTIVE and imagenet.model_version is None
    assert Embedding.objects.filter(space=imagenet).count() == 12

    # Imported with 30 labeled held-out shapes to score it on; the project's first model, so the
    # promotion gate promotes it.
    model = install_model(project, tiny_checkpoint)
    assert model.status == ModelStatus.ACTIVE
    assert Project.objects.get(pk=project.pk).active_model_id == model.pk
    # The next batch runs the model: its vectors open the model's space, which is built, not
    # yet used (the build job is queued on commit; here it has not run).
    late = add_shapes(project, 3, offset=50, queue_prediction=False)
    from labeling.machine.predict import items_predict

    items_predict(item_ids=late)
    building = EmbeddingSpace.objects.get(project=project, model_version=model)
    assert building.status == SpaceStatus.BUILDING
    assert EmbeddingSpace.objects.get(pk=imagenet.pk).status == SpaceStatus.ACTIVE

    built = space_build(space_id=building.pk)  # what the worker's job does
    assert built.status == SpaceStatus.ACTIVE
    # The photo space stays, with every image: reused photos are still looked for there.
    assert EmbeddingSpace.objects.get(pk=imagenet.pk).status == SpaceStatus.ACTIVE
    photo_rows = set(Embedding.objects.filter(space=imagenet).values_list("item_id", flat=True))
    # Every image of the project is in the new space: the first batch, the held-out labeled
    # images the import was scored on, and the late batch.
    embedded = set(Embedding.objects.filter(space=built).values_list("item_id", flat=True))
    assert embedded == set(Item.objects.filter(project=project).values_list("pk", flat=True))
    assert len(embedded) == 12 + 30 + 3 and set(first) | set(late) <= embedded
    assert set(first) | set(late) <= photo_rows
    assert Embedding.objects.filter(space=built).first().vector  # the model's own vectors

    # Search runs in the new space, reuse in the photo space.
    admin = make_user("space-admin")
    admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)
    near = client.get(f"/api/projects/shapes/items/{first[0]}/similar/?k=3").json()
    assert len(near["results"]) == 3
    assert space_active(project).pk == built.pk
    again = run_jobs(
        item_ingest,
        project=project,
        uploads=[Upload("copy.jpg", cross_png(1, fmt="JPEG")), Upload("x.png", cross_png(1))],
    ).created_ids
    match = ReuseMatch.objects.get(item_id=max(again))
    assert match.matched_item_id == min(again) and match.space_id == imagenet.pk
    # both new images are in both spaces
    for space in (imagenet, built):
        assert set(again) <= set(
            Embedding.objects.filter(space=space).values_list("item_id", flat=True)
        )
    state = client.get("/api/projects/shapes/embeddings/").json()
    assert state["embedded"] == Item.objects.filter(project=project).count()
    assert sorted((s["status"], tuple(s["used_for"])) for s in state["spaces"]) == [
        ("active", ("reused photos",)),
        ("active", ("similar images", "prototypes")),
    ]

    # A second model's space replaces the first model's, never the photo space.
    second = EmbeddingSpace.objects.create(
        project=project, name="model:second", model_version=model, dim=built.dim
    )
    space_build(space_id=second.pk)
    statuses = dict(EmbeddingSpace.objects.filter(project=project).values_list("pk", "status"))
    assert statuses == {
        imagenet.pk: SpaceStatus.ACTIVE,
        built.pk: SpaceStatus.RETIRED,
        second.pk: SpaceStatus.ACTIVE,
    }
    assert not Embedding.objects.filter(space=built).exists()  # old vectors are dropped


def test_a_project_from_before_photo_spaces_gets_its_photo_space_built(
    db, tiny_checkpoint, settings, run_jobs
):
    # given a project whose ImageNet space was retired when its model's space took over (as
    # every project's was before reuse moved to the photo space)
    project = shapes_project(slug="legacy", audit_rate=0.0, gold_rate=0.0)
    first = run_jobs(add_shapes, project=project, n=6)
    imagenet = EmbeddingSpace.objects.get(project=project)
    install_model(project, tiny_checkpoint)
    from labeling.embeddings.store import owners_embed

    model_space = EmbeddingSpace.objects.create(
        project=project,
        name="model:legacy",
        model_version=project.active_model or Project.objects.get(pk=project.pk).active_model,
        dim=1280,
    )
    owners_embed(space=model_space, owners=list(Item.objects.filter(project=project)))
    EmbeddingSpace.objects.filter(pk=model_space.pk).update(status=SpaceStatus.ACTIVE)
    EmbeddingSpace.objects.filter(pk=imagenet.pk).update(status=SpaceStatus.RETIRED)
    Embedding.objects.filter(space=imagenet).delete()

    # when new photos arrive, one of them a copy of an earlier one
    again = run_jobs(
        item_ingest,
        project=project,
        uploads=[Upload("copy.jpg", cross_png(2, fmt="JPEG")), Upload("y.png", cross_png(2))],
    ).created_ids

    # then the photo space is built again from every image (run_jobs ran the build) and the
    # copy is found there
    imagenet.refresh_from_db()
    assert imagenet.status == SpaceStatus.ACTIVE
    assert set(first) | set(again) <= set(
        Embedding.objects.filter(space=imagenet).values_list("item_id", flat=True)
    )
    match = ReuseMatch.objects.get(item_id=max(again))
    assert match.matched_item_id == min(again) and match.space_id == imagenet.pk


def test_a_crashed_build_resumes_where_it_stopped(db, tiny_checkpoint, settings, run_jobs):
    project = shapes_project(slug="resume", audit_rate=0.0, gold_rate=0.0)
    run_jobs(add_shapes, project=project, n=8)
    model = install_model(project, tiny_checkpoint)  # adds 30 labeled held-out images
    assert model.status == ModelStatus.ACTIVE
    space = EmbeddingSpace.objects.create(
        project=project, name="model:manual", model_version=model, dim=1280
    )
    # Four images embedded before the "crash".
    from labeling.embeddings.store import owners_embed

    half = list(Item.objects.filter(project=project).order_by("pk")[:4])
    before = {row.item_id: row.pk for row in owners_embed(space=space, owners=half)}
    space_build(space_id=space.pk)
    space.refresh_from_db()
    assert space.status == SpaceStatus.ACTIVE
    # Every image of the project is embedded once; the half done before the crash is kept, not
    # embedded again.
    rows = Embedding.objects.filter(space=space)
    every = set(Item.objects.filter(project=project).values_list("pk", flat=True))
    assert len(every) == 8 + 30
    assert sorted(rows.values_list("item_id", flat=True)) == sorted(every)
    assert {r.item_id: r.pk for r in rows.filter(item_id__in=before)} == before


def test_the_web_side_names_the_same_imagenet_backbone_as_the_factory():
    from labeling.embeddings.spaces import IMAGENET_ARCHITECTURE
    from ml.factory import DEFAULT_ARCHITECTURE

    assert IMAGENET_ARCHITECTURE == DEFAULT_ARCHITECTURE
