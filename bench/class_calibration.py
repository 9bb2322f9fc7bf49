"""The threshold floor read on a per class calibrated confidence: coverage bought, precision kept.

The floor (no auto-label under the target) compares each image's calibrated confidence with the
target. With one temperature, a class the model is reliably right about stays under-confident,
so the floor turns away images that class's own evidence shows to be right (docs/ml.md). The
service now follows the temperature with a per predicted class Platt map (``ml.calibration``).
This benchmark measures what that changes on a checkpoint's held-out pool (its validation split
and the test split), over resampled calibration sets of the size a project has, each rule fitted
(temperature, class map) and certified on the calibration part and judged on the rest:

- ``no_floor``: per class Learn-then-Test without the floor (the rules before issue 15);
- ``floor``: per class, with the floor, temperature only (the rules until now);
- ``floor_class_calibrated``: per class, with the floor, on the class-calibrated confidence;
- ``overall_floor`` and ``overall_floor_class_calibrated``: the overall scope, both ways.

Reported per rule: mean coverage and precision, the worst class's realised precision (among
classes with ≥ 20 auto-labels in the judged part; mean and lowest), and how often the worst
class fell more than a point under the target (issue 15's goal is ≥ target − 1 point).

    nice -n 10 python bench/class_calibration.py --checkpoints /tmp/ck/fashion_5000 --target 0.95
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
from ml.calibration import fit_class_calibration, fit_temperature, softmax  # noqa: E402
from ml.environment import machine_info  # noqa: E402

RULES = (
    "no_floor",
    "floor",
    "floor_class_calibrated",
    "overall_floor",
    "overall_floor_class_calibrated",
)
MIN_CLASS_AUTO = 20  # a class's realised precision is judged from this many auto-labels on


def choose(rule: str, probs: np.ndarray, labels: np.ndarray, target: float, delta: float):
    """Thresholds a rule certifies on ``probs``/``labels``."""
    k = probs.shape[1]
    if rule.startswith("overall"):
        return overall_scope.select_overall_thresholds(
            probs, None, labels, k, target=target, delta=delta, floor=target
        ).per_class
    chosen = thresholds.select_thresholds(probs, None, labels, k, target=target, delta=delta)
    if rule == "no_floor":
        return [t.floored_from if t.floored_from is not None else t.threshold for t in chosen]
    return [t.threshold for t in chosen]


def judged(probs: np.ndarray, labels: np.ndarray, chosen) -> tuple[float, float | None, float]:
    """Coverage, precision and the worst class's precision of ``chosen`` on the judged part."""
    pred, conf = probs.argmax(1), probs.max(1)
    accept = thresholds.accept_mask(conf, pred, chosen)
    right = pred == labels
    per_class = [
        right[accept & (pred == c)].mean()
        for c in range(probs.shape[1])
        if (accept & (pred == c)).sum() >= MIN_CLASS_AUTO
    ]
    precision = float(right[accept].mean()) if accept.any() else None
    return float(accept.mean()), precision, float(min(per_class)) if per_class else 1.0


# Where the floor's targets sit; bins are [lo, hi), the last one closed at 1.
RELIABILITY_BINS = (0.0, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0)


def reliability_rows(conf: np.ndarray, right: np.ndarray) -> list[dict]:
    """Per confidence bin (``RELIABILITY_BINS``): how many images, their share, and how often
    the model is right there (bench/loop_confidence.py reports its stream the same way)."""
    rows = []
    for lo, hi in zip(RELIABILITY_BINS[:-1], RELIABILITY_BINS[1:], strict=True):
        sel = (conf >= lo) & ((conf < hi) if hi < 1.0 else (conf <= hi))
        rows.append(
            {
                "confidence": [lo, hi],
                "items": int(sel.sum()),
                "share": round(float(sel.mean()), 4),
                "accuracy": round(float(right[sel].mean()), 4) if sel.any() else None,
            }
        )
    return rows


def reliability(logits: np.ndarray, labels: np.ndarray, n_val: int) -> list[dict]:
    """How often the model is right per confidence bin on the test split, with the temperature
    fitted on its own validation split (as trained): is it calibrated where the floor sits?"""
    probs = softmax(logits[n_val:], fit_temperature(logits[:n_val], labels[:n_val]))
    return reliability_rows(probs.max(1), probs.argmax(1) == labels[n_val:])


