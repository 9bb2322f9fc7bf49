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

``--stream-shift KIND`` judges the rules on the stream's images shifted one way
(``bench/photo_shifts.py``), the evidence staying clean: does the guarantee bend when photos change
a little and the shift guard has no reason to stop them (re-encoding)? The figures are then also
given for the first 1,000 images of each stream, the size of ``bench/shift.py``'s scenarios, whose
worst class is judged on a few dozen auto-labels: how often a stream that size shows a class under
target − 1 point although the class holds on the whole stream. ``--strengths`` adds the evidence
map fitted with a stronger pull towards the model's own calibration (``strength`` of
``ml.calibration.fit_class_calibration``; the service uses 1): what robustness to such a shift
would cost in coverage.

    python bench/recalibration.py --checkpoint /tmp/b15/ckpt/fashion_10000_augmented
    python bench/recalibration.py --checkpoint /tmp/b15/ckpt/fashion_10000_augmented \
        --stream-shift reencoded --runs 0.95:1000:0 --resamples 100 \
        --out bench/results/recalibration_reencoded.json
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

from bench.class_calibration import choose, judged, rule_line, summary  # noqa: E402
from bench.pool_logits import pool_logits, shifted_test_logits  # noqa: E402
from ml.calibration import fit_class_calibration, fit_temperature, softmax  # noqa: E402
from ml.environment import machine_info  # noqa: E402

RULES = ("today", "model_calibration", "evidence_recalibration")


SMALL_STREAM = 1000  # bench/shift.py's images per scenario


def strength_rule(strength: float) -> str:
    return f"evidence_recalibration_strength_{strength:g}"


def study(
    logits,
    labels,
    n_val,
    *,
    size,
    target,
    delta,
    noise,
    resamples,
    rng,
    shifted=None,
    strengths=(),
) -> dict:
    """The three rules over ``resamples`` draws of ``size`` evidence items from the test split,
    judged on the rest of it (``shifted``: the test split's logits as shifted photos)."""
    temperature = fit_temperature(logits[:n_val], labels[:n_val])
    plain = softmax(logits, temperature)
    model_map = fit_class_calibration(plain[:n_val], labels[:n_val])
    model = model_map.apply(plain)
    seen = model
    if shifted is not None:  # the pool as it arrives: validation rows never judged, so kept
        seen = model_map.apply(softmax(np.concatenate([logits[:n_val], shifted]), temperature))
    test = np.arange(n_val, len(labels))
    rules = RULES + tuple(strength_rule(s) for s in strengths)
    stats = {rule: {"coverage": [], "precision": [], "worst": []} for rule in rules}
    small = {rule: {"coverage": [], "precision": [], "worst": []} for rule in rules}
    small_clean = {rule: {"coverage": [], "precision": [], "worst": []} for rule in rules}
    for _ in range(resamples):
        order = rng.permutation(test)
        evidence, stream = order[:size], order[size:]
        given = labels.copy()
        flipped = evidence[rng.random(size) < noise]
        given[flipped] = np.argsort(model[flipped], axis=1)[:, -2]
        # the service's map, then the same fit pulled harder towards the model's calibration
        maps = [("evidence_recalibration", fit_class_calibration(model[evidence], given[evidence]))]
        maps += [
            (
                strength_rule(strength),
                fit_class_calibration(model[evidence], given[evidence], strength=strength),
            )
            for strength in strengths
        ]
        candidates = [
            ("today", model, seen, "no_floor"),
            ("model_calibration", model, seen, "floor"),
        ]
        for name, fit in maps:
            mapped = fit.apply(model)
            mapped_seen = fit.apply(seen) if shifted is not None else mapped
            candidates.append((name, mapped, mapped_seen, "floor"))
        for rule, probs, probs_seen, kind in candidates:
            chosen = choose(kind, probs[evidence], given[evidence], target, delta)
            parts = [(stats, probs_seen, stream)]
            if shifted is not None:
                parts += [
                    (small, probs_seen, stream[:SMALL_STREAM]),
                    (small_clean, probs, stream[:SMALL_STREAM]),
                ]
            for into, judged_probs, part in parts:
                coverage, precision, worst = judged(judged_probs[part], labels[part], chosen)
                into[rule]["coverage"].append(coverage)
                into[rule]["precision"].append(np.nan if precision is None else precision)
                into[rule]["worst"].append(worst)
    out = {rule: summary(s, target) for rule, s in stats.items()}
    if shifted is not None:
        out[f"streams_of_{SMALL_STREAM}"] = {rule: summary(s, target) for rule, s in small.items()}
        # The same streams unshifted: how often a stream that size misses in distribution.
        out[f"unshifted_streams_of_{SMALL_STREAM}"] = {
            rule: summary(s, target) for rule, s in small_clean.items()
        }
    for rule in rules[1:]:  # what each floored rule costs against the rules without the floor
        out[f"floor_cost_{rule}"] = round(
            out["today"]["mean_coverage"] - out[rule]["mean_coverage"], 4
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--runs", default="0.95:1000:0,0.95:3000:0,0.98:3000:0,0.95:1000:0.02")
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--resamples", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stream-shift", default="", help="a bench/photo_shifts.py kind")
    parser.add_argument("--strengths", default="", help="extra evidence map strengths, e.g. 5,20")
    parser.add_argument("--out", default="bench/results/recalibration.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    logits, labels, n_val = pool_logits(Path(args.checkpoint))
    shifted = None
    if args.stream_shift:
        shifted = shifted_test_logits(Path(args.checkpoint), args.stream_shift)
        accuracy = float((shifted.argmax(1) == labels[n_val:]).mean())
        print(f"{args.stream_shift} test split: accuracy {accuracy:.4f}", flush=True)
    rng = np.random.default_rng(args.seed)
    report: dict = {
        "benchmark": "recalibration",
        "stream_shift": args.stream_shift or None,
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
            shifted=shifted,
            strengths=[float(x) for x in args.strengths.split(",") if x],
        )
        report["runs"][f"target {target}, {size} evidence items, label noise {noise}"] = result
        print(f"target {target}, {size} items, noise {noise}: {rule_line(result)}", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
