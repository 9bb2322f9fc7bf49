"""Trust-weighted consensus: Dawid–Skene with a Dirichlet prior pooled across annotators.

Plain numpy, no Django: the services in ``labeling`` call these functions with arrays they load
from the database, and ``bench/consensus.py`` imports this file on its own.

Conventions: ``K`` classes, confusion matrices are ``K×K`` with row = true class and column =
given label, rows sum to 1. Evidence ``counts`` are soft counts in the same layout.
See docs/consensus.md for the model and the measured numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse

Decision = Literal["labeled", "disputed", "open"]

# Pseudo-answers per true class that the pooled prior is worth: a newcomer needs about this many
# answers on items of a class before their own confusions on that class outweigh the pool. Their
# overall skill moves much sooner (annotator_priors shrinks it with the same number of answers in
# total, not per class). 50 was the best of 5/10/30/50/200 on the simulated crowd at 3 answers.
DEFAULT_PRIOR_STRENGTH = 50.0
DEFAULT_BASE_ACCURACY = 0.7
# Weight of a calibrated model's probabilities in the tempered item prior (see model_prior).
DEFAULT_MODEL_WEIGHT = 0.5
# Model probabilities are floored here, which caps the model's likelihood ratio at
# (1 / floor) ** weight = 100 with the defaults: less than two agreeing decent humans.
DEFAULT_MODEL_FLOOR = 1e-4
# log(0) guard; confusions from a Dirichlet posterior are strictly positive anyway.
_TINY = 1e-300


def one_coin(accuracy: float, k: int) -> np.ndarray:
    """K×K confusion of an annotator who is right with ``accuracy`` and otherwise uniform."""
    if k < 2:
        raise ValueError("need at least two classes")
    off = (1.0 - accuracy) / (k - 1)
    matrix = np.full((k, k), off)
    np.fill_diagonal(matrix, accuracy)
    return matrix


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=-1, keepdims=True)


def pooled_prior(
    counts: np.ndarray,
    *,
    strength: float = DEFAULT_PRIOR_STRENGTH,
    base_accuracy: float = DEFAULT_BASE_ACCURACY,
) -> np.ndarray:
    """Dirichlet prior ``alpha`` (K×K) shared by all annotators of a project.

    Each row is ``strength`` times the pooled confusion row: the sum of everyone's evidence,
    smoothed with a one-coin "probably decent" base worth K pseudo-answers, so an empty project
    (or a class nobody has seen) starts from ``base_accuracy`` rather than from zeros.
    """
    counts = np.asarray(counts, dtype=float)
    if counts.ndim == 2:
        counts = counts[None]
    k = counts.shape[-1]
    pooled = counts.sum(axis=0) + k * one_coin(base_accuracy, k)
    return strength * _normalize_rows(pooled)


def annotator_priors(
    counts: np.ndarray,
    *,
    strength: float = DEFAULT_PRIOR_STRENGTH,
    base_accuracy: float = DEFAULT_BASE_ACCURACY,
) -> np.ndarray:
    """Per-annotator Dirichlet priors (A×K×K): the pool, re-scaled to each one's own skill.

    Each annotator's overall accuracy is a one-number summary that their answers pin down long
    before the K×K cells do. So the prior keeps the pool's per-class difficulty and error pattern
    but shifts every diagonal cell by the annotator's own accuracy log-odds relative to the pool
    (shrunk towards the pool by ``strength`` pseudo-answers). A newcomer (no counts) gets exactly
    :func:`pooled_prior`.
    """
    counts = np.asarray(counts, dtype=float)
    alpha = pooled_prior(counts, strength=strength, base_accuracy=base_accuracy)
    return priors_given_pool(counts, alpha / strength, strength=strength)


def priors_given_pool(counts: np.ndarray, pool: np.ndarray, *, strength: float) -> np.ndarray:
    """:func:`annotator_priors` with the pool (row-stochastic K×K) already known, so one
    inspector's prior can be refreshed without every other inspector's counts (the services
    keep the pool from the last refit)."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim == 2:
        counts = counts[None]
    k = counts.shape[-1]
    pool = np.asarray(pool, dtype=float)
    pool_diag = np.clip(np.diagonal(pool), 1e-6, 1 - 1e-6)
    # shrunk one-coin accuracy per annotator, weighting classes by how often they were seen
    row_totals = counts.sum(axis=2)  # A×K
    own_correct = np.diagonal(counts, axis1=1, axis2=2).sum(axis=1)
    pool_expected = (row_totals * pool_diag).sum(axis=1)
    acc = (own_correct + strength * pool_diag.mean()) / (row_totals.sum(axis=1) + strength)
    ref = (pool_expected + strength * pool_diag.mean()) / (row_totals.sum(axis=1) + strength)
    acc, ref = np.clip(acc, 1e-4, 1 - 1e-4), np.clip(ref, 1e-4, 1 - 1e-4)
    shift = _logit(acc) - _logit(ref)  # A
    diag = _sigmoid(_logit(pool_diag)[None] + shift[:, None])  # A×K
    off = pool * (1.0 - np.eye(k))
    off = off / off.sum(axis=1, keepdims=True)
    rows = off[None] * (1.0 - diag)[:, :, None]
    idx = np.arange(k)
    rows[:, idx, idx] = diag
    return strength * rows


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def confusion_matrix(counts_a: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Posterior-mean confusion (row-stochastic) of one annotator, or of ``A×K×K`` at once."""
    return _normalize_rows(np.asarray(counts_a, dtype=float) + alpha)


def skill_confusions(
    counts: np.ndarray,
    *,
    strength: float = DEFAULT_PRIOR_STRENGTH,
    base_accuracy: float = DEFAULT_BASE_ACCURACY,
) -> np.ndarray:
    """Every annotator's confusion (A×K×K) from the project's evidence counts (A×K×K).

    The one call the services need after an incremental update or a refit: posterior means
    under :func:`annotator_priors`, the same prior EM uses.
    """
    counts = np.asarray(counts, dtype=float)
    priors = annotator_priors(counts, strength=strength, base_accuracy=base_accuracy)
    return confusion_matrix(counts, priors)


def annotator_accuracy(confusion: np.ndarray, class_prior: np.ndarray) -> np.ndarray:
    """Expected accuracy ``Σ_k π_k C_kk`` of one confusion (or ``A×K×K``) under a class prior."""
    return np.diagonal(confusion, axis1=-2, axis2=-1) @ np.asarray(class_prior, dtype=float)


def item_posterior(
    prior: np.ndarray,
    confusions: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[int],
) -> np.ndarray:
    """Posterior over classes of one item: prior × Π confusion_j[:, label_j], normalized.

    ``confusions[j]`` is the confusion of the annotator who gave ``labels[j]``. Computed in log
    space so that many confident answers do not underflow.
    """
    log_post = np.log(np.maximum(np.asarray(prior, dtype=float), _TINY))
    labels = np.asarray(labels, dtype=np.intp)
    if labels.size:
        conf = np.asarray(confusions, dtype=float)
        columns = conf[np.arange(labels.size), :, labels]  # answers × K
        log_post = log_post + np.log(np.maximum(columns, _TINY)).sum(axis=0)
    return _softmax(log_post)


def _softmax(log_p: np.ndarray) -> np.ndarray:
    z = np.exp(log_p - log_p.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def model_prior(
    class_prior: np.ndarray,
    model_probs: np.ndarray | None,
    *,
    weight: float = DEFAULT_MODEL_WEIGHT,
    floor: float = DEFAULT_MODEL_FLOOR,
) -> np.ndarray:
    """Item prior from the class balance and, if any, a calibrated model's probabilities.

    Geometric (tempered) mix ``class_prior^(1-w) · model^w``, normalized; works on one ``K``
    vector or ``N×K``. Why geometric and ``w < 1``: the model is treated as a fraction of a
    vote, because its errors fall on the same hard images as the inspectors' (the independence
    Dawid–Skene assumes does not hold between model and humans); the floor bounds how strongly
    even a 0.9999-confident model can push, so agreeing trusted humans always win.
    """
    class_prior = np.asarray(class_prior, dtype=float)
    log_prior = np.log(np.maximum(class_prior / class_prior.sum(), _TINY))
    if model_probs is None:
        return _softmax(log_prior)
    probs = np.maximum(np.asarray(model_probs, dtype=float), floor)
    log_model = np.log(probs / probs.sum(axis=-1, keepdims=True))
    return _softmax((1.0 - weight) * log_prior + weight * log_model)


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
    """K×K evidence increment for one answer: the item's posterior as the rows of column ``label``.

    Add it to the annotator's counts when the item closes (use the final posterior; for a gold
    item pass the one-hot truth, see :func:`gold_evidence`). This is one E-step's worth of the
    EM M-step, applied incrementally between periodic refits.
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


