"""Statistical checks on a crowd after each refit: copying or colluding pairs, inspectors close
to guessing, and per-class bias. Plain numpy/scipy, no Django; ``labeling.consensus.refit``
runs them and the services store what they find (the Inspectors page shows it).

The tests compare what inspectors did with what their estimated skills predict, on the other
answers of the same items (leave-out posteriors, so the tested answers do not vouch for
themselves). p-values of a sum of independent Bernoulli trials with different probabilities
(Poisson-binomial) use the binomial with the same mean: by Hoeffding (1956) its tails bound the
Poisson-binomial's from above beyond one count from the mean, so the tests are conservative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from labeling.dawid_skene import TINY, AnswerTable, softmax

# Pairs need this many shared items before they are tested at all.
COLLUSION_MIN_OVERLAP = 20
# Null hypothesis for a pair: they disagree at least this fraction as often as two independent
# inspectors with their estimated skills would on the same items. Honest inspectors also agree
# a little beyond the model, because their errors cluster on the same hard images (measured on
# the simulated crowd: honest pairs disagree 0.7-1.0 times as often as predicted); a copier
# disagrees almost never.
COLLUSION_DISAGREEMENT_RATIO = 0.5
# Family-wise error rate over all tested pairs (Bonferroni: a project has many pairs, and most
# are honest pairs close to the null, since correlated errors already push them towards it).
COLLUSION_ALPHA = 0.01
# Per inspector, no correction: the null is itself a poor inspector (at the floor below), and
# a typical one is far above it, so the chance of flagging a decent inspector is far below this.
NEAR_CHANCE_ALPHA = 0.01
# "Close to guessing": accuracy below the point this far from guessing (given the labels the
# inspector actually uses) towards the project's typical (median) inspector: 55 % with a median
# of 85 % among 10 classes, so inspectors at 25-35 % are caught within a few dozen answers and
# careless ones (65-75 %) stay well above it.
NEAR_CHANCE_FRACTION = 0.6
NEAR_CHANCE_MIN_ANSWERS = 10
# A confusion row is shown as a bias when its own pattern beats the pool's with this posterior
# weight and the inspector gives one wrong label more often than the right one.
BIAS_MIN_WEIGHT = 0.95


@dataclass(frozen=True)
class PairTest:
    a: int  # annotator indices, a < b
    b: int
    shared: int
    agreements: int
    expected_agreements: float
    p_value: float
    flagged: bool


@dataclass(frozen=True)
class InspectorTest:
    annotator: int
    scored: int  # answers scored against gold or a confident reference
    correct: int
    accuracy: float | None
    chance: float
    floor: float
    p_value: float | None
    near_chance: bool


@dataclass(frozen=True)
class Bias:
    annotator: int
    true_class: int
    given_class: int
    share: float  # estimated P(given | true)
    evidence: float  # soft answers on items of the true class
    weight: float  # posterior weight that the row departs from the pool


def _full_log_posteriors(table: AnswerTable, confusions, log_priors) -> np.ndarray:
    return log_priors + table.log_likelihood_columns(confusions)


def _answer_log_columns(table: AnswerTable, confusions) -> np.ndarray:
    """answers × K: each answer's own log-likelihood column."""
    return np.log(np.maximum(confusions[table.annotators, :, table.labels], TINY))


