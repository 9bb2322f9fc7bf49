"""The loop's processes: a real Celery worker and gunicorn, started and stopped cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]  # the repository: where manage.py and labeling/ are


@contextmanager
def process(argv: list[str], env: dict, log_path: Path) -> Iterator[subprocess.Popen]:
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def worker_argv(concurrency: int = 2) -> list[str]:
    return [
        *(["nice", "-n", "5"] if os.name == "posix" else []),
        sys.executable,
        *["-m", "celery", "-A", "labeling", "worker", "--loglevel", "info"],
        *["--without-gossip", "--without-mingle"],
        "--concurrency",
        str(concurrency),
    ]


def gunicorn_argv(port: int, workers: int = 2) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "labeling.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
