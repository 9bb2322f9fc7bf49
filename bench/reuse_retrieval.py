"""Which features find a reused photo's original: a research benchmark for the reuse check's
candidate search (issue 17's open gap).

The reuse check aligns a new photo only with its candidates: the nearest neighbours in the
project's embedding space plus the closest perceptual hash (labeling.embeddings.reuse). In a
fine-tuned model's space the original of a cropped copy is often not among them, because the
model's penultimate features keep a class together rather than a photo next to its copies
(bench/duplicates.py). This benchmark measures, for the same edited copies, how often the
original is among the k nearest neighbours by:
  - the fine-tuned model's penultimate features (what the service searches today);
  - each later stage's output of the same forward pass, pooled over positions (average and max):
    free to compute, since the prediction runs that pass anyway;
  - the ImageNet backbone's penultimate features (a second forward pass per image);
  - unions of two of them (k each).

    flock /tmp/cpu-heavy.lock .venv/bin/python bench/reuse_retrieval.py \\
        --checkpoint /tmp/b17-bench/fashion9
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.duplicates import build_queries  # noqa: E402
from ml.embeddings import normalize  # noqa: E402
from ml.environment import machine_info  # noqa: E402
from ml.inference import Predictor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "reuse_retrieval.json"
REPORTED_EDITS = ("crop", "rotate", "tint", "screenshot", "combined")


def features(predictor: Predictor, sources: list[bytes], stages: list[int]) -> dict:
    """Penultimate features and each of ``stages``' pooled outputs, from one forward pass."""
    captured: dict[int, list[torch.Tensor]] = {n: [] for n in stages}
    blocks = predictor.model.blocks
    hooks = [
        blocks[n].register_forward_hook(
            lambda _module, _inputs, out, n=n: captured[n].append(out.float())
        )
        for n in stages
    ]
    try:
        result = predictor.predict_and_embed(sources, batch_size=128)
    finally:
        for hook in hooks:
            hook.remove()
    found = {"penultimate": result.embeddings}
    for n, parts in captured.items():
        maps = torch.cat(parts)
        found[f"stage{n}_avg"] = maps.mean((2, 3)).numpy()
        found[f"stage{n}_max"] = maps.amax((2, 3)).numpy()
    return found


def nearest(gallery: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sims = normalize(queries.astype(np.float32)) @ normalize(gallery.astype(np.float32)).T
    return np.argsort(-sims, axis=1)[:, :k]


def recall(tops: list[np.ndarray], originals: np.ndarray, kinds: np.ndarray) -> dict:
    hit = np.zeros(len(originals), dtype=bool)
    for top in tops:
        hit |= (top == originals[:, None]).any(axis=1)
    return {
        "recall": round(float(hit.mean()), 4),
        "by_edit": {kind: round(float(hit[kinds == kind].mean()), 4) for kind in REPORTED_EDITS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a fine-tuned checkpoint")
    parser.add_argument("--gallery", type=int, default=3000)
    parser.add_argument("--copies-per-edit", type=int, default=30, help="per edit and gallery half")
    parser.add_argument("--k", type=int, default=10, help="neighbours searched per feature")
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started, load_before = time.perf_counter(), machine_info()["load_average_1_5_15"]

    # bench/duplicates.py's own copies (both halves, no different photos): the same edits, so the
    # two benchmarks' figures describe the same copies.
    data = build_queries(
        argparse.Namespace(
            gallery=args.gallery, negatives=0, copies_per_edit=args.copies_per_edit, seed=args.seed
        )
    )
    queries, gallery = data["queries"], data["gallery"]
    originals_a, kinds_a = data["originals"], data["kinds"]

    model = Predictor.load(args.checkpoint)
    stages = list(range(4, len(model.model.blocks)))
    tuned_g, tuned_q = features(model, gallery, stages), features(model, queries, stages)
    imagenet = Predictor.imagenet(input_size=args.input_size, resize_mode="pad")
    net_g, net_q = features(imagenet, gallery, []), features(imagenet, queries, [])

    k = args.k
    tops = {f"model {name}": nearest(tuned_g[name], tuned_q[name], k) for name in tuned_g}
    tops["imagenet penultimate"] = nearest(net_g["penultimate"], net_q["penultimate"], k)
    rows = {name: recall([top], originals_a, kinds_a) for name, top in tops.items()}
    best_stage = max(
        (name for name in tops if "stage" in name), key=lambda name: rows[name]["recall"]
    )
    for other in (best_stage, "imagenet penultimate"):
        rows[f"model penultimate + {other.removeprefix('model ')}"] = recall(
            [tops["model penultimate"], tops[other]], originals_a, kinds_a
        )
    for name, row in rows.items():
        print(f"{name:48s} recall@{k} {row['recall']:.3f}  {row['by_edit']}", flush=True)

    body = {
        "benchmark": "reuse_retrieval",
        "command": "python " + " ".join(sys.argv),
        "k": k,
        "copies": len(queries),
        "gallery": len(gallery),
        "recall_at_k": rows,
        "best_stage": best_stage,
        "machine": {
            **machine_info(),
            "load_before": load_before,
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    args.out.write_text(json.dumps(body, indent=2) + "\n")


if __name__ == "__main__":
    main()
