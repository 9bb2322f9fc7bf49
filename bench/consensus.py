"""Consensus benchmark: the service's adaptive consensus replayed answer by answer, and the same
answers aggregated at a fixed budget against majority vote and crowd-kit.

Run under the separate benchmark venv (crowd-kit pins scikit-learn below 1.6), under the lock:

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -r requirements-bench.txt
    flock /tmp/cpu-heavy.lock nice -n 10 .venv-bench/bin/python bench/consensus.py
    .venv-bench/bin/python bench/consensus.py --answers answers.jsonl   # any crowd's answers

Adaptive mode (``simulation/consensus_replay.py``) calls, after every answer, the functions the
Django service calls (``labeling.consensus.answer_update``, ``skill_refresh``) and every
``--refit-every`` answers the periodic refit (``labeling.consensus.refit``, then re-scoring the
open items), dropping the answers the service would not have asked for. Streams: simulated
crowds answering Fashion-MNIST test labels (``--crowds``), or a JSON Lines file of answers
``{"item", "worker", "label", "truth"?}`` in answer order (``--answers``). The "model prior" of
simulated crowds is a simulated calibrated classifier, not a trained network.

Writes bench/results/consensus_adaptive.json (per setting: accuracy, answers_per_item,
labeled_accuracy, disputed_share, labeled share, ECE, accuracy by closing posterior, flags) and
bench/results/consensus.json (fixed budgets and refit timing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Neither package's __init__ imports Django, so the plain numpy modules load on their own.
from labeling import consensus as cs  # noqa: E402
from simulation import consensus_replay as cr  # noqa: E402
from simulation import crowd_model as sim  # noqa: E402

DEFAULT = cr.Settings()
# (target, min answers, max answers) swept on the "hard" crowd; the defaults come first.
SWEEP = [
    (0.93, 1, 10),
    (0.95, 1, 10),
    (0.99, 1, 10),
    (0.95, 1, 5),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", help="JSON Lines file of answers to replay instead of --crowds")
    p.add_argument("--crowds", default="hard,good_many,copying,default")
    p.add_argument("--items", type=int, default=10_000, help="items of the hard crowd")
    p.add_argument("--other-items", type=int, default=5_000, help="items of the other crowds")
    p.add_argument("--seeds", default="0,1,2", help="hard crowd: 0 tunes, the others hold out")
    p.add_argument("--gold-rate", type=float, default=0.02)
    p.add_argument("--refit-every", type=int, default=500, help="answers between refits")
    p.add_argument("--skip-crowdkit", action="store_true")
    p.add_argument("--refit-items", type=int, default=100_000, help="timing: items × 3 answers")
    p.add_argument("--out", default=str(ROOT / "bench/results/consensus_adaptive.json"))
    p.add_argument("--out-fixed", default=str(ROOT / "bench/results/consensus.json"))
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# fixed budgets


def first_answers(stream: cr.Stream, r: int):
    """The first ``r`` answers of every item, in stream order."""
    seen = np.zeros(stream.n_items, int)
    keep = np.zeros(stream.items.size, bool)
    for j, i in enumerate(stream.items):
        keep[j] = seen[i] < r
        seen[i] += 1
    return stream.items[keep], stream.workers[keep], stream.labels[keep]


def accuracy_of(pred: np.ndarray, stream: cr.Stream) -> float:
    keep = stream.truth >= 0
    keep[list(stream.gold)] = False
    return float((pred[keep] == stream.truth[keep]).mean())


def fixed_budgets(stream: cr.Stream, *, crowdkit: bool) -> dict:
    out = {}
    for r in (1, 3, 5):
        items, workers, labels = first_answers(stream, r)
        row = {}
        mv = cs.majority_vote(items, labels, n_items=stream.n_items, n_classes=stream.k)
        row["majority_vote"] = accuracy_of(mv, stream)
        for name, model in (("ours", None), ("ours_model", stream.model_probs)):
            if name == "ours_model" and model is None:
                continue
            t0 = time.perf_counter()
            fit = cs.refit(
                items, workers, labels, n_items=stream.n_items, n_annotators=stream.n_workers,
                n_classes=stream.k, gold=stream.gold, model_probs=model,
            )  # fmt: skip
            row[name] = accuracy_of(fit.em.posteriors.argmax(1), stream)
            row[f"{name}_iterations"] = fit.em.iterations
            row[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
        if crowdkit:
            row.update(crowdkit_methods(stream, items, workers, labels))
        out[str(r)] = row
        print(f"  fixed {r}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return out


def crowdkit_methods(stream, items, workers, labels) -> dict:
    import pandas as pd
    from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa

    df = pd.DataFrame({"task": items, "worker": workers, "label": labels})
    out = {}
    for name, method in (
        ("crowdkit_MajorityVote", MajorityVote()),
        ("crowdkit_Wawa", Wawa()),
        ("crowdkit_OneCoinDawidSkene", OneCoinDawidSkene()),
        ("crowdkit_DawidSkene", DawidSkene()),
    ):
        if name == "crowdkit_DawidSkene":
            predicted = method.fit(df, true_labels=pd.Series(stream.gold)).labels_
        else:
            predicted = method.fit_predict(df)
        pred = predicted.reindex(range(stream.n_items)).fillna(-1).to_numpy().astype(int)
        out[name] = accuracy_of(pred, stream)
    return out


def refit_timing(args: argparse.Namespace) -> dict:
    """One full refit over items × 3 answers from a scaled crowd of 200 (train-split truth)."""
    rng = np.random.default_rng(1)
    n, a, r = args.refit_items, 200, 3
    pool = sim.fashion_mnist_labels("train")
    truth = pool[rng.integers(pool.size, size=n)]
    crowd = sim.make_crowd(a, seed=1)
    z = sim.item_difficulty(n, rng)
    workers = sim.assign_inspectors(n, r, a, rng).ravel()
    items = np.repeat(np.arange(n), r)
    labels = sim.answer_batch(sim.CrowdTables.of(crowd), workers, truth[items], z[items], rng)
    gold = {int(i): int(truth[i]) for i in rng.choice(n, int(0.02 * n), replace=False)}
    t0 = time.perf_counter()
    fit = cs.refit(items, workers, labels, n_items=n, n_annotators=a, n_classes=sim.K, gold=gold)
    seconds = time.perf_counter() - t0
    return {
        "answers": int(items.size),
        "items": n,
        "annotators": a,
        "seconds": round(seconds, 2),
        "iterations": fit.em.iterations,
        "converged": fit.em.converged,
        "accuracy": float((fit.em.posteriors.argmax(1) == truth).mean()),
    }


# ---------------------------------------------------------------------------------------------
# adaptive


def adaptive(stream: cr.Stream, settings: cr.Settings, tag: str) -> dict:
    t0 = time.perf_counter()
    result = cr.replay(stream, settings)
    row = cr.summarize(stream, result, settings)
    row["legacy"] = settings.legacy
    row["seconds"] = round(time.perf_counter() - t0, 1)
    print(
        f"  {tag}: target {settings.target} min {settings.min_answers} max "
        f"{settings.max_answers}{' +model' if settings.with_model else ''}"
        f"{' legacy' if settings.legacy else ''}"
        f"{' no-refit' if not settings.refit_every else ''}: "
        f"accuracy {100 * row['accuracy']:.2f}% at {row['answers_per_item']:.2f} answers/item, "
        f"labeled {100 * row['labeled_share']:.1f}% right {pct(row['labeled_accuracy'])}, "
        f"disputed {100 * row['disputed_share']:.1f}%, ECE {row['ece']:.3f}, "
        f"with experts {pct(row['accuracy_disputed_to_experts'])}, "
        f"refits {row['refits']} (refused {row['refits_refused']}) [{row['seconds']} s]",
        flush=True,
    )
    return row


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def crowd_runs(name: str, stream: cr.Stream, seed: int, args) -> list[dict]:
    """What each crowd is for: the hard crowd gets the sweep (seed 0) or the defaults (held-out
    seeds); the good crowd shows the old rules' drift; the others check the defaults."""
    base = dict(refit_every=args.refit_every)
    runs: list[tuple[str, cr.Settings]] = []
    if name == "hard" and seed == 0:
        for with_model in (False, True):
            for target, lo, hi in SWEEP:
                s = cr.Settings(target, lo, hi, with_model=with_model, **base)
                runs.append(("sweep", s))
        runs.append(("incremental evidence only", cr.Settings(refit_every=0)))
        runs.append(("rules before issue 14", cr.Settings(legacy=True, **base)))
    else:
        runs.append(("defaults", cr.Settings(**base)))
        if stream.model_probs is not None:
            runs.append(("defaults + model", cr.Settings(with_model=True, **base)))
        if name == "good_many":
            runs.append(("rules before issue 14", cr.Settings(legacy=True, **base)))
            runs.append(
                ("rules before issue 14, max 5", cr.Settings(legacy=True, max_answers=5, **base))
            )
    rows = []
    for tag, settings in runs:
        row = adaptive(stream, settings, tag)
        rows.append({"run": tag, "crowd": name, "seed": seed, **row})
    return rows


