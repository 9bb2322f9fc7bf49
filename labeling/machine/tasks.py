"""Celery tasks of the machine side. Each takes ids, calls one service, and is safe to retry.
Queued through ``labeling.dispatch`` under their registered names."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from labeling import dispatch
from labeling.machine.model_import import model_import_score
from labeling.machine.predict import items_predict
from labeling.machine.promotion import thresholds_refresh_all
from labeling.machine.training import training_run, trainings_start_due

DB_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 8,
}


@shared_task(name=dispatch.PREDICT_ITEMS, **DB_RETRY)
def predict_items(item_ids: list[int], reroute: bool = False) -> dict:
    """Predict and route a batch of items (idempotent: already-routed items are left alone)."""
    return items_predict(item_ids=item_ids, reroute=reroute)


# Training is long: acknowledged early would lose it on a crash, acknowledged late would run it
# twice; the service is idempotent (a version no longer 'training' is skipped), so late it is.
@shared_task(name=dispatch.TRAIN_MODEL_VERSION, **DB_RETRY)
def train_model_version(model_version_id: int) -> str:
    model = training_run(model_version_id=model_version_id)
    return model.status if model else "missing"


# Like training: late acknowledgement, and the service skips a version no longer 'training'.
@shared_task(name=dispatch.SCORE_IMPORTED_MODEL, **DB_RETRY)
def score_imported_model(model_version_id: int) -> str:
    model = model_import_score(model_version_id=model_version_id)
    return model.status if model else "missing"


@shared_task
def recertify_thresholds() -> int:
    """Certify active models again where their evidence has grown; re-route where it moved."""
    return thresholds_refresh_all()


@shared_task
def check_training_triggers() -> int:
    """Start a training wherever ``retrain_every`` new human labels have accumulated."""
    return trainings_start_due(reason="new labels")


@shared_task
def nightly_training() -> int:
    """The nightly retraining of every project that got new labels since its last model."""
    return trainings_start_due(reason="nightly")
