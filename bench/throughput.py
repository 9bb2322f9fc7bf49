"""Throughput on 2 cores: inference (eager vs optimised, via bench/throughput_inference.py) and
20,000 Fashion-MNIST images ingested → predicted → routed end to end through a real Celery
worker, on PostgreSQL and Redis.

    DATABASE_URL=postgres://labeling:labeling@127.0.0.1:5432/labeling \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    python bench/throughput.py --images 20000 --checkpoint /tmp/ml-bench/fashion_60000

The checkpoint is any directory written by ``ml.training.train`` for the 10 Fashion-MNIST
classes by bench/learning_curve.py (it leaves one per size). It comes into the run's project
the supported way: its validation images are imported as a Ground Truth manifest (the
project's held-out labels; ``--heldout N`` takes a class-balanced N of them), then the
checkpoint is imported (``labeling.machine.model_import``), scored on them and promoted by the
gate. The routed images are training-split images outside those labels. The run uses its own
project, media and model folders and deletes the project afterwards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--checkpoint", required=True, help="a Fashion-MNIST checkpoint dir")
    parser.add_argument("--chunk", type=int, default=500, help="images per ingest transaction")
    parser.add_argument("--batch-size", type=int, default=128, help="items per prediction task")
    parser.add_argument("--concurrency", type=int, default=1, help="worker processes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per worker process")
    parser.add_argument(
        "--heldout",
        type=int,
        default=0,
        help="import only this many of the checkpoint's validation labels (default: all)",
    )
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--out", default="bench/results/throughput.json")
    args = parser.parse_args(argv)

    inference = None
    if not args.skip_inference:
        import throughput_inference  # noqa: F401 - bench/ is on sys.path when run as a script

        inference = throughput_inference.main(["--images", "512", "--input-size", "96"])

    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "labeling.settings",
            "MEDIA_ROOT": str(work / "media"),
            "MODEL_ROOT": str(work / "models"),
            "PREDICTION_BATCH_SIZE": str(args.batch_size),
            "INFERENCE_THREADS": str(args.threads),
        }
    )
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "CELERY_BROKER_URL", ""
    ).startswith("redis"):
        sys.exit("Set DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis): see the docstring.")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.db.models import Count
    from PIL import Image

    from labeling.celery import app
    from labeling.demo import FASHION_LABELS, fashion_history_import
    from labeling.ingest import Upload, item_ingest
    from labeling.machine.model_import import model_import, model_import_score
    from labeling.models import Item, ItemStatus, ModelStatus, Prediction
    from labeling.project_setup import LabelSpec, project_create
    from ml.checkpoint import read_config
    from ml.fashion_mnist import checkpoint_validation, load_split, stratified_subset

    call_command("migrate", verbosity=0)
    app.control.purge()
    slug = f"throughput-{int(time.time())}"
    config = read_config(args.checkpoint)
    # The project's labels carry the checkpoint's class names (in its order) as display names.
    labels = [
        LabelSpec(spec.name, display_name=trained)
        for spec, trained in zip(FASHION_LABELS, config["class_names"], strict=True)
    ]
    project = project_create(name=slug, slug=slug, labels=labels, audit_rate=0.05)
    # The model comes in the supported way: the checkpoint's own validation images are imported
    # as a Ground Truth manifest of labels (the project's held-out labels), then the checkpoint
    # is imported, scored on them in this process and promoted by the gate as the first model.
    pixels, truth = load_split("train")
    held = checkpoint_validation(truth, config)
    if args.heldout and args.heldout < len(held):
        held = held[stratified_subset(truth[held], args.heldout, seed=0)]
    started_setup = time.perf_counter()
    history = fashion_history_import(
        project=project, pixels=pixels, truth=truth, indices=held, job_name="checkpoint-validation"
    )
    model = model_import(project=project, checkpoint_dir=Path(args.checkpoint), queue=False)
    model = model_import_score(model_version_id=model.pk)
    if model.status != ModelStatus.ACTIVE:
        sys.exit(f"the imported model was not promoted: {model.status} {model.status_reason}")
    setup_seconds = time.perf_counter() - started_setup
    print(
        f"model imported and scored on {history.created} held-out labels in {setup_seconds:.0f} s"
    )

    # The routed images: training-split images outside the held-out labels (so none is a
    # duplicate of a labeled item), in index order, repeating if more are asked for.
    pool = np.setdiff1d(np.arange(len(pixels)), held)
    chosen = [int(pool[i % len(pool)]) for i in range(args.images)]
    pngs = []
    for i in chosen:
        buffer = io.BytesIO()
        Image.fromarray(pixels[i]).save(buffer, "PNG")
        pngs.append(buffer.getvalue())

    log = open(work / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "labeling", "worker", "--loglevel", "warning",
         "--concurrency", str(args.concurrency), "--without-gossip", "--without-mingle"],
        cwd=ROOT, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        started = time.perf_counter()
        for start in range(0, len(pngs), args.chunk):
            uploads = [
                Upload(f"fm-{n}.png", pngs[n], {"fmnist_index": chosen[n]})
                for n in range(start, min(start + args.chunk, len(pngs)))
            ]
            with transaction.atomic():
                item_ingest(project=project, uploads=uploads)
        ingested = time.perf_counter() - started
        total = Item.objects.filter(project=project, metadata__fmnist_index__isnull=False).count()
        while Item.objects.filter(project=project, status=ItemStatus.NEW).exists():
            if worker.poll() is not None:
                sys.exit(f"worker stopped; see {work / 'worker.log'}")
            time.sleep(1)
        finished = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()

    decisions = dict(
        Prediction.objects.filter(model_version=model)
        .values_list("decision")
        .annotate(n=Count("id"))
        .values_list("decision", "n")
    )
    report = {
        "benchmark": "throughput",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "commit": _git_commit(),
        "inference": inference["results"] if inference else None,
        "end_to_end": {
            "images": total,
            "ingest_seconds": round(ingested, 1),
            "ingest_images_per_s": round(total / ingested, 1),
            "total_seconds": round(finished, 1),
            "images_per_s": round(total / finished, 1),
            "goal_seconds": 600,
            "decisions": decisions,
            "heldout_labels": history.created,
            "model_import_seconds": round(setup_seconds, 1),
            "worker_processes": args.concurrency,
            "torch_threads_per_worker": args.threads,
            "prediction_batch_size": args.batch_size,
            "database": "postgresql",
            "broker": "redis",
        },
    }
    from ml.environment import machine_info

    report["machine"] = machine_info()
    e2e = report["end_to_end"]
    print(
        f"end to end: {e2e['images']} images in {e2e['total_seconds']} s "
        f"({e2e['images_per_s']} images/s; ingest alone {e2e['ingest_images_per_s']} images/s); "
        f"decisions {decisions}"
    )
    project.delete()
    shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
