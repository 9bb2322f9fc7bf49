"""``item_ingest``: the one way images enter a project (browser, API and import command)."""

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from labeling.dispatch import prediction_queue
from labeling.errors import project_require_open
from labeling.images import CheckedImage, ImageRejected, image_check
from labeling.models import Item, Project

logger = logging.getLogger(__name__)

MAX_METADATA_BYTES = 8 * 1024

Outcome = Literal["created", "duplicate", "rejected"]


@dataclass(frozen=True)
class StoredImage:
    """An accepted upload's image and thumbnail, saved in storage (names, not files)."""

    image: str
    thumbnail: str

    def delete(self) -> None:
        default_storage.delete(self.image)
        default_storage.delete(self.thumbnail)


def image_store(checked: CheckedImage, *, folder: str, thumbs: str, project_id: int) -> StoredImage:
    """Save a checked image and its thumbnail under ``folder``/``thumbs``. Storage names come
    from the content hash only: nothing a user typed reaches a path."""
    shard = checked.sha256[:2]
    image = default_storage.save(
        f"{folder}/{project_id}/{shard}/{checked.sha256}.{checked.extension}",
        ContentFile(checked.data),
    )
    thumbnail = default_storage.save(
        f"{thumbs}/{project_id}/{shard}/{checked.sha256}.jpg", ContentFile(checked.thumbnail)
    )
    return StoredImage(image, thumbnail)


def image_fields(checked: CheckedImage, stored: StoredImage, name: str) -> dict:
    """The columns an item and a catalog photo share, from the checked upload."""
    return {
        "image": stored.image,
        "thumbnail": stored.thumbnail,
        "sha256": checked.sha256,
        "original_name": name,
        "content_type": checked.content_type,
        "width": checked.width,
        "height": checked.height,
        "byte_size": len(checked.data),
    }


@dataclass
class IngestResult:
    name: str
    outcome: Outcome
    item_id: int | None = None
    reason: str = ""

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "outcome": self.outcome,
            "item_id": self.item_id,
            "reason": self.reason,
        }


@dataclass
class IngestReport:
    results: list[IngestResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def created_ids(self) -> list[int]:
        return [r.item_id for r in self.results if r.outcome == "created" and r.item_id]

    def summary(self) -> dict[str, int]:
        return {o: self.count(o) for o in ("created", "duplicate", "rejected")}


@dataclass(frozen=True)
class Upload:
    """One file to ingest: its name as the user knows it, its bytes (or a file), its metadata."""

    name: str
    content: bytes | BinaryIO
    metadata: Mapping[str, object] | None = None


def _storable(text: str) -> bool:
    """PostgreSQL text and jsonb hold neither NUL characters nor lone surrogates (what Python
    makes of a file name that is not valid UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_name(name: str) -> str:
    """A file name as it can be stored: NULs dropped, broken Unicode replaced."""
    return name.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def metadata_clean(metadata: Mapping[str, object] | None) -> dict:
    """Metadata must be a flat JSON object of reasonable size (review id, review type, …)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ImageRejected("metadata must be a JSON object")
    clean = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise ImageRejected("metadata keys must be non-empty strings")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ImageRejected(f"metadata value for {key!r} must be a string, number or boolean")
        if not _storable(key) or (isinstance(value, str) and not _storable(value)):
            raise ImageRejected(
                f"metadata for {key!r} must be plain text (no NUL characters or broken Unicode)"
            )
        clean[key] = value
    if len(json.dumps(clean)) > MAX_METADATA_BYTES:
        raise ImageRejected(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return clean


def upload_bytes(content: bytes | BinaryIO) -> bytes:
    if isinstance(content, bytes):
        return content
    # Read one byte past the limit so an oversized file is recognised without reading it all.
    data = content.read(settings.IMAGE_MAX_BYTES + 1)
    return data


def _ingest_one(
    project: Project, upload: Upload, uploader: AbstractBaseUser | None
) -> IngestResult:
    name = storable_name(upload.name or "unnamed")[:255]
    try:
        metadata = metadata_clean(upload.metadata)
        data = upload_bytes(upload.content)
        checked = image_check(data)
    except ImageRejected as exc:
        return IngestResult(name, "rejected", reason=str(exc))

    existing = Item.objects.filter(project=project, sha256=checked.sha256).values_list(
        "pk", flat=True
    )
    if existing:
        return IngestResult(
            name, "duplicate", item_id=existing[0], reason=f"same image as item {existing[0]}"
        )

    stored = image_store(checked, folder="items", thumbs="thumbs", project_id=project.pk)
    try:
        with transaction.atomic():
            item = Item.objects.create(
                project=project,
                **image_fields(checked, stored, name),
                metadata=metadata,
                uploaded_by=uploader if uploader and uploader.is_authenticated else None,
            )
    except IntegrityError:
        # Another upload of the same image won the race; keep theirs, drop our copy.
        stored.delete()
        other = Item.objects.filter(project=project, sha256=checked.sha256).values_list(
            "pk", flat=True
        )
        return IngestResult(
            name,
            "duplicate",
            item_id=other[0] if other else None,
            reason="same image uploaded concurrently",
        )
    except Exception:
        stored.delete()
        raise
    return IngestResult(name, "created", item_id=item.pk)


def item_ingest(
    *,
    project: Project,
    uploads: Iterable[Upload],
    uploader: AbstractBaseUser | None = None,
    queue_prediction: bool = True,
) -> IngestReport:
    """Validate, de-duplicate, store and thumbnail each upload; queue the new items for
    prediction once the surrounding transaction commits. A refused file never stops the rest."""
    project_require_open(project)
    report = IngestReport()
    for upload in uploads:
        result = _ingest_one(project, upload, uploader)
        if result.outcome == "rejected":
            logger.info("Refused %s for project %s: %s", result.name, project.slug, result.reason)
        report.results.append(result)

    if queue_prediction and report.created_ids:
        prediction_queue(report.created_ids)
    return report
