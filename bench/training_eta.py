"""How honest is the training progress's time left? (ml.progress)

Trains on a class-balanced Fashion-MNIST subset with the project's default recipe, records every
progress report (phase, elapsed, estimated time left, the time budget's bound), and afterwards
compares each estimate with the time that was really left. The worst error for a user is an
optimistic one ("about 1 s left" with minutes to go), so the figures are the share of reports
that promised less than three quarters of the real remainder, and the ratio estimate / real at
the points a user looks: the first epoch, the end of the first trial, calibrating.

    python bench/training_eta.py --labels 2000 --out bench/results/training_eta.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.environment import machine_info  # noqa: E402
from ml.fashion_mnist import CLASS_NAMES, load_split, stratified_subset  # noqa: E402
from ml.training import TrainConfig, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--budget", type=float, default=900.0)
    parser.add_argument("--trainable-blocks", default="8")
    parser.add_argument("--epochs", default="8")
    parser.add_argument("--lrs", default="2e-3,4e-3")
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/training_eta.json")
    args = parser.parse_args()

    x_train, y_train = load_split("train")
    idx = stratified_subset(y_train, args.labels, seed=args.seed)
    reports = []
    t0 = time.perf_counter()

    def record(progress) -> None:
        reports.append(
            {
                "t": time.perf_counter() - t0,
                "phase": progress.phase,
                "trial": progress.trial,
                "epoch": progress.epoch,
                "percent": progress.percent,
                "eta_s": progress.eta_s,
                "eta_max_s": progress.eta_max_s,
            }
        )

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as out:
        train(
            TrainConfig(
                samples=[(x_train[i], int(y_train[i])) for i in idx],
                class_names=CLASS_NAMES,
                output_dir=out,
                input_size=args.input_size,
                trainable_blocks=tuple(int(v) for v in args.trainable_blocks.split(",")),
                epochs=tuple(int(v) for v in args.epochs.split(",")),
                learning_rates=tuple(float(v) for v in args.lrs.split(",")),
                time_budget_s=args.budget,
                val_fraction=0.2,
                seed=args.seed,
                progress=record,
            )
        )
    total = time.perf_counter() - t0
    for report in reports:
        report["real_left_s"] = total - report["t"]

    estimated = [r for r in reports if r["eta_s"] is not None and r["phase"] != "done"]
    ratios = np.array([r["eta_s"] / r["real_left_s"] for r in estimated if r["real_left_s"] > 1])
    bounded = [r for r in reports if r["eta_max_s"] is not None and r["phase"] != "done"]
    under_bound = [r for r in bounded if r["eta_max_s"] + 1 < r["real_left_s"]]

    def at(phase: str, trial: int | None = None, last: bool = False):
        rows = [
            r for r in estimated if r["phase"] == phase and (trial is None or r["trial"] == trial)
        ]
        if not rows:
            return None
        row = rows[-1] if last else rows[0]
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}

    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "labels": args.labels,
        "total_s": round(total, 1),
        "reports": len(reports),
        "estimates": len(estimated),
        "optimistic_share": round(float((ratios < 0.75).mean()), 3) if len(ratios) else None,
        "ratio_median": round(float(np.median(ratios)), 3) if len(ratios) else None,
        "ratio_min": round(float(ratios.min()), 3) if len(ratios) else None,
        "ratio_max": round(float(ratios.max()), 3) if len(ratios) else None,
        "budget_bound_broken": len(under_bound),
        "first_epoch": at("training", 1),
        "end_of_first_trial": at("training", 1, last=True),
        "calibrating": at("calibrating"),
        "timeline": [
            {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}
            for r in reports
            if r["phase"] != "preparing"
        ]
        + [{"phase": "preparing", "reports": sum(r["phase"] == "preparing" for r in reports)}],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in ("timeline", "machine")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
