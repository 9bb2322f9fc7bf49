"""Training jobs: snapshot the labels into a manifest, train with ``ml.training.train`` in a
worker, record a ModelVersion, certify its thresholds and hand it to the promotion gate.

What a model trains on: every trustworthy label (consensus, expert and imported ones), on the
training side of each item's fixed held-out assignment
(``labeling.machine.certification.item_held_out``), so every version holds out the same images
and is scored on the same ones; and, where the project opts in, machine labels of classes whose
live audit held up, class-balanced (:func:`machine_labels_trusted`). The first model trains as
soon as every class has a few human labels; later ones after ``retrain_every`` new labels, or
sooner while the label count is still doubling (:func:`training_due`).

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
from django.db.models import Count, Max
from django.utils import timezone

from labeling.dispatch import TRAIN_MODEL_VERSION, job_queue
from labeling.errors import ServiceError, project_require_open
from labeling.machine.audit import live_precision
from labeling.machine.certification import (
    calibration_fit_ids,
    evidence_ids,
    item_held_out,
    model_certify,
)
from labeling.machine.predictors import heldout_save
from labeling.machine.promotion import promotion_gate
from labeling.manifests import manifest_export, manifest_labels
from labeling.models import (
    Item,
    ItemSource,
    Manifest,
    ModelStatus,
    ModelVersion,
    Prediction,
    PredictionDecision,
    Project,
)
from ml.class_balance import machine_label_quota
from ml.evaluation import jsonable

logger = logging.getLogger(__name__)

MIN_LABELS = 20
# The first model trains once every class has this many human labels (it is promoted anyway,
# and its probabilities already halve the answers an image needs through the consensus prior).
FIRST_MODEL_PER_CLASS = 10
# A machine label is trained on only if its class's audit has this many decided items and their
# precision reached the project's target.
MIN_AUDITED_FOR_TRAINING = 10
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


def _samples(
    manifest: Manifest, project: Project
) -> tuple[list[tuple[bytes, int]], list[int], list[bool]]:
    """(image bytes, class index) per manifest line, with the item ids and whether each is on
    the held-out side, read from storage."""
    refs = manifest_labels(manifest)
    items = Item.objects.filter(project=project, image__in=list(refs)).only(
        "pk", "image", "sha256", "is_calibration"
    )
    samples, ids, held = [], [], []
    for item in items.iterator(chunk_size=1000):
        with item.image.open("rb") as fh:
            samples.append((fh.read(), refs[item.image.name]))
        ids.append(item.pk)
        held.append(item_held_out(sha256=item.sha256, is_calibration=item.is_calibration))
    return samples, ids, held


def machine_labels_trusted(
    *, project: Project, human_counts: np.ndarray, seed: int
) -> list[tuple[bytes, int]]:
    """Machine labels worth training on: auto-labels of a class whose live audit (pooled over the
    models that auto-labeled it) has at least MIN_AUDITED_FOR_TRAINING decided items, right at
    least ``target_precision`` of the time, and is not paused (machine labels are never held
    out: held-out labels are human). Class-balanced (``ml.class_balance``), so the easy classes
    the machine labels most cannot swamp the rest."""
    rows = Prediction.objects.filter(
        item__project=project,
        item__final_source=ItemSource.MACHINE,
        decision=PredictionDecision.AUTO_LABELED,
    ).values_list("item_id", "label__name", "label__position")
    # A class's audit pooled over the models that auto-labeled it: each model audits only a few
    # per class, and a class's standing is what the admin sees on the thresholds page.
    audited: dict[str, list[int]] = {}
    for model_id in (
        Prediction.objects.filter(item__project=project, decision=PredictionDecision.AUDIT)
        .values_list("model_version_id", flat=True)
        .distinct()
    ):
        for name, stats in live_precision(project=project, model_version_id=model_id).items():
            entry = audited.setdefault(name, [0, 0])
            entry[0] += stats["audited"]
            entry[1] += stats["correct"]
    paused = project.autolabel_paused or {}
    trusted = {
        name
        for name, (n, right) in audited.items()
        if n >= MIN_AUDITED_FOR_TRAINING
        and right / n >= project.target_precision
        and name not in paused
    }
    by_class: dict[int, list[int]] = {}
    for item_id, name, position in rows.iterator(chunk_size=5000):
        if name in trusted:
            by_class.setdefault(position, []).append(item_id)
    machine_counts = np.zeros(len(human_counts), dtype=np.int64)
    for position, ids in by_class.items():
        machine_counts[position] = len(ids)
    quota = machine_label_quota(human_counts, machine_counts)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for position, ids in by_class.items():
        chosen += [int(i) for i in rng.permutation(ids)[: quota[position]]]
    samples = []
    for item in Item.objects.filter(pk__in=chosen).only("pk", "image", "final_label__position"):
        with item.image.open("rb") as fh:
            samples.append((fh.read(), item.final_label.position))
    return samples


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
    from ml.training import TrainConfig, train  # imports torch: workers only

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
        samples, item_ids, held = _samples(model.manifest, project)
        labels = np.array([label for _, label in samples])
        params = dict(model.hyperparameters)
        params.pop("val_fraction", None)  # the held-out side is fixed per item now
        held_mask = np.array(held, dtype=bool)
        if len(np.unique(labels[~held_mask])) < 2 or not held_mask.any():
            raise TrainingRefused(
                f"{int(held_mask.sum())} held-out and {int((~held_mask).sum())} training labels: "
                "need both, and training labels in two or more classes."
            )
        train_idx, val_idx = np.flatnonzero(~held_mask), np.flatnonzero(held_mask)
        # Calibrate on random evidence once there is enough (certification docstring).
        fit_ids = set(calibration_fit_ids(project, [item_ids[i] for i in val_idx]))
        extra = []
        if project.train_on_machine_labels:
            human_counts = np.bincount(labels[train_idx], minlength=len(project.label_names()))
            extra = machine_labels_trusted(
                project=project, human_counts=human_counts, seed=model.version
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
            samples=[samples[i] for i in train_idx] + extra,
            validation_samples=[samples[i] for i in val_idx],
            calibration_mask=[item_ids[i] in fit_ids for i in val_idx] if fit_ids else None,
            class_names=project.label_names(),
            output_dir=output,
            progress=writer,
            **knobs,
        )
        result = train(config)
        writer.scoring()
        held_ids = [item_ids[i] for i in val_idx]
        heldout = heldout_save(
            output,
            [samples[i][0] for i in val_idx],
            labels[val_idx],
            held_ids,
            random_ids=evidence_ids(project, held_ids),
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
        "calibrated_on": "evidence" if fit_ids else "held-out labels",
        # Left out of this version's certification (labeling.machine.certification).
        "calibration_fit_items": sorted(fit_ids),
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
    model.hyperparameters["human_labels_trained"] = int(len(train_idx))
    model.hyperparameters["machine_labels_trained"] = len(extra)
    model.trained_at = timezone.now()
    model.progress = {"state": "done", "percent": 100.0, "updated_at": timezone.now().isoformat()}
    model.save()

    # Score the candidate on every evidence item and certify its thresholds there: the gate
    # compares what each model would be allowed to auto-label.
    model_certify(project=project, model=model)
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


def human_labels(project: Project):
    return Item.objects.filter(
        project=project,
        final_source__in=(ItemSource.CONSENSUS, ItemSource.EXPERT, ItemSource.IMPORTED),
    )


def training_due(*, project: Project) -> bool:
    """True when a training should start: the first model as soon as every class has
    FIRST_MODEL_PER_CLASS human labels; after that when ``retrain_every`` new human labels have
    arrived, or, while a project is young, when the labels have doubled since the last training
    (a model on 200 labels is much better than one on 100, so waiting for 1,000 wastes answers)."""
    if project.retrain_every <= 0:
        return False
    last = (
        ModelVersion.objects.filter(project=project)
        .exclude(status=ModelStatus.FAILED)
        .order_by("-created_at")
        .first()
    )
    new = new_label_count(project=project)
    if last is None:
        per_class = human_labels(project).values("final_label").annotate(n=Count("pk"))
        counts = [row["n"] for row in per_class]
        enough = len(counts) == project.labels.count() and min(counts) >= FIRST_MODEL_PER_CLASS
        return enough or new >= project.retrain_every
    before = human_labels(project).filter(finished_at__lte=last.created_at).count()
    return new >= min(project.retrain_every, max(before, MIN_LABELS))


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
