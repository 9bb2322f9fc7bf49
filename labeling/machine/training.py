"""Training jobs: snapshot the labels into a manifest, train with ``ml.training.train`` in a
worker, record a ModelVersion, and hand it to the promotion gate.

One training per project at a time (a partial unique index on ``status='training'``). A crash
marks the version ``failed`` with the error; the active model is only ever switched by
:func:`labeling.machine.promotion.model_promote`, after the new checkpoint is completely written.
"""

import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from labeling.dispatch import TRAIN_MODEL_VERSION, job_queue
from labeling.errors import ServiceError, project_require_open
from labeling.machine.predictors import heldout_save
from labeling.machine.promotion import promotion_gate
from labeling.manifests import manifest_export, manifest_labels
from labeling.models import Item, ItemSource, Manifest, ModelStatus, ModelVersion, Project
from ml.evaluation import jsonable

logger = logging.getLogger(__name__)

MIN_LABELS = 20
STALE_AFTER = timedelta(minutes=30)
PROGRESS_EVERY_S = 2.0


class TrainingRefused(ServiceError):
    status, code = 409, "training_refused"


def training_defaults() -> dict:
    """Settings of the search a project's training runs with (overridable per call)."""
    return {
        "input_size": settings.TRAIN_INPUT_SIZE,
        "time_budget_s": settings.TRAIN_TIME_BUDGET_S,
        "trainable_blocks": list(settings.TRAIN_TRAINABLE_BLOCKS),
        "epochs": list(settings.TRAIN_EPOCHS),
        "learning_rates": list(settings.TRAIN_LEARNING_RATES),
        "augment_views": settings.TRAIN_AUGMENT_VIEWS,
        "val_fraction": 0.2,
    }


def _fail_stale_trainings(project: Project) -> None:
    """A worker killed mid-training leaves its version ``training`` forever; after a while
    without progress it is marked failed so the project can train again."""
    cutoff = timezone.now() - STALE_AFTER
    for version in ModelVersion.objects.filter(project=project, status=ModelStatus.TRAINING):
        heartbeat = version.progress.get("updated_at")
        last = timezone.datetime.fromisoformat(heartbeat) if heartbeat else version.created_at
        if last < cutoff:
            version.status = ModelStatus.FAILED
            version.status_reason = f"No progress since {last:%Y-%m-%d %H:%M}; the worker stopped."
            version.save(update_fields=["status", "status_reason", "updated_at"])


def training_start(
    *,
    project: Project,
    by: AbstractBaseUser | None = None,
    reason: str = "manual",
    overrides: dict | None = None,
    queue: bool = True,
) -> ModelVersion:
    """Snapshot the project's human labels and queue a training (refused while one runs).
    With ``queue=False`` the caller runs :func:`training_run` itself (the train command)."""
    project_require_open(project)
    _fail_stale_trainings(project)
    running = ModelVersion.objects.filter(project=project, status=ModelStatus.TRAINING).first()
    if running:
        raise TrainingRefused(
            f"Model v{running.version} is already training for this project; wait for it to finish."
        )
    labeled = Item.objects.filter(
        project=project,
        final_source__in=(ItemSource.CONSENSUS, ItemSource.EXPERT, ItemSource.IMPORTED),
    )
    n_labels = labeled.count()
    n_classes = labeled.values("final_label").distinct().count()
    if n_labels < MIN_LABELS or n_classes < 2:
        raise TrainingRefused(
            f"Training needs at least {MIN_LABELS} human labels in two or more classes; "
            f"this project has {n_labels} in {n_classes}."
        )
    try:
        with transaction.atomic():
            manifest = manifest_export(project=project, by=by)
            version = (
                ModelVersion.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
            ) + 1
            model = ModelVersion.objects.create(
                project=project,
                version=version,
                manifest=manifest,
                hyperparameters={**training_defaults(), **(overrides or {})},
                status=ModelStatus.TRAINING,
                progress={
                    "state": "queued",
                    "reason": reason,
                    "updated_at": timezone.now().isoformat(),
                },
                created_by=by if by and by.is_authenticated else None,
            )
            if queue:
                job_queue(TRAIN_MODEL_VERSION, model.pk)
    except IntegrityError as exc:
        raise TrainingRefused(
            "Another training for this project started at the same moment."
        ) from exc
    return model


