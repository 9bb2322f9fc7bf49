"""Manifests: frozen snapshots of final labels in SageMaker Ground Truth's augmented-manifest
JSON Lines form, exported from and imported into projects.

A line looks like::

    {"source-ref": "s3://bucket/items/1/ab/ab….png", "category": 2,
     "category-metadata": {"class-name": "full_body", "confidence": 0.97,
                           "human-annotated": "yes", "creation-date": "2026-11-21T07:00:00",
                           "type": "groundtruth/image-classification", "job-name": "labeling-…"}}

The class index is the label's position in the project's label set. Machine labels are never
exported: a manifest is what humans (consensus, experts) or an earlier import decided.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from labeling.answers import item_finalize
from labeling.ingest import Upload, item_ingest
from labeling.models import Item, ItemSource, Manifest, ManifestKind, Project

HUMAN_SOURCES = (ItemSource.CONSENSUS, ItemSource.EXPERT, ItemSource.IMPORTED)
GT_TYPE = "groundtruth/image-classification"
MAX_LINE_BYTES = 64 * 1024


def source_ref(name: str) -> str:
    """Where an image lives, as Ground Truth names it: ``s3://bucket/key`` on S3 storage, else
    a path relative to the media root."""
    bucket = getattr(settings, "AWS_STORAGE_BUCKET_NAME", None) or _s3_bucket()
    return f"s3://{bucket}/{name}" if bucket else name


def _s3_bucket() -> str | None:
    options = settings.STORAGES["default"].get("OPTIONS", {})
    return options.get("bucket_name")


def manifest_lines(project: Project, *, job_name: str, attribute: str = "category") -> list[dict]:
    labels = list(project.labels.all())
    position = {label.pk: label.position for label in labels}
    names = {label.pk: label.name for label in labels}
    items = (
        Item.objects.filter(
            project=project, final_source__in=HUMAN_SOURCES, final_label__isnull=False
        )
        .order_by("pk")
        .only("pk", "image", "final_label_id", "final_confidence", "finished_at", "updated_at")
    )
    lines = []
    for item in items.iterator(chunk_size=2000):
        created = item.finished_at or item.updated_at
        lines.append(
            {
                "source-ref": source_ref(item.image.name),
                attribute: position[item.final_label_id],
                f"{attribute}-metadata": {
                    "class-name": names[item.final_label_id],
                    "confidence": round(float(item.final_confidence or 1.0), 6),
                    "human-annotated": "yes",
                    "creation-date": created.astimezone(UTC)
                    .replace(tzinfo=None)
                    .isoformat(timespec="seconds"),
                    "type": GT_TYPE,
                    "job-name": job_name,
                },
            }
        )
    return lines


def manifest_export(
    *, project: Project, by: AbstractBaseUser | None = None, attribute: str = "category"
) -> Manifest:
    """Snapshot the project's final human labels into a stored manifest file."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
    job_name = f"{project.slug}-{stamp}"
    lines = manifest_lines(project, job_name=job_name, attribute=attribute)
    body = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
    name = default_storage.save(
        f"manifests/{project.pk}/{job_name}.manifest", ContentFile(body.encode())
    )
    return Manifest.objects.create(
        project=project,
        kind=ManifestKind.EXPORT,
        job_name=job_name,
        label_attribute=attribute,
        file=name,
        line_count=len(lines),
        created_by=by if by and by.is_authenticated else None,
    )


def storage_name(ref: str) -> str:
    """The storage name a source-ref of this service's own manifests points at."""
    return ref.split("://", 1)[1].split("/", 1)[1] if ref.startswith("s3://") else ref


def manifest_labels(manifest: Manifest) -> dict[str, int]:
    """{storage name: class index} of a manifest this service wrote."""
    return {
        storage_name(line["source-ref"]): int(line[manifest.label_attribute])
        for line in manifest_read(manifest)
    }


def manifest_read(manifest: Manifest) -> list[dict]:
    with manifest.file.open("rb") as fh:
        return [json.loads(line) for line in fh.read().decode().splitlines() if line.strip()]


@dataclass
class ImportReport:
    created: int = 0
    relabeled: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    manifest: Manifest | None = None

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "relabeled": self.relabeled,
            "unchanged": self.unchanged,
            "errors": [{"line": n, "error": e} for n, e in self.errors],
            "manifest": self.manifest.pk if self.manifest else None,
        }


class LineError(ValueError):
    pass


