"""Bring a model trained elsewhere (a GPU machine, say) into a project.

A checkpoint written by ``ml.training.train`` (``config.json`` + ``model.pt``) is checked against
the project before anything is stored: it must load (weights matching their recorded hash and the
architecture), be calibrated (a temperature), and name the project's labels in the project's
order. It is then copied under ``MODEL_ROOT`` as the project's next version and scored in a
worker on the project's held-out human labels, exactly as a version trained here is: the
held-out probabilities are saved beside it and its metrics come from them, its thresholds are
certified on the project's calibration evidence (``labeling.machine.certification``), and the
same promotion gate decides whether it replaces the active model.

Its own ``config.json`` thresholds and metrics are kept for reference only: they were measured on
someone else's validation images, and the guarantee is only as good as its calibration sample.
"""

import io
import logging
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from labeling.dispatch import SCORE_IMPORTED_MODEL, job_queue
from labeling.errors import ServiceError
from labeling.machine.certification import evidence_ids, heldout_labels, model_certify
from labeling.machine.predictors import class_names_mismatch, heldout_save
from labeling.machine.promotion import promotion_gate
from labeling.models import Item, ModelStatus, ModelVersion, Project
from ml.checkpoint_files import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, read_config
from ml.evaluation import evaluation_metrics, jsonable

logger = logging.getLogger(__name__)

CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE)


class ModelImportRefused(ServiceError):
    status, code = 400, "model_import_refused"


class ModelImportBusy(ModelImportRefused):
    status, code = 409, "model_import_busy"


def _check(project: Project, directory: Path) -> dict:
    """The checkpoint's config, or a refusal that says what is wrong with it."""
    try:
        config = read_config(directory)
    except (CheckpointError, ValueError) as exc:
        raise ModelImportRefused(
            f"Not a checkpoint written by ml.training.train: {exc}".replace(str(directory), "")
        ) from exc
    if not (directory / WEIGHTS_FILE).is_file():
        raise ModelImportRefused(f"The checkpoint has {CONFIG_FILE} but no {WEIGHTS_FILE}.")
    names = config.get("class_names")
    if not isinstance(names, list) or not names:
        raise ModelImportRefused(f"{CONFIG_FILE} names no classes (class_names).")
    mismatch = class_names_mismatch(project, names)
    if mismatch:
        raise ModelImportRefused(f"This model does not fit the project: {mismatch}.")
    temperature = config.get("temperature")
    if not isinstance(temperature, int | float) or not temperature > 0:
        raise ModelImportRefused(
            "The checkpoint is not calibrated (no temperature in config.json); ml.training.train "
            "calibrates every model it writes."
        )
    from ml.inference import Predictor  # imports torch: only where a model is loaded

    try:
        Predictor.load(directory, num_threads=settings.INFERENCE_THREADS)
    except Exception as exc:  # a wrong architecture, shapes or a corrupt file all end here
        raise ModelImportRefused(
            f"The checkpoint does not load: {type(exc).__name__}: {exc}".replace(
                str(directory), ""
            )[:600]
        ) from exc
    return config


def _next_version(project: Project) -> int:
    return (ModelVersion.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0) + 1


