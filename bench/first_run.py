"""A new user's first run, measured: the README's run command (``bin/run``) in a fresh copy of
the repository, as a user runs it, and what it shows and when.

    python3 bench/first_run.py                  # the whole first run, figures to bench/results
    python3 bench/first_run.py --no-wait-model  # stop once the demo images are routed

Standard library only, so it runs with any Python 3 (CI's check runs it before any venv
exists). It copies the working tree's files (tracked and untracked-but-not-ignored: no
``.venv``, no ``var/``) to a scratch folder and starts ``bin/run`` there in a session of its
own, with no standard input and none of the database or broker variables (the embedded
defaults: SQLite and the filesystem broker), so ``bin/run`` builds its venv from
``requirements.txt`` alone. Then, each step failing with the log's tail when it does not happen:

1. the login page answers 200;
2. the worker routes every demo image (none left ``new``);
3. one image uploaded through the API (token from ``manage.py drf_create_token``) is routed
   (predicted, or queued for humans);
4. unless ``--no-wait-model``: the demo's first model, trained in the background from the
   imported history, becomes active and auto-labels demo images;
5. a signal to ``bin/run`` (SIGTERM, or ``--stop-signal INT``) stops it within the timeout and
   leaves no process of its session behind.

Afterwards it reads the figures from the run's own database (model times, item counts, the
manager's cost report) and writes them with the timings and the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLUG = "fashion-demo"
# Variables that would point bin/run away from its embedded defaults.
UNSET = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "REDIS_URL",
    "CACHE_URL",
    "VAR_DIR",
    "MEDIA_ROOT",
    "MODEL_ROOT",
    "DJANGO_SETTINGS_MODULE",
    "VIRTUAL_ENV",
    "PYTHONPATH",
)


class CheckFailed(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[first-run {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the copy and the process -----------------------------------------------------------------


def copy_checkout(app: Path) -> int:
    """The repository's files as a clone has them (plus uncommitted changes): tracked and
    untracked files git does not ignore. An existing ``.venv`` in ``app`` is kept (``--app``
    reuse); ``var/`` is always removed, so the demo starts from nothing."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for entry in app.iterdir() if app.exists() else []:
        if entry.name != ".venv":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    copied = 0
    for raw in names:
        if not raw:
            continue
        source = ROOT / os.fsdecode(raw)
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = app / os.fsdecode(raw)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
        copied += 1
    return copied


