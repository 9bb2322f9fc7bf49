"""The whole human-in-the-loop system on Fashion-MNIST: answers, automation, accuracy, cost.

Starts a Celery worker and gunicorn against its own PostgreSQL database and Redis database, runs
``manage.py simulate_loop`` (simulated inspectors answering through the API, the worker
predicting, routing, retraining and promoting), and writes the figures to
``bench/results/loop.json`` and a plot to ``bench/results/loop.png``. See docs/loop.md.

    nice -n 10 .venv/bin/python bench/loop.py                       # 20,000 images (hours)
    nice -n 10 .venv/bin/python bench/loop.py --images 4000 --batch 1000 \
        --out bench/results/loop_4000.json --png bench/results/loop_4000.png

Needs PostgreSQL and Redis (``--database``, ``--broker``); matplotlib for the plot
(``.venv/bin/pip install matplotlib``), otherwise the plot is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Training settings for the loop: one trial of a mid-sized cut, so a retraining takes minutes.
TRAINING_ENV = {
    "TRAIN_INPUT_SIZE": "96",
    "TRAIN_TRAINABLE_BLOCKS": "5",
    "TRAIN_EPOCHS": "6",
    "TRAIN_LEARNING_RATES": "0.002",
    "TRAIN_TIME_BUDGET_S": "240",
    "THRESHOLD_MIN_SUPPORT": "30",
}
# Loop settings that differ from LoopConfig's defaults in the recorded runs.
LOOP_DEFAULTS = {
    "images": 20_000,
    "batch": 2_000,
    "answers_per_batch": 900,
    "retrain_every": 500,
    "threshold_confidence": 0.5,
}


def database_recreate(url: str) -> None:
    """Drop and create the benchmark's database, so no project of an earlier run is left for
    ``check_training_triggers`` (which looks at every project) to train."""
    import dj_database_url
    import psycopg2

    db = dj_database_url.parse(url)
    conn = psycopg2.connect(
        dbname="postgres",
        user=db["USER"],
        password=db["PASSWORD"],
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{db["NAME"]}"')
    conn.close()


def git_commit() -> dict:
    def run(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}


def plot(figures: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", flush=True)
        return False
    rows = figures["timeline"]
    steps = list(range(1, len(rows) + 1))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ax1.plot(steps, [r["answers"] for r in rows], "o-", label="human answers (cumulative)")
    ax1.plot(steps, [r["images"] for r in rows], "s--", label="images uploaded")
    ax1.plot(steps, [r["finished"] for r in rows], "^-", label="images finished")
    ax1.set_ylabel("count")
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    ax1.set_title(
        f"{figures['images']} images: {figures['answers']} answers, "
        f"{figures['auto_share']:.0%} auto-labeled, "
        f"accuracy {figures['accuracy']['overall']['accuracy']}"
    )
    ax2.plot(steps, [100 * r["auto_share"] for r in rows], "o-", label="auto-labeled share %")
    acc = [100 * (r["accuracy"] or 0) for r in rows]
    ax2.plot(steps, acc, "s-", label="accuracy of finished images %")
    for step, row in zip(steps, rows, strict=True):
        if row["active_model"]:
            ax2.annotate(f"v{row['active_model']}", (step, 100 * row["auto_share"]), fontsize=7)
    ax2.set_ylim(0, 101)
    ax2.set_ylabel("%")
    ax2.set_xlabel("period (a batch of uploads, then drain rounds)")
    ax2.set_xticks(steps, [r["period"].replace("batch ", "b") for r in rows], fontsize=7)
    ax2.legend(loc="lower right")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", default="postgres://labeling:labeling@127.0.0.1:5432/labeling_loop"
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/5")
    parser.add_argument(
        "--keep-database", action="store_true", help="do not drop and recreate --database"
    )
    parser.add_argument("--work-dir", default=str(ROOT / "var" / "loop"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/loop.json"))
    parser.add_argument("--png", default=str(ROOT / "bench/results/loop.png"))
    for name, value in TRAINING_ENV.items():
        parser.add_argument("--" + name.lower().replace("_", "-"), default=value)
    args, loop_args = parser.parse_known_args(argv)
    # Stopped with SIGTERM, still stop the worker and the server it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    slug = time.strftime("loop-%Y%m%d-%H%M%S")
    work = Path(args.work_dir) / slug
    training = {name: getattr(args, name.lower()) for name in TRAINING_ENV}
    os.environ.update(
        {
            "DATABASE_URL": args.database,
            "CELERY_BROKER_URL": args.broker,
            "MEDIA_ROOT": str(work / "media"),
            "MODEL_ROOT": str(work / "models"),
            "DJANGO_SETTINGS_MODULE": "labeling.settings",
            **training,
        }
    )
    given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in loop_args if a[:2] == "--"}
    defaults = [f"--{k.replace('_', '-')}={v}" for k, v in LOOP_DEFAULTS.items() if k not in given]
    if not args.keep_database:
        database_recreate(args.database)
    import django

    django.setup()
    from django.core.management import call_command

    from ml.environment import machine_info

    call_command("migrate", verbosity=0)
    raw = work / "figures.json"
    started = time.time()
    load_at_start = machine_info()["load_average_1_5_15"]
    call_command(
        "simulate_loop",
        *defaults,
        *loop_args,
        f"--slug={slug}",
        f"--log-dir={work}",
        f"--out={raw}",
    )
    figures = json.loads(raw.read_text())
    report = {
        "benchmark": "loop",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "simulate_loop_arguments": [*defaults, *loop_args],
        "training_env": training,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "git": git_commit(),
        "machine": machine_info(),
        "load_average_at_start": load_at_start,
        "logs": str(work),
        **figures,
    }
    Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    plot(figures, Path(args.png))
    print(f"wrote {args.out} and {args.png}", flush=True)
    return report


if __name__ == "__main__":
    main()
