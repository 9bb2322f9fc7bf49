"""A new class from a few examples: train on nine Fashion-MNIST classes, add the tenth (Ankle
boot) from 10, 20 and 50 examples, and measure what the prototype routing does on the test split.

The service's own steps: the nine-class model's embeddings (ml.inference), the centroid and the
two distance thresholds calibrated on the examples and on the project's other labeled images
(ml.prototypes), and the model's routing (ml.thresholds, its guaranteed thresholds) for
everything the prototype does not claim. Each shot count is drawn ``--repeats`` times.

Reported per shot count:
  new_class_precision / new_class_recall: of the images accepted as the new class, the share
    that are Ankle boots; of all Ankle boots, the share accepted;
  new_class_to_humans: Ankle boots sent to humans (between TL and TH);
  new_class_mislabeled: Ankle boots the prototype let through and the model auto-labeled as a
    known class (without a prototype, every auto-labeled Ankle boot is such an error);
  others_*: what it costs the nine known classes (accepted as the new class, sent to humans,
    and their auto-label coverage and precision before/after).

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/prototypes.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fashion9 import DEFAULT_CACHE, KNOWN, NEW_CLASS, outputs, trained_model  # noqa: E402
from ml import prototypes as rule  # noqa: E402
from ml import thresholds  # noqa: E402
from ml.fashion_mnist import CLASS_NAMES  # noqa: E402
from ml.inference import Predictor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "prototypes.json"


def model_routing(probs: np.ndarray, chosen: list[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """(predicted known class as a Fashion-MNIST index, auto-labeled mask)."""
    labels, _, auto = thresholds.route_batch(probs, chosen)
    return np.asarray(KNOWN)[labels], auto


def measure(data: dict, examples: np.ndarray, chosen: list, args) -> dict:
    center, cal = rule.calibrate(
        examples,
        data["calibration_embeddings"].astype(np.float32),
        false_accept=args.false_accept,
        human_share=args.human_share,
        target_recall=args.target_recall,
    )
    test_vectors = data["test_embeddings"].astype(np.float32)
    truth = data["test_labels"]
    distance = rule.cosine_distance(test_vectors, center)
    decision = rule.route(distance, cal.accept_distance, cal.reject_distance)
    predicted, auto = model_routing(data["test_probs"], chosen)
    accept = decision == rule.ACCEPT
    human = decision == rule.HUMAN
    new = truth == NEW_CLASS
    others = ~new
    # With the prototype: accepted → new class; humans → queue; else the model routes.
    model_auto = auto & ~accept & ~human
    before_auto = auto & others
    after_auto = model_auto & others
    return {
        "new_class_precision": float(new[accept].mean()) if accept.any() else None,
        "new_class_recall": float((accept & new).sum() / new.sum()),
        "new_class_to_humans": float((human & new).sum() / new.sum()),
        "new_class_recall_with_humans": float(((accept | human) & new).sum() / new.sum()),
        "new_class_mislabeled": float((model_auto & new).sum() / new.sum()),
        "new_class_mislabeled_without_prototype": float((auto & new).sum() / new.sum()),
        "others_accepted_as_new": float((accept & others).sum() / others.sum()),
        "others_to_humans": float((human & others).sum() / others.sum()),
        "others_auto_coverage_before": float(before_auto.sum() / others.sum()),
        "others_auto_coverage_after": float(after_auto.sum() / others.sum()),
        "others_auto_precision_before": float((predicted == truth)[before_auto].mean()),
        "others_auto_precision_after": float((predicted == truth)[after_auto].mean()),
        "others_recall_by_class": {
            CLASS_NAMES[c]: {
                "auto_before": round(
                    float((before_auto & (truth == c)).sum() / (truth == c).sum()), 4
                ),
                "auto_after": round(
                    float((after_auto & (truth == c)).sum() / (truth == c).sum()), 4
                ),
                "accepted_as_new": round(
                    float((accept & (truth == c)).sum() / (truth == c).sum()), 4
                ),
            }
            for c in KNOWN
        },
        "accept_distance": cal.accept_distance,
        "reject_distance": cal.reject_distance,
    }


def summarise(runs: list[dict]) -> dict:
    out = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = {
                name: {m: round(float(np.mean([r[key][name][m] for r in runs])), 4) for m in inner}
                for name, inner in value.items()
            }
            continue
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = round(float(np.mean(values)), 4) if values else None
        if key in ("new_class_precision", "new_class_recall") and values:
            out[f"{key}_min"] = round(float(np.min(values)), 4)
            out[f"{key}_max"] = round(float(np.max(values)), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--false-accept", type=float, default=0.005)
    parser.add_argument("--human-share", type=float, default=0.05)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--target-precision", type=float, default=0.98)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    checkpoint = trained_model(args.cache, threads=args.threads)
    data = outputs(args.cache, threads=args.threads)
    predictor = Predictor.load(checkpoint, num_threads=args.threads)
    # The model's guaranteed thresholds, as the service derives them (Learn-then-Test on its
    # held-out labels; here the calibration images stand in for the project's labels).
    remap = {c: i for i, c in enumerate(KNOWN)}
    cal_labels = np.array([remap[int(c)] for c in data["calibration_labels"]])
    chosen = [
        t.threshold
        for t in thresholds.select_thresholds(
            data["calibration_probs"],
            None,
            cal_labels,
            len(KNOWN),
            target=args.target_precision,
            delta=0.05,
        )
    ]
    rng = np.random.default_rng(args.seed)
    pool = data["pool_embeddings"].astype(np.float32)
    result = {}
    for shots in args.shots:
        runs = []
        for _ in range(args.repeats):
            pick = rng.choice(len(pool), size=shots, replace=False)
            runs.append(measure(data, pool[pick], chosen, args))
        result[str(shots)] = summarise(runs)
        print(
            shots,
            {
                k: result[str(shots)][k]
                for k in (
                    "new_class_precision",
                    "new_class_recall",
                    "new_class_to_humans",
                    "others_accepted_as_new",
                    "others_to_humans",
                )
            },
            flush=True,
        )
    training = args.cache / "fashion9_training.json"
    body = {
        **result,
        "new_class": CLASS_NAMES[NEW_CLASS],
        "known_classes": [CLASS_NAMES[c] for c in KNOWN],
        "model": {
            "classes": predictor.class_names,
            "training": json.loads(training.read_text()) if training.exists() else None,
            "test_accuracy_on_known": round(
                float(
                    (np.asarray(KNOWN)[data["test_probs"].argmax(1)] == data["test_labels"])[
                        data["test_labels"] != NEW_CLASS
                    ].mean()
                ),
                4,
            ),
        },
        "settings": {
            "false_accept": args.false_accept,
            "human_share": args.human_share,
            "target_recall": args.target_recall,
            "model_target_precision": args.target_precision,
            "repeats": args.repeats,
            "calibration_images": int(len(data["calibration_labels"])),
            "test_images": int(len(data["test_labels"])),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(body, indent=2) + "\n")


if __name__ == "__main__":
    main()