@dataclass(frozen=True)
class EMResult:
    posteriors: np.ndarray  # N×K
    counts: np.ndarray  # A×K×K soft evidence behind ``confusions``
    confusions: np.ndarray  # A×K×K posterior-mean confusions
    class_prior: np.ndarray  # K
    iterations: int
    converged: bool


def dawid_skene_em(
    items: Sequence[int] | np.ndarray,
    annotators: Sequence[int] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    n_items: int,
    n_annotators: int,
    n_classes: int,
    gold: dict[int, int] | None = None,
    item_priors: np.ndarray | None = None,
    model_probs: np.ndarray | None = None,
    model_weight: float = DEFAULT_MODEL_WEIGHT,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    base_accuracy: float = DEFAULT_BASE_ACCURACY,
    per_annotator_prior: bool = True,
    max_iter: int = 50,
    tol: float = 1e-6,
) -> EMResult:
    """Refit every annotator's confusion and every item's posterior by EM.

    Answers are parallel arrays (item index, annotator index, label). Gold items keep their
    one-hot answer throughout. Per-item prior: ``item_priors`` (N×K) as given; else, with
    ``model_probs`` (N×K calibrated model probabilities), :func:`model_prior` of the current
    class-balance estimate and the model; else the class balance. Initialised from vote shares,
    so the first M-step trusts everyone equally, as majority vote does.
    """
    items = np.asarray(items, dtype=np.intp)
    annotators = np.asarray(annotators, dtype=np.intp)
    labels = np.asarray(labels, dtype=np.intp)
    n, a, k = n_items, n_annotators, n_classes

    gold_idx = np.fromiter(gold.keys(), dtype=np.intp) if gold else np.empty(0, np.intp)
    gold_onehot = np.zeros((gold_idx.size, k))
    if gold:
        gold_onehot[np.arange(gold_idx.size), np.fromiter(gold.values(), dtype=np.intp)] = 1.0

    # Sparse N × (A·K) table of how often item i got label l from annotator a. Both EM steps are
    # one product with it (no per-answer gathers): the E-step sums each item's log-likelihood
    # columns, the M-step sums each (annotator, label)'s item posteriors.
    answers = sparse.csr_matrix(
        (np.ones(items.size), (items, annotators * k + labels)), shape=(n, a * k)
    )
    answers_t = answers.T.tocsr()

    is_gold = np.zeros(n, bool)
    is_gold[gold_idx] = True
    votes = np.bincount(items * k + labels, minlength=n * k).reshape(n, k).astype(float)
    if item_priors is not None:
        init_prior = np.asarray(item_priors, dtype=float)
    elif model_probs is not None:
        model_probs = np.asarray(model_probs, dtype=float)
        init_prior = model_prior(np.ones(k), model_probs, weight=model_weight)
    else:
        init_prior = np.ones((1, k))
    posteriors = _normalize_rows((votes + 1e-2) * init_prior)  # unanswered items: the prior
    posteriors[gold_idx] = gold_onehot

    # An item with a single answer and a flat prior says nothing about its annotator: counting
    # it would only confirm the answer by itself, and with one answer per item that
    # self-confirmation lets EM drift into swapped classes. Such answers are left out of the
    # skill counts (gold items and a model prior make them informative again).
    informative_prior = item_priors is not None or model_probs is not None
    n_answers = np.bincount(items, minlength=n)
    weights = ((n_answers >= 2) | is_gold | informative_prior).astype(float)[:, None]

    converged = False
    iterations = 0
    m_step_args = (answers_t, a, k, prior_strength, base_accuracy, per_annotator_prior)
    while iterations < max_iter and not converged:
        iterations += 1
        counts, confusions = _m_step(posteriors * weights, *m_step_args)
        # Add-one smoothing keeps a class that no item is currently assigned to possible.
        class_prior = (posteriors.sum(axis=0) + 1.0) / (n + k)
        if item_priors is not None:
            log_prior = np.log(np.maximum(item_priors, _TINY))
        elif model_probs is not None:
            prior = model_prior(class_prior, model_probs, weight=model_weight)
            log_prior = np.log(np.maximum(prior, _TINY))
        else:
            log_prior = np.broadcast_to(np.log(class_prior), (n, k))
        # log confusion laid out as rows (annotator, given label) -> K true-class log-likelihoods
        log_columns = np.log(confusions).transpose(0, 2, 1).reshape(a * k, k)
        log_post = log_prior + answers @ log_columns
        new = _softmax(log_post)
        new[gold_idx] = gold_onehot
        delta = np.abs(new - posteriors).max() if n else 0.0
        posteriors = new
        converged = delta < tol

    # Final M-step so counts/confusions are consistent with the returned posteriors.
    counts, confusions = _m_step(posteriors * weights, *m_step_args)
    class_prior = (posteriors.sum(axis=0) + 1.0) / (n + k)
    return EMResult(posteriors, counts, confusions, class_prior, iterations, bool(converged))


def _m_step(
    weighted_posteriors: np.ndarray,
    answers_t: sparse.csr_matrix,
    a: int,
    k: int,
    prior_strength: float,
    base_accuracy: float,
    per_annotator_prior: bool,
) -> tuple[np.ndarray, np.ndarray]:
    # rows (annotator, label), columns true class -> A×K(true)×K(label)
    counts = np.asarray(answers_t @ weighted_posteriors).reshape(a, k, k).transpose(0, 2, 1)
    make_prior = annotator_priors if per_annotator_prior else pooled_prior
    alpha = make_prior(counts, strength=prior_strength, base_accuracy=base_accuracy)
    return counts, confusion_matrix(counts, alpha)


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
