"""The models a worker has loaded, and what a checkpoint saved about its held-out labels.

Loading a checkpoint takes about a second and a worker predicts many batches, so each worker
process keeps one loaded Predictor. The thresholds in force are
``labeling.machine.certification``'s.
"""

import threading
from pathlib import Path

import numpy as np
from django.conf import settings

from labeling.models import ModelVersion

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


def heldout_load(model_version: ModelVersion) -> dict[str, np.ndarray] | None:
    """The held-out (validation) probabilities and human labels saved after training."""
    path = checkpoint_path(model_version) / "heldout.npz"
    if not path.exists():
        return None
    with np.load(path) as data:
        return {key: data[key] for key in data.files}
