"""Dawid–Skene by EM over all of a project's answers, and the item priors it shares with the
per-answer update. Plain numpy/scipy, no Django; ``labeling.consensus`` re-exports these names.

Every answer counts, single-answer items included. The service's stopping rule decides how many
answers an item gets from the answers already seen, so the whole set of collected answers is
an ignorable (likelihood-preserving) sample; leaving out the items that stopped after one answer
is a selection on the outcome (they are the answers a trusted inspector gave on easy images), and
EM fitted on what remains drifts (measured in docs/consensus.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from labeling.skill_prior import (
    DEFAULT_BASE_ACCURACY,
    DEFAULT_PRIOR_STRENGTH,
    annotator_priors,
    normalize_rows,
    pooled_prior,
    robust_confusion,
)

# Weight of a calibrated model's probabilities in the tempered item prior (see model_prior).
DEFAULT_MODEL_WEIGHT = 0.5
# Model probabilities are floored here, which caps the model's likelihood ratio at
# (1 / floor) ** weight = 100 with the defaults: less than two agreeing decent humans.
DEFAULT_MODEL_FLOOR = 1e-4
# EM stops when an iteration improves the log-likelihood by less than this per answer.
DEFAULT_EM_TOL = 1e-6
DEFAULT_EM_MAX_ITER = 300
# Pseudo-items per class behind the class-balance estimate, spread like the answers' labels. On
# items with a single answer the balance is barely identified, and without this EM can empty a
# class into its look-alikes for a gain of a few nats (measured on 2,000 one-answer items: 8
# nats, accuracy 72 % -> 66 %). 10 and 30 pseudo-items per class still let one of three seeds
# drift below majority vote, 100 held all three. Scaled by the share of items with a single
# answer (where the balance is not identified), so that it is nothing where answers overlap.
DEFAULT_CLASS_PRIOR_STRENGTH = 100.0
# log(0) guard; confusions from a Dirichlet posterior are strictly positive anyway.
TINY = 1e-300


def softmax(log_p: np.ndarray) -> np.ndarray:
    z = np.exp(log_p - log_p.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def logsumexp(log_p: np.ndarray) -> np.ndarray:
    top = log_p.max(axis=-1)
    return top + np.log(np.exp(log_p - top[..., None]).sum(axis=-1))


def model_prior(
    class_prior: np.ndarray,
    model_probs: np.ndarray | None,
    *,
    weight: float = DEFAULT_MODEL_WEIGHT,
    floor: float = DEFAULT_MODEL_FLOOR,
) -> np.ndarray:
    """Item prior from the class balance and, if any, a calibrated model's probabilities.

    Geometric (tempered) mix ``class_prior^(1-w) · model^w``, normalized; works on one ``K``
    vector or ``N×K``; rows of ``model_probs`` that are NaN (no prediction) get the class
    balance alone. Why geometric and ``w < 1``: the model is treated as a fraction of a vote,
    because its errors fall on the same hard images as the inspectors' (the independence
    Dawid–Skene assumes does not hold between model and humans); the floor bounds how strongly
    even a 0.9999-confident model can push, so agreeing trusted humans always win.
    """
    class_prior = np.asarray(class_prior, dtype=float)
    log_prior = np.log(np.maximum(class_prior / class_prior.sum(), TINY))
    if model_probs is None:
        return softmax(log_prior)
    probs = np.asarray(model_probs, dtype=float)
    missing = np.isnan(probs).any(axis=-1)
    probs = np.maximum(np.where(np.isnan(probs), 1.0, probs), floor)
    log_model = np.log(probs / probs.sum(axis=-1, keepdims=True))
    mixed = (1.0 - weight) * log_prior + weight * log_model
    mixed = np.where(missing[..., None], log_prior, mixed)
    return softmax(mixed)


def item_posterior(
    prior: np.ndarray,
    confusions: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[int],
    weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Posterior over classes of one item: prior × Π confusion_j[:, label_j] ** weight_j.

    ``confusions[j]`` is the confusion of the annotator who gave ``labels[j]``; weights are 1
    except for answers of inspectors counted as one (see ``labeling.crowd_checks``). Computed in
    log space so that many confident answers do not underflow.
    """
    return softmax(_item_log_posterior(prior, confusions, labels, weights)[0])


