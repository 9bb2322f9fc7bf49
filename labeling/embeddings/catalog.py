"""The shop's catalog: product photos a reused review photo is matched against. They are
stored and embedded like items but never queued, predicted or labeled."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from labeling.dispatch import EMBED_CATALOG, job_queue
from labeling.images import ImageRejected, image_check
from labeling.ingest import (
    IngestReport,
    IngestResult,
    Upload,
    image_fields,
    image_store,
    storable_name,
    upload_bytes,
)
from labeling.models import CatalogImage, Project


def _catalog_one(project: Project, upload: Upload, by) -> IngestResult:
    name = storable_name(upload.name or "unnamed")[:255]
    try:
        checked = image_check(upload_bytes(upload.content))
    except ImageRejected as exc:
        return IngestResult(name, "rejected", reason=str(exc))
    existing = CatalogImage.objects.filter(project=project, sha256=checked.sha256).first()
    if existing:
        return IngestResult(
            name, "duplicate", item_id=existing.pk, reason=f"same as catalog photo {existing.pk}"
        )
    stored = image_store(checked, folder="catalog", thumbs="catalog-thumbs", project_id=project.pk)
    try:
        with transaction.atomic():
            photo = CatalogImage.objects.create(
                project=project,
                **image_fields(checked, stored, name),
                uploaded_by=by if by is not None and by.is_authenticated else None,
            )
    except IntegrityError:
        stored.delete()
        return IngestResult(name, "duplicate", reason="same photo uploaded concurrently")
    return IngestResult(name, "created", item_id=photo.pk)


def catalog_upload(
    *, project: Project, uploads: Iterable[Upload], by: AbstractBaseUser | None = None
) -> IngestReport:
    """Store catalog photos (validated like any upload) and queue their embedding."""
    report = IngestReport()
    for upload in uploads:
        report.results.append(_catalog_one(project, upload, by))
    if report.created_ids:
        job_queue(EMBED_CATALOG, project.pk, report.created_ids)
    return report


def catalog_delete(*, project: Project, catalog_id: int) -> bool:
    photo = CatalogImage.objects.filter(project=project, pk=catalog_id).first()
    if photo is None:
        return False
    image, thumb = photo.image.name, photo.thumbnail.name
    photo.delete()  # its embeddings and matches go with it
    transaction.on_commit(lambda: (default_storage.delete(image), default_storage.delete(thumb)))
    return True
