"""Jobs are queued by name (labeling.dispatch): every name must be a task the app registered, and
a queued job runs after the transaction commits, never for a rolled-back one."""

import pytest
from django.db import transaction

from labeling import dispatch
from labeling.celery import app


def test_every_job_name_is_a_registered_task():
    for name in dispatch.JOB_NAMES:
        assert name in app.tasks, f"{name} is queued by labeling.dispatch but no task has that name"


def test_an_unknown_job_is_refused():
    with pytest.raises(ValueError, match="unknown job"):
        dispatch.job_queue("labeling.tasks.no_such_task", 1)


@pytest.mark.django_db(transaction=True)
def test_a_job_runs_only_after_its_transaction_commits(monkeypatch):
    ran = []
    monkeypatch.setattr(app.tasks[dispatch.PREDICT_ITEMS], "delay", lambda *a: ran.append(a))
    with transaction.atomic():
        dispatch.prediction_queue([1, 2, 3])
        assert ran == []
    assert ran == [([1, 2, 3], False)]
    try:
        with transaction.atomic():
            dispatch.prediction_queue([4])
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert ran == [([1, 2, 3], False)]