def _item_log_posterior(prior, confusions, labels, weights):
    """Unnormalized log posterior of one item and the answers' log-likelihood columns."""
    log_post = np.log(np.maximum(np.asarray(prior, dtype=float), TINY))
    labels = np.asarray(labels, dtype=np.intp)
    if not labels.size:
        return log_post, np.zeros((0, log_post.size))
    conf = np.asarray(confusions, dtype=float)
    columns = np.log(np.maximum(conf[np.arange(labels.size), :, labels], TINY))  # answers × K
    w = np.ones(labels.size) if weights is None else np.asarray(weights, dtype=float)
    return log_post + w @ columns, columns


@dataclass(frozen=True)
class EMResult:
    posteriors: np.ndarray  # N×K
    counts: np.ndarray  # A×K×K soft evidence behind ``confusions``
    confusions: np.ndarray  # A×K×K posterior-mean confusions
    deviant: np.ndarray  # A×K posterior weight that a confusion row departs from the pool
    class_prior: np.ndarray  # K
    iterations: int
    converged: bool
    log_likelihood: float  # of the non-gold answers, under the returned confusions
    first_posteriors: np.ndarray  # N×K after the first iteration (drift check)


class AnswerTable:
    """A project's answers as the sparse tables both EM steps multiply with."""

    def __init__(self, items, annotators, labels, *, n_items, n_annotators, n_classes, weights):
        self.items = np.asarray(items, dtype=np.intp)
        self.annotators = np.asarray(annotators, dtype=np.intp)
        self.labels = np.asarray(labels, dtype=np.intp)
        self.n, self.a, self.k = n_items, n_annotators, n_classes
        self.weights = (
            np.ones(self.items.size) if weights is None else np.asarray(weights, dtype=float)
        )
        shape = (self.n, self.a * self.k)
        cols = self.annotators * self.k + self.labels
        # E-step: item i's log-likelihood is a weighted sum of (annotator, label) columns.
        self.weighted = sparse.csr_matrix((self.weights, (self.items, cols)), shape=shape)
        # M-step: every answer is one observation of its giver's behaviour.
        self.counting_t = sparse.csr_matrix(
            (np.ones(self.items.size), (self.items, cols)), shape=shape
        ).T.tocsr()

    def log_likelihood_columns(self, confusions: np.ndarray) -> np.ndarray:
        """N×K: Σ over an item's answers of weight · log confusion[:, label]."""
        log_columns = np.log(np.maximum(confusions, TINY)).transpose(0, 2, 1)
        return np.asarray(self.weighted @ log_columns.reshape(self.a * self.k, self.k))