def model_import(
    *,
    project: Project,
    checkpoint_dir: Path,
    by: AbstractBaseUser | None = None,
    queue: bool = True,
) -> ModelVersion:
    """Check the checkpoint in ``checkpoint_dir`` against ``project``, copy it in as the next
    version (status ``training`` while it is scored) and queue its scoring; with ``queue=False``
    the caller runs :func:`model_import_score` itself (the import command does)."""
    checkpoint_dir = Path(checkpoint_dir)
    if project.labels.count() < 2:
        raise ModelImportRefused("The project needs at least two labels before a model fits it.")
    config = _check(project, checkpoint_dir)
    running = ModelVersion.objects.filter(project=project, status=ModelStatus.TRAINING).first()
    if running:
        raise ModelImportBusy(
            f"Model v{running.version} is being trained or scored; import when it has finished."
        )
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=_model_root()))
    try:
        for name in CHECKPOINT_FILES:
            shutil.copy2(checkpoint_dir / name, staging / name)
        try:
            with transaction.atomic():
                version = _next_version(project)
                target = Path(settings.MODEL_ROOT) / str(project.pk) / f"v{version}"
                if target.exists():  # left by a crashed attempt whose row rolled back
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                model = ModelVersion.objects.create(
                    project=project,
                    version=version,
                    architecture=config.get("architecture", ""),
                    checkpoint_dir=str(target.relative_to(settings.MODEL_ROOT)),
                    temperature=float(config["temperature"]),
                    hyperparameters={
                        "imported": True,
                        **(config.get("hyperparameters") or {}),
                    },
                    metrics={"imported_config_metrics": _summary(config.get("metrics") or {})},
                    status=ModelStatus.TRAINING,
                    progress={
                        "state": "queued",
                        "phase": "scoring",
                        "reason": "imported",
                        "updated_at": timezone.now().isoformat(),
                    },
                    created_by=by if by and by.is_authenticated else None,
                )
                staging.rename(target)
                if queue:
                    job_queue(SCORE_IMPORTED_MODEL, model.pk)
        except IntegrityError as exc:
            raise ModelImportBusy(
                "Another model for this project started training or importing at the same moment."
            ) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return model