def collusion_tests(
    table: AnswerTable,
    confusions: np.ndarray,
    log_priors: np.ndarray,
    gold: dict[int, int] | None = None,
    *,
    min_overlap: int = COLLUSION_MIN_OVERLAP,
    ratio: float = COLLUSION_DISAGREEMENT_RATIO,
    alpha: float = COLLUSION_ALPHA,
) -> list[PairTest]:
    """Every pair of inspectors with ``min_overlap`` shared items, tested for agreeing beyond
    what their confusions predict. Flagged pairs reject "disagree at least ``ratio`` as often as
    predicted" at ``alpha`` over all tested pairs."""
    k = table.k
    order = np.argsort(table.items, kind="stable")
    items, ann, lab = table.items[order], table.annotators[order], table.labels[order]
    w = table.weights[order]
    cols = _answer_log_columns(table, confusions)[order]
    full = _full_log_posteriors(table, confusions, log_priors)
    gold = gold or {}
    gold_truth = np.full(table.n, -1)
    for i, y in gold.items():
        gold_truth[i] = y
    first, second = [], []
    for d in range(1, int(np.bincount(items).max(initial=1))):
        same = np.flatnonzero(items[:-d] == items[d:]) if items.size > d else np.empty(0, int)
        first.append(same)
        second.append(same + d)
    u = np.concatenate(first) if first else np.empty(0, np.intp)
    v = np.concatenate(second) if second else np.empty(0, np.intp)
    if not u.size:
        return []
    swap = ann[u] > ann[v]
    u, v = np.where(swap, v, u), np.where(swap, u, v)
    i = items[u]
    cavity = softmax(full[i] - w[u, None] * cols[u] - w[v, None] * cols[v])
    is_gold = gold_truth[i] >= 0
    cavity[is_gold] = np.eye(k)[gold_truth[i[is_gold]]]
    same_label = (confusions[ann[u]] * confusions[ann[v]]).sum(axis=2)  # occurrences × K
    p_agree = (cavity * same_label).sum(axis=1)
    agree = lab[u] == lab[v]
    key = ann[u].astype(np.int64) * table.a + ann[v]
    pairs, inverse, shared = np.unique(key, return_inverse=True, return_counts=True)
    agreements = np.bincount(inverse, weights=agree, minlength=pairs.size)
    expected = np.bincount(inverse, weights=p_agree, minlength=pairs.size)
    tested = shared >= min_overlap
    m = max(int(tested.sum()), 1)
    out = []
    for idx in np.flatnonzero(tested):
        n = int(shared[idx])
        disagreements = n - int(round(agreements[idx]))
        expected_disagree = max(n - expected[idx], 0.0) / n
        p = float(stats.binom.cdf(disagreements, n, min(ratio * expected_disagree, 1.0)))
        out.append(
            PairTest(
                a=int(pairs[idx] // table.a),
                b=int(pairs[idx] % table.a),
                shared=n,
                agreements=int(round(agreements[idx])),
                expected_agreements=float(expected[idx]),
                p_value=p,
                flagged=p < alpha / m,
            )
        )
    return out


def answer_weights(
    items: np.ndarray, annotators: np.ndarray, pairs: list[tuple[int, int]]
) -> np.ndarray:
    """Per-answer weight so that inspectors flagged as copying count as one on the items they
    share: on an item, a group of g linked inspectors gets weight 1/g each."""
    items = np.asarray(items, dtype=np.intp)
    annotators = np.asarray(annotators, dtype=np.intp)
    weights = np.ones(items.size)
    if not pairs or not items.size:
        return weights
    linked = {x for pair in pairs for x in pair}
    rows = np.flatnonzero(np.isin(annotators, list(linked)))
    by_item: dict[int, list[int]] = {}
    for r in rows:
        by_item.setdefault(int(items[r]), []).append(int(r))
    for answer_rows in by_item.values():
        if len(answer_rows) > 1:
            people = [int(annotators[r]) for r in answer_rows]
            for r, group in zip(answer_rows, linked_groups(people, pairs), strict=True):
                weights[r] = 1.0 / group
    return weights


def linked_groups(people: list[int], pairs) -> list[int]:
    """For each person on one item, the size of their group of linked (copying) inspectors
    among those present: connected components of the flagged pairs."""
    present = set(people)
    parent = {p: p for p in present}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        if a in present and b in present:
            parent[find(a)] = find(b)
    roots = [find(p) for p in people]
    return [roots.count(r) for r in roots]


def near_chance_tests(
    table: AnswerTable,
    posteriors: np.ndarray,
    class_prior: np.ndarray,
    typical_accuracy: float,
    *,
    alpha: float = NEAR_CHANCE_ALPHA,
) -> list[InspectorTest]:
    """Per inspector: are their answers significantly less accurate than the floor between
    guessing and the project's typical inspector (``NEAR_CHANCE_FRACTION`` of the way)?

    Each answer is scored by the refit's posterior of its image (gold: the truth), i.e. the
    expected number right under the fitted model. Not by the image's *other* answers: how many
    other answers an image has depends on this one (a wrong first answer keeps the image open
    and brings confident others, a right one closes it), so scoring against confident others
    over-counts mistakes; it flagged careless (70 %) inspectors. The full posterior has no such
    selection (the collected answers are an ignorable sample, see ``labeling.dawid_skene``); it
    contains the answer itself, which only flatters, and barely for an inspector whose answers
    carry little weight. H0 "accuracy ≥ floor": exact binomial on the rounded expected count."""
    a, k = table.a, table.k
    expected_right = posteriors[table.items, table.labels]
    n = np.bincount(table.annotators, minlength=a)
    s = np.bincount(table.annotators, weights=expected_right, minlength=a)
    usage = np.bincount(table.annotators * k + table.labels, minlength=a * k).reshape(a, k)
    usage = usage / np.maximum(usage.sum(axis=1, keepdims=True), 1)
    out = []
    for who in range(a):
        trials, successes = int(n[who]), int(round(s[who]))
        chance = float(usage[who] @ class_prior) if usage[who].sum() else 1.0 / k
        floor = chance + NEAR_CHANCE_FRACTION * max(typical_accuracy - chance, 0.0)
        p = None
        if trials >= NEAR_CHANCE_MIN_ANSWERS:
            p = float(stats.binom.cdf(successes, trials, floor))
        out.append(
            InspectorTest(
                annotator=who,
                scored=trials,
                correct=successes,
                accuracy=successes / trials if trials else None,
                chance=chance,
                floor=floor,
                p_value=p,
                near_chance=p is not None and p < alpha,
            )
        )
    return out


def class_biases(counts: np.ndarray, confusions: np.ndarray, deviant: np.ndarray) -> list[Bias]:
    """Rows where an inspector's own pattern beats the pool's and one wrong label is given more
    often than the right one (e.g. "answers shirt for 95 % of T-shirts")."""
    off = confusions * (1.0 - np.eye(confusions.shape[-1]))
    given = off.argmax(axis=2)  # A×K
    a_idx, y_idx = np.indices(given.shape)
    share = confusions[a_idx, y_idx, given]
    right = np.diagonal(confusions, axis1=1, axis2=2)
    hits = (deviant >= BIAS_MIN_WEIGHT) & (share > right)
    return [
        Bias(
            annotator=int(a),
            true_class=int(y),
            given_class=int(given[a, y]),
            share=float(share[a, y]),
            evidence=float(counts[a, y].sum()),
            weight=float(deviant[a, y]),
        )
        for a, y in zip(*np.nonzero(hits), strict=True)
    ]