def _log_item_priors(class_prior, item_priors, model_probs, model_weight, n):
    if item_priors is not None:
        return np.log(np.maximum(item_priors, TINY))
    if model_probs is not None:
        return np.log(np.maximum(model_prior(class_prior, model_probs, weight=model_weight), TINY))
    return np.broadcast_to(np.log(np.maximum(class_prior, TINY)), (n, class_prior.size))


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
    weights: np.ndarray | None = None,
    init_confusions: np.ndarray | None = None,
    init_class_prior: np.ndarray | None = None,
    count_single_answers: bool = True,
    class_prior_strength: float = DEFAULT_CLASS_PRIOR_STRENGTH,
    max_iter: int = DEFAULT_EM_MAX_ITER,
    tol: float = DEFAULT_EM_TOL,
) -> EMResult:
    """Refit every annotator's confusion and every item's posterior by EM.

    Answers are parallel arrays (item index, annotator index, label), ``weights`` optional per
    answer (inspectors counted as one). Gold items keep their one-hot answer throughout.
    Per-item prior: ``item_priors`` (N×K) as given; else, with ``model_probs`` (N×K calibrated
    model probabilities, NaN rows for items without one), :func:`model_prior` of the current
    class-balance estimate and the model; else the class balance.

    Start: warm from ``init_confusions`` (A×K×K, the current estimate) and ``init_class_prior``
    when given, else from vote shares (the first M-step then trusts everyone equally, as
    majority vote does). Stops when an iteration gains less than ``tol`` log-likelihood per
    answer. ``count_single_answers=False`` is the old rule that left single-answer items out of
    the skill counts; kept only so the benchmark can show why it was dropped.
    """
    table = AnswerTable(
        items, annotators, labels,
        n_items=n_items, n_annotators=n_annotators, n_classes=n_classes, weights=weights,
    )  # fmt: skip
    n, k = n_items, n_classes
    gold_idx = np.fromiter(gold.keys(), dtype=np.intp) if gold else np.empty(0, np.intp)
    gold_onehot = np.zeros((gold_idx.size, k))
    if gold:
        gold_onehot[np.arange(gold_idx.size), np.fromiter(gold.values(), dtype=np.intp)] = 1.0
    is_gold = np.zeros(n, bool)
    is_gold[gold_idx] = True
    if item_priors is not None:
        item_priors = np.asarray(item_priors, dtype=float)
    if model_probs is not None:
        model_probs = np.asarray(model_probs, dtype=float)

    if count_single_answers:
        item_weights = np.ones((n, 1))
    else:
        informative = item_priors is not None or model_probs is not None
        n_answers = np.bincount(table.items, minlength=n)
        item_weights = ((n_answers >= 2) | is_gold | informative).astype(float)[:, None]

    m_step_args = (table, prior_strength, base_accuracy, per_annotator_prior)
    label_shares = (np.bincount(table.labels, minlength=k) + 1.0) / (table.labels.size + k)
    # Only as strong as the balance is unidentified: scaled by the share of single-answer items.
    answered = np.bincount(table.items, minlength=n)
    product = (answered > 0) & ~is_gold
    single_share = float((answered[product] == 1).mean()) if product.any() else 0.0
    class_pseudo = class_prior_strength * k * single_share * label_shares + 1.0

    def balance(posteriors):
        return (posteriors.sum(axis=0) + class_pseudo) / (n + class_pseudo.sum())

    def e_step(confusions, class_prior):
        log_post = _log_item_priors(class_prior, item_priors, model_probs, model_weight, n)
        log_post = log_post + table.log_likelihood_columns(confusions)
        norm = logsumexp(log_post)
        post = np.exp(log_post - norm[:, None])
        post[gold_idx] = gold_onehot
        return post, float(norm[~is_gold].sum())

    if init_confusions is not None:
        prior0 = np.full(k, 1.0 / k) if init_class_prior is None else init_class_prior
        posteriors, log_lik = e_step(np.asarray(init_confusions, dtype=float), prior0)
    else:
        votes = np.bincount(table.items * k + table.labels, minlength=n * k).reshape(n, k)
        init = _log_item_priors(np.ones(k) / k, item_priors, model_probs, model_weight, n)
        posteriors = normalize_rows((votes + 1e-2) * np.exp(init))  # unanswered: the prior
        posteriors[gold_idx] = gold_onehot
        log_lik = -np.inf

    converged, iterations, first = False, 0, None
    scale = max(table.items.size, 1)
    while iterations < max_iter and not converged:
        iterations += 1
        counts, confusions, deviant = _m_step(posteriors * item_weights, *m_step_args)
        class_prior = balance(posteriors)
        posteriors, new_log_lik = e_step(confusions, class_prior)
        if first is None:
            first = posteriors
        converged = abs(new_log_lik - log_lik) < tol * scale
        log_lik = new_log_lik

    # Final M-step so counts/confusions are consistent with the returned posteriors.
    counts, confusions, deviant = _m_step(posteriors * item_weights, *m_step_args)
    class_prior = balance(posteriors)
    _, log_lik = e_step(confusions, class_prior)
    return EMResult(
        posteriors=posteriors,
        counts=counts,
        confusions=confusions,
        deviant=deviant,
        class_prior=class_prior,
        iterations=iterations,
        converged=bool(converged),
        log_likelihood=log_lik,
        first_posteriors=posteriors if first is None else first,
    )


def _m_step(
    weighted_posteriors: np.ndarray,
    table: AnswerTable,
    prior_strength: float,
    base_accuracy: float,
    per_annotator_prior: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, k = table.a, table.k
    # rows (annotator, label), columns true class -> A×K(true)×K(label)
    counts = np.asarray(table.counting_t @ weighted_posteriors).reshape(a, k, k).transpose(0, 2, 1)
    make_prior = annotator_priors if per_annotator_prior else pooled_prior
    alpha = make_prior(counts, strength=prior_strength, base_accuracy=base_accuracy)
    confusions, deviant = robust_confusion(counts, alpha)
    return counts, confusions, deviant


def posteriors_given(
    table: AnswerTable,
    confusions: np.ndarray,
    log_priors: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Item posteriors (N×K) and each item's log-likelihood of its answers under fixed
    confusions, nothing fixed to gold: what the refit's safeguard compares before and after."""
    log_post = log_priors + table.log_likelihood_columns(confusions)
    norm = logsumexp(log_post)
    return np.exp(log_post - norm[:, None]), norm


def log_item_priors(
    class_prior: np.ndarray,
    n: int,
    *,
    model_probs: np.ndarray | None = None,
    model_weight: float = DEFAULT_MODEL_WEIGHT,
) -> np.ndarray:
    """N×K log item priors: the class balance, tempered with the model where there is one."""
    return _log_item_priors(np.asarray(class_prior, float), None, model_probs, model_weight, n)
