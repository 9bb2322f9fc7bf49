"""Label-error review on injected label noise: precision and recall of the flagged labels.

The nine-class Fashion-MNIST model (bench/fashion9.py) predicts the test images of its nine
classes; it never trained on them, as the service's predictions are made before a human labels
an image. Their labels are then corrupted at a known rate, the way inspectors err:
  - uniform: a wrong label drawn at random;
  - confusable: the label of the most similar class (T-shirt↔Shirt, Pullover↔Coat,
    Sneaker↔Sandal, ...), the mistake people actually make, and the hard case.
ml.label_errors.find_label_issues (confident learning) flags labels; a flag is right when the
label was corrupted. Fashion-MNIST's own label errors count against precision here.

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/label_errors.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fashion9 import DEFAULT_CACHE, KNOWN, NEW_CLASS, outputs  # noqa: E402
from ml.fashion_mnist import CLASS_NAMES  # noqa: E402
from ml.label_errors import find_label_issues  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "label_errors.json"
# The class people confuse each known class with (by index among the nine known classes:
# T-shirt, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag).
CONFUSABLE = {0: 6, 1: 3, 2: 4, 3: 0, 4: 2, 5: 7, 6: 0, 7: 5, 8: 2}


def corrupt(labels: np.ndarray, rate: float, kind: str, rng) -> tuple[np.ndarray, np.ndarray]:
    noisy = labels.copy()
    flip = rng.random(len(labels)) < rate
    if kind == "uniform":
        shift = rng.integers(1, len(KNOWN), size=flip.sum())
        noisy[flip] = (labels[flip] + shift) % len(KNOWN)
    else:
        noisy[flip] = [CONFUSABLE[int(c)] for c in labels[flip]]
    return noisy, flip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    data = outputs(args.cache, threads=args.threads)
    known = data["test_labels"] != NEW_CLASS
    probs = data["test_probs"][known]
    remap = {c: i for i, c in enumerate(KNOWN)}
    truth = np.array([remap[int(c)] for c in data["test_labels"][known]])
    rng = np.random.default_rng(args.seed)
    table = {}
    for kind in ("uniform", "confusable"):
        for rate in args.rates:
            runs = []
            for _ in range(args.repeats):
                noisy, flipped = corrupt(truth, rate, kind, rng)
                issues = find_label_issues(probs, noisy)
                flagged = np.zeros(len(noisy), dtype=bool)
                flagged[issues.flagged] = True
                right = flagged & flipped
                runs.append(
                    {
                        "flagged": int(flagged.sum()),
                        "precision": right.sum() / max(1, flagged.sum()),
                        "recall": right.sum() / max(1, flipped.sum()),
                        "suggestion_right": float(
                            (issues.suggested == truth[issues.flagged]).mean()
                        )
                        if len(issues.flagged)
                        else None,
                    }
                )
            table[f"{kind}@{rate}"] = {
                key: round(float(np.mean([r[key] for r in runs if r[key] is not None])), 4)
                for key in runs[0]
            }
            print(kind, rate, table[f"{kind}@{rate}"], flush=True)
    clean = find_label_issues(probs, truth)
    headline = table[f"uniform@{0.1}"] if "uniform@0.1" in table else next(iter(table.values()))
    body = {
        "precision": headline["precision"],
        "recall": headline["recall"],
        "headline": "uniform noise at 10 %",
        "by_noise": table,
        "flagged_without_injected_noise": int(len(clean.flagged)),
        "images": int(len(truth)),
        "model_accuracy": round(float((probs.argmax(1) == truth).mean()), 4),
        "classes": [CLASS_NAMES[c] for c in KNOWN],
        "method": "confident learning, prune by noise rate ∩ confident off-diagonal",
        "repeats": args.repeats,
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
