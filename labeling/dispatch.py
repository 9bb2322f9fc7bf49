"""Queueing background jobs without importing the code that runs them.

Services queue work (predict these items, train this model version). The Celery task modules
import those same services to run the work, so a service importing a task module back would
close an import circle. Here a job is queued by its task's registered name instead: the task
modules register under these names (``labeling/tasks.py``, ``labeling/machine/tasks.py``, both
imported when the app is ready), and ``tests/test_layers.py`` checks that every name here is a
registered task. Looking the task up in the app's registry, rather than ``send_task``, keeps the
task's own options (retries, eager mode in tests).

Jobs are queued after the surrounding transaction commits, so a worker never looks for rows that
are not there yet, and a rolled-back request queues nothing.
"""

from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from labeling.celery import app

PREDICT_ITEMS = "labeling.machine.tasks.predict_items"
TRAIN_MODEL_VERSION = "labeling.machine.tasks.train_model_version"
SCORE_IMPORTED_MODEL = "labeling.machine.tasks.score_imported_model"

JOB_NAMES = (PREDICT_ITEMS, TRAIN_MODEL_VERSION, SCORE_IMPORTED_MODEL)


def job_queue(name: str, *args: object) -> None:
    """Queue the task registered as ``name`` with ``args`` once the transaction commits."""
    if name not in JOB_NAMES:
        raise ValueError(f"unknown job {name!r}")
    transaction.on_commit(lambda: app.tasks[name].delay(*args))


def prediction_queue(item_ids: Sequence[int], *, reroute: bool = False) -> None:
    """Queue prediction and routing of ``item_ids`` in batches of PREDICTION_BATCH_SIZE."""
    ids = list(item_ids)
    batch = settings.PREDICTION_BATCH_SIZE
    for start in range(0, len(ids), batch):
        job_queue(PREDICT_ITEMS, ids[start : start + batch], reroute)
