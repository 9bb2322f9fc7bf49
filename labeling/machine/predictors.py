"""The models a worker has loaded, and what a checkpoint saved about its held-out labels.

Loading a checkpoint takes about a second and a worker predicts many batches, so each worker
process keeps one loaded Predictor. The thresholds in force are
``labeling.machine.certification``'s.
"""

import threading
from pathlib import Path

import numpy as np
from django.conf import settings

from labeling.models import ModelVersion, Project
from ml.shift import reference_from_heldout

_predictors: dict[tuple[int, str], object] = {}
_predictors_lock = threading.Lock()


def checkpoint_path(model_version: ModelVersion) -> Path:
    return Path(settings.MODEL_ROOT) / model_version.checkpoint_dir


def predictor_for(model_version: ModelVersion):
    """A loaded Predictor, cached per worker process (loading takes a second; batches are many)."""
    from ml.inference import Predictor  # imports torch: only where a model is run

    # The full path, not the row alone: ids come back after a rollback (tests) and MODEL_ROOT
    # may change, and a cached model must never answer for another checkpoint.
    path = checkpoint_path(model_version)
    key = (model_version.pk, str(path))
    with _predictors_lock:
        if key not in _predictors:
            _predictors.clear()  # keep one model in memory per process
            _predictors[key] = Predictor.load(path, num_threads=settings.INFERENCE_THREADS)
        return _predictors[key]


def class_names_mismatch(
    project: Project, class_names: list[str], *, labels: list | None = None
) -> str | None:
    """Why a model trained on ``class_names`` cannot serve ``project`` (None when it can): the
    classes must be the project's labels, in the project's order, by name or display name.
    ``labels``: the labels the model must cover, if not all (a prototype class it does not know
    is routed by distance; labeling.embeddings.prototypes.model_labels)."""
    labels = list(project.labels.all()) if labels is None else labels
    if len(labels) == len(class_names) and all(
        trained in (label.name, label.display_name)
        for label, trained in zip(labels, class_names, strict=True)
    ):
        return None
    return (
        f"the model was trained on the classes {', '.join(map(str, class_names))}; this project's "
        f"labels are {', '.join(label.name for label in labels)} (same names, same order needed)"
    )


def heldout_load(model_version: ModelVersion) -> dict[str, np.ndarray] | None:
    """The held-out (validation) probabilities and human labels saved after training."""
    path = checkpoint_path(model_version) / "heldout.npz"
    if not path.exists():
        return None
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def heldout_save(
    output: Path,
    images: list[bytes],
    labels: np.ndarray,
    item_ids: list[int],
    random_ids: set[int] | None = None,
) -> dict:
    """The candidate's calibrated probabilities on its held-out labels, for thresholds, the
    admin's risk-coverage curve and the promotion gate; and its shift reference (``ml.shift``)
    calibrated on the same images. A model trained here brings metrics fitted on its training
    images; one trained elsewhere gets them from half of the held-out images (the other half
    calibrates). ``random_ids``: the held-out items drawn at random from the stream (the
    project's evidence); only they calibrate the shift check's window test, since the rest are
    the queue's hard images. ``data["shift"]`` is the summary to keep with the version's
    metrics."""
    from ml.inference import Predictor  # imports torch: workers only

    predictor = Predictor.load(output, num_threads=settings.TRAIN_THREADS)
    scored = predictor.score(images, batch_size=settings.PREDICTION_BATCH_SIZE)
    labels = np.asarray(labels, dtype=np.int64)
    data = {"probs": scored.probs, "labels": labels, "item_ids": np.asarray(item_ids)}
    tmp = output / "heldout.tmp.npz"
    np.savez(tmp, **data)
    tmp.replace(output / "heldout.npz")
    ok = ~np.isnan(scored.probs).any(axis=1)
    drawn = np.array([pk in (random_ids or ()) for pk in item_ids], dtype=bool)[ok]
    reference = predictor.shift
    if reference is not None and reference.fitted_on == "training":
        reference.alpha = settings.SHIFT_ALPHA
        reference.calibrate(scored.features[ok], scored.image_stats[ok], drawn)
    elif ok.sum() >= 4:
        reference = reference_from_heldout(
            scored.features[ok],
            labels[ok],
            scored.image_stats[ok],
            alpha=settings.SHIFT_ALPHA,
            random_rows=drawn,
        )
    else:
        reference = None
    if reference is not None:
        reference.save(output)
        data["shift"] = reference.summary(
            drift_level=settings.SHIFT_DRIFT_LEVEL,
            p1=settings.SHIFT_DRIFT_RATE,
            arl=settings.SHIFT_FALSE_ALARM_IMAGES,
            window=settings.SHIFT_WINDOW,
        )
    return data
