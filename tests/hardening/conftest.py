"""Real processes for the fault tests: a private redis-server, Celery workers, gunicorn.

Everything listens on loopback only, on free ports, so these tests never touch the shared Redis
on 6379 (other test runs use it) nor anything outside the machine.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.worker import ROOT, Worker, database_url
from tests.worker import worker_env as shared_worker_env

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, *, up: bool = True, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port) == up:
            return
        time.sleep(0.1)
    raise AssertionError(f"port {port} still {'closed' if up else 'open'} after {timeout}s")


def needs_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL; CI does)")


def needs_redis_server() -> None:
    needs_postgres()
    if not Path(REDIS_SERVER).exists():
        pytest.skip("needs the redis-server binary (Debian's redis-server)")


class RedisServer:
    """A private redis-server on a free loopback port, with append-only persistence: what
    production must configure so queued tasks survive a Redis restart."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def kill(self) -> None:
        """A crash, not a clean shutdown: only what the append-only file holds survives."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        wait_port(self.port, up=False)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


@pytest.fixture
def redis_server(tmp_path):
    needs_redis_server()
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


def worker_env(broker_url: str, **extra: str) -> dict:
    """The shared worker environment, plus what the fault tests need: one thread, and a task
    held by a killed worker coming back after seconds (kombu's default: 1 hour)."""
    return shared_worker_env(
        broker_url,
        INFERENCE_THREADS="1",
        CELERY_VISIBILITY_TIMEOUT="5",
        CELERY_UNACKED_RESTORE_SECONDS="1",
        # A worker killed mid-sweep holds the sweep's lock in Redis until it expires.
        CELERY_UNACKED_MUTEX_SECONDS="2",
        **extra,
    )


@contextmanager
def worker(broker_url: str, log_path: Path, **extra_env: str):
    process = Worker(broker_url, log_path, env=worker_env(broker_url, **extra_env))
    try:
        yield process
    finally:
        process.stop()


class Gunicorn:
    """The app under a real gunicorn on a free loopback port, on the test database."""

    def __init__(self, log_path: Path, *, workers: int = 2, **extra_env: str):
        self.port = free_port()
        self.log_path = log_path
        self.workers = workers
        self.extra_env = extra_env
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "MODEL_ROOT": str(settings.MODEL_ROOT),
            "DJANGO_SETTINGS_MODULE": "labeling.settings",
            # Answers must not wait on a broker nobody runs here.
            "CELERY_TASK_ALWAYS_EAGER": "1",
            **self.extra_env,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    "labeling.wsgi",
                    "-b",
                    f"127.0.0.1:{self.port}",
                    "-w",
                    str(self.workers),
                    "--graceful-timeout",
                    "5",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        wait_port(self.port, up=False)

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""


@pytest.fixture
def gunicorn_server(tmp_path):
    needs_postgres()
    if not (Path(sys.executable).parent / "gunicorn").exists():
        pytest.skip("gunicorn is not installed in this environment")
    server = Gunicorn(tmp_path / "gunicorn.log")
    server.start()
    yield server
    server.stop()
