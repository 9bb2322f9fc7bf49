"""Inference throughput on 2 CPU threads: eager baseline vs the optimised Predictor path.

Both paths decode PNG bytes, preprocess with Pillow and run EfficientNet-Lite0 at the model's
input size. Baseline: NCHW, ``torch.no_grad``, one image at a time (what a first version of a
worker would do). Optimised: ``Predictor.predict`` (``torch.inference_mode``, channels-last,
batches). Same images, same process, same run.

    nice -n 10 python bench/throughput_inference.py --images 512 --input-size 96
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.environment import machine_info  # noqa: E402
from ml.factory import create_model, preprocess_config  # noqa: E402
from ml.fashion_mnist import load_split  # noqa: E402
from ml.inference import Predictor  # noqa: E402
from ml.preprocess import preprocess  # noqa: E402


def _png_bytes(images: np.ndarray) -> list[bytes]:
    out = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--batch-sizes", default="16,64,256")
    parser.add_argument("--out", default="bench/results/throughput_inference.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    images, _ = load_split("test")
    data = _png_bytes(images[: args.images])
    pre = preprocess_config(input_size=args.input_size)
    torch.manual_seed(0)
    model = create_model(num_classes=10).eval()

    # Warm-up both layouts so one-off allocator/kernel selection is not timed.
    with torch.no_grad():
        model(preprocess(data[0], pre)[None])

    t0 = time.perf_counter()
    with torch.no_grad():
        base = [model(preprocess(d, pre)[None]).softmax(1) for d in data]
    baseline_s = time.perf_counter() - t0
    baseline = np.concatenate([b.numpy() for b in base])

    results = {
        "baseline_eager_batch1": {"seconds": baseline_s, "images_per_s": len(data) / baseline_s}
    }
    predictor = Predictor(model, pre, [str(i) for i in range(10)], num_threads=2)
    predictor.predict(data[:8], batch_size=8)  # warm-up
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        t0 = time.perf_counter()
        probs = predictor.predict(data, batch_size=bs).probs
        secs = time.perf_counter() - t0
        results[f"optimized_batch{bs}"] = {
            "seconds": secs,
            "images_per_s": len(data) / secs,
            "max_abs_prob_diff_vs_baseline": float(np.abs(probs - baseline).max()),
        }
    # Preprocessing alone, to show how much of the time is Pillow.
    t0 = time.perf_counter()
    for d in data:
        preprocess(d, pre)
    pre_s = time.perf_counter() - t0
    results["preprocess_only"] = {"seconds": pre_s, "images_per_s": len(data) / pre_s}

    for name, r in results.items():
        print(f"{name:28s} {r['images_per_s']:8.1f} images/s ({r['seconds']:.2f} s)")
    report = {
        "benchmark": "throughput_inference",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "machine": machine_info(),
        "images": len(data),
        "input_size": args.input_size,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
