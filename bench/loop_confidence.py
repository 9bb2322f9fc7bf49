"""How sure the loop's last model is, where its confidences are judged: on the stream or on the
evidence (run after bench/loop.py, against the loop's own database and model files).

The floor lets only images a model is at least ``target`` sure of be auto-labeled, so the share
of images at or above it caps coverage. This reads the loop's project, scores every stream image
with the active model and reports, per confidence bin, the share of the stream and how often
the model is right there: over the whole stream (which includes the images the model was trained
on) and over the evidence alone (held out, never trained on: the honest sample). It also asks
whether fitting the temperature on half of the evidence (certifying on the other half) would
move more of the stream over the floor; what the service's own split (the temperature and the
per class map on the evidence's calibration side, ``labeling.machine.certification``) certifies;
and how much evidence that needs before it beats the model's stored calibration
(``evidence_needed``, behind ``CALIBRATION_FIT_MIN``).

    MODEL_ROOT=var/loop/<run>/models MEDIA_ROOT=var/loop/<run>/media \\
    DATABASE_URL=postgres://labeling:labeling@127.0.0.1:5432/labeling_loop \\
    python bench/loop_confidence.py --out bench/results/loop_confidence.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")


def main(argv: list[str] | None = None) -> dict:
    import django

    django.setup()
    from bench.class_calibration import reliability_rows
    from labeling.machine.certification import evidence_scores, item_calibration_fit
    from labeling.machine.predictors import checkpoint_path
    from labeling.models import Item, Project
    from ml import overall_scope, thresholds
    from ml.calibration import calibrated, fit_class_calibration, fit_temperature, softmax
    from ml.environment import machine_info
    from ml.fashion_mnist import load_split
    from ml.inference import Predictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", help="slug (default: the newest project)")
    parser.add_argument("--splits", type=int, default=3, help="evidence halvings to try")
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[200, 400, 600, 800], help="evidence subsets"
    )
    parser.add_argument("--repeats", type=int, default=4, help="random subsets per size")
    parser.add_argument("--out", default="bench/results/loop_confidence.json")
    args = parser.parse_args(argv)
    projects = Project.objects.order_by("-created_at")
    project = projects.get(slug=args.project) if args.project else projects.first()
    model = project.active_model
    predictor = Predictor.load(checkpoint_path(model), num_threads=2)
    pixels, truth = load_split("train")
    rows = list(Item.objects.filter(project=project).values_list("pk", "metadata"))
    index = np.array([meta["fmnist_index"] for _, meta in rows])
    ids = [pk for pk, _ in rows]
    logits = predictor.score(list(pixels[index]), batch_size=256).logits
    labels = truth[index]
    target = project.target_precision
    evidence = evidence_scores(project, model, predict_missing=False)
    position = {pk: i for i, pk in enumerate(ids)}
    ev_rows = np.array([position[i] for i in evidence["item_ids"].tolist()])
    ev_labels = evidence["labels"]
    held = np.zeros(len(ids), dtype=bool)  # evidence: held out, never trained on
    held[ev_rows] = True

    def stream_view(probs: np.ndarray) -> dict:
        conf, right = probs.max(1), probs.argmax(1) == labels
        return {
            "whole_stream": reliability_rows(conf, right),
            "evidence_only": reliability_rows(conf[ev_rows], right[ev_rows]),
            "stream_share_at_floor": round(float((conf >= target).mean()), 4),
        }

    def certified(probs, cert_rows, cert_labels) -> dict:
        chosen = overall_scope.select_overall_thresholds(
            probs[cert_rows], None, cert_labels, probs.shape[1], target=target, floor=target
        )
        pred = probs.argmax(1)
        accept = thresholds.accept_mask(probs.max(1), pred, chosen.per_class)
        return {
            "level": chosen.level,
            "certified_on": int(len(cert_rows)),
            "stream_coverage": round(float(accept.mean()), 4),
            "evidence_coverage": round(float(accept[held].mean()), 4),
            "evidence_precision": round(float((pred == labels)[accept & held].mean()), 4)
            if (accept & held).any()
            else None,
        }

    stored = calibrated(logits, predictor.temperature, predictor.class_calibration)

    def refit(fit_rows, fit_labels, cert_rows, cert_labels) -> dict:
        temperature = fit_temperature(logits[fit_rows], fit_labels)
        maps = fit_class_calibration(softmax(logits[fit_rows], temperature), fit_labels)
        return {
            "temperature": temperature,
            **certified(calibrated(logits, temperature, maps), cert_rows, cert_labels),
        }

    report = {
        "benchmark": "loop_confidence",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "machine": machine_info(),
        "project": project.slug,
        "model": model.version,
        "target": target,
        "stream_images": len(ids),
        "evidence_items": int(len(ev_rows)),
        "stream_accuracy": round(float((stored.argmax(1) == labels).mean()), 4),
        "evidence_accuracy": round(float((stored.argmax(1) == labels)[ev_rows].mean()), 4),
        "stored": {
            "temperature": predictor.temperature,
            **stream_view(stored),
            **certified(stored, ev_rows, ev_labels),
        },
        "temperature_on_half_the_evidence": [],
    }
    rng = np.random.default_rng(0)
    for _ in range(args.splits):
        order = rng.permutation(len(ev_rows))
        fit, cert = order[: len(order) // 2], order[len(order) // 2 :]
        temperature = fit_temperature(logits[ev_rows[fit]], ev_labels[fit])
        probs = calibrated(logits, temperature)
        entry = {"temperature": temperature, **certified(probs, ev_rows[cert], ev_labels[cert])}
        entry["stream_share_at_floor"] = round(float((probs.max(1) >= target).mean()), 4)
        report["temperature_on_half_the_evidence"].append(entry)
    # What the product does (labeling.machine.certification): the temperature and the per class
    # map fitted on the evidence's calibration side (fixed by content hash), certified on the
    # rest; and, on random subsets of the evidence, how much evidence that needs before it
    # beats the stored calibration certified on the same items (CALIBRATION_FIT_MIN).
    sha = dict(
        Item.objects.filter(pk__in=evidence["item_ids"].tolist()).values_list("pk", "sha256")
    )
    side = np.array([item_calibration_fit(sha256=sha[i]) for i in evidence["item_ids"].tolist()])
    # (A model the service already calibrated on the evidence has that side left out here.)
    report["calibration_side"] = (
        {
            "fit_items": int(side.sum()),
            **refit(ev_rows[side], ev_labels[side], ev_rows[~side], ev_labels[~side]),
        }
        if side.any() and (~side).any()
        else None
    )
    sizes = sorted({*args.sizes, len(ev_rows)} - {n for n in args.sizes if n > len(ev_rows)})
    report["evidence_needed"] = []
    for n in sizes:
        rows = {"evidence": n, "fit_items": n // 2, "stored": [], "refit": []}
        for _ in range(args.repeats):
            order = rng.permutation(len(ev_rows))[:n]
            fit, cert = order[: n // 2], order[n // 2 :]
            rows["stored"].append(certified(stored, ev_rows[cert], ev_labels[cert]))
            rows["refit"].append(
                refit(ev_rows[fit], ev_labels[fit], ev_rows[cert], ev_labels[cert])
            )
        for key in ("stored", "refit"):
            rows[f"{key}_mean_stream_coverage"] = round(
                float(np.mean([r["stream_coverage"] for r in rows[key]])), 4
            )
        report["evidence_needed"].append(rows)
        print(
            f"evidence {n}: stored {rows['stored_mean_stream_coverage']:.3f}, "
            f"refit on half {rows['refit_mean_stream_coverage']:.3f}"
        )
    print(json.dumps(report, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