def study(logits, labels, *, size, target, delta, resamples, rng) -> dict:
    stats = {rule: {"coverage": [], "precision": [], "worst": []} for rule in RULES}
    for _ in range(resamples):
        order = rng.permutation(len(labels))
        cal, rest = order[:size], order[size:]
        # Fitted on the calibration part, as the service fits them on a model's held-out side.
        temperature = fit_temperature(logits[cal], labels[cal])
        plain = softmax(logits, temperature)
        mapped = fit_class_calibration(plain[cal], labels[cal]).apply(plain)
        for rule in RULES:
            probs = mapped if rule.endswith("class_calibrated") else plain
            chosen = choose(rule, probs[cal], labels[cal], target, delta)
            coverage, precision, worst = judged(probs[rest], labels[rest], chosen)
            stats[rule]["coverage"].append(coverage)
            stats[rule]["precision"].append(np.nan if precision is None else precision)
            stats[rule]["worst"].append(worst)
    return {rule: summary(s, target) for rule, s in stats.items()}


def summary(s: dict, target: float) -> dict:
    """One rule's resamples (lists of ``coverage``, ``precision`` (NaN: nothing auto-labeled)
    and ``worst`` class precision) as the reported figures."""
    return {
        "mean_coverage": round(float(np.mean(s["coverage"])), 4),
        # None when no resample auto-labeled anything
        "mean_precision": (
            round(float(np.nanmean(s["precision"])), 4)
            if not np.isnan(s["precision"]).all()
            else None
        ),
        "worst_class_precision_mean": round(float(np.mean(s["worst"])), 4),
        "worst_class_precision_lowest": round(float(np.min(s["worst"])), 4),
        "worst_class_below_target_minus_1pt": round(
            float(np.mean(np.array(s["worst"]) < target - 0.01)), 4
        ),
    }


def rule_line(result: dict) -> str:
    """A progress line: each rule's mean coverage and mean worst class (the entries of
    ``result`` that are a rule's :func:`summary`; other figures beside them are left out)."""
    return ", ".join(
        f"{rule} {r['mean_coverage']:.3f} (worst {r['worst_class_precision_mean']:.3f})"
        for rule, r in result.items()
        if isinstance(r, dict) and "mean_coverage" in r
    )


def study_arguments(parser: argparse.ArgumentParser) -> None:
    """The study's options (calibration sizes, targets, δ, resamples, seed), shared with
    ``bench/ensemble.py``."""
    parser.add_argument("--sizes", default="1000,3000")
    parser.add_argument("--targets", default="0.95,0.98")
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--resamples", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)


def study_runs(logits: np.ndarray, labels: np.ndarray, args: argparse.Namespace, name: str) -> dict:
    """:func:`study` for every target and calibration size of ``args``, on the same resamples
    for every caller (seeded by ``args.seed``), printed as it goes under ``name``."""
    rng = np.random.default_rng(args.seed)
    runs = {}
    for target in (float(t) for t in args.targets.split(",")):
        for size in (int(s) for s in args.sizes.split(",")):
            result = study(
                logits,
                labels,
                size=size,
                target=target,
                delta=args.delta,
                resamples=args.resamples,
                rng=rng,
            )
            runs[f"target {target}, {size} items"] = result
            print(f"{name} target {target} {size} items: {rule_line(result)}", flush=True)
    return runs


def write_report(report: dict, out: str, started: float) -> dict:
    report["seconds"] = round(time.perf_counter() - started, 1)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", required=True, help="comma-separated checkpoint dirs")
    study_arguments(parser)
    parser.add_argument("--out", default="bench/results/class_calibration.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report: dict = {
        "benchmark": "class_calibration",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "machine": machine_info(),
        "delta": args.delta,
        "resamples": args.resamples,
        "min_class_auto_labels": MIN_CLASS_AUTO,
        "checkpoints": {},
    }
    for path in args.checkpoints.split(","):
        checkpoint = Path(path)
        logits, labels, n_val = pool_logits(checkpoint)
        report["checkpoints"][checkpoint.name] = {
            "pool": int(len(labels)),
            "pool_accuracy": round(float((logits.argmax(1) == labels).mean()), 4),
            "reliability": reliability(logits, labels, n_val),
            "runs": study_runs(logits, labels, args, checkpoint.name),
        }
    return write_report(report, args.out, started)


if __name__ == "__main__":
    main()
