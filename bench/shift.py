"""Auto-labels when incoming photos change: Fashion-MNIST test images as users would photograph
them, routed through the real service, with and without the shift protection.

For each scenario a fresh project gets a labeled history (``--heldout`` training-split images the
model never trained on, uploaded before there is any model, so they go to humans blind to any
confidence, and labeled by simulated experts: ``history_label``). Thresholds are certified only
on such labels (issue 16), about a fifth of them, held out by their hash. The model is then
imported the way an admin imports one (``manage.py import_model``: checked, scored on the
history's held-out labels, which also fits and calibrates its shift reference, thresholds
certified on the evidence, then promoted by the gate), and a stream of ``--images``
test images, shifted one way (bench/photo_shifts.py), is uploaded through ``item_ingest`` in
chunks and predicted and routed by a real Celery worker. After each chunk a simulated expert
decides the chunk's audited images with their true label, through ``labeling.answers
.item_finalize`` (where every human decision ends, and which runs the live audit).

"Today" is the same model, the same stored probabilities and the same stream replayed under the
rules before this change: Learn-then-Test thresholds without the floor, no shift check, a 5 %
audit with a minimum of 20 audits per class and a Clopper-Pearson test, no look-back.

Before the scenarios, the candidate shift signals are compared on the same model (AUROC and the
share of shifted images caught at the clean images' 1 % level), the routing rule's per-image
false-positive rate is measured on all 10,000 clean test images, and the drift alarm's false
alarms on those images replayed in 100 random orders.

    DATABASE_URL=postgres://labeling:labeling@127.0.0.1:5432/labeling_i15 \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/3 \\
    python bench/shift.py --checkpoint /tmp/i15-bench/fashion_10000_augmented
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from photo_shifts import KINDS, UNSEEN_KINDS, shifted_png  # noqa: E402

# The unseen kinds are not in the default run, which stays comparable with the earlier ones; name
# them in --scenarios (``--scenarios unseen`` for all of them with clean).
SCENARIOS = ("clean", *KINDS, "mixed", "halfway", *UNSEEN_KINDS)
DEFAULT_SCENARIOS = ("clean", *KINDS, "mixed", "halfway")
REVIEW_TYPE = "bag_review"  # every upload is a review whose credit needs a bag


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


# --- the signals study (plain numpy and the model) --------------------------------------------


def auroc(ordinary: np.ndarray, shifted: np.ndarray) -> float:
    """P(score of a shifted image > score of an ordinary one), ties half (Mann-Whitney)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.r_[ordinary, shifted])
    n0, n1 = len(ordinary), len(shifted)
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


class FeatureAlternatives:
    """Two other feature-space scores, fitted on the same held-out half as the reference: the
    relative Mahalanobis distance (Ren et al. 2021: class-conditional minus background) and the
    distance to the 10th nearest held-out image in cosine terms (Sun et al. 2022)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray) -> None:
        from ml.shift import Metric

        self.classes = Metric.fit(features, labels)
        self.background = Metric.fit(features)
        self.bank = features / np.linalg.norm(features, axis=1, keepdims=True)

    def scores(self, features: np.ndarray) -> dict[str, np.ndarray]:
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        knn = []
        for start in range(0, len(unit), 2048):
            sims = unit[start : start + 2048] @ self.bank.T
            knn.append(-np.sort(sims, axis=1)[:, -10])
        return {
            "relative_mahalanobis": self.classes.score(features) - self.background.score(features),
            "knn_cosine": np.concatenate(knn),
        }


def signal_scores(
    predictor, images: list, alternatives: FeatureAlternatives | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every candidate score (higher = more unusual), the routing p-values and the probs."""
    from scipy.special import logsumexp

    scored = predictor.score(images, batch_size=256)
    shift = predictor.shift_scores(scored)
    logits = scored.logits
    scores = {
        "max_softmax": -scored.probs.max(1),
        "energy": -logsumexp(logits, axis=1),
        "max_logit": -logits.max(1),
        "feature_mahalanobis": shift.feature_score,
        "image_statistics": shift.image_score,
        "combined_pvalue": -shift.pvalue,
    }
    if alternatives is not None:
        scores.update(alternatives.scores(scored.features))
    return scores, shift.pvalue, scored.probs


