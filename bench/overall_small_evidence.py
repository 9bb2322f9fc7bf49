"""Overall-scope certification with little evidence: which walk start certifies most, safely.

The loop certifies on a few hundred to a few thousand calibration items, with the floor at the
target (issue 15), so only the images a model is at least ``target`` sure of can be accepted.
There one confidently wrong image among the first ~150 sinks a walk that starts with no error
allowed, and the whole model auto-labels nothing (docs/loop.md). This benchmark compares, on a
checkpoint's held-out pool (validation + test split), resampled calibration sets of several sizes:

- ``single_start``: the service's rule until now, one walk at δ starting where the most errors
  of 0, 2, 5, 10 could pass within the first quarter of the eligible items;
- ``multi_walk``: the per-class rule's Bonferroni walks (0, 2, 5, 10 errors, the reachable ones);
- ``floor_first``: at δ/2 one test of everything at or above the floor, and at δ/2 the
  single-start walk; the lower passing level is used (Bonferroni over the two: valid);
- ``floor_only``: the single test at the floor, at δ.

Each rule picks thresholds on the calibration part; coverage and precision are measured on the
rest. Reported per size: mean coverage, share of sets certifying nothing, and the share whose
realised precision fell below target (the guarantee allows δ).

    nice -n 10 python bench/overall_small_evidence.py --checkpoint /tmp/ck/fashion_5000
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

from bench.pool_logits import pool_logits  # noqa: E402
from ml import overall_scope, thresholds  # noqa: E402
from ml.calibration import fit_temperature, softmax  # noqa: E402
from ml.environment import machine_info  # noqa: E402

RULES = ("single_start", "multi_walk", "floor_first", "floor_only")


def select_at_floor(
    probs: np.ndarray, labels: np.ndarray, *, target: float, delta: float
) -> list[float | None]:
    """The candidate rule: one test of everything at or above the floor (the target), passing
    when the Clopper-Pearson bound on its pooled error rate is at most 1 - ``target``."""
    k = probs.shape[1]
    confident = probs.max(axis=1) >= target
    accepted = int(confident.sum())
    if accepted == 0:
        return [None] * k
    errors = int((probs.argmax(axis=1) != labels)[confident].sum())
    if thresholds.clopper_pearson_upper(errors, accepted, delta) > 1 - target:
        return [None] * k
    return [target] * k


def choose(rule: str, probs: np.ndarray, labels: np.ndarray, target: float, delta: float):
    """Per-class thresholds (the overall family, floored at the target) chosen by ``rule``."""
    k = probs.shape[1]
    select = overall_scope.select_overall_thresholds
    if rule == "single_start":
        return select(probs, None, labels, k, target=target, delta=delta, floor=target).per_class
    if rule == "multi_walk":
        return select(
            probs,
            None,
            labels,
            k,
            target=target,
            delta=delta,
            floor=target,
            start_errors=thresholds.START_ERRORS,
        ).per_class
    if rule == "floor_only":
        return select_at_floor(probs, labels, target=target, delta=delta)
    at_floor = select_at_floor(probs, labels, target=target, delta=delta / 2)
    if at_floor[0] is not None:
        return at_floor
    return select(probs, None, labels, k, target=target, delta=delta / 2, floor=target).per_class


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--sizes", default="300,700,1500,3000")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--resamples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/overall_small_evidence.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    checkpoint = Path(args.checkpoint)
    logits, labels, n_val = pool_logits(checkpoint)
    # Calibrated as the checkpoint was (its temperature came from its validation split).
    probs = softmax(logits, fit_temperature(logits[:n_val], labels[:n_val]))
    accuracy = float((probs.argmax(1) == labels).mean())
    rng = np.random.default_rng(args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict] = {}
    for size in sizes:
        stats = {rule: {"coverage": [], "nothing": 0, "missed": 0} for rule in RULES}
        for _ in range(args.resamples):
            order = rng.permutation(len(labels))
            cal, rest = order[:size], order[size:]
            for rule in RULES:
                chosen = choose(rule, probs[cal], labels[cal], args.target, args.delta)
                outcome = thresholds.evaluate_thresholds(probs[rest], labels[rest], chosen)
                stats[rule]["coverage"].append(outcome.coverage)
                if outcome.accepted == 0:
                    stats[rule]["nothing"] += 1
                elif outcome.precision < args.target:
                    stats[rule]["missed"] += 1
        results[str(size)] = {
            rule: {
                "mean_coverage": round(float(np.mean(s["coverage"])), 4),
                "certified_nothing": round(s["nothing"] / args.resamples, 4),
                "precision_below_target": round(s["missed"] / args.resamples, 4),
            }
            for rule, s in stats.items()
        }
        line = ", ".join(
            f"{rule} {r['mean_coverage']:.3f} (nothing {r['certified_nothing']:.2f}, "
            f"missed {r['precision_below_target']:.3f})"
            for rule, r in results[str(size)].items()
        )
        print(f"{size} calibration items: {line}", flush=True)
    report = {
        "benchmark": "overall_small_evidence",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "machine": machine_info(),
        "checkpoint": str(checkpoint),
        "pool": int(len(labels)),
        "pool_accuracy": round(accuracy, 4),
        # The most any rule can cover with the floor at the target: the share of images the
        # model is at least that sure of.
        "share_at_or_above_floor": round(float((probs.max(axis=1) >= args.target).mean()), 4),
        "target": args.target,
        "delta": args.delta,
        "resamples": args.resamples,
        "sizes": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
