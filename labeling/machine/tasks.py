"""Celery tasks of the machine side. Each takes ids, calls one service, and is safe to retry.
Queued through ``labeling.dispatch`` under their registered names."""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from labeling import dispatch
from labeling.errors import ServiceError
from labeling.machine.certification import thresholds_recertify
from labeling.machine.predict import items_predict, project_repredict
from labeling.machine.training import new_label_count, training_due, training_run, training_start
from labeling.models import Project

logger = logging.getLogger(__name__)

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


def _start(project: Project, reason: str) -> None:
    try:
        training_start(project=project, reason=reason)
    except ServiceError as exc:
        logger.info("No %s training for %s: %s", reason, project.slug, exc.message)


@shared_task
def check_training_triggers() -> int:
    """Certify the active model again where its evidence has grown (and re-route the waiting
    queue if its thresholds moved); start a training wherever enough new labels arrived."""
    started = 0
    for project in Project.objects.select_related("active_model"):
        if project.threshold_mode == Project.ThresholdMode.TARGET and thresholds_recertify(
            project=project
        ):
            project_repredict(project=project)
        if training_due(project=project):
            _start(project, "new labels")
            started += 1
    return started


@shared_task
def nightly_training() -> int:
    """The nightly retraining of every project that got new labels since its last model."""
    started = 0
    for project in Project.objects.filter(retrain_every__gt=0):
        if not new_label_count(project=project):
            continue
        _start(project, "nightly")
        started += 1
    return started
