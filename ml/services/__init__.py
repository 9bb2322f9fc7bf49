"""Django wiring of the model side (the rest of ``ml/`` is plain PyTorch without Django):
prediction and routing, the live audit, training jobs and promotion."""

from ml.services.predict import (
    derived_thresholds,
    items_predict,
    predictor_for,
    project_repredict,
    project_thresholds,
)

__all__ = [
    "derived_thresholds",
    "items_predict",
    "predictor_for",
    "project_repredict",
    "project_thresholds",
]
