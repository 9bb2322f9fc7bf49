"""Load benchmark: concurrent inspectors against the app under gunicorn, PostgreSQL and Redis.

    DATABASE_URL=postgres://labeling:labeling@127.0.0.1:5432/labeling \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python bench/load.py --answers 10000 --inspectors 50

Each inspector is a separate HTTP client with its own API token. It leases the next image
(``POST …/queue/next/``) and answers it (``POST …/queue/answers/``, 90% with the true label) until
the target number of accepted answers is in. Setup creates a dedicated database (dropped at the
end), a project, the inspectors and enough queued items (bulk-inserted, tiny fake images: the
image bytes are never fetched, so this measures the queue, not file serving). Afterwards the
database is checked for lost answers, items over-leased, and inspectors answering an item twice.
Figures go to stdout and ``bench/results/load.json``.
"""

import argparse
import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "load.json"
LABELS = ["package", "product", "full_body", "half_body"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=10_000, help="accepted answers to reach")
    parser.add_argument("--inspectors", type=int, default=50, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--think-ms", type=float, default=0, help="pause before each answer")
    parser.add_argument("--accuracy", type=float, default=0.9, help="share of right answers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON figures")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="PostgreSQL URL of a server where a dedicated bench database may be created",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the broker and the cache",
    )
    return parser.parse_args(argv)


# --- setup ---------------------------------------------------------------------------------


def bench_database_url(base: str) -> tuple[str, str]:
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/load.py needs PostgreSQL: set DATABASE_URL=postgres://… (see docstring)")
    name = f"labeling_load_{os.getpid()}"
    return urlunsplit(parts._replace(path=f"/{name}")), name


def admin_sql(base: str, statement: str) -> None:
    import psycopg2

    parts = urlsplit(base)
    conn = psycopg2.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        dbname=parts.path.lstrip("/") or "postgres",
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def server_env(db_url: str, redis_url: str) -> dict:
    broker = urlsplit(redis_url)
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        # A database of its own on the same Redis, flushed at the end: nothing queued here
        # reaches another user's workers.
        "CELERY_BROKER_URL": urlunsplit(broker._replace(path="/13")),
        "CACHE_URL": urlunsplit(broker._replace(path="/12")),
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "labeling.settings",
    }


def setup_data(args, n_items: int) -> tuple[str, dict[str, str], dict[int, str], dict]:
    """Project, inspectors with tokens, queued items (truth kept client-side)."""
    import django

    django.setup()
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
    project_info = {
        "min_answers": project.min_answers,
        "max_answers": project.max_answers,
        "consensus_target": project.consensus_target,
        "lease_seconds": project.lease_seconds,
        "items": n_items,
    }
    return project.slug, tokens, dict(zip(ids, truth, strict=True)), project_info


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args, env: dict, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "labeling.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(args.workers),
            "-k",
            "gthread",
            "--threads",
            str(args.threads),
            "--backlog",
            "512",
            # Longer than a client's pause between answers: with gunicorn's default of 2 s an
            # inspector's reused connection can be closed under it ("connection reset").
            "--keep-alive",
            "75",
        ],
        cwd=ROOT,
        env=env,
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
    sys.exit(f"gunicorn did not start; see {log_path}")


def stop_process_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- the load ------------------------------------------------------------------------------


