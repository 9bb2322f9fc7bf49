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

_predictors: dict[tuple[int, str], object] = {}
_predictors_lock = threading.Lock()


def checkpoint_path(model_version: ModelVersion) -> Path:
    return Path(settings.MODEL_ROOT) / model_version.checkpoint_dir


def predictor_for(model_version: ModelVersion):
    """A loaded Predictor, cached per worker process (loading takes a second; batches are many)."""
    from ml.inference import Predictor  # imports torch: only where a model is run

    key = (model_version.pk, model_version.checkpoint_dir)
    with _predictors_lock:
        if key not in _predictors:
            _predictors.clear()  # keep one model in memory per process
            _predictors[key] = Predictor.load(
                checkpoint_path(model_version), num_threads=settings.INFERENCE_THREADS
            )
        return _predictors[key]


def class_names_mismatch(project: Project, class_names: list[str]) -> str | None:
    """Why a model trained on ``class_names`` cannot serve ``project`` (None when it can): the
    classes must be the project's labels, in the project's order, by name or display name."""
    labels = list(project.labels.all())
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
    output: Path, images: list[bytes], labels: np.ndarray, item_ids: list[int]
) -> dict:
    """The candidate's calibrated probabilities on its held-out labels, for thresholds, the
    admin's risk-coverage curve and the promotion gate."""
    from ml.inference import Predictor  # imports torch: workers only

    predictor = Predictor.load(output, num_threads=settings.TRAIN_THREADS)
    probs = predictor.predict(images, batch_size=settings.PREDICTION_BATCH_SIZE).probs
    data = {
        "probs": probs,
        "labels": np.asarray(labels, dtype=np.int64),
        "item_ids": np.asarray(item_ids),
    }
    tmp = output / "heldout.tmp.npz"
    np.savez(tmp, **data)
    tmp.replace(output / "heldout.npz")
    return data