def signals_study(
    predictor,
    summary: dict,
    x_test,
    y_test,
    per_kind: int,
    seed: int,
    heldout: tuple,
    clean_count: int = 10_000,
    unseen_history: list | None = None,
    kinds: tuple[str, ...] = (*KINDS, "mixed"),
) -> dict:
    """Which signal separates shifted from ordinary images (each of ``kinds``), the routing
    rule's false-positive rate on clean images, and the drift alarm's false alarms and delays."""
    from ml.shift import Cusum, DriftState, drift_update

    rng = np.random.default_rng(seed)
    # The alternatives are fitted on the same half of the held-out images as the reference.
    held_images, held_labels = heldout
    held = predictor.score(held_images, batch_size=256)
    split = np.random.default_rng(0)
    fit = np.zeros(len(held_labels), dtype=bool)
    for c in np.unique(held_labels):
        idx = split.permutation(np.flatnonzero(held_labels == c))
        fit[idx[: len(idx) // 2]] = True
    alternatives = FeatureAlternatives(held.features[fit], held_labels[fit])
    clean_pick = np.sort(rng.choice(len(x_test), size=min(clean_count, len(x_test)), replace=False))
    clean_images = [x_test[i] for i in clean_pick.tolist()]
    clean, clean_p, clean_probs = signal_scores(predictor, clean_images, alternatives)
    alpha, drift_level = summary["alpha"], summary.get("drift_level", summary["alpha"])
    clean_flags = clean_p <= alpha
    clean_odd = clean_p <= drift_level
    out: dict = {
        "clean_images": len(clean_images),
        "routing_rule": f"combined conformal p-value ≤ {alpha}",
        "clean_flag_rate": float(clean_flags.mean()),
        "drift_rule": f"CUSUM on the share of images with p-value ≤ {drift_level}",
        "clean_odd_rate": float(clean_odd.mean()),
        "clean_accuracy": float((clean_probs.argmax(1) == y_test[clean_pick]).mean()),
        "kinds": {},
    }
    picks = rng.choice(len(x_test), size=per_kind, replace=False)
    shifted: dict[str, dict[str, np.ndarray]] = {}
    for kind in kinds:
        images = [
            shifted_png(x_test[i], kind, seed=int(seed * 100_000 + i)) for i in picks.tolist()
        ]
        scores, pvalues, probs = signal_scores(predictor, images, alternatives)
        shifted[kind] = {
            "feature": scores["feature_mahalanobis"],
            "image": scores["image_statistics"],
        }
        row = {
            "flag_rate": float((pvalues <= alpha).mean()),
            "odd_rate": float((pvalues <= drift_level).mean()),
        }
        row["accuracy"] = float((probs.argmax(1) == y_test[picks]).mean())
        row["mean_confidence"] = float(probs.max(1).mean())
        for name, values in scores.items():
            level = np.quantile(clean[name], 1 - alpha)
            row[name] = {
                "auroc": auroc(clean[name], values),
                "caught_at_clean_1pct": float((values > level).mean()),
            }
        out["kinds"][kind] = row
    cusum = Cusum(**summary["cusum"]) if summary.get("cusum") else None
    if cusum is not None:
        alarms, steps = 0, 0
        for _ in range(100):
            state = DriftState()
            for flag in clean_odd[rng.permutation(len(clean_odd))].tolist():
                steps += 1
                if drift_update(state, flag, cusum):
                    alarms += 1
                    state = DriftState()
        out["drift_false_alarms"] = {
            "alarms": alarms,
            "images": steps,
            "designed_images_between_false_alarms": summary["false_alarm_images"],
            "cusum": summary["cusum"],
        }
        delays = {}
        for kind, row in out["kinds"].items():
            rate = row["odd_rate"]
            runs = []
            for _ in range(200):
                state, n = DriftState(), 0
                for flag in clean_odd[rng.choice(len(clean_odd), 2000)].tolist():
                    drift_update(state, flag, cusum)
                while n < 5000:
                    n += 1
                    if drift_update(state, bool(rng.random() < rate), cusum):
                        break
                runs.append(n)
            delays[kind] = float(np.median(runs))
        out["median_detection_delay_images"] = delays
    pool = predictor.score(unseen_history, batch_size=256) if unseen_history else held
    out["window_test"] = window_study(predictor, summary, pool, clean, out["kinds"], shifted, rng)
    return out


def window_study(predictor, summary: dict, held, clean: dict, kinds: dict, shifted, rng) -> dict:
    """The window test (``ml.shift.WindowTest``) on this model: false alarms on clean test
    images and detection of each kind, each window against a fresh draw of calibration images
    from ``held``, the project's history images the reference was neither fitted nor
    calibrated on (as many as the service's reference holds), so the figures include the
    calibration draw's own variability, which the test's level accounts for. (Images the
    metrics were fitted on score lower than any new image, so they must not be in the pool.)
    """
    from ml.shift import WindowTest, conformal_pvalues

    window = summary.get("window")
    if not window:
        return {"window": None, "why": "no window test (too few random held-out images, or off)"}
    test = WindowTest(**window)
    held_scores = predictor.shift_scores(held)
    pool = {
        "feature": held_scores.feature_score[np.isfinite(held_scores.feature_score)],
        "image": held_scores.image_score[np.isfinite(held_scores.image_score)],
    }
    n = min(test.n_calibration, len(pool["feature"]) - test.size)

    def windows(scores: dict, count: int, replace: bool) -> np.ndarray:
        """The lower of the two signals' statistics for ``count`` windows of ``scores``."""
        out = np.empty(count)
        m = len(scores["feature"])
        for w in range(count):
            cal = rng.choice(len(pool["feature"]), size=n, replace=False)
            rows = rng.choice(m, size=test.size, replace=replace)
            zs = []
            for signal in ("feature", "image"):
                p = conformal_pvalues(pool[signal][cal], scores[signal][rows])
                zs.append(WindowTest(test.size, test.z, n).statistic(float(p.mean()), test.size))
            out[w] = min(zs)
        return out

    clean_scores = {"feature": clean["feature_mahalanobis"], "image": clean["image_statistics"]}
    clean_z = windows(clean_scores, 4000, replace=False)
    result = {
        "window": window,
        "calibration_draw": n,
        "clean_windows": len(clean_z),
        "clean_images": len(clean_z) * test.size,
        "clean_false_alarms": int((clean_z <= -test.z).sum()),
        "designed_images_between_false_alarms": summary["false_alarm_images"],
        "clean_lowest_z_mean": round(float(clean_z.mean()), 3),
        "clean_lowest_z_min": round(float(clean_z.min()), 3),
        "kinds": {},
    }
    for kind, scores in shifted.items():
        z = windows(scores, 200, replace=True)  # windows resampled from the kind's images
        result["kinds"][kind] = {
            "first_window_detection_rate": float((z <= -test.z).mean()),
            "lowest_z_mean": round(float(z.mean()), 3),
            "image_statistics_auroc": kinds[kind]["image_statistics"]["auroc"],
        }
    return result


# --- the project's labeled history --------------------------------------------------------------


def routed_wait(project, worker, work: Path) -> None:
    """Until the worker has predicted and routed every new item of the project."""
    from labeling.models import Item, ItemStatus

    while Item.objects.filter(project=project, status=ItemStatus.NEW).exists():
        if worker.poll() is not None:
            sys.exit(f"worker stopped; see {work / 'worker.log'}")
        time.sleep(0.3)


def history_label(project, history: list[tuple[str, bytes, int]], *, worker, work: Path) -> dict:
    """The labeled history a new project builds: its first images, uploaded while it has no
    model, go to humans blind to any confidence (``Item.routed_blind``; a random
    ``calibration_share`` of them as calibration items) and experts label them: labels whose
    route to humans never depended on a confidence, which thresholds are certified on
    (``labeling.machine.certification``; held-out imported labels count too, under the extra
    assumption that an imported history was drawn like the stream, which this bench need not
    make). The held-out side of these labels (fixed per image by its hash, about
    20 %, calibration items always) is the evidence, and also what the imported model is scored
    on and its shift reference fitted and calibrated on."""
    from django.db import transaction

    from labeling.answers import item_finalize
    from labeling.ingest import Upload, item_ingest
    from labeling.machine.certification import evidence_items
    from labeling.models import Item, ItemSource, ItemStatus

    for start in range(0, len(history), 500):
        uploads = [
            Upload(name, png, {"truth": label, "history": True})
            for name, png, label in history[start : start + 500]
        ]
        with transaction.atomic():
            item_ingest(project=project, uploads=uploads)
        routed_wait(project, worker, work)
    labels = {label.position: label for label in project.labels.all()}
    for item_id in Item.objects.filter(
        project=project, status=ItemStatus.QUEUED, final_label__isnull=True
    ).values_list("pk", flat=True):
        with transaction.atomic():
            item = (
                Item.objects.select_for_update(of=("self",))
                .select_related("project")
                .get(pk=item_id)
            )
            truth = labels[item.metadata["truth"]]
            item_finalize(item=item, label=truth, source=ItemSource.EXPERT, confidence=1.0)
    evidence = evidence_items(project)
    return {
        "history_labels": Item.objects.filter(project=project, final_label__isnull=False).count(),
        "evidence": evidence.count(),
        "evidence_calibration_items": evidence.filter(is_calibration=True).count(),
    }


# --- today's rules, replayed -------------------------------------------------------------------


def replay_today(
    stream: list[dict],
    heldout_probs,
    heldout_labels,
    *,
    target,
    confidence,
    audit_rate,
    chunk,
    seed,
) -> dict:
    """The rules before this change on the same stored probabilities: thresholds without the
    floor, no shift check, a 5 % audit, pause after ≥ 20 audits when the Clopper-Pearson upper
    bound on precision is below target, and no look-back."""
    from ml import thresholds
    from ml.thresholds import clopper_pearson_upper

    k = heldout_probs.shape[1]
    chosen = thresholds.select_thresholds(
        heldout_probs, None, heldout_labels, k, target=target, delta=1 - confidence
    )
    walked = [t.floored_from if t.floored_from is not None else t.threshold for t in chosen]
    rng = np.random.default_rng(seed)
    paused: dict[int, int] = {}
    audits: dict[int, list[int]] = {c: [] for c in range(k)}
    pending: list[tuple[int, int, bool]] = []
    auto = np.zeros(len(stream), dtype=bool)
    for i, row in enumerate(stream):
        c, conf = row["predicted"], row["confidence"]
        accept = walked[c] is not None and conf >= walked[c] and c not in paused
        if accept and rng.random() < audit_rate:
            pending.append((i, c, c == row["truth"]))
        elif accept:
            auto[i] = True
        if (i + 1) % chunk == 0 or i + 1 == len(stream):
            for _, cls, right in pending:
                audits[cls].append(int(right))
                n, good = len(audits[cls]), sum(audits[cls])
                if (
                    cls not in paused
                    and n >= 20
                    and clopper_pearson_upper(good, n, 1 - confidence) < target
                ):
                    paused[cls] = i + 1
            pending = []
    return {"auto": auto, "paused_at": paused, "thresholds": walked}


# --- measures ----------------------------------------------------------------------------------


def measures(stream: list[dict], final_auto: np.ndarray, detection: int | None, k: int) -> dict:
    """Coverage and realised precision of the final auto-labels, overall and per class, and
    the wrong auto-labels that were final when the shift or failure was detected."""
    truth = np.array([r["truth"] for r in stream])
    predicted = np.array([r["predicted"] for r in stream])
    right = truth == predicted
    per_class = {}
    for c in range(k):
        sel = final_auto & (predicted == c)
        per_class[c] = {
            "auto_labels": int(sel.sum()),
            "precision": float(right[sel].mean()) if sel.any() else None,
        }
    covered = [v["precision"] for v in per_class.values() if v["precision"] is not None]
    return {
        "images": len(stream),
        "accuracy": float(right.mean()),
        "coverage": float(final_auto.mean()),
        "final_auto_labels": int(final_auto.sum()),
        "precision": float(right[final_auto].mean()) if final_auto.any() else None,
        "worst_class_precision": min(covered) if covered else None,
        "per_class": per_class,
        "wrong_final_auto_labels": int((final_auto & ~right).sum()),
        "detection": detection,
    }


def summarise(report: dict, target: float) -> None:
    """The issue's keys per scenario, beside the full figures: in-distribution coverage is the
    stream's clean part, or the clean scenario's coverage for a stream that is shifted all
    through."""
    clean = report["scenarios"].get("clean")
    for entry in report["scenarios"].values():
        new, old = entry["protected"], entry["today"]
        here = new["in_distribution_coverage_here"]
        entry["worst_class_precision"] = new["worst_class_precision"]
        entry["wrong_final_before_detection"] = new["wrong_final_before_detection"]
        entry["coverage"] = new["coverage"]
        entry["in_distribution_coverage"] = (
            here if here is not None else clean["protected"]["coverage"] if clean else None
        )
        entry["in_distribution_coverage_today"] = (
            old["in_distribution_coverage_here"]
            if here is not None
            else clean["today"]["coverage"]
            if clean
            else None
        )
        worst = entry["worst_class_precision"]
        entry["goal_worst_class_met"] = worst is None or worst >= target - 0.01
    if clean:
        report["in_distribution_coverage_drop"] = (
            clean["today"]["coverage"] - clean["protected"]["coverage"]
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a Fashion-MNIST checkpoint dir")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"of {', '.join(SCENARIOS)}; 'unseen' = clean and {', '.join(UNSEEN_KINDS)}",
    )
    parser.add_argument("--images", type=int, default=3000, help="stream length per scenario")
    parser.add_argument("--heldout", type=int, default=3000, help="labeled history per project")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--audit-rate", type=float, default=0.05)
    parser.add_argument("--chunk", type=int, default=200, help="images per upload; audits after")
    parser.add_argument("--signal-images", type=int, default=1000, help="per kind (0: skip)")
    parser.add_argument("--signal-clean", type=int, default=10_000, help="clean test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the projects and files")
    parser.add_argument("--out", default="bench/results/shift.json")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    if scenarios == ["unseen"]:
        scenarios = ["clean", *UNSEEN_KINDS]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}; use {', '.join(SCENARIOS)}")
    # The signals study looks at the kinds this run streams ("halfway" turns mixed).
    shifted_kinds = ("mixed" if s == "halfway" else s for s in scenarios if s != "clean")
    study_kinds = tuple(dict.fromkeys(shifted_kinds)) or (*KINDS, "mixed")

    work = Path(tempfile.mkdtemp(prefix="shift-bench-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "labeling.settings",
            "MEDIA_ROOT": str(work / "media"),
            "MODEL_ROOT": str(work / "models"),
            "PREDICTION_BATCH_SIZE": "128",
            "INFERENCE_THREADS": "2",
        }
    )
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "CELERY_BROKER_URL", ""
    ).startswith("redis"):
        sys.exit("Set DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis): see the docstring.")
    import django

    django.setup()
    from django.conf import settings as django_settings
    from django.core.management import call_command
    from django.db import transaction
    from PIL import Image

    from labeling.answers import item_finalize
    from labeling.celery import app
    from labeling.demo import FASHION_LABELS
    from labeling.ingest import Upload, item_ingest
    from labeling.machine.predictors import checkpoint_path, heldout_load
    from labeling.models import (
        CreditDecision,
        Item,
        ItemSource,
        ItemStatus,
        Prediction,
        PredictionDecision,
    )
    from labeling.project_setup import LabelSpec, project_create
    from ml.checkpoint import read_config
    from ml.environment import machine_info
    from ml.fashion_mnist import load_split, stratified_subset
    from ml.inference import Predictor

    call_command("migrate", verbosity=0)
    app.control.purge()
    load_at_start = machine_info()["load_average_1_5_15"]
    started_all = time.perf_counter()
    config = read_config(args.checkpoint)
    k = len(config["class_names"])
    label_specs = [
        LabelSpec(spec.name, display_name=trained)
        for spec, trained in zip(FASHION_LABELS, config["class_names"], strict=True)
    ]
    bag = next(i for i, spec in enumerate(label_specs) if spec.name == "bag")
    x_train, y_train = load_split("train")
    x_test, y_test = load_split("test")
    trained_on = set(
        stratified_subset(
            y_train,
            config["data"]["train_items"] + config["data"]["validation_items"],
            seed=config["seed"],
        ).tolist()
    )
    rng = np.random.default_rng(args.seed)
    unseen = np.array([i for i in range(len(y_train)) if i not in trained_on])
    history = np.sort(unseen[stratified_subset(y_train[unseen], args.heldout, seed=args.seed)])
    order = rng.permutation(len(y_test))[: args.images]

    # The labeled history, encoded once: the project's first images (see ``history_label``).
    history_pngs = []
    for i in history.tolist():
        buffer = io.BytesIO()
        Image.fromarray(x_train[i]).save(buffer, format="PNG")
        history_pngs.append((f"train-{i:05d}.png", buffer.getvalue(), int(y_train[i])))

    log = open(work / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "labeling", "worker", "--loglevel", "warning",
         "--concurrency", "1", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    report: dict = {
        "benchmark": "shift",
        "command": "python " + shlex.join(sys.argv if argv is None else [__file__, *argv]),
        "commit": _git_commit(),
        "checkpoint": str(args.checkpoint),
        "checkpoint_recipe": {
            key: config["hyperparameters"].get(key) for key in ("augment_views", "augment_share")
        },
        "training_labels": config["data"]["train_items"] + config["data"]["validation_items"],
        "target_precision": args.target,
        "threshold_confidence": args.confidence,
        "audit_rate": args.audit_rate,
        "heldout_labels": len(history),
        # the service settings the evidence map is fitted with (environment, as the worker reads)
        "evidence_recalibration": {
            "min": django_settings.EVIDENCE_RECALIBRATION_MIN,
            "strength": django_settings.EVIDENCE_RECALIBRATION_STRENGTH,
        },
        "images_per_scenario": args.images,
        "chunk": args.chunk,
        "load_average_at_start": load_at_start,
        "scenarios": {},
    }
    projects = []
    try:
        for scenario in scenarios:
            t0 = time.perf_counter()
            slug = f"shift-{scenario}-{int(time.time())}"
            project = project_create(
                name=slug,
                slug=slug,
                labels=label_specs,
                target_precision=args.target,
                threshold_confidence=args.confidence,
                audit_rate=args.audit_rate,
                gold_rate=0.0,
                credit_rules={REVIEW_TYPE: "bag"},
                retrain_every=0,
            )
            projects.append(project)
            evidence = history_label(project, history_pngs, worker=worker, work=work)
            call_command("import_model", slug, str(args.checkpoint), stdout=io.StringIO())
            project.refresh_from_db()
            model = project.active_model
            assert model is not None, "the imported model was not promoted"
            summary = model.metrics.get("shift") or {}
            if "signals" not in report and args.signal_images:
                scored_names = set(
                    Item.objects.filter(pk__in=model.validation_items).values_list(
                        "original_name", flat=True
                    )
                )
                predictor = Predictor.load(checkpoint_path(model), num_threads=2)
                report["signals"] = signals_study(
                    predictor,
                    summary,
                    x_test,
                    y_test,
                    args.signal_images,
                    args.seed,
                    ([x_train[i] for i in history.tolist()], y_train[history]),
                    clean_count=args.signal_clean,
                    # history images the model was not scored on at import (its reference was
                    # fitted and calibrated on those), for the window test's calibration draws
                    unseen_history=[
                        x_train[i]
                        for i in history.tolist()
                        if f"train-{i:05d}.png" not in scored_names
                    ],
                    kinds=study_kinds,
                )
                report["signals"]["shift_reference"] = summary
                print(json.dumps(report["signals"]["kinds"], indent=1)[:3000], flush=True)

            # The stream: test images, shifted (for "halfway": the second half, mixed).
            kinds = []
            for n in range(len(order)):
                if scenario == "halfway":
                    kinds.append("clean" if n < len(order) // 2 else "mixed")
                else:
                    kinds.append(scenario)
            onset = len(order) // 2 if scenario == "halfway" else 0 if scenario != "clean" else None
            positions: dict[int, int] = {}
            pause_seen_at: dict[str, int] = {}
            for start in range(0, len(order), args.chunk):
                uploads = []
                for n in range(start, min(start + args.chunk, len(order))):
                    i = int(order[n])
                    png = shifted_png(x_test[i], kinds[n], seed=int(args.seed * 100_000 + i))
                    uploads.append(
                        Upload(
                            f"{scenario}-{i}.png",
                            png,
                            {
                                "truth": int(y_test[i]),
                                "position": n,
                                "review_type": REVIEW_TYPE,
                                "review_id": f"{scenario}-{i}",
                            },
                        )
                    )
                with transaction.atomic():
                    result = item_ingest(project=project, uploads=uploads)
                for r, upload in zip(result.results, uploads, strict=True):
                    if r.item_id:
                        positions[r.item_id] = upload.metadata["position"]
                routed_wait(project, worker, work)
                # The experts decide this chunk's audited images.
                labels = {label.position: label for label in project.labels.all()}
                for item_id in Item.objects.filter(
                    project=project, is_audit=True, status=ItemStatus.QUEUED
                ).values_list("pk", flat=True):
                    with transaction.atomic():
                        item = (
                            Item.objects.select_for_update(of=("self",))
                            .select_related("project")
                            .get(pk=item_id)
                        )
                        if item.final_label_id is None:
                            truth = labels[item.metadata["truth"]]
                            item_finalize(
                                item=item, label=truth, source=ItemSource.EXPERT, confidence=1.0
                            )
                project.refresh_from_db()
                for name in project.autolabel_paused:
                    pause_seen_at.setdefault(name, min(start + args.chunk, len(order)))

            # What happened to every image, from the database.
            preds = {
                p.item_id: p
                for p in Prediction.objects.filter(model_version=model).select_related("label")
            }
            items = {i.pk: i for i in Item.objects.filter(project=project, pk__in=positions)}
            stream: list[dict] = [{} for _ in range(len(order))]
            for item_id, n in positions.items():
                item, p = items[item_id], preds.get(item_id)
                stream[n] = {
                    "truth": int(item.metadata["truth"]),
                    "predicted": p.label.position if p and p.label else -1,
                    # The model's own confidence: today's rules (replay_today) read it, while
                    # the service routes on its evidence-recalibrated one (``routed``).
                    "confidence": max(p.probabilities) if p and p.probabilities else 0.0,
                    "routed": p.confidence if p else 0.0,
                    "decision": p.decision if p else "missing",
                    "unusual": bool(p and p.unusual),
                    "final_auto": item.status == ItemStatus.AUTO_LABELED
                    and item.final_source == ItemSource.MACHINE,
                    "created": p.created_at.timestamp() if p else None,
                    "item": item_id,
                }
            alert = project.shift_alert or {}
            detections = []
            if alert:
                what = (
                    "shift alert (window test)"
                    if alert.get("detector") == "window"
                    else "shift alert"
                )
                detections.append((what, int(alert["images_seen"])))
            for name, at in pause_seen_at.items():
                detections.append((f"{name} paused", at))
            detections.sort(key=lambda d: d[1])
            detected = [d for d in detections if onset is None or d[1] > onset]
            false_alarms = [d for d in detections if onset is None or d[1] <= onset]
            first = detected[0] if detected else None
            final_auto = np.array([r["final_auto"] for r in stream])
            new = measures(stream, final_auto, first[1] if first else None, k)
            # Wrong auto-labels that were final when the change was detected: every wrong label
            # the machine gave (kept, or later taken back) before that point.
            given = np.array(
                [r["decision"] in (PredictionDecision.AUTO_LABELED, "recheck") for r in stream]
            )
            wrong = np.array([r["truth"] != r["predicted"] for r in stream])
            cut = first[1] if first else len(stream)
            before = np.arange(len(stream)) < cut
            new["wrong_final_before_detection"] = int((given & wrong & before).sum())
            new["wrong_final_before_detection_kept"] = int((final_auto & wrong & before).sum())
            new["detected_by"] = first[0] if first else None
            new["false_alarms"] = [{"what": what, "at": at} for what, at in false_alarms]
            new["detection_delay_images"] = (
                None if first is None or onset is None else first[1] - onset
            )
            new["shift_alert"] = alert or None
            new["paused_classes"] = {
                name: {k2: v for k2, v in info.items() if k2 != "model_version"}
                for name, info in project.autolabel_paused.items()
            }
            new["unusual_share"] = float(np.mean([r["unusual"] for r in stream]))
            new["rechecked"] = int(sum(r["decision"] == "recheck" for r in stream))
            ind = np.array([kind == "clean" for kind in kinds])
            new["in_distribution_images"] = int(ind.sum())
            new["in_distribution_coverage_here"] = (
                float(final_auto[ind].mean()) if ind.any() else None
            )
            credits = CreditDecision.objects.filter(item_id__in=positions)
            new["credits_reopened"] = credits.filter(reopened_at__isnull=False).count()
            machine_credits = credits.filter(source=ItemSource.MACHINE).values_list(
                "item_id", "outcome"
            )
            truth_of = {r["item"]: r["truth"] for r in stream}
            new["wrong_machine_credits_final"] = sum(
                (outcome == "granted") != (truth_of[item_id] == bag)
                for item_id, outcome in machine_credits
            )

            heldout = heldout_load(model)
            today = replay_today(
                stream,
                heldout["probs"],
                heldout["labels"],
                target=args.target,
                confidence=args.confidence,
                audit_rate=args.audit_rate,
                chunk=args.chunk,
                seed=args.seed,
            )
            first_pause = min(today["paused_at"].values()) if today["paused_at"] else None
            old = measures(stream, today["auto"], first_pause, k)
            cut = first_pause if first_pause is not None else len(stream)
            old["wrong_final_before_detection"] = int(
                (today["auto"] & wrong & (np.arange(len(stream)) < cut)).sum()
            )
            old["paused_at"] = {
                config["class_names"][c]: at for c, at in today["paused_at"].items()
            }
            old["thresholds"] = today["thresholds"]
            old["in_distribution_coverage_here"] = (
                float(today["auto"][ind].mean()) if ind.any() else None
            )
            report["scenarios"][scenario] = {
                "kind": scenario,
                "protected": new,
                "today": old,
                "history": evidence,
                "thresholds_in_force": model.thresholds.get("per_class"),
                "thresholds_evidence": model.thresholds.get("evidence"),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(
                f"{scenario}: accuracy {new['accuracy']:.3f}; coverage {new['coverage']:.3f} "
                f"(today {old['coverage']:.3f}); worst class precision "
                f"{new['worst_class_precision']} (today {old['worst_class_precision']}); wrong "
                f"final before detection {new['wrong_final_before_detection']} (today "
                f"{old['wrong_final_before_detection']}); detected by {new['detected_by']} "
                f"after {new['detection_delay_images']} images",
                flush=True,
            )
            # Written after every scenario, so an interrupted run keeps what it measured.
            summarise(report, args.target)
            report["seconds"] = round(time.perf_counter() - started_all, 1)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2, default=_plain))
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()

    summarise(report, args.target)
    report["machine"] = machine_info()
    report["seconds"] = round(time.perf_counter() - started_all, 1)
    if not args.keep:
        for project in projects:
            project.delete()
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=_plain))
    return report


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    main()