class Tally:
    def __init__(self, target: int):
        self.target = target
        self.lock = threading.Lock()
        self.accepted: list[int] = []  # answer ids from 201 responses
        self.latency = {"next": [], "submit": []}
        self.status: dict[str, dict[int, int]] = {"next": {}, "submit": {}}
        self.errors: list[str] = []
        self.empty_queue = 0

    def done(self) -> bool:
        return len(self.accepted) >= self.target

    def record(self, kind: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            self.status[kind][status] = self.status[kind].get(status, 0) + 1


def inspector(url: str, slug: str, token: str, truth: dict, tally: Tally, args, seed: int):
    rng = random.Random(seed)
    base = f"{url}/api/projects/{slug}/queue"
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    empty_in_a_row = 0
    while not tally.done():
        started = time.perf_counter()
        try:
            lease = session.post(f"{base}/next/", timeout=30)
        except requests.RequestException as exc:
            tally.errors.append(f"next: {exc}")
            continue
        tally.record("next", time.perf_counter() - started, lease.status_code)
        if lease.status_code == 204:
            empty_in_a_row += 1
            with tally.lock:
                tally.empty_queue += 1
            if empty_in_a_row > 20:
                return
            time.sleep(0.2)
            continue
        if lease.status_code != 200:
            tally.errors.append(f"next {lease.status_code}: {lease.text[:200]}")
            continue
        empty_in_a_row = 0
        body = lease.json()
        right = truth[body["item"]]
        label = right if rng.random() < args.accuracy else rng.choice(LABELS)
        if args.think_ms:
            time.sleep(args.think_ms / 1000 * rng.uniform(0.5, 1.5))
        started = time.perf_counter()
        try:
            answer = session.post(
                f"{base}/answers/",
                json={"assignment": body["assignment"], "label": label, "time_on_task_ms": 1500},
                timeout=30,
            )
        except requests.RequestException as exc:
            tally.errors.append(f"submit: {exc}")
            continue
        tally.record("submit", time.perf_counter() - started, answer.status_code)
        if answer.status_code == 201:
            with tally.lock:
                tally.accepted.append(answer.json()["answer"])
        else:
            tally.errors.append(f"submit {answer.status_code}: {answer.text[:200]}")


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 1),
    }


# --- checks --------------------------------------------------------------------------------


def database_checks(slug: str, accepted: list[int]) -> dict:
    from django.db import connection

    from labeling.models import Annotation, Project

    project = Project.objects.get(slug=slug)
    found = Annotation.objects.filter(pk__in=accepted).count()
    labelled = Annotation.objects.filter(project=project, label__isnull=False).count()
    with connection.cursor() as cursor:

        def scalar(sql: str) -> int:
            cursor.execute(sql, [project.pk])
            return cursor.fetchone()[0]

        answered_twice = scalar(
            "SELECT count(*) FROM (SELECT item_id, annotator_id FROM labeling_annotation a "
            "WHERE project_id = %s AND label_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM labeling_annotation b WHERE b.supersedes_id = a.id) "
            "GROUP BY 1, 2 HAVING count(*) > 1) t"
        )
        leased_twice_to_one = scalar(
            "SELECT count(*) FROM (SELECT item_id, annotator_id FROM labeling_assignment "
            "WHERE project_id = %s GROUP BY 1, 2 HAVING count(*) > 1) t"
        )
        over_max = scalar(
            "SELECT count(*) FROM (SELECT a.item_id FROM labeling_annotation a "
            "JOIN labeling_project p ON p.id = a.project_id WHERE a.project_id = %s "
            "AND a.label_id IS NOT NULL GROUP BY a.item_id, p.max_answers "
            "HAVING count(*) > p.max_answers) t"
        )
        # Answers to an item that had already closed: a slot leased beyond what it needed.
        after_close = scalar(
            "SELECT count(*) FROM labeling_annotation a JOIN labeling_item i ON i.id = a.item_id "
            "WHERE a.project_id = %s AND a.label_id IS NOT NULL AND i.finished_at IS NOT NULL "
            "AND a.created_at > i.finished_at"
        )
        open_beyond_need = scalar(
            "SELECT count(*) FROM (SELECT i.id FROM labeling_item i "
            "JOIN labeling_project p ON p.id = i.project_id "
            "JOIN labeling_assignment s ON s.item_id = i.id AND s.status = 'open' "
            "WHERE i.project_id = %s GROUP BY i.id, p.min_answers, i.answer_count "
            "HAVING count(*) > GREATEST(p.min_answers - i.answer_count, 1)) t"
        )
        cursor.execute(
            "SELECT status, count(*) FROM labeling_item WHERE project_id = %s GROUP BY 1",
            [project.pk],
        )
        statuses = dict(cursor.fetchall())
    return {
        "answers_accepted": len(accepted),
        "accepted_answers_missing": len(accepted) - found,
        "answer_rows_without_a_201": labelled - found,
        "inspector_answered_an_item_twice": answered_twice,
        "item_leased_twice_to_one_inspector": leased_twice_to_one,
        "items_over_max_answers": over_max,
        "answers_after_item_closed": after_close,
        "items_with_open_leases_beyond_need": open_beyond_need,
        "item_statuses": statuses,
    }