def _samples(manifest: Manifest, project: Project) -> tuple[list[tuple[bytes, int]], list[int]]:
    """(image bytes, class index) per manifest line, with the item ids, read from storage."""
    refs = manifest_labels(manifest)
    items = Item.objects.filter(project=project, image__in=list(refs)).only("pk", "image")
    samples, ids = [], []
    for item in items.iterator(chunk_size=1000):
        with item.image.open("rb") as fh:
            samples.append((fh.read(), refs[item.image.name]))
        ids.append(item.pk)
    return samples, ids


class _ProgressWriter:
    """Keeps the version's ``progress`` (what the Models page polls) up to date: the phases of
    ``ml.training.train`` and, after them, *scoring*: the new model predicts its held-out images,
    estimated at the speed measured while preparing (a full forward pass costs about 1.5 times
    the frozen lower blocks'). Writes at most every PROGRESS_EVERY_S seconds."""

    SCORING_COST = 1.5

    def __init__(self, model: ModelVersion, *, heldout_images: int, also=None):
        self.model = model
        self.heldout_images = heldout_images
        self.also = also
        self.started = time.monotonic()
        self.last_write = 0.0
        self.seconds_per_image: float | None = None
        self.percent = 0.0

    def _scoring_s(self) -> float:
        spi = self.seconds_per_image or 0.0
        return self.SCORING_COST * spi * self.heldout_images

    def __call__(self, progress) -> None:
        """One ``ml.progress.TrainingProgress`` from the training."""
        if self.also is not None:
            self.also(progress)
        if progress.seconds_per_image is not None:
            self.seconds_per_image = progress.seconds_per_image
        if progress.phase == "done":
            return  # scoring follows at once: see scoring()
        now = time.monotonic()
        if now - self.last_write < PROGRESS_EVERY_S and progress.phase == "training":
            return
        extra = self._scoring_s()
        self._save(
            phase=progress.phase,
            eta=None if progress.eta_s is None else progress.eta_s + extra,
            eta_max=None if progress.eta_max_s is None else progress.eta_max_s + extra,
            trial=progress.trial,
            trials=progress.trials,
            epoch=progress.epoch,
            epochs=progress.epochs,
            done=progress.done,
            total=progress.total,
            message=progress.message,
        )

    def scoring(self) -> None:
        eta = self._scoring_s()
        self._save(
            phase="scoring",
            eta=eta,
            eta_max=eta,
            message=f"the new model predicts its {self.heldout_images:,} held-out images",
        )

    def _save(self, *, phase: str, eta: float | None, eta_max: float | None, **fields) -> None:
        elapsed = time.monotonic() - self.started
        horizon = eta if eta is not None else eta_max
        if horizon is not None and elapsed + horizon > 0:
            self.percent = max(self.percent, min(99.0, 100.0 * elapsed / (elapsed + horizon)))
        self.last_write = time.monotonic()
        progress = {
            "state": "training",
            "phase": phase,
            **fields,
            "percent": round(self.percent, 1),
            "eta_seconds": None if eta is None else round(eta),
            "eta_max_seconds": None if eta_max is None else round(eta_max),
            "updated_at": timezone.now().isoformat(),
        }
        ModelVersion.objects.filter(pk=self.model.pk).update(progress=progress)


