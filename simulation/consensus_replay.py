"""Replays a crowd's answers through the service's consensus path, without Django.

``replay`` keeps in memory what the service keeps in its tables (each inspector's evidence and
confusion, the project's pool, class balance and copying pairs, each item's answers, posterior
and status) and, for every answer in order, calls the same functions the service calls:

* an answer on an open item: :func:`labeling.consensus.answer_update` (``labeling.answers``'
  ``item_consensus_update``), then :func:`labeling.consensus.skill_refresh` for every inspector
  it gave evidence about (``labeling.trust.skills_add_evidence``);
* an answer on a gold item: its gold evidence, then ``skill_refresh``;
* an answer on an item that is already decided is dropped: the service would not have asked;
* every ``refit_every`` answers: :func:`labeling.consensus.refit` over every answer so far
  (``labeling.trust.skills_refit``) and, if applied, every open item re-scored
  (``labeling.refit.project_refit``).

Streams come from a JSON Lines file (``{"item", "worker", "label", "truth"?}`` per answer, in
answer order) or from the simulated crowds below. Plain numpy, no Django.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeling import consensus as cs
from simulation import crowd_model as sim


@dataclass
class Stream:
    """Answers in the order they were given; indices are 0-based, ids keep the file's names."""

    items: np.ndarray
    workers: np.ndarray
    labels: np.ndarray
    n_items: int
    n_workers: int
    k: int
    truth: np.ndarray  # per item, -1 where unknown
    gold: dict[int, int] = field(default_factory=dict)
    model_probs: np.ndarray | None = None  # N×K calibrated model probabilities
    worker_names: list[str] = field(default_factory=list)
    worker_kinds: list[str] = field(default_factory=list)
    colluding: list[tuple[int, int]] = field(default_factory=list)  # the truth, for reports