def machine_info() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
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
        "cpu_count": os.cpu_count(),
        "postgresql": pg,
        "git_commit": commit,
        "git_dirty": dirty,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    db_url, db_name = bench_database_url(args.database_url)
    env = server_env(db_url, args.redis_url)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")})
    os.environ.setdefault("CELERY_BROKER_URL", env["CELERY_BROKER_URL"])
    sys.path.insert(0, str(ROOT))
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{db_name}-gunicorn.log"

    admin_sql(args.database_url, f'DROP DATABASE IF EXISTS "{db_name}"')
    admin_sql(args.database_url, f'CREATE DATABASE "{db_name}"')
    server = None
    try:
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=False
        )
        if migrate.returncode:
            sys.exit("migrate failed")
        # Enough items that the queue never runs dry: about 2.3 answers close an item.
        n_items = int(args.answers / 1.5) + 200
        slug, tokens, truth, project_info = setup_data(args, n_items)
        server, url = start_gunicorn(args, env, log_path)

        tally = Tally(args.answers)
        threads = [
            threading.Thread(
                target=inspector,
                args=(url, slug, token, truth, tally, args, args.seed + i),
                daemon=True,
            )
            for i, token in enumerate(tokens.values())
        ]
        print(
            f"{args.inspectors} inspectors → gunicorn -w {args.workers} -k gthread "
            f"--threads {args.threads}; target {args.answers} answers on {n_items} items …",
            flush=True,
        )
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        stop_process_group(server)
        server = None

        from django.db import connections

        connections.close_all()
        checks = database_checks(slug, tally.accepted)
        anomalies = sum(
            value
            for key, value in checks.items()
            if key not in ("answers_accepted",) and isinstance(value, int)
        )
        result = {
            "benchmark": "load",
            "command": "python bench/load.py " + " ".join(argv or sys.argv[1:]),
            "setup": {
                "inspectors": args.inspectors,
                "gunicorn": (
                    f"-w {args.workers} -k gthread --threads {args.threads} --keep-alive 75"
                ),
                "think_ms": args.think_ms,
                "accuracy": args.accuracy,
                **project_info,
            },
            "elapsed_s": round(elapsed, 1),
            "answers_per_s": round(len(tally.accepted) / elapsed, 1),
            "requests_per_s": round(
                (len(tally.latency["next"]) + len(tally.latency["submit"])) / elapsed, 1
            ),
            "next": {**percentiles(tally.latency["next"]), "statuses": tally.status["next"]},
            "submit": {
                **percentiles(tally.latency["submit"]),
                "statuses": tally.status["submit"],
            },
            "errors": len(tally.errors),
            "error_samples": sorted(set(tally.errors))[:10],
            "empty_queue_responses": tally.empty_queue,
            "checks": checks,
            "anomalies": anomalies,
            "machine": machine_info(),
        }
        print(json.dumps(result, indent=2))
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if not tally.errors and not anomalies else 1
    finally:
        if server is not None:
            stop_process_group(server)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        admin_sql(args.database_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        try:
            import redis

            for db in (12, 13):
                redis.Redis.from_url(
                    urlunsplit(urlsplit(args.redis_url)._replace(path=f"/{db}"))
                ).flushdb()
        except Exception as exc:  # noqa: BLE001 - cleanup is best effort
            print(f"could not flush the bench's Redis databases: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
