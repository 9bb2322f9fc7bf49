"""Does training on machine labels pay? Fashion-MNIST, measured before the loop adopts it.

A model A is trained on ``--human`` labeled images (a class-balanced sample of the training
split, standing in for human labels). Its overall-scope thresholds at ``--target`` are certified
on ``--calibration`` other labeled images; it then auto-labels a pool of ``--pool`` unlabeled
training images. Model B is trained on the same human labels plus those machine labels,
class-balanced (``ml.class_balance``), as ``labeling.machine.training`` does when a project opts
in. Both are scored on the 10,000 test images: accuracy, and the coverage and precision of
overall thresholds certified on the same calibration images.

    nice -n 10 python bench/pseudo_labels.py --human 3000 --pool 15000
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import overall_scope, thresholds  # noqa: E402
from ml.class_balance import machine_label_quota  # noqa: E402
from ml.environment import machine_info  # noqa: E402
from ml.fashion_mnist import CLASS_NAMES, load_split, stratified_subset  # noqa: E402
from ml.inference import Predictor  # noqa: E402
from ml.training import TrainConfig, train  # noqa: E402


def fit(samples, out: Path, args) -> tuple[Predictor, dict]:
    t0 = time.perf_counter()
    result = train(
        TrainConfig(
            samples=samples,
            class_names=CLASS_NAMES,
            output_dir=out,
            trainable_blocks=(8,),
            epochs=(args.epochs,),
            learning_rates=(args.lr,),
            time_budget_s=args.budget,
            seed=args.seed,
        )
    )
    return Predictor.load(out, num_threads=2), {
        "train_items": len(samples),
        "seconds": round(time.perf_counter() - t0, 1),
        "val_accuracy": result.metrics["accuracy"],
        "epochs_run": result.config["hyperparameters"]["epochs_run"],
    }


def scored(predictor, cal_x, cal_y, test_x, test_y, target, delta) -> dict:
    k = len(CLASS_NAMES)
    cal = predictor.predict(list(cal_x), batch_size=256).probs
    test = predictor.predict(list(test_x), batch_size=256).probs
    chosen = overall_scope.select_overall_thresholds(
        cal, None, cal_y, k, target=target, delta=delta
    )
    routed = thresholds.evaluate_thresholds(test, test_y, chosen.per_class)
    curve, _ = thresholds.risk_coverage_curve(test, test_y)
    return {
        "test_accuracy": float((test.argmax(1) == test_y).mean()),
        "overall_level": chosen.level,
        "test_coverage": routed.coverage,
        "test_precision": None if routed.accepted == 0 else routed.precision,
        "test_oracle_coverage": thresholds.coverage_at_precision(curve, target),
        "_thresholds": chosen.per_class,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--human", type=int, default=3000)
    parser.add_argument("--calibration", type=int, default=1500)
    parser.add_argument("--pool", type=int, default=15000)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--budget", type=float, default=1200.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/ml-bench/pseudo")
    parser.add_argument("--out", default="bench/results/pseudo_labels.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    load_at_start = machine_info()["load_average_1_5_15"]
    x, y = load_split("train")
    test_x, test_y = load_split("test")
    human = stratified_subset(y, args.human, seed=args.seed)
    rest = np.setdiff1d(np.arange(len(y)), human)
    rng = np.random.default_rng(args.seed + 1)
    rest = rng.permutation(rest)
    cal, pool = rest[: args.calibration], rest[args.calibration : args.calibration + args.pool]
    work = Path(args.work)

    human_samples = [(x[i], int(y[i])) for i in human]
    model_a, fit_a = fit(human_samples, work / "a", args)
    a = scored(model_a, x[cal], y[cal], test_x, test_y, args.target, args.delta)
    pool_probs = model_a.predict(list(x[pool]), batch_size=256).probs
    accept = thresholds.accept_mask(pool_probs.max(1), pool_probs.argmax(1), a.pop("_thresholds"))
    machine = pool[accept]
    machine_labels = pool_probs.argmax(1)[accept]
    human_counts = np.bincount(y[human], minlength=len(CLASS_NAMES))
    machine_counts = np.bincount(machine_labels, minlength=len(CLASS_NAMES))
    quota = machine_label_quota(human_counts, machine_counts)
    chosen = np.concatenate(
        [rng.permutation(np.flatnonzero(machine_labels == c))[: quota[c]] for c in range(10)]
    )
    extra = [(x[machine[i]], int(machine_labels[i])) for i in chosen]
    model_b, fit_b = fit(human_samples + extra, work / "b", args)
    b = scored(model_b, x[cal], y[cal], test_x, test_y, args.target, args.delta)
    b.pop("_thresholds")
    report = {
        "benchmark": "pseudo_labels",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "machine": machine_info(),
        "load_average_at_start": load_at_start,
        "settings": vars(args),
        "machine_labels": {
            "auto_labeled_of_pool": int(accept.sum()),
            "precision": float((machine_labels == y[machine]).mean()) if accept.any() else None,
            "used_after_class_balance": int(len(chosen)),
            "used_precision": float((machine_labels[chosen] == y[machine[chosen]]).mean())
            if len(chosen)
            else None,
            "per_class_available": machine_counts.tolist(),
            "per_class_used": quota.tolist(),
        },
        "human_only": {**fit_a, **a},
        "with_machine_labels": {**fit_b, **b},
    }
    print(
        json.dumps(
            {k: report[k] for k in ("machine_labels", "human_only", "with_machine_labels")},
            indent=1,
        )
    )
    Path(args.out).write_text(json.dumps(report, indent=2, default=float))
    return report


if __name__ == "__main__":
    main()
