"""Celery tasks of the embedding side. Each takes ids, calls one service, and is safe to retry.
Queued through ``labeling.dispatch`` under their registered names."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from labeling import dispatch
from labeling.embeddings.build import space_build
from labeling.embeddings.label_review import label_review_run
from labeling.embeddings.prototypes import prototype_build
from labeling.embeddings.spaces import photo_space_open
from labeling.embeddings.store import owners_embed
from labeling.models import CatalogImage, EmbeddingSpace, Project, SpaceStatus

RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 8,
}


@shared_task(name=dispatch.BUILD_EMBEDDING_SPACE, **RETRY)
def build_embedding_space(space_id: int) -> str:
    space = space_build(space_id=space_id)
    return space.status if space else "missing"


@shared_task(name=dispatch.EMBED_CATALOG, **RETRY)
def embed_catalog_images(project_id: int, catalog_ids: list[int]) -> int:
    """Embed new catalog photos in the photo space (opened if no image was embedded yet),
    where reused photos are looked for, and in the model's spaces (similar-image search shows
    them)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return 0
    photos = list(CatalogImage.objects.filter(project=project, pk__in=catalog_ids))
    spaces = {photo_space_open(project)} | set(
        EmbeddingSpace.objects.filter(
            project=project, status__in=(SpaceStatus.ACTIVE, SpaceStatus.BUILDING)
        )
    )
    return sum(len(owners_embed(space=space, owners=photos)) for space in spaces)


@shared_task(name=dispatch.BUILD_PROTOTYPE, **RETRY)
def build_prototype(prototype_id: int) -> str:
    prototype = prototype_build(prototype_id=prototype_id)
    return prototype.status if prototype else "missing"


@shared_task(name=dispatch.REVIEW_LABELS, **RETRY)
def review_labels(project_id: int) -> dict:
    project = Project.objects.filter(pk=project_id).first()
    return label_review_run(project=project) if project else {}


@shared_task
def review_all_projects() -> int:
    ids = list(Project.objects.filter(active_model__isnull=False).values_list("pk", flat=True))
    for project_id in ids:
        review_labels.delay(project_id)
    return len(ids)


@shared_task
def fill_active_spaces() -> int:
    """Embed what the prediction batches missed (an embedding step that failed)."""
    count = 0
    for space in EmbeddingSpace.objects.filter(status=SpaceStatus.ACTIVE):
        build_embedding_space.delay(space.pk)
        count += 1
    return count
