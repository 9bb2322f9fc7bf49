"""Trust-weighted consensus: Dawid–Skene with a Dirichlet prior pooled across annotators.

Plain numpy, no Django: the services in ``labeling`` call these functions with arrays they load
from the database, and ``bench/consensus.py`` (through ``simulation/consensus_replay.py``) calls
the very same ones when it replays a crowd, so the benchmark measures the service's path:

* :func:`answer_update` after every answer: the item's posterior, the stopping rule, and the
  leave-one-out evidence its answers give about their inspectors when it closes;
* :func:`skill_refresh` when an inspector's evidence changes;
* :func:`refit`, the periodic EM refit with its safeguard and the crowd checks.

Conventions: ``K`` classes, confusion matrices are ``K×K`` with row = true class and column =
given label, rows sum to 1. Evidence ``counts`` are soft counts in the same layout.
See docs/consensus.md for the model and the measured numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats

from labeling.crowd_checks import (
    Bias,
    InspectorTest,
    PairTest,
    answer_weights,
    class_biases,
    collusion_tests,
    linked_groups,
    near_chance_tests,
)
from labeling.dawid_skene import (  # noqa: F401  (re-exported: the services' one import)
    DEFAULT_MODEL_FLOOR,
    DEFAULT_MODEL_WEIGHT,
    TINY,
    AnswerTable,
    EMResult,
    _item_log_posterior,
    dawid_skene_em,
    item_posterior,
    log_item_priors,
    model_prior,
    posteriors_given,
    softmax,
)
from labeling.skill_prior import (  # noqa: F401
    DEFAULT_BASE_ACCURACY,
    DEFAULT_PRIOR_STRENGTH,
    annotator_accuracy,
    annotator_priors,
    confusion_matrix,
    newcomer_confusion,
    one_coin,
    pooled_prior,
    priors_given_pool,
    robust_confusion,
    skill_confusions,
    skill_refresh,
)

logger = logging.getLogger(__name__)

Decision = Literal["labeled", "disputed", "open"]

# Defaults of a new project's stopping rule (labeling/models/projects.py uses these), chosen on
# the simulated "hard" crowd, seed 0, and checked on held-out seeds (docs/consensus.md): a cap
# of 10 answers lets the few images the crowd disagrees on collect enough evidence instead of
# ending disputed at 5 (the old cap), which is where most of the errors were; the images the
# crowd agrees on still close after one or two answers.
DEFAULT_CONSENSUS_TARGET = 0.95
DEFAULT_MIN_ANSWERS = 1
DEFAULT_MAX_ANSWERS = 10
# Between refits an answer is evidence about its inspector only when the item's other answers
# and its prior are this sure of the class without it (leave-one-out). The item's closing
# posterior contains the answer itself: feeding it back would let an answer vouch for its own
# inspector (measured: items labeled at 0.95 were right 94.8 % of the time on that evidence).
EVIDENCE_MIN_CONFIDENCE = 0.9
# The refit's safeguard: a refit is not applied when it gets significantly more gold items
# wrong than the current estimate (each judged on its answers alone, the truth hidden; exact
# McNemar test on the items whose verdict changed, one-sided, at this level), or when its
# log-likelihood falls by more than this many nats per answer below the current estimate's.
# A fixed allowance of "no fewer gold items right" refused 2 of 20 sound refits on a 10,000-item
# replay (79/80 -> 77/80), and kept the stale estimate in use.
SAFEGUARD_GOLD_ALPHA = 0.05
SAFEGUARD_LOG_LIKELIHOOD_PER_ANSWER = 1e-3
# At most this many copying pairs are linked per refit (each costs one more EM run).
MAX_LINKED_PAIRS = 20


def stopping_decision(
    posterior: np.ndarray,
    n_answers: int,
    *,
    target: float,
    min_answers: int,
    max_answers: int,
) -> Decision:
    """``labeled`` once max posterior ≥ target with enough answers; ``disputed`` at the cap."""
    if n_answers >= min_answers and float(np.max(posterior)) >= target:
        return "labeled"
    if n_answers >= max_answers:
        return "disputed"
    return "open"


def stopping_decisions(
    posteriors: np.ndarray,
    n_answers: np.ndarray,
    *,
    target: float,
    min_answers: int,
    max_answers: int,
) -> np.ndarray:
    """Vectorized :func:`stopping_decision` over ``N×K`` posteriors; returns an array of str."""
    n_answers = np.asarray(n_answers)
    labeled = (n_answers >= min_answers) & (posteriors.max(axis=-1) >= target)
    out = np.full(n_answers.shape, "open", dtype=object)
    out[n_answers >= max_answers] = "disputed"
    out[labeled] = "labeled"
    return out


def answer_evidence(posterior: np.ndarray, label: int, k: int | None = None) -> np.ndarray:
    """K×K evidence increment for one answer: ``posterior`` as the rows of column ``label``.

    ``posterior`` must not contain the answer itself (see :func:`leave_one_out_evidence`);
    for a gold item pass the one-hot truth, see :func:`gold_evidence`.
    """
    posterior = np.asarray(posterior, dtype=float)
    k = posterior.shape[-1] if k is None else k
    evidence = np.zeros((k, k))
    evidence[:, label] = posterior
    return evidence


def gold_evidence(true_label: int, label: int, k: int) -> np.ndarray:
    """Evidence increment of an answer on a gold item: certain truth, so a single count."""
    evidence = np.zeros((k, k))
    evidence[true_label, label] = 1.0
    return evidence


def leave_one_out_evidence(
    log_posterior: np.ndarray,
    columns: np.ndarray,
    weights: np.ndarray,
    annotators: Sequence[int],
    labels: Sequence[int],
    linked_pairs: Iterable[tuple[int, int]] = (),
    *,
    min_confidence: float = EVIDENCE_MIN_CONFIDENCE,
) -> dict[int, np.ndarray]:
    """What an item's answers say about the people who gave them, each answer judged by the
    item's prior and the *other* answers (its own likelihood and its linked copiers' taken out
    of the log posterior). Answers whose leave-one-out posterior is below ``min_confidence``
    give nothing: such a posterior is mostly the class balance, and counting it would make
    every inspector look like a guesser. The choice depends on the other answers only, which
    under Dawid–Skene are independent of this one given the class: no selection bias."""
    k = np.asarray(log_posterior).shape[-1]
    labels = list(labels)
    annotators = list(annotators)
    pairs = set(map(tuple, linked_pairs))
    evidence: dict[int, np.ndarray] = {}
    for j, who in enumerate(annotators):
        out = [
            m for m, other in enumerate(annotators)
            if m == j or (min(who, other), max(who, other)) in pairs
        ]  # fmt: skip
        cavity = softmax(log_posterior - weights[out] @ columns[out])
        if cavity.max() >= min_confidence:
            evidence[who] = evidence.get(who, np.zeros((k, k))) + answer_evidence(
                cavity, labels[j], k
            )
    return evidence


@dataclass(frozen=True)
class AnswerUpdate:
    posterior: np.ndarray
    decision: Decision
    # inspector -> K×K evidence; filled only when the item was labeled by this update
    evidence: dict[int, np.ndarray] = field(default_factory=dict)


def answer_update(
    prior: np.ndarray,
    annotators: Sequence[int],
    confusions: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[int],
    *,
    target: float,
    min_answers: int,
    max_answers: int,
    linked_pairs: Iterable[tuple[int, int]] = (),
) -> AnswerUpdate:
    """The consensus step after an item's answers changed: posterior, stopping rule, and, if
    the item is now labeled, the leave-one-out evidence about everyone who answered it.

    ``annotators[j]`` gave ``labels[j]`` and has confusion ``confusions[j]``; inspectors in a
    flagged copying pair (``linked_pairs``, ids as in ``annotators``) count as one voice.
    """
    linked_pairs = [tuple(sorted(p)) for p in linked_pairs]
    weights = 1.0 / np.asarray(linked_groups(list(annotators), linked_pairs), dtype=float)
    log_post, columns = _item_log_posterior(prior, confusions, labels, weights)
    posterior = softmax(log_post)
    decision = stopping_decision(
        posterior,
        len(labels),
        target=target,
        min_answers=min_answers,
        max_answers=max_answers,
    )
    evidence = {}
    if decision == "labeled":
        evidence = leave_one_out_evidence(
            log_post, columns, weights, annotators, labels, linked_pairs
        )
    return AnswerUpdate(posterior, decision, evidence)


def closing_evidence(
    posterior: np.ndarray,
    annotators: Sequence[int],
    confusions: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[int],
    linked_pairs: Iterable[tuple[int, int]] = (),
) -> dict[int, np.ndarray]:
    """The evidence :func:`answer_update` gave when it labeled an item, rebuilt from the stored
    closing posterior (to take it back on an undo)."""
    linked_pairs = [tuple(sorted(p)) for p in linked_pairs]
    weights = 1.0 / np.asarray(linked_groups(list(annotators), linked_pairs), dtype=float)
    _, columns = _item_log_posterior(np.ones(len(posterior)), confusions, labels, weights)
    log_post = np.log(np.maximum(np.asarray(posterior, dtype=float), 1e-12))
    return leave_one_out_evidence(log_post, columns, weights, annotators, labels, linked_pairs)


@dataclass(frozen=True)
class SkillState:
    """The estimate in use: every annotator's confusion (A×K×K, in the refit's annotator
    order) and the class balance. A refit starts from it and must not do worse than it."""

    confusions: np.ndarray
    class_prior: np.ndarray


@dataclass(frozen=True)
class RefitResult:
    applied: bool
    reason: str  # why it was not applied, "" if it was
    em: EMResult
    pool: np.ndarray  # newcomer confusion
    linked_pairs: list[tuple[int, int]]  # annotator indices counted as one
    pair_tests: list[PairTest]
    inspector_tests: list[InspectorTest]
    biases: list[Bias]
    gold_correct_before: int | None
    gold_correct_after: int
    gold_items: int
    log_likelihood_before: float | None
    log_likelihood_after: float
    stopping_on_gold: dict | None = None

    def figures(self) -> dict:
        return {
            "applied": self.applied,
            "reason": self.reason,
            "iterations": self.em.iterations,
            "converged": self.em.converged,
            "gold_items": self.gold_items,
            "gold_correct_before": self.gold_correct_before,
            "gold_correct_after": self.gold_correct_after,
            "log_likelihood_before": self.log_likelihood_before,
            "log_likelihood_after": round(self.log_likelihood_after, 3),
            "pairs_tested": len(self.pair_tests),
            "pairs_flagged": len(self.linked_pairs),
            "stopping_on_gold": self.stopping_on_gold,
        }


def refit(
    items: Sequence[int] | np.ndarray,
    annotators: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    n_items: int,
    n_annotators: int,
    n_classes: int,
    gold: dict[int, int] | None = None,
    model_probs: np.ndarray | None = None,
    current: SkillState | None = None,
    model_weight: float = DEFAULT_MODEL_WEIGHT,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    count_single_answers: bool = True,
    target: float | None = None,
    min_answers: int = 1,
) -> RefitResult:
    """The periodic refit: EM over every answer (warm from ``current``), the copying test
    (flagged pairs count as one and EM runs again), the near-chance and bias checks, and the
    safeguard: a refit whose gold accuracy or log-likelihood is worse than ``current``'s is
    returned with ``applied=False`` and a reason, and logged."""
    gold = gold or {}
    n, a, k = n_items, n_annotators, n_classes
    em_args = dict(
        n_items=n, n_annotators=a, n_classes=k, gold=gold, model_probs=model_probs,
        model_weight=model_weight, prior_strength=prior_strength,
        count_single_answers=count_single_answers,
    )  # fmt: skip
    warm = {}
    if current is not None:
        warm = dict(init_confusions=current.confusions, init_class_prior=current.class_prior)
    em = dawid_skene_em(items, annotators, labels, **em_args, **warm)
    table = AnswerTable(
        items, annotators, labels, n_items=n, n_annotators=a, n_classes=k, weights=None
    )

    def log_priors(class_prior):
        return log_item_priors(class_prior, n, model_probs=model_probs, model_weight=model_weight)

    # Copying pairs one at a time, most significant first, each then counted as one and EM
    # run again: a copying pair that is counted twice distorts everyone's estimated skill, and
    # made two honest inspectors look too agreeing in a small project.
    linked: list[tuple[int, int]] = []
    for _ in range(MAX_LINKED_PAIRS):
        pair_tests = collusion_tests(table, em.confusions, log_priors(em.class_prior), gold)
        new = [p for p in pair_tests if p.flagged and (p.a, p.b) not in linked]
        if not new:
            break
        strongest = min(new, key=lambda p: p.p_value)
        linked.append((strongest.a, strongest.b))
        weights = answer_weights(table.items, table.annotators, linked)
        em = dawid_skene_em(
            items, annotators, labels, **em_args, weights=weights,
            init_confusions=em.confusions, init_class_prior=em.class_prior,
        )  # fmt: skip
        table = AnswerTable(
            items, annotators, labels, n_items=n, n_annotators=a, n_classes=k, weights=weights
        )
    pair_tests = [PairTest(**{**vars(p), "flagged": (p.a, p.b) in linked}) for p in pair_tests]
    pool = newcomer_confusion(em.counts, strength=prior_strength)
    # the typical inspector: the median estimated accuracy of those who answered
    answered_by = np.bincount(table.annotators, minlength=a) > 0
    accuracies = annotator_accuracy(em.confusions, em.class_prior)
    typical = float(np.median(accuracies[answered_by])) if answered_by.any() else 0.7
    inspector_tests = near_chance_tests(table, em.posteriors, em.class_prior, typical)
    biases = class_biases(em.counts, em.confusions, em.deviant)

    # Gold items judged on their answers alone (the truth hidden); only those answered.
    answered = np.bincount(table.items, minlength=n) > 0
    gold_idx = np.fromiter((i for i in gold if answered[i]), dtype=np.intp)
    gold_truth = np.array([gold[i] for i in gold_idx], dtype=np.intp)
    non_gold = np.ones(n, bool)
    non_gold[list(gold)] = False

    def judge(confusions, class_prior):
        post, norm = posteriors_given(table, confusions, log_priors(class_prior))
        return post[gold_idx].argmax(axis=1) == gold_truth, float(norm[non_gold].sum())

    right_after, ll_after = judge(em.confusions, em.class_prior)
    stopping = None
    if target is not None:
        stopping = stopping_check_on_gold(
            table, em.confusions, log_priors(em.class_prior), gold, target, min_answers
        )
    gold_after = int(right_after.sum())
    gold_before = ll_before = None
    reason = ""
    if current is not None:
        right_before, ll_before = judge(current.confusions, current.class_prior)
        gold_before = int(right_before.sum())
        lost = int((right_before & ~right_after).sum())
        won = int((right_after & ~right_before).sum())
        p_worse = float(stats.binom.sf(lost - 1, lost + won, 0.5)) if lost > won else 1.0
        if p_worse < SAFEGUARD_GOLD_ALPHA:
            reason = (
                f"gold accuracy would fall from {gold_before}/{gold_idx.size} "
                f"to {gold_after}/{gold_idx.size}"
            )
        elif ll_after < ll_before - SAFEGUARD_LOG_LIKELIHOOD_PER_ANSWER * max(table.items.size, 1):
            reason = f"log-likelihood would fall from {ll_before:.1f} to {ll_after:.1f}"
        if reason:
            logger.warning("trust refit not applied: %s", reason)
    return RefitResult(
        applied=not reason,
        reason=reason,
        em=em,
        pool=pool,
        linked_pairs=linked,
        pair_tests=pair_tests,
        inspector_tests=inspector_tests,
        biases=biases,
        gold_correct_before=gold_before,
        gold_correct_after=gold_after,
        gold_items=int(gold_idx.size),
        log_likelihood_before=ll_before,
        log_likelihood_after=ll_after,
        stopping_on_gold=stopping,
    )


def stopping_check_on_gold(
    table: AnswerTable,
    confusions: np.ndarray,
    log_priors: np.ndarray,
    gold: dict[int, int],
    target: float,
    min_answers: int,
) -> dict:
    """The monitor behind "items labeled at the target are right that often": each gold image's
    answers, in the order given, run through the stopping rule with the truth hidden; of those
    that would have been labeled, how many were right. ``p_value`` tests "right at least
    ``target`` of the time" (exact binomial, one-sided); small means the rule breaks its word."""
    columns = np.log(np.maximum(confusions[table.annotators, :, table.labels], TINY))
    columns = table.weights[:, None] * columns
    stopped = right = 0
    for i, truth in gold.items():
        rows = np.flatnonzero(table.items == i)
        if not rows.size:
            continue
        log_post = log_priors[i] + np.cumsum(columns[rows], axis=0)
        post = softmax(log_post)
        n = np.arange(1, rows.size + 1)
        hit = np.flatnonzero((post.max(axis=1) >= target) & (n >= min_answers))
        if hit.size:
            stopped += 1
            right += int(post[hit[0]].argmax() == truth)
    p = float(stats.binom.cdf(right, stopped, target)) if stopped else None
    return {"target": target, "gold_stopped": stopped, "gold_stopped_right": right, "p_value": p}


def majority_vote(
    items: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    n_items: int,
    n_classes: int,
    seed: int = 0,
) -> np.ndarray:
    """Most frequent label per item, ties broken uniformly at random (seeded); -1 if unanswered."""
    items = np.asarray(items, dtype=np.intp)
    labels = np.asarray(labels, dtype=np.intp)
    votes = np.bincount(items * n_classes + labels, minlength=n_items * n_classes)
    votes = votes.reshape(n_items, n_classes).astype(float)
    # Jitter below 1 only reorders tied counts.
    jitter = np.random.default_rng(seed).random(votes.shape) * 0.5
    winners = np.argmax(votes + jitter, axis=1)
    winners[votes.sum(axis=1) == 0] = -1
    return winners


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, *, n_bins: int = 15) -> float:
    """ECE of the max probability against correctness, equal-width bins, weighted by bin size."""
    probs = np.asarray(probs, dtype=float)
    truth = np.asarray(truth)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == truth).astype(float)
    bins = np.clip((confidence * n_bins).astype(int), 0, n_bins - 1)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.abs(conf_sum - correct_sum).sum() / max(len(truth), 1))
