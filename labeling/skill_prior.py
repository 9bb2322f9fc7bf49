"""Inspector skill: Dirichlet priors pooled across a project's inspectors, and the confusion
matrices they give once an inspector's own evidence is added.

Plain numpy/scipy, no Django (``labeling.consensus`` re-exports these names). Conventions: ``K``
classes, confusion matrices are ``K×K`` with row = true class and column = given label, rows sum
to 1; evidence ``counts`` are soft counts in the same layout. See docs/consensus.md.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

# Pseudo-answers per true class that the pooled prior is worth: a newcomer needs about this many
# answers on items of a class before their own confusions on that class outweigh the pool. Their
# overall skill moves much sooner (annotator_priors shrinks it with the same number of answers in
# total, not per class). 50 was the best of 5/10/30/50/200 on the simulated crowd at 3 answers.
DEFAULT_PRIOR_STRENGTH = 50.0
DEFAULT_BASE_ACCURACY = 0.7
# A strong prior alone would also hide a real per-class bias (an inspector who answers "shirt"
# for every T-shirt showed 0.53-0.63 instead of 1.0 after ~100 such answers). So each confusion
# row has a two-part prior: with probability 1 - DEVIANT_ROW_PRIOR it follows the pool (strength
# above), otherwise it is free (worth DEVIANT_ROW_STRENGTH pseudo-answers). The posterior weight
# of the free part is a Bayes factor: rows that look like the pool stay shrunk, and a row whose
# answers contradict the pool lets its own pattern through once a few dozen answers are in.
DEVIANT_ROW_PRIOR = 0.02
DEVIANT_ROW_STRENGTH = 2.0


def one_coin(accuracy: float, k: int) -> np.ndarray:
    """K×K confusion of an annotator who is right with ``accuracy`` and otherwise uniform."""
    if k < 2:
        raise ValueError("need at least two classes")
    off = (1.0 - accuracy) / (k - 1)
    matrix = np.full((k, k), off)
    np.fill_diagonal(matrix, accuracy)
    return matrix


def normalize_rows(x: np.ndarray) -> np.ndarray:
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
    return strength * normalize_rows(pooled)


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
    """Posterior-mean confusion under the plain Dirichlet prior ``alpha`` (one or ``A×K×K``)."""
    return normalize_rows(np.asarray(counts_a, dtype=float) + alpha)


def _log_dirichlet_multinomial(counts: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """log p(counts | alpha) per row, up to the multinomial coefficient (the same under both
    parts of the row prior, so it cancels in their Bayes factor). Soft counts are fine."""
    a0 = alpha.sum(axis=-1)
    return (
        gammaln(a0)
        - gammaln(a0 + counts.sum(axis=-1))
        + (gammaln(alpha + counts) - gammaln(alpha)).sum(axis=-1)
    )


def deviant_weight(
    counts: np.ndarray,
    alpha: np.ndarray,
    *,
    deviant_prior: float = DEVIANT_ROW_PRIOR,
    deviant_strength: float = DEVIANT_ROW_STRENGTH,
) -> np.ndarray:
    """Posterior probability (per row, ``…×K``) that a confusion row departs from its prior."""
    counts = np.asarray(counts, dtype=float)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), counts.shape)
    free = deviant_strength * normalize_rows(alpha)
    log_bf = _log_dirichlet_multinomial(counts, free) - _log_dirichlet_multinomial(counts, alpha)
    log_odds = np.log(deviant_prior) - np.log1p(-deviant_prior) + log_bf
    return _sigmoid(np.clip(log_odds, -700, 700))


def robust_confusion(
    counts: np.ndarray,
    alpha: np.ndarray,
    *,
    deviant_prior: float = DEVIANT_ROW_PRIOR,
    deviant_strength: float = DEVIANT_ROW_STRENGTH,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior-mean confusion under the two-part row prior (see DEVIANT_ROW_PRIOR), and the
    per-row weight of the free part. Equals :func:`confusion_matrix` for rows that fit."""
    counts = np.asarray(counts, dtype=float)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), counts.shape)
    weight = deviant_weight(
        counts, alpha, deviant_prior=deviant_prior, deviant_strength=deviant_strength
    )
    free = deviant_strength * normalize_rows(alpha)
    shrunk = normalize_rows(counts + alpha)
    own = normalize_rows(counts + free)
    return (1.0 - weight)[..., None] * shrunk + weight[..., None] * own, weight


def skill_confusions(
    counts: np.ndarray,
    *,
    strength: float = DEFAULT_PRIOR_STRENGTH,
    base_accuracy: float = DEFAULT_BASE_ACCURACY,
) -> np.ndarray:
    """Every annotator's confusion (A×K×K) from the project's evidence counts (A×K×K): robust
    posterior means under :func:`annotator_priors`, the prior EM uses."""
    counts = np.asarray(counts, dtype=float)
    priors = annotator_priors(counts, strength=strength, base_accuracy=base_accuracy)
    return robust_confusion(counts, priors)[0]


def skill_refresh(
    counts: np.ndarray, pool: np.ndarray, *, strength: float = DEFAULT_PRIOR_STRENGTH
) -> np.ndarray:
    """One inspector's confusion (K×K) after their evidence ``counts`` changed, against the
    project's pool from the last refit: what the service stores after every bit of evidence,
    and what the benchmark's replay does at the same point."""
    alpha = priors_given_pool(counts, pool, strength=strength)[0]
    return robust_confusion(np.asarray(counts, dtype=float), alpha)[0]


def newcomer_confusion(counts: np.ndarray, *, strength: float = DEFAULT_PRIOR_STRENGTH):
    """The pool: what an inspector without evidence is trusted like (row-stochastic K×K)."""
    alpha = pooled_prior(counts, strength=strength)
    return normalize_rows(alpha)


def annotator_accuracy(confusion: np.ndarray, class_prior: np.ndarray) -> np.ndarray:
    """Expected accuracy ``Σ_k π_k C_kk`` of one confusion (or ``A×K×K``) under a class prior."""
    return np.diagonal(confusion, axis1=-2, axis2=-1) @ np.asarray(class_prior, dtype=float)