def stream_from_jsonl(path: str | Path, *, gold_rate: float = 0.0, seed: int = 0) -> Stream:
    """Read ``{"item", "worker", "label", "truth"?}`` lines. Items and workers may be any JSON
    scalar; labels are ints 0..K-1. ``gold_rate`` of the items with a truth become gold."""
    item_index: dict = {}
    worker_index: dict = {}
    items, workers, labels, truth = [], [], [], {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                item, worker, label = row["item"], row["worker"], int(row["label"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not an answer line ({exc})") from exc
            if label < 0:
                raise ValueError(f"{path}:{number}: label must be 0 or more")
            i = item_index.setdefault(json.dumps(item), len(item_index))
            items.append(i)
            workers.append(worker_index.setdefault(json.dumps(worker), len(worker_index)))
            labels.append(label)
            if row.get("truth") is not None:
                truth[i] = int(row["truth"])
    if not items:
        raise ValueError(f"{path}: no answers")
    n = len(item_index)
    k = max(max(labels), max(truth.values(), default=0)) + 1
    truth_arr = np.full(n, -1)
    for i, y in truth.items():
        truth_arr[i] = y
    known = np.flatnonzero(truth_arr >= 0)
    rng = np.random.default_rng(seed)
    gold_items = rng.choice(known, int(round(gold_rate * known.size)), replace=False)
    return Stream(
        items=np.asarray(items),
        workers=np.asarray(workers),
        labels=np.asarray(labels),
        n_items=n,
        n_workers=len(worker_index),
        k=k,
        truth=truth_arr,
        gold={int(i): int(truth_arr[i]) for i in gold_items},
        worker_names=[json.loads(w) for w in worker_index],
    )


def stream_to_jsonl(stream: Stream, path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i, w, label in zip(stream.items, stream.workers, stream.labels, strict=True):
            row = {"item": int(i), "worker": int(w), "label": int(label)}
            if stream.truth[i] >= 0:
                row["truth"] = int(stream.truth[i])
            fh.write(json.dumps(row) + "\n")


# Crowds for the benchmark and the tests. "hard" has every kind of trouble the trust checks are
# for; "good" is the very good crowd that made the old refit collapse at min 1 answer.
CROWDS: Mapping[str, dict] = {
    "default": {"mix": dict(sim.DEFAULT_MIX), "pairs": []},
    "hard": {
        "mix": {
            "expert": 2,
            "average": 8,
            "careless": 4,
            "near_chance": 1,
            "class_biased": 1,
            "spammer_uniform": 1,
            "spammer_constant": 1,
            "colluder": 2,
        },  # fmt: skip
        "pairs": [("colluder", "colluder")],
    },
    "good": {"mix": {"expert": 4, "good": 6}, "pairs": []},
    # Many people with few answers each, as on a crowdsourcing platform: most of them are still
    # close to newcomers when the refit runs.
    "good_many": {"mix": {"expert": 60, "good": 90, "average": 50}, "pairs": []},
    "copying": {
        "mix": {**sim.DEFAULT_MIX, "average_copier": 2, "careless_copier": 2},
        "pairs": [("average_copier", "average_copier"), ("careless_copier", "careless_copier")],
    },
}
# What each pair member answers on their own (before copying).
_COPIER_KINDS = {
    "colluder": "near_chance",
    "average_copier": "average",
    "careless_copier": "careless",
}


def simulated_stream(
    crowd: str,
    *,
    n_items: int,
    seed: int,
    max_answers: int = 5,
    gold_rate: float = 0.02,
    batch: int = 100,
    split: str = "t10k",
    offset: int = 0,
) -> Stream:
    """Up to ``max_answers`` answers per item from distinct inspectors of a named crowd, in the
    order a queue would collect them: items arrive ``batch`` at a time, and each round gives
    every item of the batch its next answer. Truth: Fashion-MNIST labels of ``split`` from
    ``offset``. Also draws a simulated calibrated model's probabilities (not a trained network)."""
    spec = CROWDS[crowd]
    rng = np.random.default_rng(seed)
    kinds: list[str] = []
    for kind, count in spec["mix"].items():
        kinds += [kind] * count
    inspectors = [
        sim.make_inspector(i, _COPIER_KINDS.get(kind, kind), rng) for i, kind in enumerate(kinds)
    ]
    pairs: list[tuple[int, int]] = []
    for kind, _ in spec["pairs"]:
        members = [i for i, x in enumerate(kinds) if x == kind]
        pairs += [(members[j], members[j + 1]) for j in range(0, len(members) - 1, 2)]
    truth = sim.fashion_mnist_labels(split)[offset : offset + n_items]
    n = truth.size
    difficulty = sim.item_difficulty(n, rng)
    who = sim.assign_inspectors(n, max_answers, len(inspectors), rng)
    who = sim.assign_pairs_together(who, pairs, rng)
    labels = sim.answer_batch(
        sim.CrowdTables.of(inspectors),
        who.ravel(),
        np.repeat(truth, max_answers),
        np.repeat(difficulty, max_answers),
        rng,
    ).reshape(n, max_answers)
    labels = sim.copy_within_pairs(who, labels, pairs)
    gold_items = rng.choice(n, int(round(gold_rate * n)), replace=False)
    held = sim.fashion_mnist_labels("train")[:5000]
    temperature = sim.fit_temperature(
        sim.simulate_model_probs(held, sim.item_difficulty(held.size, rng), rng), held
    )
    model = sim.apply_temperature(sim.simulate_model_probs(truth, difficulty, rng), temperature)
    order_items, order_slots = [], []
    for start in range(0, n, batch):
        block = np.arange(start, min(start + batch, n))
        for slot in range(max_answers):
            order_items.append(block)
            order_slots.append(np.full(block.size, slot))
    oi, os_ = np.concatenate(order_items), np.concatenate(order_slots)
    return Stream(
        items=oi,
        workers=who[oi, os_],
        labels=labels[oi, os_],
        n_items=n,
        n_workers=len(inspectors),
        k=sim.K,
        truth=np.asarray(truth),
        gold={int(i): int(truth[i]) for i in gold_items},
        model_probs=model,
        worker_names=[f"{kind}-{i}" for i, kind in enumerate(kinds)],
        worker_kinds=kinds,
        colluding=pairs,
    )


@dataclass(frozen=True)
class Settings:
    target: float = cs.DEFAULT_CONSENSUS_TARGET
    min_answers: int = cs.DEFAULT_MIN_ANSWERS
    max_answers: int = cs.DEFAULT_MAX_ANSWERS
    with_model: bool = False
    refit_every: int = 500  # answers between periodic refits; 0: never (incremental only)
    # Answers a gold item takes. The service serves gold at the project's gold rate, so gold is
    # a fixed share of the answers whatever the stopping rule; a cap per item does the same here.
    gold_answers: int = 5
    # The rules before issue 14, for comparison only: the refit left single-answer items out of
    # the skill counts, and a closing item fed its own posterior back as evidence.
    legacy: bool = False


@dataclass
class ReplayResult:
    posteriors: np.ndarray  # N×K at the decision (or now, for open items)
    status: np.ndarray  # "labeled" / "disputed" / "open" / "gold" / "unseen"
    answers_used: np.ndarray  # per item
    confusions: np.ndarray
    class_prior: np.ndarray
    refits: list[dict]
    last_refit: cs.RefitResult | None


def replay(stream: Stream, settings: Settings) -> ReplayResult:
    """Run the stream through the service's consensus path (see the module docstring)."""
    n, a, k = stream.n_items, stream.n_workers, stream.k
    counts = np.zeros((a, k, k))
    pool = cs.newcomer_confusion(np.zeros((k, k)))
    confusions = np.repeat(pool[None], a, axis=0)
    class_prior = np.full(k, 1.0 / k)
    linked: list[tuple[int, int]] = []
    answers: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    posteriors = np.full((n, k), 1.0 / k)
    status = np.full(n, "unseen", dtype=object)
    gold = stream.gold
    for i in gold:
        status[i] = "gold"
    model = stream.model_probs if settings.with_model else None
    used_items, used_workers, used_labels = [], [], []
    refits: list[dict] = []
    last = None

    def prior_of(i: int) -> np.ndarray:
        return cs.model_prior(class_prior, None if model is None else model[i])

    def add_evidence(evidence: dict[int, np.ndarray]) -> None:
        for who, ev in evidence.items():
            counts[who] = np.maximum(counts[who] + ev, 0.0)
            confusions[who] = cs.skill_refresh(counts[who], pool)

    def update(i: int) -> None:
        who = [w for w, _ in answers[i]]
        result = cs.answer_update(
            prior_of(i),
            who,
            confusions[who],
            [label for _, label in answers[i]],
            target=settings.target,
            min_answers=settings.min_answers,
            max_answers=settings.max_answers,
            linked_pairs=linked,
        )
        posteriors[i] = result.posterior
        status[i] = "open" if result.decision == "open" else result.decision
        evidence = result.evidence
        if settings.legacy and result.decision == "labeled":
            evidence = {}
            for w, label in answers[i]:
                evidence[w] = evidence.get(w, 0) + cs.answer_evidence(result.posterior, label)
        add_evidence(evidence)

    for i, w, label in zip(stream.items, stream.workers, stream.labels, strict=True):
        i, w, label = int(i), int(w), int(label)
        if i in gold:
            if len(answers[i]) >= settings.gold_answers:
                continue
            answers[i].append((w, label))
            add_evidence({w: cs.gold_evidence(gold[i], label, k)})
        else:
            if status[i] not in ("open", "unseen"):
                continue
            answers[i].append((w, label))
            update(i)
        used_items.append(i)
        used_workers.append(w)
        used_labels.append(label)
        if settings.refit_every and len(used_items) % settings.refit_every == 0:
            # Like the service, over the items that have answers (indexed among themselves).
            seen, local = np.unique(np.asarray(used_items), return_inverse=True)
            where = {int(i): j for j, i in enumerate(seen)}
            last = cs.refit(
                local,
                used_workers,
                used_labels,
                n_items=seen.size,
                n_annotators=a,
                n_classes=k,
                gold={where[i]: y for i, y in gold.items() if i in where},
                model_probs=None if model is None else model[seen],
                current=None if settings.legacy else cs.SkillState(confusions, class_prior),
                count_single_answers=not settings.legacy,
                target=settings.target,
                min_answers=settings.min_answers,
            )
            refits.append({"answers": len(used_items), **last.figures()})
            if last.applied:
                counts, confusions = last.em.counts.copy(), last.em.confusions.copy()
                class_prior, pool = last.em.class_prior, last.pool
                linked = list(last.linked_pairs)
                for j in np.flatnonzero(status == "open"):
                    update(int(j))
    answers_used = np.array([len(x) for x in answers])
    return ReplayResult(posteriors, status, answers_used, confusions, class_prior, refits, last)


def summarize(stream: Stream, result: ReplayResult, settings: Settings) -> dict:
    """The figures the benchmark reports for one setting. Accuracy counts every non-gold item
    that got an answer, disputed and still-open ones by their posterior's best class; answers
    per item count every answer used, gold answers included, over every item that got one."""
    seen = result.status != "unseen"
    product = seen & (result.status != "gold") & (stream.truth >= 0)
    truth = stream.truth[product]
    post = result.posteriors[product]
    status = result.status[product]
    right = post.argmax(axis=1) == truth
    labeled = status == "labeled"
    out = {
        **{f: getattr(settings, f) for f in ("target", "min_answers", "max_answers")},
        "model_prior": settings.with_model,
        "refit_every": settings.refit_every,
        "items": int(product.sum()),
        "accuracy": float(right.mean()),
        # the final labels if every disputed item is then decided right by an expert
        "accuracy_disputed_to_experts": float((right | (status == "disputed")).mean()),
        "answers_per_item_without_gold": float(
            result.answers_used[product].sum() / max(product.sum(), 1)
        ),
        "answers_per_item": float(result.answers_used[seen].sum() / max(seen.sum(), 1)),
        "labeled_share": float(labeled.mean()),
        "disputed_share": float((status == "disputed").mean()),
        "open_share": float((status == "open").mean()),
        "labeled_accuracy": float(right[labeled].mean()) if labeled.any() else None,
        "ece": cs.expected_calibration_error(post, truth),
        "refits": len(result.refits),
        "refits_refused": sum(not r["applied"] for r in result.refits),
    }
    # "Keeps its word": among items labeled, accuracy per band of the closing posterior.
    bands = {}
    for low, high in ((0.9, 0.95), (0.95, 0.99), (0.99, 0.998), (0.998, 1.01)):
        sel = labeled & (post.max(axis=1) >= low) & (post.max(axis=1) < high)
        if sel.any():
            bands[f"{low}-{min(high, 1.0)}"] = {
                "items": int(sel.sum()),
                "accuracy": float(right[sel].mean()),
            }
    out["labeled_accuracy_by_posterior"] = bands
    last = result.last_refit
    if last is not None:
        names = stream.worker_names or [str(i) for i in range(stream.n_workers)]
        out["flagged_pairs"] = [[names[x], names[y]] for x, y in last.linked_pairs]
        out["true_pairs"] = [[names[x], names[y]] for x, y in stream.colluding]
        out["stopping_on_gold"] = last.stopping_on_gold
        out["near_chance"] = [names[t.annotator] for t in last.inspector_tests if t.near_chance]
        out["biases"] = [
            {"worker": names[b.annotator], "true": b.true_class, "given": b.given_class,
             "share": round(b.share, 3)}
            for b in last.biases
        ]  # fmt: skip
    return out
