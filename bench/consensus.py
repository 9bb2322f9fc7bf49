"""Consensus benchmark: our Dawid–Skene consensus vs majority vote and crowd-kit, on a simulated
crowd answering Fashion-MNIST's test labels.

Run under the separate benchmark venv (crowd-kit pins scikit-learn below 1.6):

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -r requirements-bench.txt
    nice -n 10 .venv-bench/bin/python bench/consensus.py

Everything is simulated except the ground-truth labels: the inspectors (simulation/crowd_model.py)
and the "model prior", which is a simulated calibrated classifier, not a trained network.
Every item gets the same 5 pre-drawn answers from 5 distinct random inspectors; a fixed budget
of r uses the first r of them and adaptive redundancy uses as many as its stopping rule asks
for, so all methods are compared on exactly the same answers.
"""

from __future__ import annotations

import argparse
import json
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
from simulation import crowd_model as sim  # noqa: E402

K = sim.K
CROWD_MIX = {"expert": 3, "average": 10, "careless": 4, "spammer_uniform": 2, "spammer_constant": 1}
MAX_ANSWERS = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=10_000, help="Fashion-MNIST test items to use")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gold-rate", type=float, default=0.02)
    p.add_argument("--model-weight", type=float, default=cs.DEFAULT_MODEL_WEIGHT)
    p.add_argument("--prior-strength", type=float, default=cs.DEFAULT_PRIOR_STRENGTH)
    p.add_argument("--batch", type=int, default=250, help="adaptive: items per refit batch")
    p.add_argument("--targets", default="0.95,0.99,0.998", help="adaptive targets to sweep")
    p.add_argument("--refit-items", type=int, default=100_000, help="timing: items × 3 answers")
    p.add_argument("--refit-annotators", type=int, default=200)
    p.add_argument("--skip-crowdkit-timing", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench/results/consensus.json"))
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# data


def simulate(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    truth = sim.fashion_mnist_labels("t10k")[: args.items]
    n = truth.size
    crowd = sim.make_crowd(mix=CROWD_MIX, seed=args.seed)
    tables = sim.CrowdTables.of(crowd)
    difficulty = sim.item_difficulty(n, rng)
    inspectors = sim.assign_inspectors(n, MAX_ANSWERS, len(crowd), rng)  # n × 5, distinct
    labels = sim.answer_batch(
        tables,
        inspectors.ravel(),
        np.repeat(truth, MAX_ANSWERS),
        np.repeat(difficulty, MAX_ANSWERS),
        rng,
    ).reshape(n, MAX_ANSWERS)
    gold_items = np.sort(rng.choice(n, int(round(args.gold_rate * n)), replace=False))
    # Simulated calibrated model: temperature fitted on a held-out draw (train-split labels).
    held_truth = sim.fashion_mnist_labels("train")[:5000]
    held_probs = sim.simulate_model_probs(
        held_truth, sim.item_difficulty(held_truth.size, rng), rng
    )
    temperature = sim.fit_temperature(held_probs, held_truth)
    model = sim.apply_temperature(sim.simulate_model_probs(truth, difficulty, rng), temperature)
    # Realized per-inspector accuracy on the answers they actually gave.
    flat_ins, flat_ok = inspectors.ravel(), (labels == truth[:, None]).ravel()
    realized = np.bincount(flat_ins, weights=flat_ok, minlength=len(crowd)) / np.maximum(
        np.bincount(flat_ins, minlength=len(crowd)), 1
    )
    return {
        "truth": truth,
        "difficulty": difficulty,
        "crowd": crowd,
        "inspectors": inspectors,
        "labels": labels,
        "gold_items": gold_items,
        "model": model,
        "temperature": temperature,
        "inspector_accuracy": realized,
    }


def flat_answers(d: dict, per_item: np.ndarray | int):
    """(items, annotators, labels) using the first ``per_item`` answers of each item."""
    n = d["truth"].size
    per_item = np.broadcast_to(np.asarray(per_item), (n,))
    mask = np.arange(MAX_ANSWERS)[None, :] < per_item[:, None]
    items = np.broadcast_to(np.arange(n)[:, None], mask.shape)[mask]
    return items, d["inspectors"][mask], d["labels"][mask]


def gold_dict(d: dict, items: np.ndarray | None = None) -> dict[int, int]:
    gold = d["gold_items"] if items is None else np.intersect1d(d["gold_items"], items)
    return {int(i): int(d["truth"][i]) for i in gold}


# ---------------------------------------------------------------------------------------------
# metrics


def scores(probs_or_labels: np.ndarray, d: dict, target: float = 0.95) -> dict:
    """Accuracy on non-gold items; for posteriors also ECE and the ≥target slice."""
    truth = d["truth"]
    keep = np.ones(truth.size, bool)
    keep[d["gold_items"]] = False
    if probs_or_labels.ndim == 1:
        return {"accuracy": float((probs_or_labels[keep] == truth[keep]).mean())}
    probs = probs_or_labels[keep]
    ok = probs.argmax(1) == truth[keep]
    confident = probs.max(1) >= target
    return {
        "accuracy": float(ok.mean()),
        "ece": cs.expected_calibration_error(probs, truth[keep]),
        "share_confident": float(confident.mean()),
        "accuracy_confident": float(ok[confident].mean()) if confident.any() else None,
    }


# ---------------------------------------------------------------------------------------------
# methods


def ours_em(d: dict, r: int, *, with_model: bool, args) -> dict:
    items, ann, lab = flat_answers(d, r)
    t0 = time.perf_counter()
    em = cs.dawid_skene_em(
        items, ann, lab,
        n_items=d["truth"].size, n_annotators=len(d["crowd"]), n_classes=K,
        gold=gold_dict(d), model_probs=d["model"] if with_model else None,
        model_weight=args.model_weight, prior_strength=args.prior_strength,
    )  # fmt: skip
    out = scores(em.posteriors, d)
    out.update(seconds=time.perf_counter() - t0, iterations=em.iterations)
    return out


def crowdkit_methods(d: dict, r: int) -> dict:
    import pandas as pd
    from crowdkit.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa

    items, ann, lab = flat_answers(d, r)
    df = pd.DataFrame({"task": items, "worker": ann, "label": lab})
    n = d["truth"].size
    gold = pd.Series(gold_dict(d))
    out = {}
    for name, method in [
        ("MajorityVote", MajorityVote()),
        ("Wawa", Wawa()),
        ("OneCoinDawidSkene", OneCoinDawidSkene()),
        ("DawidSkene", DawidSkene()),
    ]:
        t0 = time.perf_counter()
        if name == "DawidSkene":
            fitted = method.fit(df, true_labels=gold)
            predicted_series = fitted.labels_
        else:
            predicted_series = method.fit_predict(df)
            fitted = method
        seconds = time.perf_counter() - t0
        predicted = predicted_series.reindex(range(n)).to_numpy()
        result = scores(predicted.astype(int), d)
        probas = getattr(fitted, "probas_", None)
        if probas is not None:
            probs = probas.reindex(index=range(n), columns=range(K)).fillna(0.0).to_numpy()
            probs = probs / probs.sum(axis=1, keepdims=True)
            result = scores(probs, d)
            # label from labels_ (crowd-kit's own tie-break) for the headline accuracy
            result["accuracy"] = scores(predicted.astype(int), d)["accuracy"]
        result["seconds"] = seconds
        out[name] = result
    return out


def adaptive(d: dict, *, target: float, min_answers: int, with_model: bool, args) -> dict:
    """Answers requested one at a time per item until the stopping rule says labeled/disputed.

    Items arrive in batches; confusions used for decisions come from an EM refit over all
    answers so far after each batch (the service's periodic refit). The first batch therefore
    runs on the "probably decent" prior alone. Gold items always get MAX_ANSWERS answers (they
    exist to measure inspectors) and count towards the answer total.
    """
    truth, n = d["truth"], d["truth"].size
    a = len(d["crowd"])
    n_used = np.zeros(n, dtype=np.intp)
    decided_post = np.zeros((n, K))
    decision = np.full(n, "open", dtype=object)
    is_gold = np.zeros(n, bool)
    is_gold[d["gold_items"]] = True
    counts = np.zeros((a, K, K))
    confusions = cs.confusion_matrix(counts, cs.pooled_prior(counts, strength=args.prior_strength))
    class_prior = np.full(K, 1.0 / K)
    for start in range(0, n, args.batch):
        idx = np.arange(start, min(start + args.batch, n))
        prior = cs.model_prior(
            class_prior, d["model"][idx] if with_model else None, weight=args.model_weight
        )
        log_post = np.log(np.broadcast_to(prior, (idx.size, K))).copy()
        open_ = np.ones(idx.size, bool)
        for step in range(MAX_ANSWERS):
            rows = np.flatnonzero(open_)
            if rows.size == 0:
                break
            who = d["inspectors"][idx[rows], step]
            said = d["labels"][idx[rows], step]
            log_post[rows] += np.log(confusions[who, :, said])
            n_used[idx[rows]] += 1
            post = np.exp(log_post - log_post.max(1, keepdims=True))
            post /= post.sum(1, keepdims=True)
            dec = cs.stopping_decisions(
                post[rows],
                n_used[idx[rows]],
                target=target,
                min_answers=min_answers,
                max_answers=MAX_ANSWERS,
            )
            dec[is_gold[idx[rows]] & (n_used[idx[rows]] < MAX_ANSWERS)] = "open"
            decision[idx[rows]] = dec
            decided_post[idx[rows]] = post[rows]
            open_[rows[dec != "open"]] = False
        # Periodic refit over everything answered so far (gold fixed).
        seen = np.arange(0, idx[-1] + 1)
        window = {
            "truth": truth[seen],
            "inspectors": d["inspectors"][seen],
            "labels": d["labels"][seen],
        }
        items, ann, lab = flat_answers(window, n_used[seen])
        em = cs.dawid_skene_em(
            items, ann, lab, n_items=seen.size, n_annotators=a, n_classes=K,
            gold=gold_dict(d, seen), model_probs=d["model"][seen] if with_model else None,
            model_weight=args.model_weight, prior_strength=args.prior_strength,
        )  # fmt: skip
        confusions, class_prior = em.confusions, em.class_prior
    keep = ~is_gold
    out = scores(decided_post, d, target)
    labeled = (decision == "labeled") & keep
    out.update(
        target=target,
        min_answers=min_answers,
        model_prior=with_model,
        answers_per_item=float(n_used.mean()),
        share_labeled=float(labeled.sum() / keep.sum()),
        share_disputed=float(((decision == "disputed") & keep).sum() / keep.sum()),
        accuracy_labeled=float((decided_post[labeled].argmax(1) == truth[labeled]).mean()),
        # what a final refit over the adaptive answers would say, for comparison
        accuracy_after_final_refit=scores(em.posteriors, d)["accuracy"],
    )
    return out


def refit_timing(args: argparse.Namespace) -> dict:
    """One full refit over items × 3 answers from a scaled crowd (synthetic, train-split truth)."""
    rng = np.random.default_rng(args.seed + 1)
    n, a, r = args.refit_items, args.refit_annotators, 3
    pool = sim.fashion_mnist_labels("train")
    truth = pool[rng.integers(pool.size, size=n)]
    crowd = sim.make_crowd(a, mix=CROWD_MIX, seed=args.seed + 1)
    tables = sim.CrowdTables.of(crowd)
    z = sim.item_difficulty(n, rng)
    ins = sim.assign_inspectors(n, r, a, rng).ravel()
    items = np.repeat(np.arange(n), r)
    lab = sim.answer_batch(tables, ins, truth[items], z[items], rng)
    gold = {int(i): int(truth[i]) for i in rng.choice(n, int(args.gold_rate * n), replace=False)}
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        em = cs.dawid_skene_em(
            items, ins, lab, n_items=n, n_annotators=a, n_classes=K, gold=gold,
            prior_strength=args.prior_strength,
        )  # fmt: skip
        times.append(time.perf_counter() - t0)
    out = {
        "answers": int(items.size),
        "items": n,
        "annotators": a,
        "ours_seconds_median_of_3": float(np.median(times)),
        "ours_iterations": em.iterations,
        "ours_accuracy": float((em.posteriors.argmax(1) == truth).mean()),
    }
    if not args.skip_crowdkit_timing:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene

        df = pd.DataFrame({"task": items, "worker": ins, "label": lab})
        t0 = time.perf_counter()
        ds = DawidSkene().fit(df, true_labels=pd.Series(gold))
        out["crowdkit_ds_seconds"] = time.perf_counter() - t0
        out["crowdkit_ds_iterations"] = len(getattr(ds, "loss_history_", [])) or None
        pred = ds.labels_.reindex(range(n)).to_numpy()
        out["crowdkit_ds_accuracy"] = float((pred == truth).mean())
    return out


# ---------------------------------------------------------------------------------------------
# report


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(results: dict) -> str:
    fixed = results["fixed"]
    budgets = list(fixed)
    names = [
        ("majority vote (ours)", "ours_majority_vote"),
        ("crowd-kit MajorityVote", "crowdkit_MajorityVote"),
        ("crowd-kit Wawa", "crowdkit_Wawa"),
        ("crowd-kit OneCoinDawidSkene", "crowdkit_OneCoinDawidSkene"),
        ("crowd-kit DawidSkene (gold)", "crowdkit_DawidSkene"),
        ("**ours**: Dawid–Skene, pooled prior, gold", "ours_em"),
        ("**ours** + simulated model prior", "ours_em_model"),
    ]
    lines = [
        "| method | " + " | ".join(f"{b} answer{'s' if b != '1' else ''}" for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for label, key in names:
        lines.append(
            f"| {label} | " + " | ".join(pct(fixed[b][key]["accuracy"]) for b in budgets) + " |"
        )
    lines += [
        "",
        "| adaptive (target, min answers) | answers/image | accuracy | labeled share | "
        "accuracy of labeled | ECE |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["adaptive"]:
        tag = f"{row['target']}, min {row['min_answers']}" + (
            " + model" if row["model_prior"] else ""
        )
        lines.append(
            f"| {tag} | {row['answers_per_item']:.2f} | {pct(row['accuracy'])} | "
            f"{pct(row['share_labeled'])} | {pct(row['accuracy_labeled'])} | {row['ece']:.3f} |"
        )
    t = results["refit_timing"]
    ck = t.get("crowdkit_ds_seconds")
    lines += [
        "",
        f"Full refit over {t['answers']:,} answers ({t['items']:,} items, {t['annotators']} "
        f"inspectors, 10 classes): ours {t['ours_seconds_median_of_3']:.2f} s"
        + (f", crowd-kit DawidSkene {ck:.1f} s." if ck is not None else "."),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    d = simulate(args)
    kinds = [i.kind for i in d["crowd"]]
    print(
        f"{d['truth'].size} items, {len(d['crowd'])} simulated inspectors {CROWD_MIX}, "
        f"{len(d['gold_items'])} gold items, seed {args.seed}"
    )
    print(
        "realized inspector accuracy:",
        " ".join(
            f"{k[:3]}:{acc:.2f}" for k, acc in zip(kinds, d["inspector_accuracy"], strict=True)
        ),
    )
    model_scores = scores(d["model"], d)
    print(
        "SIMULATED model prior (not a trained network): "
        f"accuracy {pct(model_scores['accuracy'])}%, "
        f"ECE {model_scores['ece']:.3f} after temperature {d['temperature']:.2f}"
    )

    fixed: dict[str, dict] = {}
    for r in (1, 3, 5):
        items, _, lab = flat_answers(d, r)
        row = {
            "ours_majority_vote": scores(
                cs.majority_vote(items, lab, n_items=d["truth"].size, n_classes=K, seed=args.seed),
                d,
            )
        }
        row["ours_em"] = ours_em(d, r, with_model=False, args=args)
        row["ours_em_model"] = ours_em(d, r, with_model=True, args=args)
        for name, res in crowdkit_methods(d, r).items():
            row[f"crowdkit_{name}"] = res
        fixed[str(r)] = row
        print(f"fixed {r}: " + "  ".join(f"{k} {pct(v['accuracy'])}" for k, v in row.items()))

    rows = []
    targets = [float(t) for t in args.targets.split(",")]
    for with_model in (False, True):
        for min_answers in (1, 2):
            for target in targets:
                res = adaptive(
                    d, target=target, min_answers=min_answers, with_model=with_model, args=args
                )
                rows.append(res)
                print(
                    f"adaptive target {target} min {min_answers} model {with_model}: "
                    f"{res['answers_per_item']:.2f} answers/item, accuracy {pct(res['accuracy'])}, "
                    f"labeled {pct(res['share_labeled'])} at {pct(res['accuracy_labeled'])}, "
                    f"ECE {res['ece']:.3f}, "
                    f"after final refit {pct(res['accuracy_after_final_refit'])}"
                )

    # Cheapest adaptive setting that matches the fixed-5 accuracy of the same method.
    match = {}
    for with_model, key in ((False, "ours_em"), (True, "ours_em_model")):
        goal = fixed["5"][key]["accuracy"]
        ok = [r for r in rows if r["model_prior"] == with_model and r["accuracy"] >= goal]
        best = min(ok, key=lambda r: r["answers_per_item"]) if ok else None
        match[key] = {
            "fixed5_accuracy": goal,
            "adaptive": None
            if best is None
            else {k: best[k] for k in ("target", "min_answers", "answers_per_item", "accuracy")},
            "answer_saving_vs_fixed5": None if best is None else 1 - best["answers_per_item"] / 5,
        }
        print(f"match fixed-5 ({key}, {pct(goal)}%):", match[key])

    timing = refit_timing(args)
    print("refit timing:", timing)
    results = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "seed": args.seed,
        "args": vars(args),
        "python": platform.python_version(),
        "crowd_mix": CROWD_MIX,
        "inspectors": [
            {"kind": k, "realized_accuracy": float(acc)}
            for k, acc in zip(kinds, d["inspector_accuracy"], strict=True)
        ],
        "simulated_model_prior": {
            **model_scores,
            "temperature": d["temperature"],
            "note": "simulated calibrated classifier, not a trained model",
        },
        "fixed": fixed,
        "adaptive": rows,
        "adaptive_matching_fixed5": match,
        "refit_timing": timing,
        "seconds_total": time.perf_counter() - started,
    }
    results["markdown"] = markdown(results)
    print()
    print(results["markdown"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return results


if __name__ == "__main__":
    main()