def _model_root() -> Path:
    root = Path(settings.MODEL_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _summary(metrics: dict) -> dict:
    keys = ("accuracy", "macro_f1", "ece", "coverage_at_target", "target_precision", "items")
    return {key: metrics[key] for key in keys if key in metrics}


def heldout_items(project: Project) -> tuple[list[Item], str]:
    """The project's held-out human labels a model is judged on, and where they come from: the
    fixed held-out side of every human label (``labeling.machine.certification.item_held_out``),
    which no training here ever trains on, whatever version."""
    labeled = heldout_labels(project).select_related("final_label")
    return list(labeled.order_by("pk")), "the project's held-out labels (fixed per image)"


def model_import_score(
    *, model_version_id: int, progress: Callable[[int, int], None] | None = None
) -> ModelVersion | None:
    """Score an imported version on the project's held-out labels, derive its thresholds and run
    the promotion gate (in a worker). Idempotent: a version no longer ``training`` is left alone."""
    model = ModelVersion.objects.select_related("project").filter(pk=model_version_id).first()
    if model is None or model.status != ModelStatus.TRAINING:
        return model
    project = model.project
    output = Path(settings.MODEL_ROOT) / model.checkpoint_dir
    try:
        items, source = heldout_items(project)
        if not items:
            raise ModelImportRefused(
                "The project has no human labels to score the model on; label some images "
                "(or import a manifest) and import again."
            )
        position = {label.pk: i for i, label in enumerate(project.labels.all())}
        images = []
        for done, item in enumerate(items, start=1):
            with item.image.open("rb") as fh:
                images.append(fh.read())
            if progress:
                progress(done, len(items))
        labels = np.array([position[item.final_label_id] for item in items], dtype=np.int64)
        ids = [item.pk for item in items]
        heldout = heldout_save(output, images, labels, ids, random_ids=evidence_ids(project, ids))
        names = project.label_names()
        metrics = evaluation_metrics(
            heldout["probs"],
            labels,
            names,
            target=project.target_precision,
            delta=1 - project.threshold_confidence,
            min_support=settings.THRESHOLD_MIN_SUPPORT,
        )
    except Exception as exc:
        logger.exception("Scoring imported %s v%s failed", project.slug, model.version)
        message = exc.message if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
        ModelVersion.objects.filter(pk=model.pk).update(
            status=ModelStatus.FAILED,
            status_reason=f"Import failed: {message}"[:4000],
            progress={**model.progress, "state": "failed", "updated_at": _now()},
        )
        model.refresh_from_db()
        return model
    metrics.pop("thresholds")  # certified below, on the calibration evidence
    model.metrics = jsonable(
        {
            **model.metrics,
            **metrics,
            "class_names": names,
            "heldout_items": len(items),
            "heldout_source": source,
            # The shift check, fitted and calibrated on the held-out images (ml.shift).
            "shift": heldout.get("shift"),
        }
    )
    model.validation_items = [item.pk for item in items]
    model.status = ModelStatus.READY
    model.trained_at = timezone.now()
    model.progress = {"state": "done", "phase": "done", "percent": 100.0, "updated_at": _now()}
    model.save()
    # Its thresholds, like any version's, are certified on the project's calibration evidence.
    model_certify(project=project, model=model)
    promotion_gate(model=model)
    model.refresh_from_db()
    return model


def _now() -> str:
    return timezone.now().isoformat()


# --- uploaded archives ------------------------------------------------------------------------


def checkpoint_unpack(data: bytes | io.BufferedIOBase, directory: Path) -> Path:
    """Unpack an uploaded .zip or .tar(.gz) holding ``config.json`` and ``model.pt`` (at its top
    or in one folder) into ``directory``; refuse anything else, paths that escape, and links."""
    raw = data if isinstance(data, bytes) else data.read()
    limit = settings.MODEL_IMPORT_MAX_BYTES
    if len(raw) > limit:
        raise ModelImportRefused(f"The archive is larger than {limit // (1024 * 1024)} MB.")
    buffer = io.BytesIO(raw)
    if zipfile.is_zipfile(buffer):
        with zipfile.ZipFile(buffer) as archive:
            members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
            wanted = _wanted(list(members))
            total = sum(members[name].file_size for name in wanted.values())
            if total > limit:
                raise ModelImportRefused("The archive unpacks to more than the size limit.")
            for target, name in wanted.items():
                (directory / target).write_bytes(archive.read(name))
        return directory
    buffer.seek(0)
    try:
        archive = tarfile.open(fileobj=buffer, mode="r:*")  # noqa: SIM115 - closed below
    except tarfile.TarError as exc:
        raise ModelImportRefused(
            "Upload a .zip or .tar.gz archive holding config.json and model.pt."
        ) from exc
    with archive:
        members = {m.name: m for m in archive.getmembers()}
        wanted = _wanted([name for name, m in members.items() if m.isfile()])
        for target, name in wanted.items():
            member = members[name]
            if member.size > limit:
                raise ModelImportRefused("The archive unpacks to more than the size limit.")
            extracted = archive.extractfile(member)
            (directory / target).write_bytes(extracted.read() if extracted else b"")
    return directory


def model_import_upload(
    *, project: Project, archive: io.BufferedIOBase | bytes, by: AbstractBaseUser | None = None
) -> ModelVersion:
    """An uploaded archive (page or API): unpack it to a scratch folder, then
    :func:`model_import` it (scored in a worker)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = checkpoint_unpack(archive, Path(scratch))
        return model_import(project=project, checkpoint_dir=folder, by=by)


def _wanted(names: list[str]) -> dict[str, str]:
    """Archive member per checkpoint file: the two files must sit side by side, at the top or in
    one folder; absolute paths and ``..`` are refused."""
    found: dict[str, list[str]] = {}
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise ModelImportRefused(f"The archive holds a path outside itself: {name}.")
        if path.name in CHECKPOINT_FILES and len(path.parts) <= 2:
            found.setdefault(path.name, []).append(name)
    missing = [name for name in CHECKPOINT_FILES if name not in found]
    if missing:
        raise ModelImportRefused(
            f"The archive has no {' or '.join(missing)}; it must hold config.json and model.pt."
        )
    if any(len(paths) > 1 for paths in found.values()):
        raise ModelImportRefused("The archive holds more than one checkpoint; upload one.")
    chosen = {name: paths[0] for name, paths in found.items()}
    if PurePosixPath(chosen[CONFIG_FILE]).parent != PurePosixPath(chosen[WEIGHTS_FILE]).parent:
        raise ModelImportRefused("config.json and model.pt must sit in the same folder.")
    return chosen
