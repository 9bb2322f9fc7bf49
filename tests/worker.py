"""A real Celery worker process for tests about the queue, on the test database."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    db = connection.settings_dict
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}"


def can_run() -> bool:
    return connection.vendor == "postgresql" and settings.CELERY_BROKER_URL.startswith("redis://")


@contextmanager
def celery_worker(
    *, concurrency: int = 1, extra_env: dict | None = None, log_path: Path | None = None
):
    """Start ``celery -A labeling worker`` against the test database and broker; stop it after."""
    from labeling.celery import app

    app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "MODEL_ROOT": str(settings.MODEL_ROOT),
        "THRESHOLD_MIN_SUPPORT": str(settings.THRESHOLD_MIN_SUPPORT),
        "DJANGO_SETTINGS_MODULE": "labeling.settings",
        **(extra_env or {}),
    }
    log = open(log_path or os.devnull, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "labeling",
            "worker",
            "--loglevel",
            "info",
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for(condition, *, timeout: float = 90, every: float = 0.5, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s: {message}")
