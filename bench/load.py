"""Load benchmark: concurrent inspectors against the app under a real web server and database.

    DATABASE_URL=postgres://labeling:labeling@127.0.0.1:5432/labeling \\
    .venv/bin/python bench/load.py --answers 10000 --inspectors 50 --bench-database labeling_load_me

Each inspector is a separate HTTP client (a ``requests`` session with its own API token) that
answers leased images, 90% with the true label, until the target number of accepted answers is
in. Two paths are measured in the same run, each on a fresh database and a fresh server:

- ``classic``, the baseline: lease (``POST …/queue/next/``), then answer
  (``POST …/queue/answers/``): two requests per answer;
- ``one_trip``: answer with ``"next": 1`` and get the next lease in the same response: one
  request per answer (``next/`` only for the first lease, or when a reply brought none).

Setup creates the project, the inspectors and enough queued items (bulk-inserted, tiny fake
images: the image bytes are never fetched, so this measures the queue, not file serving).

Figures: answers per second; CPU-seconds per answer over the timed window, for the whole machine
(``/proc/stat``) and for the server alone (the web server's processes plus the PostgreSQL
backends of the benchmark's database, from ``/proc/<pid>/stat``); latency percentiles of lease
hand-outs (``next``: the request that delivered each lease) and of answers (``submit``); SQL
statements per request (counted by ``bench/load_wsgi.py``). Afterwards the database is checked
for lost answers, answers stored twice and double hand-outs (``bench/load_checks.py``).

``--database-url sqlite`` runs the embedded default instead: SQLite under a fresh ``VAR_DIR``
served by ``manage.py runserver``, as ``bin/run`` does. The figures go to stdout and ``--output``
(``bench/results/load.json`` by default).
"""

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from load_checks import anomalies, database_checks
from load_cpu import CpuMeter, loadavg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "load.json"
LABELS = ["package", "product", "full_body", "half_body"]
PATHS = {"both": ["classic", "one_trip"], "classic": ["classic"], "one_trip": ["one_trip"]}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=10_000, help="accepted answers to reach")
    parser.add_argument("--inspectors", type=int, default=50, help="concurrent HTTP clients")
    parser.add_argument(
        "--path",
        choices=sorted(PATHS),
        default="both",
        help="both: the classic two-request path as the baseline, then the one-trip path",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--think-ms", type=float, default=0, help="mean pause before each answer")
    parser.add_argument("--accuracy", type=float, default=0.9, help="share of right answers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="start the clock with the first request to a cold server (as before this option)",
    )
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON figures")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="a PostgreSQL server where the bench database may be created, or 'sqlite' for "
        "the embedded default",
    )
    parser.add_argument(
        "--bench-database",
        default=f"labeling_load_{os.getpid()}",
        help="name of the PostgreSQL database to create (dropped and created again per path)",
    )
    return parser.parse_args(argv)


# --- the database and the server ------------------------------------------------------------


