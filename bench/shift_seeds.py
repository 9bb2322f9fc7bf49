"""Coverage and the worst class against today's rules, repeated: one of ``bench/shift.py``'s
scenario under several seeds (each seed draws another labeled history, so other evidence and
thresholds, and another stream), because one 1,000-image run moves by several points with the
evidence it happened to certify on.

    DATABASE_URL=postgres://labeling:labeling@127.0.0.1:5432/labeling_i15 \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/3 \\
    python bench/shift_seeds.py --checkpoint /tmp/b15/ckpt/fashion_10000_augmented --seeds 1,2,3,4,5
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--scenario", default="clean", help="one of bench/shift.py's scenarios")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--heldout", type=int, default=4000)
    parser.add_argument("--out", default="bench/results/shift_clean_seeds.json")
    args = parser.parse_args(argv)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        # One process per seed, as a user runs bench/shift.py: each starts and stops its worker.
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "shift.json"
            command = [
                sys.executable,
                str(Path(__file__).with_name("shift.py")),
                "--checkpoint",
                args.checkpoint,
                "--scenarios",
                args.scenario,
                "--images",
                str(args.images),
                "--heldout",
                str(args.heldout),
                "--signal-images",
                "0",
                "--seed",
                str(seed),
                "--out",
                str(out),
            ]
            subprocess.run(command, check=True)
            report = json.loads(out.read_text())
        entry = report["scenarios"][args.scenario]
        runs.append(
            {
                "seed": seed,
                "evidence": entry["thresholds_evidence"],
                "coverage": entry["protected"]["coverage"],
                "coverage_today": entry["today"]["coverage"],
                "drop": round(entry["today"]["coverage"] - entry["protected"]["coverage"], 4),
                "precision": entry["protected"]["precision"],
                "precision_today": entry["today"]["precision"],
                "worst_class_precision": entry["protected"]["worst_class_precision"],
                "worst_class_precision_today": entry["today"]["worst_class_precision"],
                "unusual_share": entry["protected"]["unusual_share"],
                # the shift alert or pause that stopped auto-labeling (None: none), and when
                "detected_by": entry["protected"]["detected_by"],
                "detected_after_images": entry["protected"]["detection_delay_images"],
                "wrong_given_before_detection": entry["protected"]["wrong_final_before_detection"],
                "wrong_kept_before_detection": entry["protected"][
                    "wrong_final_before_detection_kept"
                ],
                # auto-labels and precision per class (position), both rules
                "per_class": entry["protected"]["per_class"],
                "per_class_today": entry["today"]["per_class"],
                "thresholds_in_force": entry["thresholds_in_force"],
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    drops = np.array([r["drop"] for r in runs])
    out = {
        "benchmark": f"shift_{args.scenario}_seeds",
        "scenario": args.scenario,
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "machine": report["machine"],
        "checkpoint": args.checkpoint,
        "images_per_run": args.images,
        "evidence_recalibration": report.get("evidence_recalibration"),
        "runs": runs,
        "mean_coverage": round(float(np.mean([r["coverage"] for r in runs])), 4),
        "mean_coverage_today": round(float(np.mean([r["coverage_today"] for r in runs])), 4),
        "mean_drop": round(float(drops.mean()), 4),
        "drop_standard_error": round(float(drops.std(ddof=1) / np.sqrt(len(drops))), 4)
        if len(drops) > 1
        else None,
        "worst_class_below_target_minus_1pt": sum(
            r["worst_class_precision"] is not None
            and r["worst_class_precision"] < report["target_precision"] - 0.01
            for r in runs
        ),
        "worst_class_below_target_minus_1pt_today": sum(
            r["worst_class_precision_today"] is not None
            and r["worst_class_precision_today"] < report["target_precision"] - 0.01
            for r in runs
        ),
        "worst_class_precision_lowest": min(
            (r["worst_class_precision"] for r in runs if r["worst_class_precision"] is not None),
            default=None,
        ),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