def user_env(port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update({"HOST": "127.0.0.1", "PORT": str(port), **extra})
    return env


def session_processes(sid: int) -> list[str]:
    """Processes still in session ``sid`` (bin/run and everything it started)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces, so split after ')'.
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # a zombie has exited already
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            found.append(f"{stat.parent.name}: {cmdline.strip()[:160]}")
    return found


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- HTTP ---------------------------------------------------------------------------------------


class Api:
    def __init__(self, base: str, token: str = ""):
        self.base, self.token = base, token

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> dict:
        code, body = self.request("GET", path)
        if code != 200:
            raise CheckFailed(f"GET {path} answered {code}: {body[:300]!r}")
        return json.loads(body)

    def count(self, path: str) -> int:
        return int(self.json(path)["count"])


def png_bytes(seed: int) -> bytes:
    """A 28×28 grey PNG of noise, written with zlib alone (no Pillow here)."""
    rows = b"".join(
        b"\0" + bytes((seed * 7919 + y * 28 + x * 31) * 2654435761 % 251 for x in range(28))
        for y in range(28)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def multipart(field: str, name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# --- the steps ----------------------------------------------------------------------------------


def wait_until(what: str, check, *, timeout: float, proc: subprocess.Popen, run_log: Path):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise CheckFailed(
                f"bin/run exited ({proc.returncode}) before {what}.\n--- log ---\n{tail(run_log)}"
            )
        try:
            value = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(
                f"timed out after {timeout:.0f} s waiting for {what}.\n{tail(run_log)}"
            )
        time.sleep(2)


def demo_token(app: Path, env: dict) -> str:
    out = subprocess.run(
        [str(app / ".venv/bin/python"), "manage.py", "drf_create_token", "demo-admin"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    words = out.stdout.split()
    if out.returncode != 0 or "token" not in words:
        raise CheckFailed(f"drf_create_token failed: {out.stdout}{out.stderr}")
    return words[words.index("token") + 1]


STATS = """
import json
from django.db.models import Count
from labeling.models import GoldItem, Item, ModelVersion, Prediction, Project
from labeling.reports import cost_report_build, report_period_parse
from ml.fashion_mnist import load_split
p = Project.objects.get(slug="fashion-demo")
demo = Item.objects.filter(project=p, metadata__source="fashion-mnist")
truth = load_split("train")[1]
auto = demo.filter(final_source="machine").select_related("final_label")
report = cost_report_build(project=p, period=report_period_parse(start=None, end=None))
print(json.dumps({
  "models": [
    {"version": m.version, "status": m.status, "reason": m.progress.get("reason", ""),
     "created_at": m.created_at.timestamp(),
     "trained_at": m.trained_at.timestamp() if m.trained_at else None,
     "promoted_at": m.promoted_at.timestamp() if m.promoted_at else None,
     "hyperparameters": m.hyperparameters, "heldout_items": m.metrics.get("heldout_items"),
     "accuracy": m.metrics.get("accuracy"),
     "coverage_at_target": m.metrics.get("coverage_at_target"),
     "thresholds": (m.thresholds or {}).get("per_class"), "status_reason": m.status_reason}
    for m in ModelVersion.objects.filter(project=p).order_by("version")],
  "demo_images": demo.count(),
  "demo_by_status": dict(
      demo.values_list("status").annotate(n=Count("id")).values_list("status", "n")),
  "demo_audit": demo.filter(is_audit=True).count(),
  "demo_gold": GoldItem.objects.filter(item__in=demo).count(),
  "imported": Item.objects.filter(project=p, final_source="imported").count(),
  "auto_labeled_right": sum(
      1 for i in auto if i.final_label.position == int(truth[i.metadata["fmnist_index"]])),
  "predictions": Prediction.objects.filter(item__project=p).count(),
  "cost_summary": {k: str(v) for k, v in report.summary.items()},
}))
"""


def run_stats(app: Path, env: dict) -> dict:
    out = subprocess.run(
        [str(app / ".venv/bin/python"), "manage.py", "shell", "-c", STATS],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0:
        raise CheckFailed(f"reading the run's figures failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", help="scratch folder for the copy (kept; its .venv is reused)")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--images", help="DEMO_IMAGES for bin/run (default: bin/run's)")
    parser.add_argument("--history", help="DEMO_HISTORY for bin/run (default: bin/run's)")
    parser.add_argument("--start-timeout", type=float, default=3600, help="to the login page")
    parser.add_argument("--route-timeout", type=float, default=900)
    parser.add_argument("--model-timeout", type=float, default=1800)
    parser.add_argument("--stop-timeout", type=float, default=90)
    parser.add_argument("--no-wait-model", action="store_true")
    parser.add_argument("--stop-signal", choices=("TERM", "INT"), default="TERM")
    parser.add_argument("--out", default=str(ROOT / "bench/results/first_run.json"))
    args = parser.parse_args(argv)

    app = Path(args.app) if args.app else Path(tempfile.mkdtemp(prefix="first-run-")) / "app"
    app.mkdir(parents=True, exist_ok=True)
    fresh_venv = not (app / ".venv").exists()
    files = copy_checkout(app)
    port = args.port or _free_port()
    extra = {}
    if args.images:
        extra["DEMO_IMAGES"] = args.images
    if args.history:
        extra["DEMO_HISTORY"] = args.history
    env = user_env(port, extra)
    run_log = app.parent / "bin-run.log"
    load_start = os.getloadavg()
    log(f"copied {files} files to {app}; starting bin/run on port {port} (log: {run_log})")

    t0 = time.time()
    started = time.monotonic()
    with open(run_log, "wb") as out:
        proc = subprocess.Popen(
            ["bin/run"],
            cwd=app,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: we can find everything it started
        )
    sid = proc.pid
    timings: dict[str, float] = {}
    figures: dict = {}
    api = Api(f"http://127.0.0.1:{port}")
    try:
        wait_until(
            "the login page",
            lambda: api.request("GET", "/login/")[0] == 200,
            timeout=args.start_timeout,
            proc=proc,
            run_log=run_log,
        )
        timings["login_page_s"] = round(time.monotonic() - started, 1)
        log(f"login page answers 200 after {timings['login_page_s']} s")

        api.token = demo_token(app, env)
        total = api.count(f"/api/projects/{SLUG}/items/?page_size=1")
        if not total:
            raise CheckFailed(
                "the demo project has no images (is dataset-fashion-mnist installed?)"
            )
        wait_until(
            "the worker to route the demo images",
            lambda: api.count(f"/api/projects/{SLUG}/items/?status=new&page_size=1") == 0,
            timeout=args.route_timeout,
            proc=proc,
            run_log=run_log,
        )
        timings["demo_routed_s"] = round(time.monotonic() - started, 1)
        log(f"all {total} demo items routed after {timings['demo_routed_s']} s")

        body, content_type = multipart("files", "first-run.png", png_bytes(int(t0)))
        code, answer = api.request(
            "POST",
            f"/api/projects/{SLUG}/items/upload/",
            body,
            {"Content-Type": content_type},
        )
        if code != 201:
            raise CheckFailed(f"upload answered {code}: {answer[:300]!r}")
        item_id = json.loads(answer)["results"][0]["item_id"]
        uploaded = time.monotonic()
        status = wait_until(
            "the uploaded image to be routed",
            lambda: (
                s
                if (s := api.json(f"/api/projects/{SLUG}/items/{item_id}/")["status"]) != "new"
                else None
            ),
            timeout=args.route_timeout,
            proc=proc,
            run_log=run_log,
        )
        timings["upload_routed_s"] = round(time.monotonic() - uploaded, 1)
        figures["uploaded_item_status"] = status
        log(f"uploaded image {item_id} is '{status}' after {timings['upload_routed_s']} s")

        if not args.no_wait_model:
            _wait_for_first_model(api, proc, run_log, args, started, timings, figures)
        figures["cost_report_api"] = api.json(f"/api/projects/{SLUG}/reports/costs/")["summary"]
    finally:
        stop_started = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(getattr(signal, f"SIG{args.stop_signal}"))
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=args.stop_timeout)
        left = session_processes(sid)
        for line in left:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        stopped_in = round(time.monotonic() - stop_started, 1)
    if proc.returncode is None:
        raise CheckFailed(
            f"bin/run did not stop within {args.stop_timeout:.0f} s of SIG{args.stop_signal}"
        )
    if left:
        raise CheckFailed("processes left after bin/run stopped:\n" + "\n".join(left))
    if proc.returncode != 0:
        raise CheckFailed(
            f"bin/run exited {proc.returncode} on SIG{args.stop_signal}\n{tail(run_log)}"
        )
    timings["stop_s"] = stopped_in
    log(f"bin/run stopped on SIG{args.stop_signal} in {stopped_in} s, no process left")

    stats = run_stats(app, env)
    for model in stats["models"]:
        for key in ("created_at", "trained_at", "promoted_at"):
            if model[key] is not None:
                model[f"{key.removesuffix('_at')}_after_s"] = round(model[key] - t0, 1)
    report = {
        "benchmark": "first_run",
        "command": "python3 "
        + shlex.join([str(Path(__file__).relative_to(ROOT)), *(argv or sys.argv[1:])]),
        "commit": _git(["rev-parse", "--short", "HEAD"]),
        "fresh_venv": fresh_venv,
        "demo_images": extra.get("DEMO_IMAGES", "default"),
        "demo_history": extra.get("DEMO_HISTORY", "default"),
        "stop_signal": args.stop_signal,
        "timings": timings,
        **figures,
        "run": stats,
        "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    _summary(report)
    return report


def _wait_for_first_model(api, proc, run_log, args, started, timings, figures) -> None:
    def active():
        models = api.json(f"/api/projects/{SLUG}/models/")["results"]
        failed = [m for m in models if m["status"] == "failed"]
        if failed:
            raise CheckFailed(f"the first model failed: {failed[0]['status_reason'][:500]}")
        return any(m["status"] == "active" for m in models)

    if not api.json(f"/api/projects/{SLUG}/models/")["results"]:
        raise CheckFailed("no first model was queued (DEMO_HISTORY 0?); use --no-wait-model")
    wait_until("the first model", active, timeout=args.model_timeout, proc=proc, run_log=run_log)
    timings["model_active_seen_s"] = round(time.monotonic() - started, 1)
    log(f"first model active after {timings['model_active_seen_s']} s; waiting for re-routing")
    # Promotion re-routes the waiting images in batches: wait until the count settles.
    last, steady = -1, 0
    while steady < 10:  # 20 s without a change
        auto = api.count(f"/api/projects/{SLUG}/items/?status=auto_labeled&page_size=1")
        steady = steady + 1 if auto == last else 0
        last = auto
        time.sleep(2)
    timings["rerouted_s"] = round(time.monotonic() - started, 1)
    figures["auto_labeled"] = last
    log(f"{last} images auto-labeled, {timings['rerouted_s']} s after bin/run started")
    if not last:
        raise CheckFailed("the first model is active but auto-labeled no demo image")


def _summary(report: dict) -> None:
    t, run = report["timings"], report["run"]
    first = next((m for m in run["models"] if m.get("promoted_at_after_s")), None)
    keys = ("version", "promoted_at_after_s", "trained_at_after_s", "accuracy")
    summary = {
        "timings": t,
        "first_model": first and {k: first.get(k) for k in keys},
        "demo_by_status": run["demo_by_status"],
        "demo_audit": run["demo_audit"],
        "load": [report["load_average_at_start"], report["load_average_at_end"]],
    }
    print(json.dumps(summary, indent=1))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(args: list[str]) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
