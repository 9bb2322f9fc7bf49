"""The whole human-in-the-loop system on Fashion-MNIST: answers, automation, accuracy, cost.

Starts a Celery worker and gunicorn against its own PostgreSQL database and Redis database, runs
``manage.py simulate_loop`` (simulated inspectors answering through the API, the worker
predicting, routing, retraining and promoting), and writes the figures to
``bench/results/loop.json`` and a plot to ``bench/results/loop.png``. See docs/loop.md.

    nice -n 10 .venv/bin/python bench/loop.py                       # 20,000 images (hours)
    nice -n 10 .venv/bin/python bench/loop.py --images 4000 --batch 1000 \
        --out bench/results/loop_4000.json --png bench/results/loop_4000.png
    .venv/bin/python bench/loop.py --keep-database --database … \
        --figures var/loop/<slug>/figures.json       # report again on a finished, kept run

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

# Training settings for the loop: the learning curve's recipe (8 trainable blocks, 8 epochs;
# docs/ml.md), one learning rate (2e-3 won at 1,000 and 2,000 labels, and the loop's models are
# small), and a budget that lets a 5,000-label search finish all its epochs on a loaded machine
# (docs/loop.md: measured per training in the loop's own log).
TRAINING_ENV = {
    "TRAIN_INPUT_SIZE": "96",
    "TRAIN_TRAINABLE_BLOCKS": "8",
    "TRAIN_EPOCHS": "8",
    "TRAIN_LEARNING_RATES": "0.002",
    "TRAIN_TIME_BUDGET_S": "300",
    "THRESHOLD_MIN_SUPPORT": "30",
    "CALIBRATION_FIT_MIN": "0",  # off, as in the product; 400 calibrates on the evidence
}
# Loop settings that differ from LoopConfig's defaults in the recorded runs.
LOOP_DEFAULTS = {
    "images": 20_000,
    "batch": 2_000,
    "answers_per_batch": 900,
    "retrain_every": 500,
}
GOAL_ANSWERS, GOAL_ACCURACY = 9_000, 0.98


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


def headline(figures: dict) -> dict:
    """The issue's keys, from the run's figures."""
    sources = figures["accuracy"]
    machine = sources.get("machine") or {}
    cfg = figures["config"]
    return {
        "human_answers": figures["answers"],
        # An expert's decisions on top of the answers: disputes, and flagged evidence labels.
        "expert_resolutions": figures["expert_resolutions"],
        "expert_rechecks": figures.get("expert_rechecks", 0),
        "final_accuracy": sources["overall"]["accuracy"],
        "auto_labeled_share": figures["auto_share"],
        "auto_label_accuracy": machine.get("accuracy"),
        "threshold_mode": cfg["threshold_mode"],
        "threshold_scope": cfg["threshold_scope"],
        "target_precision": cfg["target_precision"],
        "threshold_confidence": cfg["threshold_confidence"],
        "calibration_share": cfg["calibration_share"],
        "train_on_machine_labels": cfg["train_on_machine_labels"],
    }


def final_model_study(slug: str) -> dict | None:
    """The last active model run over every image of the run: its accuracy on the whole
    stream, the share its certified thresholds auto-label there and how precisely, and the
    oracle (the best single threshold chosen on the stream's truth itself) at the target.

    The whole stream includes the images the model was trained on, where it is more accurate
    and surer than on new ones. So the same figures are also given for the images on the
    held-out side of their content hash (``item_held_out``: a fixed, uniform random share of
    the stream no version trains on), which stand for the images the model would see next,
    with the floor's cap: the share whose calibrated confidence reaches the target, the most
    any threshold under issue 15's floor may auto-label."""
    import numpy as np

    from labeling.machine.certification import item_held_out, project_thresholds
    from labeling.machine.predictors import checkpoint_path
    from labeling.models import Item, Project
    from ml import thresholds
    from ml.fashion_mnist import load_split
    from ml.inference import Predictor

    project = Project.objects.get(slug=slug)
    model = project.active_model
    if model is None:
        return None
    _, truth_all = load_split("train")
    items = list(
        Item.objects.filter(project=project).only(
            "pk", "image", "metadata", "sha256", "is_calibration"
        )
    )
    truth = np.array([int(truth_all[i.metadata["fmnist_index"]]) for i in items])
    images = []
    for item in items:
        with item.image.open("rb") as fh:
            images.append(fh.read())
    t0 = time.perf_counter()
    probs = Predictor.load(checkpoint_path(model), num_threads=2).predict(images).probs
    seconds = time.perf_counter() - t0
    in_force = project_thresholds(project, model)
    routed = thresholds.evaluate_thresholds(probs, truth, in_force)
    curve, _ = thresholds.risk_coverage_curve(probs, truth)
    record = model.thresholds or {}
    held = np.array(
        [item_held_out(sha256=i.sha256, is_calibration=i.is_calibration) for i in items]
    )
    held_probs, held_truth = probs[held], truth[held]
    held_routed = thresholds.evaluate_thresholds(held_probs, held_truth, in_force)
    held_curve, _ = thresholds.risk_coverage_curve(held_probs, held_truth)
    at_floor = held_probs.max(1) >= project.target_precision
    held_right = held_probs.argmax(1) == held_truth
    return {
        "version": model.version,
        "human_labels_trained": model.hyperparameters.get("human_labels_trained"),
        "machine_labels_trained": model.hyperparameters.get("machine_labels_trained"),
        "stream_accuracy": float((probs.argmax(1) == truth).mean()),
        "certified_on_evidence": record.get("evidence"),
        "certified_level": (record.get("overall") or {}).get("level"),
        "certified_coverage_stream": routed.coverage,
        "certified_precision_stream": None if routed.accepted == 0 else routed.precision,
        "oracle_coverage_stream": thresholds.coverage_at_precision(curve, project.target_precision),
        "never_trained_on": {
            "images": int(held.sum()),
            "accuracy": float(held_right.mean()),
            "certified_coverage": held_routed.coverage,
            "certified_precision": None if held_routed.accepted == 0 else held_routed.precision,
            "floor_cap_coverage": float(at_floor.mean()),
            "floor_cap_precision": float(held_right[at_floor].mean()) if at_floor.any() else None,
            "oracle_coverage": thresholds.coverage_at_precision(
                held_curve, project.target_precision
            ),
        },
        "predict_seconds": round(seconds, 1),
    }


def goal_levers(figures: dict, final: dict | None) -> dict:
    """Whether the goal (≤ 9,000 answers at ≥ 98 %) was met, and if not, which lever fell short
    and by how much, from the run's own measurements: answers per human label (consensus), the
    answers spent on images that are with humans by design (gold, calibration, audit, the blind
    start), and the automation the last model reached against what the goal needs."""
    answers = figures["answers"]
    images = figures["images"]
    accuracy = figures["accuracy"]["overall"]["accuracy"]
    kinds = figures.get("answers_by_kind", {})
    human_finished = sum(k["human_finished"] for k in kinds.values()) or 1
    per_label = answers / human_finished
    by_design = {k: kinds[k]["answers"] for k in ("gold", "calibration", "audit") if k in kinds}
    queue_answers = answers - sum(by_design.values())
    # With the same answers per label, the goal's budget labels this many images by hand; the
    # rest must be auto-labeled.
    budget_images = GOAL_ANSWERS / per_label
    needed_auto = max(0.0, 1 - budget_images / images)
    out = {
        "answers_goal": GOAL_ANSWERS,
        "accuracy_goal": GOAL_ACCURACY,
        "met": answers <= GOAL_ANSWERS and (accuracy or 0) >= GOAL_ACCURACY,
        "answers": answers,
        "answers_over_goal": max(0, answers - GOAL_ANSWERS),
        "final_accuracy": accuracy,
        "answers_per_human_label": round(per_label, 3),
        "answers_by_design": by_design,
        "answers_on_blind_and_queue": queue_answers,
        "auto_labeled_share": figures["auto_share"],
        "auto_share_needed_at_this_answers_per_label": round(needed_auto, 4),
        "auto_share_short_by": round(max(0.0, needed_auto - figures["auto_share"]), 4),
    }
    if final:
        out["last_model"] = {
            "stream_accuracy": final["stream_accuracy"],
            "oracle_coverage_at_target": final["oracle_coverage_stream"],
            "certified_coverage": final["certified_coverage_stream"],
            "guarantee_price": round(
                final["oracle_coverage_stream"] - final["certified_coverage_stream"], 4
            ),
            "model_short_of_needed": round(
                max(0.0, needed_auto - final["oracle_coverage_stream"]), 4
            ),
        }
        new = final.get("never_trained_on")
        if new:
            # On images it never trained on, the levers one after another: what the model could
            # auto-label at the target with a perfect threshold (oracle), what issue 15's floor
            # lets through, what the certification passed.
            out["last_model_on_new_images"] = {
                "accuracy": new["accuracy"],
                "oracle_coverage_at_target": new["oracle_coverage"],
                "floor_cap_coverage": new["floor_cap_coverage"],
                "certified_coverage": new["certified_coverage"],
                "model_short_of_needed": round(max(0.0, needed_auto - new["oracle_coverage"]), 4),
                "floor_price": round(new["oracle_coverage"] - new["floor_cap_coverage"], 4),
                "certification_price": round(
                    new["floor_cap_coverage"] - new["certified_coverage"], 4
                ),
            }
    return out


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
    parser.add_argument(
        "--skip-final-model",
        action="store_true",
        help="do not run the last active model over every image at the end (the lever study)",
    )
    parser.add_argument(
        "--figures",
        help="report on a finished run instead of starting one: its figures.json (in its work "
        "directory), with --keep-database and the run's --database",
    )
    args, loop_args = parser.parse_known_args(argv)
    # Stopped with SIGTERM, still stop the worker and the server it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.figures and not args.keep_database:
        parser.error("--figures reads the run's database: give --keep-database too")
    slug = time.strftime("loop-%Y%m%d-%H%M%S")
    raw = Path(args.figures) if args.figures else Path(args.work_dir) / slug / "figures.json"
    work = raw.parent
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
    started = time.time()
    load_at_start = machine_info()["load_average_1_5_15"]
    if not args.figures:
        call_command(
            "simulate_loop",
            *defaults,
            *loop_args,
            f"--slug={slug}",
            f"--log-dir={work}",
            f"--out={raw}",
        )
    figures = json.loads(raw.read_text())
    final = final_model_study(figures["slug"]) if not args.skip_final_model else None
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
        # a report made again on a finished run: started_at and the load are the report's
        "reported_from_figures": args.figures,
        **headline(figures),
        "goal": goal_levers(figures, final),
        "final_model": final,
        **figures,
    }
    Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    plot(figures, Path(args.png))
    print(f"wrote {args.out} and {args.png}", flush=True)
    return report


if __name__ == "__main__":
    main()
