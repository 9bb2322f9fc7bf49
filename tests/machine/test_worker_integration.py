"""Ingest → a real Celery worker on Redis predicts and routes → the database shows the result."""

import pytest

from labeling.models import Item, ItemStatus, Prediction, Project
from tests.machine.fixtures import add_shapes, install_model, shapes_project
from tests.worker import can_run, celery_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def real_queue(settings):
    from labeling.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    yield


def test_a_real_worker_routes_a_handful_of_images(real_queue, tiny_checkpoint, tmp_path):
    if not can_run():
        pytest.skip(
            "needs PostgreSQL and a Redis broker (CI sets DATABASE_URL and CELERY_BROKER_URL)"
        )
    project = shapes_project(
        threshold_mode=Project.ThresholdMode.MANUAL,
        manual_thresholds={"circle": 0.34, "square": 0.34, "triangle": None},  # None: never
        target_precision=0.34,  # the floor: thresholds are never below the target
        audit_rate=0.0,
    )
    assert install_model(project, tiny_checkpoint).status == "active"  # the first model

    with celery_worker(log_path=tmp_path / "worker.log"):
        ids = add_shapes(project, 6, offset=300)
        wait_for(
            lambda: not Item.objects.filter(pk__in=ids, status=ItemStatus.NEW).exists(),
            message=(tmp_path / "worker.log").read_text()[-3000:]
            if (tmp_path / "worker.log").exists()
            else "",
        )

    items = list(Item.objects.filter(pk__in=ids).select_related("final_label"))
    assert Prediction.objects.filter(item_id__in=ids).count() == 6
    for item in items:
        prediction = Prediction.objects.get(item=item)
        if prediction.label.name == "triangle":  # no threshold: never auto-labeled
            assert item.status == ItemStatus.QUEUED
        else:
            assert (item.status, item.final_source) == (ItemStatus.AUTO_LABELED, "machine")
