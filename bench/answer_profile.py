"""The answer's own CPU, without HTTP: one-trip answers through DRF's test client in one process.

``bench/load.py`` measures the service as inspectors see it (gunicorn, PostgreSQL, many clients),
where the figure also moves with the machine's day. This runs the same request
(``POST answers/`` with ``"next": 1``) in-process, so two trees can be compared on the same
machine within a minute, and with ``--profile`` shows where the Python time goes.

    DATABASE_URL=postgres://labeling:labeling@127.0.0.1:5432/labeling \\
        .venv/bin/python bench/answer_profile.py --database labeling_answer_profile [--profile]

The database named by ``--database`` is dropped and created on the server of ``DATABASE_URL``.
Writes ``bench/results/answer_profile.json`` (``cpu_ms_per_answer``, ``statements_per_answer``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "answer_profile.json"
LABELS = ["package", "product", "full_body", "half_body"]


def database_url(name: str) -> str:
    """``DATABASE_URL`` with its database replaced by ``name``, dropped and created afresh."""
    from loop import database_recreate  # bench/loop.py, next to this script

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server (the hot path's production).")
    url = base.rsplit("/", 1)[0] + "/" + name
    database_recreate(url)
    return url


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="labeling_answer_profile")
    parser.add_argument("--answers", type=int, default=600)
    parser.add_argument("--inspectors", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = database_url(args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
    os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="answer-profile-")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from labeling.models import Item, ItemStatus
    from labeling.project_setup import member_add, project_create
    from ml.environment import machine_info

    call_command("migrate", verbosity=0)
    project = project_create(
        name="Answer profile",
        labels=LABELS,
        gold_rate=0,
        audit_rate=0,
        min_answers=2,
        max_answers=4,
    )
    items = 2 * args.answers + 500
    Item.objects.bulk_create(
        Item(
            project=project,
            image=f"items/{i}.png",
            sha256=f"{i:064x}",
            content_type="image/png",
            width=8,
            height=8,
            byte_size=10,
            status=ItemStatus.QUEUED,
        )
        for i in range(items)
    )
    base = f"/api/projects/{project.slug}/queue/"
    clients = []
    for n in range(args.inspectors):
        user = User.objects.create_user(f"inspector{n}")
        member_add(project=project, user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        clients.append(client)
    leases = [c.post(base + "next/", {}, format="json").json() for c in clients]

    def answer(count: int) -> None:
        for i in range(count):
            j = i % len(clients)
            body = {"assignment": leases[j]["assignment"], "label": LABELS[i % 2]}
            body.update(time_on_task_ms=900, next=1)
            response = clients[j].post(base + "answers/", body, format="json")
            leases[j] = response.json()["next"][0]

    answer(100)  # warm: connections, caches, the first items' consensus
    with CaptureQueriesContext(connection) as captured:
        answer(50)
    statements = [
        q["sql"] for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")
    ]
    started = time.process_time()
    answer(args.answers)
    cpu_ms = (time.process_time() - started) / args.answers * 1000
    result = {
        "benchmark": "answer_profile",
        "command": "python " + " ".join(sys.argv),
        "answers": args.answers,
        "inspectors": args.inspectors,
        "cpu_ms_per_answer": round(cpu_ms, 2),
        "statements_per_answer": round(len(statements) / 50, 2),
        "note": "client and server in one process: DRF's test client, no HTTP",
        "machine": machine_info(),
    }
    print(json.dumps(result, indent=2))
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        answer(args.answers)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