def training_run(*, model_version_id: int, progress=None) -> ModelVersion | None:
    """Run a queued training (in a worker). Idempotent: a version no longer ``training`` is left
    alone, so a redelivered task does nothing."""
    from ml.training import TrainConfig, stratified_split, train  # imports torch: workers only

    model = (
        ModelVersion.objects.select_related("project", "manifest")
        .filter(pk=model_version_id)
        .first()
    )
    if model is None or model.status != ModelStatus.TRAINING:
        return model
    project = model.project
    output = Path(settings.MODEL_ROOT) / str(project.pk) / f"v{model.version}"
    try:
        samples, item_ids = _samples(model.manifest, project)
        labels = np.array([label for _, label in samples])
        params = dict(model.hyperparameters)
        train_idx, val_idx = stratified_split(
            labels, params.pop("val_fraction", 0.2), seed=model.version
        )
        if output.exists():  # a crashed earlier delivery of this task
            shutil.rmtree(output)
        writer = _ProgressWriter(model, heldout_images=len(val_idx), also=progress)
        knobs = {
            "num_threads": settings.TRAIN_THREADS,
            "target_precision": project.target_precision,
            "delta": 1 - project.threshold_confidence,
            "min_support": settings.THRESHOLD_MIN_SUPPORT,
            "seed": model.version,
        }
        knobs.update({k: v for k, v in params.items() if k in TrainConfig.__dataclass_fields__})
        config = TrainConfig(
            samples=[samples[i] for i in train_idx],
            validation_samples=[samples[i] for i in val_idx],
            class_names=project.label_names(),
            output_dir=output,
            progress=writer,
            **knobs,
        )
        result = train(config)
        writer.scoring()
        heldout = heldout_save(
            output,
            [samples[i][0] for i in val_idx],
            labels[val_idx],
            [item_ids[i] for i in val_idx],
        )
    except Exception as exc:
        logger.exception("Training of %s v%s failed", project.slug, model.version)
        ModelVersion.objects.filter(pk=model.pk).update(
            status=ModelStatus.FAILED,
            status_reason=f"{type(exc).__name__}: {exc}"[:4000],
            progress={
                **model.progress,
                "state": "failed",
                "updated_at": timezone.now().isoformat(),
            },
        )
        model.refresh_from_db()
        return model

    names = project.label_names()
    metrics = {
        **result.metrics,
        "class_names": names,
        "heldout_items": int(len(heldout["labels"])),
        "shift": heldout.get("shift"),  # the shift check's level and drift alarm (ml.shift)
    }
    model.status = ModelStatus.READY
    model.checkpoint_dir = str(output.relative_to(settings.MODEL_ROOT))
    model.temperature = result.temperature
    model.metrics = jsonable(metrics)
    model.thresholds = {
        "target": project.target_precision,
        "confidence": project.threshold_confidence,
        "per_class": dict(zip(names, result.thresholds, strict=True)),
    }
    model.validation_items = [item_ids[i] for i in val_idx]
    model.hyperparameters = {
        **model.hyperparameters,
        **jsonable(result.config.get("hyperparameters", {})),
    }
    model.hyperparameters["trainable_blocks_chosen"] = result.config.get("trainable_blocks")
    model.trained_at = timezone.now()
    model.progress = {"state": "done", "percent": 100.0, "updated_at": timezone.now().isoformat()}
    model.save()

    promotion_gate(model=model)
    model.refresh_from_db()
    return model


def new_label_count(*, project: Project) -> int:
    """Human labels finished since the project's last training started."""
    last = ModelVersion.objects.filter(project=project).order_by("-created_at").first()
    labels = Item.objects.filter(
        project=project,
        final_source__in=(ItemSource.CONSENSUS, ItemSource.EXPERT, ItemSource.IMPORTED),
    )
    if last is not None:
        labels = labels.filter(finished_at__gt=last.created_at)
    return labels.count()


def training_due(*, project: Project) -> bool:
    """True when ``retrain_every`` new human labels arrived since the last training started."""
    return project.retrain_every > 0 and new_label_count(project=project) >= project.retrain_every


def trainings_start_due(*, reason: str) -> int:
    """Start a training in every project that is due one; returns how many started.

    ``new labels``: projects with ``retrain_every`` new human labels since their last training.
    ``nightly``: every project with automatic retraining on and any new human label. A project
    that cannot train now (one is running, too few labels) is skipped with a log line."""
    open_projects = Project.objects.filter(archived_at__isnull=True)  # archived: no trainings
    if reason == "nightly":
        projects = [
            p for p in open_projects.filter(retrain_every__gt=0) if new_label_count(project=p)
        ]
    else:
        projects = [p for p in open_projects if training_due(project=p)]
    started = 0
    for project in projects:
        try:
            training_start(project=project, reason=reason)
        except ServiceError as exc:
            logger.info("No %s training for %s: %s", reason, project.slug, exc.message)
        else:
            started += 1
    return started
