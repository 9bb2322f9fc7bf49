"""A real Celery worker process for tests about the queue, on the test database."""

import os
import signal
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


def worker_env(broker_url: str, **extra: str) -> dict:
    """Environment of a worker on the test database and media/model folders."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "MODEL_ROOT": str(settings.MODEL_ROOT),
        "EMBEDDING_INDEX_ROOT": str(settings.EMBEDDING_INDEX_ROOT),
        "THRESHOLD_MIN_SUPPORT": str(settings.THRESHOLD_MIN_SUPPORT),
        "DJANGO_SETTINGS_MODULE": "labeling.settings",
        **extra,
    }


class Worker:
    """``celery -A labeling worker`` in its own process group, so a test can SIGKILL the whole
    group (the main process and its pool children) the way an OOM kill or a lost machine would."""

    def __init__(
        self, broker_url: str, log_path: Path, *, concurrency: int = 1, env: dict | None = None
    ):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "labeling", "worker", "--loglevel", "info",
             "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=ROOT,
            env=env or worker_env(broker_url),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""


@contextmanager
def celery_worker(
    *, concurrency: int = 1, extra_env: dict | None = None, log_path: Path | None = None
):
    """A worker on the configured broker (purged first) and the test database; stopped after."""
    from labeling.celery import app

    app.control.purge()
    broker = settings.CELERY_BROKER_URL
    process = Worker(
        broker,
        log_path or Path(os.devnull),
        concurrency=concurrency,
        env=worker_env(broker, **(extra_env or {})),
    )
    try:
        yield process.process
    finally:
        process.stop()


def wait_for(condition, *, timeout: float = 90, every: float = 0.5, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s: {message}")
