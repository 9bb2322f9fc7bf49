"""What refitting a model's per class confidence map on the project's evidence buys at the floor.

The service certifies a model's thresholds on the project's evidence (a random sample of the
stream) and, since this change, first refits a per class Platt map on that same evidence
(``labeling.machine.recalibration``), so the floor (no auto-label under the target) reads a
confidence the project's own sample calibrated. This benchmark replays that on a checkpoint's
pool, the way an imported or trained model meets a project: its temperature and class map come
from its own validation split, the evidence is a random part of the test split, and the rest of
the test split is the stream. Per resample, three rules, each certified on the evidence and
judged on the stream:

- ``today``: per class Learn-then-Test without the floor, on the model's calibration (the rules
  before issue 15; the shift benchmark's "today");
- ``model_calibration``: with the floor, on the model's calibration (the service until now);
- ``evidence_recalibration``: with the floor, on the map refitted on the evidence (the service
  now).

``--noise`` replaces that share of the evidence labels by the model's runner-up class (human
errors on plausible confusions, harsher than random ones), since the loop's evidence labels are
~98 % right. Reported per rule: mean coverage and precision of the stream's auto-labels, and the
worst class's realised precision (classes with ≥ 20 auto-labels), its lowest over resamples and
how often it fell more than a point under the target.

    python bench/recalibration.py --checkpoint /tmp/b15/ckpt/fashion_10000_augmented
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.class_calibration import choose, judged, summary  # noqa: E402
from bench.pool_logits import pool_logits  # noqa: E402
from ml.calibration import fit_class_calibration, fit_temperature, softmax  # noqa: E402
from ml.environment import machine_info  # noqa: E402

RULES = ("today", "model_calibration", "evidence_recalibration")


def study(logits, labels, n_val, *, size, target, delta, noise, resamples, rng) -> dict:
    """The three rules over ``resamples`` draws of ``size`` evidence items from the test split."""
    plain = softmax(logits, fit_temperature(logits[:n_val], labels[:n_val]))
    model = fit_class_calibration(plain[:n_val], labels[:n_val]).apply(plain)
    test = np.arange(n_val, len(labels))
    stats = {rule: {"coverage": [], "precision": [], "worst": []} for rule in RULES}
    for _ in range(resamples):
        order = rng.permutation(test)
        evidence, stream = order[:size], order[size:]
        given = labels.copy()
        flipped = evidence[rng.random(size) < noise]
        given[flipped] = np.argsort(model[flipped], axis=1)[:, -2]
        remapped = fit_class_calibration(model[evidence], given[evidence]).apply(model)
        for rule, probs, kind in (
            ("today", model, "no_floor"),
            ("model_calibration", model, "floor"),
            ("evidence_recalibration", remapped, "floor"),
        ):
            chosen = choose(kind, probs[evidence], given[evidence], target, delta)
            coverage, precision, worst = judged(probs[stream], labels[stream], chosen)
            stats[rule]["coverage"].append(coverage)
            stats[rule]["precision"].append(np.nan if precision is None else precision)
            stats[rule]["worst"].append(worst)
    out = {rule: summary(s, target) for rule, s in stats.items()}
    out["floor_cost_model_calibration"] = round(
        out["today"]["mean_coverage"] - out["model_calibration"]["mean_coverage"], 4
    )
    out["floor_cost_evidence_recalibration"] = round(
        out["today"]["mean_coverage"] - out["evidence_recalibration"]["mean_coverage"], 4
    )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--runs", default="0.95:1000:0,0.95:3000:0,0.98:3000:0,0.95:1000:0.02")
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--resamples", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="bench/results/recalibration.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    logits, labels, n_val = pool_logits(Path(args.checkpoint))
    rng = np.random.default_rng(args.seed)
    report: dict = {
        "benchmark": "recalibration",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "machine": machine_info(),
        "checkpoint": args.checkpoint,
        "validation_items": int(n_val),
        "test_items": int(len(labels) - n_val),
        "delta": args.delta,
        "resamples": args.resamples,
        "runs": {},
    }
    for spec in args.runs.split(","):
        target, size, noise = spec.split(":")
        result = study(
            logits,
            labels,
            n_val,
            size=int(size),
            target=float(target),
            delta=args.delta,
            noise=float(noise),
            resamples=args.resamples,
            rng=rng,
        )
        report["runs"][f"target {target}, {size} evidence items, label noise {noise}"] = result
        line = ", ".join(
            f"{rule} {result[rule]['mean_coverage']:.3f} "
            f"(worst {result[rule]['worst_class_precision_mean']:.3f})"
            for rule in RULES
        )
        print(f"target {target}, {size} items, noise {noise}: {line}", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
