"""A small ensemble against one model: does averaging two trainings raise coverage at the target?

Issue 16 asks for stronger confidence where it pays, measured before adopting (test-time flips
were measured and not adopted, docs/ml.md). Here the other candidate: two models trained on the
same labels and the same train/validation split, differing in the head's initialisation, the
augmented views and the batch order (``bench/learning_curve.py --init-seed``), each keeping the
better of its learning-rate trials. Their held-out
pool (the shared validation split, then the test split, ``bench/pool_logits.py``) is combined two
ways:

- ``mean_logits``: the mean of the members' logits (a geometric mean of their probabilities);
- ``mean_probs``: the log of the mean of their probabilities, each at the temperature fitted on
  its own validation split (the usual deep-ensemble average).

Every member and both combinations then go through ``bench/class_calibration.py``'s study: the
pool split at random into a calibration part of the size a project has and the rest, temperature
and per class map fitted and thresholds certified (each rule: per class / overall, with and
without the floor) on the first, coverage and realised precision judged on the second. The cost
side: the members' training seconds (from their checkpoints) and the inference seconds per image
of one member, measured here on the test split.

    python bench/learning_curve.py --sizes 10000 --recipes augmented --trainable-blocks 8 \\
        --epochs 8 --lrs 2e-3,4e-3 --budget 600 --checkpoints /tmp/b15/ckpt --init-seed 1 \\
        --out /tmp/b15/lc_init1.json
    python bench/ensemble.py --members /tmp/b15/ckpt/fashion_10000_augmented,\\
/tmp/b15/ckpt/fashion_10000_augmented_init1

The same with members that differ in their learning rate instead (``--lrs 2e-3`` and ``--lrs
4e-3``, the same seed): the two trials a default training runs and keeps one of.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.class_calibration import study_arguments, study_runs, write_report  # noqa: E402
from bench.pool_logits import pool_logits  # noqa: E402
from ml.calibration import fit_temperature, softmax  # noqa: E402
from ml.checkpoint import read_config  # noqa: E402
from ml.environment import machine_info  # noqa: E402
from ml.fashion_mnist import load_split  # noqa: E402
from ml.inference import Predictor  # noqa: E402


def combine(members: list[np.ndarray], labels: np.ndarray, n_val: int) -> dict[str, np.ndarray]:
    """The members' pool logits combined as ``mean_logits`` and ``mean_probs`` (log of the mean
    of each member's probabilities at its own validation temperature); both are logits the study
    fits its temperature on again."""
    probs = [softmax(z, fit_temperature(z[:n_val], labels[:n_val])) for z in members]
    return {
        "mean_logits": np.mean(members, axis=0),
        "mean_probs": np.log(np.clip(np.mean(probs, axis=0), 1e-12, None)),
    }


def seconds_per_image(checkpoint: Path, images: list, repeats: int = 2) -> float:
    """Inference seconds per image of one member on 2 threads (the best of ``repeats``)."""
    predictor = Predictor.load(checkpoint, num_threads=2)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.score(images, batch_size=256)
        best = min(best, time.perf_counter() - t0)
    return best / len(images)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", required=True, help="comma-separated checkpoint dirs")
    study_arguments(parser)
    parser.add_argument("--timing-images", type=int, default=1000)
    parser.add_argument("--out", default="bench/results/ensemble.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = [Path(p) for p in args.members.split(",")]
    if len(paths) < 2:
        parser.error("an ensemble needs at least two --members")
    configs = [read_config(p) for p in paths]
    if len({(c["seed"], c["data"]["train_items"]) for c in configs}) != 1:
        parser.error("the members must share their labels and split (same --seed and size)")

    pools = [pool_logits(p) for p in paths]
    labels, n_val = pools[0][1], pools[0][2]
    if any(not np.array_equal(p[1], labels) or p[2] != n_val for p in pools):
        parser.error("the members' held-out pools differ")
    # Members are named by their directory, with its parent where two share a name.
    names = [
        p.name if [q.name for q in paths].count(p.name) == 1 else f"{p.parent.name}/{p.name}"
        for p in paths
    ]
    candidates = {name: pool[0] for name, pool in zip(names, pools, strict=True)}
    candidates.update(combine([pool[0] for pool in pools], labels, n_val))

    x_test, _ = load_split("test")
    timing = list(x_test[: args.timing_images])
    report: dict = {
        "benchmark": "ensemble",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "machine": machine_info(),
        "delta": args.delta,
        "resamples": args.resamples,
        "pool": int(len(labels)),
        "validation_items": int(n_val),
        "members": {
            name: {
                "init_seed": c.get("init_seed", c["seed"]),
                "learning_rate": c["hyperparameters"]["learning_rate"],
                "train_seconds": round(float(c["timings"]["total_s"]), 1),
                "inference_s_per_image": round(seconds_per_image(p, timing), 5),
            }
            for name, p, c in zip(names, paths, configs, strict=True)
        },
        "candidates": {},
    }
    for name, logits in candidates.items():
        test = slice(n_val, None)
        report["candidates"][name] = {
            "test_accuracy": round(float((logits[test].argmax(1) == labels[test]).mean()), 4),
            "runs": study_runs(logits, labels, args, name),
        }
    return write_report(report, args.out, started)


if __name__ == "__main__":
    main()