def streams(args) -> list[tuple[str, int, cr.Stream]]:
    if args.answers:
        stream = cr.stream_from_jsonl(args.answers, gold_rate=args.gold_rate)
        return [(Path(args.answers).name, 0, stream)]
    out = []
    for crowd in args.crowds.split(","):
        seeds = [int(s) for s in args.seeds.split(",")] if crowd == "hard" else [1]
        for seed in seeds:
            stream = cr.simulated_stream(
                crowd,
                n_items=args.items if crowd == "hard" else args.other_items,
                seed=seed,
                max_answers=10,
                gold_rate=args.gold_rate,
            )
            out.append((crowd, seed, stream))
    return out


def describe(stream: cr.Stream) -> dict:
    known = stream.truth[stream.items] >= 0
    ok = stream.labels[known] == stream.truth[stream.items][known]
    w = stream.workers[known]
    realized = np.bincount(w, weights=ok, minlength=stream.n_workers) / np.maximum(
        np.bincount(w, minlength=stream.n_workers), 1
    )
    names = stream.worker_names or [str(i) for i in range(stream.n_workers)]
    return {
        "items": stream.n_items,
        "answers_available": int(stream.items.size),
        "workers": stream.n_workers,
        "gold_items": len(stream.gold),
        "realized_accuracy": {n: round(float(a), 3) for n, a in zip(names, realized, strict=True)}
        if stream.n_workers <= 40
        else None,
        "colluding_pairs": [[names[a], names[b]] for a, b in stream.colluding],
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| crowd (seed) | run | target, min, max | answers/item | accuracy | labeled (right) "
        "| disputed | ECE |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        model = " + model" if r["model_prior"] else ""
        lines.append(
            f"| {r['crowd']} ({r['seed']}) | {r['run']} | {r['target']}, {r['min_answers']}, "
            f"{r['max_answers']}{model} | {r['answers_per_item']:.2f} | "
            f"{100 * r['accuracy']:.2f} | {100 * r['labeled_share']:.1f} "
            f"({pct(r['labeled_accuracy'])}) | {100 * r['disputed_share']:.1f} | {r['ece']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    rows, fixed, described = [], {}, {}
    for name, seed, stream in streams(args):
        key = f"{name}/{seed}"
        print(f"{key}: {stream.n_items} items, {stream.n_workers} workers", flush=True)
        described[key] = describe(stream)
        if seed == 0 or args.answers:
            fixed[key] = fixed_budgets(stream, crowdkit=not args.skip_crowdkit)
        if args.answers:
            for target, lo, hi in SWEEP:
                settings = cr.Settings(target, lo, hi, refit_every=args.refit_every)
                rows.append({"run": "sweep", "crowd": name, "seed": seed, **adaptive(
                    stream, settings, "sweep"
                )})  # fmt: skip
        else:
            rows += crowd_runs(name, stream, seed, args)
    timing = None if args.answers else refit_timing(args)
    if timing:
        print("refit timing:", timing)
    header = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds_total": round(time.perf_counter() - started, 1),
        "defaults": {
            "target": DEFAULT.target,
            "min_answers": DEFAULT.min_answers,
            "max_answers": DEFAULT.max_answers,
            "refit_every_answers": args.refit_every,
        },
    }
    results = {
        **header,
        "streams": described,
        "settings": rows,
        "markdown": markdown(rows),
    }
    print()
    print(results["markdown"])
    for path, data in (
        (args.out, results),
        (args.out_fixed, {**header, "streams": described, "fixed": fixed, "refit_timing": timing}),
    ):
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
        print(f"wrote {out}")
    return results


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


if __name__ == "__main__":
    main()