def _parse_line(raw: str, labels_by_name: dict, labels_by_pos: dict) -> tuple[str, object, float]:
    if len(raw) > MAX_LINE_BYTES:
        raise LineError("line is longer than 64 KiB")
    try:
        line = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(line, dict):
        raise LineError("expected a JSON object")
    ref = line.get("source-ref")
    if not isinstance(ref, str) or not ref.strip():
        raise LineError("no 'source-ref'")
    meta_keys = [k for k in line if k.endswith("-metadata") and k[: -len("-metadata")] in line]
    if not meta_keys:
        raise LineError("no label attribute with its '-metadata' object")
    attribute = meta_keys[0][: -len("-metadata")]
    meta = line[meta_keys[0]]
    if not isinstance(meta, dict):
        raise LineError(f"'{attribute}-metadata' must be an object")
    class_name = meta.get("class-name")
    index = line[attribute]
    if isinstance(class_name, str) and class_name:
        label = labels_by_name.get(class_name)
        if label is None:
            raise LineError(
                f"unknown class '{class_name}'; "
                f"this project's labels are {', '.join(labels_by_name)}"
            )
        if isinstance(index, int) and not isinstance(index, bool) and index != label.position:
            raise LineError(
                f"class index {index} does not match class '{class_name}' ({label.position})"
            )
    elif isinstance(index, int) and not isinstance(index, bool) and index in labels_by_pos:
        label = labels_by_pos[index]
    else:
        raise LineError(f"unknown class index {index!r} and no 'class-name'")
    confidence = meta.get("confidence", 1.0)
    if (
        not isinstance(confidence, int | float)
        or isinstance(confidence, bool)
        or not 0 <= confidence <= 1
    ):
        raise LineError("'confidence' must be a number between 0 and 1")
    return ref.strip(), label, float(confidence)


def _image_bytes(ref: str, images_dir: Path | None) -> bytes:
    """Find the image a source-ref names: in the given folder (by its file name), else in this
    service's storage (its own exports). Never follows a path outside either."""
    key = ref.split("://", 1)[1].split("/", 1)[1] if ref.startswith("s3://") else ref
    key = key.removeprefix("file://")
    if images_dir is not None:
        candidate = (images_dir / PurePosixPath(key).name).resolve()
        if candidate.is_file() and images_dir.resolve() in candidate.parents:
            return candidate.read_bytes()
    parts = PurePosixPath(key).parts
    if key and ".." not in parts and not key.startswith("/") and default_storage.exists(key):
        with default_storage.open(key, "rb") as fh:
            return fh.read()
    raise LineError(f"image not found for source-ref {ref!r}")


def _counted(lines: list[str], progress: Callable[[int], None] | None):
    """The lines, calling ``progress(1)`` once each line's work is done."""
    for line in lines:
        yield line
        if progress:
            progress(1)


def manifest_import(
    *,
    project: Project,
    content: bytes,
    images_dir: str | Path | None = None,
    by: AbstractBaseUser | None = None,
    file_name: str = "import.manifest",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a Ground Truth manifest: each valid line becomes (or relabels) an item labeled
    with source ``imported``; each bad line is reported with its line number. ``progress`` is
    called with 1 after each line (a progress bar's ``update``)."""
    report = ImportReport()
    labels = list(project.labels.all())
    by_name = {label.name: label for label in labels}
    by_pos = {label.position: label for label in labels}
    folder = Path(images_dir) if images_dir else None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.errors.append((0, "the manifest is not UTF-8 text"))
        return report
    for line_no, raw in enumerate(_counted(text.splitlines(), progress), start=1):
        if not raw.strip():
            continue
        try:
            ref, label, confidence = _parse_line(raw, by_name, by_pos)
            data = _image_bytes(ref, folder)
        except LineError as exc:
            report.errors.append((line_no, str(exc)))
            continue
        with transaction.atomic():
            result = item_ingest(
                project=project,
                uploads=[Upload(PurePosixPath(ref).name, data, {"source-ref": ref})],
                uploader=by,
                queue_prediction=False,
            ).results[0]
            if result.outcome == "rejected":
                report.errors.append((line_no, f"image refused: {result.reason}"))
                continue
            item = Item.objects.select_for_update(of=("self",)).get(pk=result.item_id)
            if item.final_label_id == label.pk and item.final_source in HUMAN_SOURCES:
                report.unchanged += 1
                continue
            if item.final_source in (ItemSource.CONSENSUS, ItemSource.EXPERT):
                report.errors.append(
                    (
                        line_no,
                        f"item {item.pk} already has a human label ({item.final_label}); kept it",
                    )
                )
                continue
            item_finalize(item=item, label=label, source=ItemSource.IMPORTED, confidence=confidence)
            if result.outcome == "created":
                report.created += 1
            else:
                report.relabeled += 1
    stored = default_storage.save(
        f"manifests/{project.pk}/imported-{timezone.now():%Y%m%d-%H%M%S}-{PurePosixPath(file_name).name}",
        ContentFile(content),
    )
    report.manifest = Manifest.objects.create(
        project=project,
        kind=ManifestKind.IMPORT,
        job_name=PurePosixPath(file_name).stem[:200] or "import",
        file=stored,
        line_count=report.created + report.relabeled + report.unchanged,
        created_by=by if by and by.is_authenticated else None,
    )
    return report
