"""Fashion-MNIST learning curve: labels → training time, test accuracy, coverage at 98 %.

For each size, a class-balanced subset of the training split is handed to ``ml.training.train``
(which carves its own 15 % validation split from it); thresholds come from that validation split
only, and the 10,000 test images measure what a user would see.

    python bench/learning_curve.py --sizes 60000 --budget 2700 --trainable-blocks 8 \
        --epochs 8 --lrs 2e-3 --out bench/results/learning_curve_60k.json
    python bench/learning_curve.py --sizes 1000,2000,5000,10000,60000 --trainable-blocks 8 \
        --epochs 8 --lrs 2e-3,4e-3 --budget 600 --rescore

(the second reuses the first's 60,000-label checkpoint; see docs/ml.md)

``--recipes current,augmented`` trains each size twice in the same run, once as before and once
with photo augmentation (``ml.augment``: ``--augment-views`` extra cached views per image, one of
them picked with probability ``--augment-share`` each epoch), and reports both on the clean test
set and on shifted test images (bench/photo_shifts.py):

    python bench/learning_curve.py --sizes 1000,2000,5000,10000 --recipes current,augmented \
        --out bench/results/learning_curve_augment.json
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

from photo_shifts import KINDS, shift_image  # noqa: E402

from ml import thresholds  # noqa: E402
from ml.calibration import expected_calibration_error, softmax  # noqa: E402
from ml.checkpoint import read_config  # noqa: E402
from ml.environment import machine_info  # noqa: E402
from ml.fashion_mnist import CLASS_NAMES, checkpoint_validation, load_split, stratified_subset  # noqa: E402
from ml.inference import Predictor  # noqa: E402
from ml.training import TrainConfig, train  # noqa: E402

RECIPES = ("current", "augmented")


def shifted_test_set(n: int, seed: int) -> tuple[list, np.ndarray, list[str]]:
    """``n`` test images, each shifted by one kind in turn (bench/photo_shifts.py)."""
    x_test, y_test = load_split("test")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(y_test), size=n, replace=False)
    kinds = [(*KINDS, "mixed")[i % (len(KINDS) + 1)] for i in range(n)]
    images = [
        shift_image(x_test[i], kind, np.random.default_rng((seed, int(i))))
        for i, kind in zip(idx, kinds, strict=True)
    ]
    return images, y_test[idx], kinds


def evaluate_shifted(predictor: Predictor, shifted) -> dict:
    images, labels, kinds = shifted
    probs = predictor.predict(images, batch_size=256).probs
    right = probs.argmax(1) == labels
    kinds = np.array(kinds)
    return {
        "shifted_test_items": int(len(labels)),
        "shifted_test_accuracy": float(right.mean()),
        "shifted_mean_confidence": float(probs.max(1).mean()),
        "shifted_accuracy_by_kind": {
            kind: float(right[kinds == kind].mean()) for kind in sorted(set(kinds))
        },
    }


def evaluate_on_test(predictor: Predictor, val_probs, val_labels, target: float):
    """Thresholds from the validation probabilities only (guaranteed and naive), then the
    10,000 test images routed with them."""
    x_test, y_test = load_split("test")
    t0 = time.perf_counter()
    probs = predictor.predict(list(x_test), batch_size=256).probs
    predict_s = time.perf_counter() - t0
    ltt = thresholds.threshold_values(
        thresholds.select_thresholds(val_probs, None, val_labels, len(CLASS_NAMES), target=target)
    )
    naive = thresholds.naive_thresholds(
        val_probs, None, val_labels, len(CLASS_NAMES), target=target
    )
    ltt_eval = thresholds.evaluate_thresholds(probs, y_test, ltt)
    naive_eval = thresholds.evaluate_thresholds(probs, y_test, naive)
    overall, _ = thresholds.risk_coverage_curve(probs, y_test)
    return {
        "test_items": int(len(y_test)),
        "test_accuracy": float((probs.argmax(1) == y_test).mean()),
        "test_ece": expected_calibration_error(probs, y_test),
        "test_coverage_ltt": ltt_eval.coverage,
        "test_precision_ltt": _num(ltt_eval.precision),
        "test_coverage_naive": naive_eval.coverage,
        "test_precision_naive": _num(naive_eval.precision),
        "test_oracle_coverage_at_target": thresholds.coverage_at_precision(overall, target),
        "thresholds_ltt": ltt,
        "thresholds_naive": naive,
        "test_predict_seconds": predict_s,
        "test_images_per_second": len(y_test) / predict_s,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000,60000")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per training run")
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--trainable-blocks", default="8")
    parser.add_argument("--epochs", default="8")
    parser.add_argument("--lrs", default="2e-3,4e-3")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--recipes", default="current", help="current, augmented, or both")
    parser.add_argument("--augment-views", type=int, default=2)
    parser.add_argument("--augment-share", type=float, default=0.5)
    parser.add_argument("--shifted", type=int, default=2100, help="shifted test images (0: none)")
    parser.add_argument(
        "--flip-augment",
        action="store_true",
        help="train on each image or its mirror, drawn per epoch (TrainConfig.flip_augment)",
    )
    parser.add_argument("--seed", type=int, default=0, help="draws the labels and their split")
    parser.add_argument(
        "--init-seed",
        type=int,
        default=None,
        help="seeds the head, augmented views and batch order (default: --seed); another value "
        "trains an ensemble member on the same labels and split (bench/ensemble.py)",
    )
    parser.add_argument("--checkpoints", default="/tmp/ml-bench", help="where models are saved")
    parser.add_argument("--out", default="bench/results/learning_curve.json")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="reuse a size's checkpoint where one exists: re-predict its validation split and the "
        "test set and choose thresholds again (after a change to the threshold rule)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    x_train, y_train = load_split("train")
    runs = []
    load_at_start = machine_info()["load_average_1_5_15"]
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = set(recipes) - set(RECIPES)
    if unknown:
        parser.error(f"unknown recipe {', '.join(sorted(unknown))}; use {', '.join(RECIPES)}")
    shifted = shifted_test_set(args.shifted, args.seed) if args.shifted else None
    # Recipes alternate within each size, so that both see the same machine load.
    for size, recipe in [(int(s), r) for s in args.sizes.split(",") for r in recipes]:
        idx = stratified_subset(y_train, size, seed=args.seed)
        suffix = "" if recipe == "current" else f"_{recipe}"
        if args.init_seed is not None:
            suffix += f"_init{args.init_seed}"
        out_dir = Path(args.checkpoints) / f"fashion_{size}{suffix}"
        augment = (
            {"augment_views": args.augment_views, "augment_share": args.augment_share}
            if recipe == "augmented"
            else {}
        )
        print(f"== {size} labels, {recipe} recipe → {out_dir}", flush=True)

        def progress(p):
            if p.phase == "training":
                print(f"  [{p.percent:5.1f}%] trial {p.trial}/{p.trials} {p.message}", flush=True)

        if args.rescore and (out_dir / "model.pt").exists():
            run = rescored_run(out_dir, x_train, y_train, idx, args.target)
        else:
            result = train(
                TrainConfig(
                    samples=[(x_train[i], int(y_train[i])) for i in idx],
                    class_names=CLASS_NAMES,
                    output_dir=out_dir,
                    input_size=args.input_size,
                    trainable_blocks=tuple(int(v) for v in args.trainable_blocks.split(",")),
                    epochs=tuple(int(v) for v in args.epochs.split(",")),
                    learning_rates=tuple(float(v) for v in args.lrs.split(",")),
                    time_budget_s=args.budget,
                    flip_augment=args.flip_augment,
                    target_precision=args.target,
                    seed=args.seed,
                    init_seed=args.init_seed,
                    progress=progress,
                    **augment,
                )
            )
            run = {
                "labels": size,
                "checkpoint": str(out_dir),
                "train_seconds": result.timings["total_s"],
                "timings": result.timings,
                "trials": [{k: v for k, v in t.items() if k != "history"} for t in result.trials],
                "chosen": {
                    "trainable_blocks": result.config["trainable_blocks"],
                    **result.config["hyperparameters"],
                },
                "temperature": result.temperature,
                "val_accuracy": result.metrics["accuracy"],
                "val_macro_f1": result.metrics["macro_f1"],
                "val_ece": result.metrics["ece"],
                "val_coverage_ltt": result.metrics["coverage_at_target"],
                **evaluate_on_test(
                    Predictor.load(out_dir, num_threads=2),
                    softmax(result.val_logits, result.temperature),
                    result.val_labels,
                    args.target,
                ),
            }
        run["recipe"] = recipe
        run["load_average_after"] = machine_info()["load_average_1_5_15"]
        if shifted is not None:
            run.update(evaluate_shifted(Predictor.load(out_dir, num_threads=2), shifted))
        runs.append(run)
        print(
            f"  {size} labels, {recipe}: shifted acc {run.get('shifted_test_accuracy')}",
            flush=True,
        )
        print(
            f"  {size} labels: train {run['train_seconds']:.0f} s, test acc "
            f"{run['test_accuracy']:.4f}, coverage@{args.target} (LTT, val thresholds) "
            f"{run['test_coverage_ltt']:.3f} at precision {run['test_precision_ltt']}; "
            f"naive {run['test_coverage_naive']:.3f} at {run['test_precision_naive']}; "
            f"oracle {run['test_oracle_coverage_at_target']:.3f}",
            flush=True,
        )
        report = {
            "benchmark": "learning_curve",
            "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
            "machine": machine_info(),
            "load_average_at_start": load_at_start,
            "target_precision": args.target,
            "runs": runs,
            "comparison": _comparison(runs),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=_plain))
    return report


def rescored_run(out_dir: Path, x_train, y_train, idx, target: float) -> dict:
    """A run's figures from its saved checkpoint: training facts from ``config.json``, the
    validation split recomputed exactly as ``train()`` made it, thresholds chosen again."""
    config = read_config(out_dir)
    val_idx = checkpoint_validation(y_train, config)
    predictor = Predictor.load(out_dir, num_threads=2)
    val_probs = predictor.predict(list(x_train[val_idx])).probs
    val_y = y_train[val_idx]
    ltt = thresholds.threshold_values(
        thresholds.select_thresholds(val_probs, None, val_y, len(CLASS_NAMES), target=target)
    )
    return {
        "labels": int(len(idx)),
        "checkpoint": str(out_dir),
        "rescored": True,
        "train_seconds": config["timings"]["total_s"],
        "timings": config["timings"],
        "trials": [{k: v for k, v in t.items() if k != "history"} for t in config["trials"]],
        "chosen": {"trainable_blocks": config["trainable_blocks"], **config["hyperparameters"]},
        "temperature": config["temperature"],
        "val_accuracy": config["metrics"]["accuracy"],
        "val_macro_f1": config["metrics"]["macro_f1"],
        "val_ece": config["metrics"]["ece"],
        "val_coverage_ltt": thresholds.evaluate_thresholds(val_probs, val_y, ltt).coverage,
        **evaluate_on_test(predictor, val_probs, val_y, target),
    }


def _comparison(runs: list[dict]) -> list[dict]:
    """Per size, each recipe's clean and shifted test accuracy side by side."""
    rows: dict[int, dict] = {}
    for run in runs:
        row = rows.setdefault(run["labels"], {"labels": run["labels"]})
        recipe = run.get("recipe", "current")
        row[f"{recipe}_test_accuracy"] = run["test_accuracy"]
        row[f"{recipe}_shifted_accuracy"] = run.get("shifted_test_accuracy")
        row[f"{recipe}_train_seconds"] = run["train_seconds"]
    for row in rows.values():
        if "current_test_accuracy" in row and "augmented_test_accuracy" in row:
            row["test_accuracy_change"] = (
                row["augmented_test_accuracy"] - row["current_test_accuracy"]
            )
    return list(rows.values())


def _num(value: float) -> float | None:
    return None if value != value else float(value)  # NaN (nothing accepted) → null


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    main()