class Target:
    """Where one run's database lives and how the server is started against it."""

    def __init__(self, args):
        self.args = args
        self.sqlite = args.database_url.strip().lower() in ("sqlite", "sqlite://")
        self.var_dir = Path(tempfile.mkdtemp(prefix="labeling-load-"))
        if self.sqlite:
            self.url = ""
            self.database = None
        else:
            parts = urlsplit(args.database_url)
            if not parts.scheme.startswith("postgres"):
                sys.exit("bench/load.py needs DATABASE_URL=postgres://… or --database-url sqlite")
            self.database = args.bench_database
            self.url = urlunsplit(parts._replace(path=f"/{self.database}"))

    def env(self) -> dict:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG")
        }
        env.update(
            VAR_DIR=str(self.var_dir),
            DJANGO_SETTINGS_MODULE="labeling.settings",
            LOG_LEVEL="WARNING",
        )
        if self.sqlite:
            # The embedded default exactly: no database or broker URL, DEBUG as bin/run has it.
            return env
        env.update(
            DATABASE_URL=self.url,
            DJANGO_DEBUG="0",
            SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="0",
            SESSION_COOKIE_SECURE="0",
            CSRF_COOKIE_SECURE="0",
        )
        # Answering queues no Celery task; the broker stays the filesystem one under VAR_DIR.
        return env

    def admin_sql(self, statement: str) -> None:
        import psycopg2

        parts = urlsplit(self.args.database_url)
        conn = psycopg2.connect(
            host=parts.hostname,
            port=parts.port or 5432,
            user=parts.username,
            password=parts.password,
            # The maintenance database: the one in the URL need not exist.
            dbname="postgres",
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
        finally:
            conn.close()

    def reset(self) -> None:
        """A fresh, migrated database."""
        from django.db import connections

        connections.close_all()
        if self.sqlite:
            for path in self.var_dir.glob("db.sqlite3*"):
                path.unlink()
        else:
            self.admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.admin_sql(f'CREATE DATABASE "{self.database}"')
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=self.env()
        )
        if migrate.returncode:
            sys.exit("migrate failed")

    def drop(self) -> None:
        from django.db import connections

        connections.close_all()
        if not self.sqlite:
            self.admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        shutil.rmtree(self.var_dir, ignore_errors=True)

    def server_command(self, port: int) -> list[str]:
        if self.sqlite:
            return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        return [
            str(Path(sys.executable).parent / "gunicorn"),
            "bench.load_wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(self.args.workers),
            "-k",
            "gthread",
            "--threads",
            str(self.args.threads),
            "--backlog",
            "512",
            # Longer than a client's pause between answers: with gunicorn's default of 2 s an
            # inspector's reused connection can be closed under it ("connection reset").
            "--keep-alive",
            "75",
        ]

    def server_label(self) -> str:
        if self.sqlite:
            return "manage.py runserver (SQLite, embedded default)"
        return (
            f"gunicorn -w {self.args.workers} -k gthread --threads {self.args.threads} "
            "--keep-alive 75"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(target: Target, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        target.server_command(port),
        cwd=ROOT,
        env=target.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            # Any HTTP answer will do (the API says 401 without a token): the server is up.
            requests.get(f"{url}/api/projects/", timeout=5)
            return process, url
        except requests.RequestException:
            time.sleep(0.3)
    stop_process_group(process)
    sys.exit(f"the server did not start; see {log_path}")


def stop_process_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def setup_data(args, n_items: int) -> tuple[str, dict[str, str], dict[int, str], dict]:
    """Project, inspectors with tokens, queued items (truth kept client-side)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from labeling.access import Role, roles_ensure
    from labeling.models import Item, ItemStatus, Membership
    from labeling.project_setup import project_create

    rng = random.Random(args.seed)
    project = project_create(
        name="Load", slug="load", labels=LABELS, min_answers=2, max_answers=4, gold_rate=0.0
    )
    roles_ensure()
    group = Group.objects.get(name=Role.INSPECTOR.value)
    User = get_user_model()
    tokens = {}
    for i in range(args.inspectors):
        user = User.objects.create_user(username=f"load-{i:03d}", password=None)
        user.groups.add(group)
        Membership.objects.create(project=project, user=user)
        tokens[user.username] = Token.objects.create(user=user).key
    truth = [rng.choice(LABELS) for _ in range(n_items)]
    Item.objects.bulk_create(
        (
            Item(
                project=project,
                image=f"items/{project.pk}/00/{i:064x}.png",
                sha256=f"{i:064x}",
                content_type="image/png",
                width=32,
                height=32,
                byte_size=100,
                status=ItemStatus.QUEUED,
                metadata={"truth": truth[i]},
            )
            for i in range(n_items)
        ),
        batch_size=2000,
    )
    ids = list(Item.objects.filter(project=project).order_by("sha256").values_list("pk", flat=True))
    from django.db import connection

    if connection.vendor == "postgresql":
        # Statistics for the bulk-inserted rows, as a live database has them: without them the
        # planner may sort the whole queue instead of walking its index until autovacuum runs.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    project_info = {
        "min_answers": project.min_answers,
        "max_answers": project.max_answers,
        "consensus_target": project.consensus_target,
        "lease_seconds": project.lease_seconds,
        "items": n_items,
    }
    return project.slug, tokens, dict(zip(ids, truth, strict=True)), project_info


# --- the load ------------------------------------------------------------------------------


class Tally:
    def __init__(self, target: int):
        self.target = target
        self.lock = threading.Lock()
        self.accepted: list[int] = []  # answer ids from 201 responses (warm-up included)
        self.timed_answers = 0
        # next: the request that handed out each lease; submit: each answer's request. Each
        # sample is (seconds into the window when the request started, latency in seconds).
        self.latency: dict[str, list[tuple[float, float]]] = {"next": [], "submit": []}
        self.warmup: list[float] = []
        self.window_start = 0.0
        self.go = threading.Event()  # set when the timed window starts
        self.status: dict[str, dict[int, int]] = {"next/": {}, "answers/": {}}
        self.queries: dict[str, list[int]] = {"next/": [], "answers/": []}
        self.errors: list[str] = []
        self.empty_queue = 0

    def done(self) -> bool:
        return self.timed_answers >= self.target

    def request(self, endpoint: str, response: requests.Response) -> None:
        with self.lock:
            counts = self.status[endpoint]
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
            if "X-Queries" in response.headers:
                self.queries[endpoint].append(int(response.headers["X-Queries"]))

    def timing(self, kind: str, started: float, seconds: float) -> None:
        with self.lock:
            self.latency[kind].append((started - self.window_start, seconds))

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


class Inspector:
    """One simulated inspector: one HTTP session, answering leased images in a loop."""

    def __init__(self, url, slug, token, truth, tally: Tally, args, seed, one_trip):
        self.rng = random.Random(seed)
        self.base = f"{url}/api/projects/{slug}/queue"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.truth, self.tally, self.args, self.one_trip = truth, tally, args, one_trip
        self.lease = None
        self.empty_in_a_row = 0

    def run(self, ready: threading.Barrier) -> None:
        # Warm-up, outside the timed window: one answer each, so the connection is open and the
        # server has run every part of the hot path once (imports, URL resolver, database
        # connections and their caches) before the clock runs. Its latency is reported apart.
        if not self.args.no_warmup:
            started = time.perf_counter()
            self.step(timed=False)
            self.tally.warmup.append(time.perf_counter() - started)
        ready.wait()
        self.tally.go.wait()
        if self.args.think_ms and not self.args.no_warmup:
            # People do not all press a key at the same millisecond: start spread over a pause.
            time.sleep(self.args.think_ms / 1000 * self.rng.uniform(0, 1))
        while not self.tally.done() and self.empty_in_a_row <= 20:
            self.step(timed=True)

    def post(self, endpoint: str, timed: bool, **kwargs) -> tuple[requests.Response | None, float]:
        started = time.perf_counter()
        try:
            response = self.session.post(f"{self.base}/{endpoint}", timeout=30, **kwargs)
        except requests.RequestException as exc:
            self.tally.error(f"{endpoint}: {exc}")
            return None, started
        if timed:
            self.tally.request(endpoint, response)
        return response, started

    def step(self, *, timed: bool) -> None:
        """Take a lease if none is held, think, answer (asking for the next lease on the
        one-trip path)."""
        tally = self.tally
        if self.lease is None:
            response, started = self.post("next/", timed)
            elapsed = time.perf_counter() - started
            if response is None:
                return
            if response.status_code == 204:
                self.empty_in_a_row += 1
                with tally.lock:
                    tally.empty_queue += 1
                time.sleep(0.2)
                return
            if response.status_code != 200:
                tally.error(f"next {response.status_code}: {response.text[:200]}")
                return
            if timed:
                tally.timing("next", started, elapsed)
            self.empty_in_a_row = 0
            self.lease = response.json()
        right = self.truth[self.lease["item"]]
        label = right if self.rng.random() < self.args.accuracy else self.rng.choice(LABELS)
        if self.args.think_ms and timed:
            time.sleep(self.args.think_ms / 1000 * self.rng.uniform(0.5, 1.5))
        body = {"assignment": self.lease["assignment"], "label": label, "time_on_task_ms": 1500}
        if self.one_trip:
            body["next"] = 1
        self.lease = None
        response, started = self.post("answers/", timed, json=body)
        elapsed = time.perf_counter() - started
        if response is None:
            return
        if response.status_code != 201:
            tally.error(f"submit {response.status_code}: {response.text[:200]}")
            return
        reply = response.json()
        with tally.lock:
            tally.accepted.append(reply["answer"])
            if timed:
                tally.timed_answers += 1
        if timed:
            tally.timing("submit", started, elapsed)
        if self.one_trip and reply.get("next"):
            if timed:
                tally.timing("next", started, elapsed)
            self.lease = reply["next"][0]


def percentiles(samples: list[tuple[float, float]]) -> dict:
    if not samples:
        return {}
    ordered = sorted(seconds for _, seconds in samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 1),
        # When the slowest 1% started (seconds into the window) and took (ms): a tail that sits
        # at the start is a cold start, one spread out is steady-state.
        "slowest": [
            [round(at, 1), round(seconds * 1000, 1)]
            for at, seconds in sorted(samples, key=lambda s: -s[1])[: max(1, len(samples) // 100)]
        ][:20],
    }


def query_counts(values: list[int]) -> dict | None:
    if not values:
        return None
    return {
        "requests": len(values),
        "mean": round(sum(values) / len(values), 2),
        "min": min(values),
        "max": max(values),
    }


def run_path(args, target: Target, path: str) -> dict:
    """One path on a fresh database and a fresh server: load, CPU, latency, checks."""
    target.reset()
    # Enough items that the queue never runs dry: about 2.3 answers close an item.
    n_items = int(args.answers / 1.5) + 200
    slug, tokens, truth, project_info = setup_data(args, n_items)
    log_path = target.var_dir / f"server-{path}.log"
    server, url = start_server(target, log_path)
    try:
        tally = Tally(args.answers)
        ready = threading.Barrier(len(tokens) + 1)
        inspectors = [
            Inspector(url, slug, token, truth, tally, args, args.seed + i, path == "one_trip")
            for i, token in enumerate(tokens.values())
        ]
        threads = [
            threading.Thread(target=inspector.run, args=(ready,), daemon=True)
            for inspector in inspectors
        ]
        print(
            f"[{path}] {args.inspectors} inspectors → {target.server_label()}; "
            f"target {args.answers} answers on {n_items} items …",
            flush=True,
        )
        for thread in threads:
            thread.start()
        load_before = loadavg()
        meter = CpuMeter(server.pid, target.database)
        ready.wait()  # every inspector has warmed up
        meter.start()
        tally.window_start = meter.wall_start
        tally.go.set()
        for thread in threads:
            thread.join()
        cpu = meter.finish()
        load_after = loadavg()
    finally:
        stop_process_group(server)
    checks = database_checks(slug, tally.accepted)
    answers = tally.timed_answers
    elapsed = cpu["wall_s"]
    requests_made = sum(sum(counts.values()) for counts in tally.status.values())

    def per_answer(seconds: float) -> float | None:
        return round(seconds / answers, 5) if answers else None

    return {
        "path": path,
        "answers": answers,
        "elapsed_s": round(elapsed, 1),
        "answers_per_s": round(answers / elapsed, 1),
        "requests_per_answer": round(requests_made / answers, 3) if answers else None,
        "cpu_s_per_answer": per_answer(cpu["machine_s"]),
        "server_cpu_s_per_answer": per_answer(cpu["server_s"]),
        "cpu_s_per_answer_by_part": {
            "web_server": per_answer(cpu["web_s"]),
            "postgres_backends": per_answer(cpu["postgres_s"]),
            "clients": per_answer(cpu["client_s"]),
            "rest_of_machine": per_answer(cpu["other_s"]),
        },
        "cpu_busy_share": round(cpu["machine_s"] / (elapsed * (os.cpu_count() or 1)), 3),
        "next": percentiles(tally.latency["next"]),
        "submit": percentiles(tally.latency["submit"]),
        "statuses": tally.status,
        "queries_per_request": {
            endpoint: query_counts(values) for endpoint, values in tally.queries.items()
        },
        "errors": len(tally.errors),
        "error_samples": sorted(set(tally.errors))[:10],
        "empty_queue_responses": tally.empty_queue,
        "warmup": not args.no_warmup,
        "warmup_ms": percentiles([(0.0, seconds) for seconds in tally.warmup]),
        "checks": checks,
        "double_hand_outs": checks["double_hand_outs"],
        "answers_stored_twice": checks["answers_stored_twice"],
        "anomalies": anomalies(checks),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "project": project_info,
    }


def machine_info(target: Target) -> dict:
    from django.db import connection

    from ml.environment import cpu_model  # ROOT is on sys.path once main() has set Django up

    database = "SQLite " + __import__("sqlite3").sqlite_version
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            database = "PostgreSQL " + cursor.fetchone()[0]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "database": database,
        "git_commit": commit,
        "git_dirty": dirty,
    }


def summary_line(result: dict) -> str:
    return (
        f"[{result['path']}] {result['answers']} answers in {result['elapsed_s']} s: "
        f"{result['answers_per_s']} answers/s, {result['cpu_s_per_answer']} CPU-s/answer "
        f"(server {result['server_cpu_s_per_answer']}), next p95/p99 "
        f"{result['next'].get('p95_ms')}/{result['next'].get('p99_ms')} ms, submit p95/p99 "
        f"{result['submit'].get('p95_ms')}/{result['submit'].get('p99_ms')} ms, "
        f"{result['errors']} errors, {result['anomalies']} anomalies"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    target = Target(args)
    os.environ.update(target.env())
    if target.sqlite:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    try:
        results = {}
        for path in PATHS[args.path]:
            results[path] = run_path(args, target, path)
            print(summary_line(results[path]), flush=True)
        machine = machine_info(target)
    finally:
        target.drop()
    primary = results.get("one_trip") or results["classic"]
    result = {
        "benchmark": "load",
        "command": "python bench/load.py " + " ".join(argv or sys.argv[1:]),
        "setup": {
            "inspectors": args.inspectors,
            "server": target.server_label(),
            "think_ms": args.think_ms,
            "accuracy": args.accuracy,
            **primary["project"],
        },
        **primary,
    }
    if primary["path"] == "one_trip" and "classic" in results:
        result["baseline"] = results["classic"]
    result["machine"] = machine
    text = json.dumps(result, indent=2)
    print(text)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    failed = any(r["errors"] or r["anomalies"] for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
