"""Run the human-in-the-loop simulation against a live server and worker (see docs/loop.md)."""

import json
import os
import time
from contextlib import ExitStack
from dataclasses import fields
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from simulation.crowd import LoopConfig
from simulation.driver import Loop
from simulation.processes import free_port, gunicorn_argv, process, wait_http, worker_argv


def _flag(raw: str) -> bool:
    """``--train-on-machine-labels=true``: bool("false") would be True."""
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, not {raw!r}")


class Command(BaseCommand):
    help = (
        "Simulate inspectors labeling Fashion-MNIST through the API while a real worker predicts, "
        "routes and retrains; print the figures (and write them as JSON with --out)."
    )

    def add_arguments(self, parser):
        defaults = LoopConfig()
        for f in fields(LoopConfig):
            if f.name in ("crowd", "slug"):
                continue
            kind = type(getattr(defaults, f.name))
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                type=_flag if kind is bool else kind,
                default=getattr(defaults, f.name),
            )
        parser.add_argument("--crowd", default=json.dumps(defaults.crowd), help="kind -> count")
        parser.add_argument("--slug", default="", help="project slug (default: loop-<time>)")
        parser.add_argument(
            "--base-url", default="", help="use a running server instead of starting one"
        )
        parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
        parser.add_argument("--log-dir", default=str(settings.VAR_DIR / "loop"))
        parser.add_argument("--out", default="", help="write the figures here as JSON")

    def handle(self, *args, **options):
        names = {f.name for f in fields(LoopConfig)}
        cfg = LoopConfig(**{k: v for k, v in options.items() if k in names and k != "crowd"})
        cfg.crowd = json.loads(options["crowd"])
        cfg.slug = cfg.slug or time.strftime("loop-%Y%m%d-%H%M%S")
        log_dir = Path(options["log_dir"])
        log_dir.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            base_url = options["base_url"]
            if not base_url:
                env = {
                    **os.environ,
                    "DJANGO_SETTINGS_MODULE": "labeling.settings",
                    "MEDIA_ROOT": str(settings.MEDIA_ROOT),
                    "MODEL_ROOT": str(settings.MODEL_ROOT),
                    "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
                }
                from labeling.celery import app

                port = options["port"] or free_port()

                app.control.purge()
                stack.enter_context(
                    process(worker_argv(options["concurrency"]), env, log_dir / "worker.log")
                )
                stack.enter_context(process(gunicorn_argv(port), env, log_dir / "gunicorn.log"))
                base_url = f"http://127.0.0.1:{port}"
                wait_http(base_url + "/api/projects/")
            loop = Loop(cfg, base_url, log=lambda line: self.stdout.write(line))
            figures = loop.run()
        figures["slug"] = cfg.slug
        if options["out"]:
            Path(options["out"]).write_text(json.dumps(figures, indent=2, default=str))
        self.stdout.write(summary_text(figures))
        return None


def summary_text(f: dict) -> str:
    acc = f["accuracy"]
    by = ", ".join(
        f"{source} {entry['accuracy']} ({entry['items']})"
        for source, entry in acc.items()
        if source != "overall"
    )
    base = f["baselines"]
    three, same = base["all_human_3_answers_consensus"], base["all_human_majority_same_budget"]
    audit = f["live_audit"]
    lines = [
        f"images {f['images']}, finished {f['finished']}, unfinished {f['unfinished']}",
        f"human answers {f['answers']} ({f['answers_per_image']} per image), "
        f"auto-labeled {f['auto_share']:.1%}",
        f"final accuracy {acc['overall']['accuracy']} (by source: {by})",
        f"live audit precision {audit['precision']} on {audit['audited']} audited images",
        f"models trained {f['models_trained']}, promoted {f['models_promoted']}",
        f"wall clock {f['wall_clock_s'] / 60:.1f} min",
        f"cost (manager's report) {f['manager_report']['total_cost']}: human "
        f"{f['manager_report']['human_cost']}, machine {f['manager_report']['machine_cost']}; "
        f"mismatches with the benchmark: {f['report_mismatches'] or 'none'}",
        f"baseline all-human 3 answers: {three['answers']} answers, accuracy {three['accuracy']}",
        f"baseline majority vote at the same budget: {same['answers']} answers, "
        f"accuracy {same['accuracy']}",
        f"invariants: {f['invariants']}",
    ]
    return "\n".join(lines)
