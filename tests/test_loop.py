"""The whole loop, small: uploads over HTTP, a real worker predicting and retraining on Redis,
simulated inspectors answering through the queue API, an expert resolving disputes."""

import os

import pytest

from simulation.crowd import LoopConfig
from simulation.driver import Loop
from simulation.processes import free_port, gunicorn_argv, process, wait_http
from tests.worker import can_run, celery_worker, database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# A model small enough to train in seconds on 2 cores; thresholds reachable with few labels.
TINY_TRAINING = {
    "TRAIN_INPUT_SIZE": "32",
    "TRAIN_TRAINABLE_BLOCKS": "1",
    "TRAIN_EPOCHS": "2",
    "TRAIN_LEARNING_RATES": "0.003",
    "TRAIN_TIME_BUDGET_S": "60",
    "THRESHOLD_MIN_SUPPORT": "3",
}


@pytest.fixture
def real_queue(settings):
    from labeling.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    yield


def test_a_small_loop_finishes_every_image_once_and_the_report_agrees(
    real_queue, settings, tmp_path
):
    if not can_run():
        pytest.skip(
            "needs PostgreSQL and a Redis broker (CI sets DATABASE_URL and CELERY_BROKER_URL)"
        )
    # given an empty project, a crowd with a spammer, and a worker that retrains every 60 labels
    cfg = LoopConfig(
        images=240,
        batch=80,
        answers_per_batch=100,
        gold_items=10,
        retrain_every=60,
        target_precision=0.9,
        threshold_confidence=0.5,
        audit_rate=0.1,
        gold_rate=0.05,
        slug="loop-test",
        settle_timeout_s=300,
    )
    port = free_port()
    env = {
        **os.environ,
        **TINY_TRAINING,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "MODEL_ROOT": str(settings.MODEL_ROOT),
        "DJANGO_SETTINGS_MODULE": "labeling.settings",
    }
    worker_log, server_log = tmp_path / "worker.log", tmp_path / "gunicorn.log"

    # when images arrive in batches and the crowd answers through the API
    with (
        celery_worker(concurrency=2, extra_env=TINY_TRAINING, log_path=worker_log),
        process(gunicorn_argv(port), env, server_log),
    ):
        wait_http(f"http://127.0.0.1:{port}/api/projects/")
        figures = Loop(cfg, f"http://127.0.0.1:{port}", log=print).run()

    # then every image is finished exactly once, with a source, and nothing was refused
    checks = figures["invariants"]
    assert checks["same_items"] and checks["items"] == 240
    assert checks["unfinished"] == 0, worker_log.read_text()[-3000:]
    assert checks["finished_without_source"] == 0
    assert checks["finished_without_label"] == 0
    assert checks["finished_without_time"] == 0
    assert checks["auto_labeled_twice"] == 0
    assert checks["machine_labels_with_answers"] == 0
    assert figures["answers_refused"] == 0
    sources = figures["accuracy"]
    assert sources["overall"]["items"] == 240
    assert set(sources) - {"overall"} <= {"machine", "consensus", "expert"}
    # the worker trained at least one model from the crowd's labels and promoted it
    assert figures["models_trained"] >= 1 and figures["models_promoted"] >= 1
    # and the manager's cost report shows what the benchmark counted
    assert figures["report_mismatches"] == {}
    report = figures["manager_report"]
    assert report["answers"] == figures["answers"] == figures["costs"]["answers_cost_rows"]
    assert report["images_ingested"] == 240
    assert report["auto_labeled"] + report["human_labeled"] + report["seeded_gold"] == 240
    assert report["seeded_gold"] == figures["gold_seeded"]
