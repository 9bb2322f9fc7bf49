"""Consensus maths, as a project would notice it. Plain numpy: no database, no Django."""

import time

import numpy as np
import pytest

from labeling import consensus as cs
from simulation import crowd_model as sim

K = 10


def expert_counts(accuracy: float, n_per_class: int = 200) -> np.ndarray:
    return cs.one_coin(accuracy, K) * n_per_class


def spammer_counts(n_per_class: int = 200) -> np.ndarray:
    return np.full((K, K), n_per_class / K)


@pytest.fixture
def project_counts() -> np.ndarray:
    """Evidence of a running project: 3 good inspectors, 1 decent, 2 uniform spammers."""
    return np.stack(
        [expert_counts(0.98), expert_counts(0.97), expert_counts(0.95), expert_counts(0.85)]
        + [spammer_counts(), spammer_counts()]
    )


def confusions_of(counts: np.ndarray) -> np.ndarray:
    return cs.skill_confusions(counts)


def test_trusted_inspector_outvotes_two_agreeing_spammers(project_counts):
    # given an expert who says "trouser" and two spammers who both say "bag"
    conf = confusions_of(project_counts)
    expert, spammer_a, spammer_b = conf[0], conf[4], conf[5]
    # when the posterior combines them
    post = cs.item_posterior(np.full(K, 1 / K), [expert, spammer_a, spammer_b], [1, 8, 8])
    # then the expert wins, although majority vote would say "bag"
    assert post.argmax() == 1
    assert post[1] > 0.9
    assert cs.majority_vote([0, 0, 0], [1, 8, 8], n_items=1, n_classes=K)[0] == 8


def test_newcomer_starts_at_the_pool_and_converges_to_their_own_behaviour(project_counts):
    alpha = cs.pooled_prior(project_counts)
    pool = alpha / alpha.sum(axis=1, keepdims=True)
    # a newcomer with no answers is exactly the pool: neither expert nor spammer
    newcomer = cs.confusion_matrix(np.zeros((K, K)), alpha)
    np.testing.assert_allclose(newcomer, pool)
    assert 0.5 < np.diag(newcomer).mean() < 0.95
    # after many answers, a careless newcomer (60%) looks like themselves, not like the pool
    own = cs.one_coin(0.6, K)
    for n_per_class in (10, 100, 5000):
        conf = cs.confusion_matrix(own * n_per_class, alpha)
        error = np.abs(conf - own).max()
        if n_per_class == 10:
            first_error = error
    assert error < 0.01 < first_error


def test_annotator_prior_of_a_newcomer_is_the_pool(project_counts):
    counts = np.concatenate([project_counts, np.zeros((1, K, K))])
    priors = cs.annotator_priors(counts)
    np.testing.assert_allclose(priors[-1], cs.pooled_prior(counts), rtol=1e-9)
    # and an expert's prior is already more accurate than a spammer's
    assert np.diag(priors[0]).sum() > np.diag(priors[4]).sum()


def test_agreeing_decent_inspectors_cross_the_target_and_the_rule_decides(project_counts):
    conf = confusions_of(project_counts)
    decent = conf[3]  # ~85% accurate
    prior = np.full(K, 1 / K)
    rule = {"target": 0.95, "min_answers": 2, "max_answers": 4}

    one = cs.item_posterior(prior, [decent], [6])
    two = cs.item_posterior(prior, [decent, decent], [6, 6])
    assert one.max() < 0.95 <= two.max() and two.argmax() == 6
    assert cs.stopping_decision(one, 1, **rule) == "open"
    assert cs.stopping_decision(two, 2, **rule) == "labeled"
    # a confident single answer still waits for the minimum count
    expert_one = cs.item_posterior(prior, [conf[0]], [6])
    assert expert_one.max() >= 0.95
    assert cs.stopping_decision(expert_one, 1, **rule) == "open"
    # disagreement up to the cap ends disputed
    split = cs.item_posterior(prior, [decent] * 4, [6, 0, 6, 0])
    assert split.max() < 0.95
    assert cs.stopping_decision(split, 4, **rule) == "disputed"


def test_model_prior_helps_but_cannot_override_agreeing_humans(project_counts):
    conf = confusions_of(project_counts)
    balance = np.full(K, 1 / K)
    model = np.full(K, 1e-5)
    model[3] = 1 - 9e-5  # extremely confident "dress"
    prior = cs.model_prior(balance, model, weight=cs.DEFAULT_MODEL_WEIGHT)
    assert prior.argmax() == 3
    # one decent human agreeing with the model is enough ...
    assert cs.item_posterior(prior, [conf[3]], [3]).max() >= 0.95
    # ... but two trusted humans saying "coat" overrule it
    post = cs.item_posterior(prior, [conf[0], conf[1]], [4, 4])
    assert post.argmax() == 4 and post[4] > 0.9
    # no model: the class balance
    np.testing.assert_allclose(cs.model_prior(balance, None), balance)


def test_answer_evidence_adds_the_posterior_to_the_given_label_column():
    post = np.array([0.7, 0.2, 0.1])
    ev = cs.answer_evidence(post, 2, 3)
    np.testing.assert_allclose(ev[:, 2], post)
    assert ev.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(cs.gold_evidence(0, 2, 3), [[0, 0, 1], [0, 0, 0], [0, 0, 0]])


@pytest.fixture(scope="module")
def crowd_answers():
    """3 answers per item from a seeded crowd with spammers, on real Fashion-MNIST labels."""
    rng = np.random.default_rng(7)
    truth = sim.fashion_mnist_labels("t10k")[:3000]
    crowd = sim.make_crowd(seed=7)
    tables = sim.CrowdTables.of(crowd)
    z = sim.item_difficulty(truth.size, rng)
    who = sim.assign_inspectors(truth.size, 3, len(crowd), rng).ravel()
    items = np.repeat(np.arange(truth.size), 3)
    labels = sim.answer_batch(tables, who, truth[items], z[items], rng)
    return truth, crowd, items, who, labels


def test_em_keeps_gold_fixed_and_exposes_a_spammer(crowd_answers):
    truth, crowd, items, who, labels = crowd_answers
    gold = {i: int((truth[i] + 1) % K) for i in range(0, 60)}  # deliberately "wrong" gold
    em = cs.dawid_skene_em(
        items, who, labels, n_items=truth.size, n_annotators=len(crowd), n_classes=K, gold=gold
    )
    for i, label in gold.items():
        assert em.posteriors[i].argmax() == label and em.posteriors[i].max() == 1.0
    uniform = next(i.id for i in crowd if i.kind == "spammer_uniform")
    spam = em.confusions[uniform]
    # a uniform spammer's confusion is close to uniform (about 45 answers per row here)
    assert np.abs(spam - 1 / K).mean() < 0.04
    assert cs.annotator_accuracy(spam, em.class_prior) < 0.2
    expert = next(i.id for i in crowd if i.kind == "expert")
    assert cs.annotator_accuracy(em.confusions[expert], em.class_prior) > 0.9


def test_em_beats_majority_vote_on_a_crowd_with_spammers(crowd_answers):
    truth, crowd, items, who, labels = crowd_answers
    em = cs.dawid_skene_em(
        items, who, labels, n_items=truth.size, n_annotators=len(crowd), n_classes=K
    )
    mv = cs.majority_vote(items, labels, n_items=truth.size, n_classes=K, seed=0)
    em_acc = (em.posteriors.argmax(1) == truth).mean()
    mv_acc = (mv == truth).mean()
    assert em_acc > mv_acc + 0.03
    # and its confident slice is honest to within a few points
    confident = em.posteriors.max(1) >= 0.95
    assert (em.posteriors[confident].argmax(1) == truth[confident]).mean() > 0.93


def test_em_with_one_answer_per_item_does_not_drift_below_majority_vote():
    rng = np.random.default_rng(3)
    truth = sim.fashion_mnist_labels("t10k")[:2000]
    crowd = sim.make_crowd(seed=3)
    who = sim.assign_inspectors(truth.size, 1, len(crowd), rng).ravel()
    z = sim.item_difficulty(truth.size, rng)
    labels = sim.answer_batch(sim.CrowdTables.of(crowd), who, truth, z, rng)
    items = np.arange(truth.size)
    em = cs.dawid_skene_em(
        items, who, labels, n_items=truth.size, n_annotators=len(crowd), n_classes=K
    )
    mv = cs.majority_vote(items, labels, n_items=truth.size, n_classes=K)
    assert (em.posteriors.argmax(1) == truth).mean() >= (mv == truth).mean() - 0.005


def test_item_posterior_is_cheap_enough_to_run_on_every_answer():
    # a sanity bound (not a benchmark): 1,000 posteriors of 10 answers, K=20, well within a second
    rng = np.random.default_rng(0)
    confs = rng.dirichlet(np.ones(20), size=(10, 20))
    prior = np.full(20, 1 / 20)
    labels = rng.integers(20, size=10)
    start = time.perf_counter()
    for _ in range(1000):
        post = cs.item_posterior(prior, confs, labels)
    elapsed = time.perf_counter() - start
    assert post.sum() == pytest.approx(1.0)
    print(f"item_posterior: {elapsed:.3f} ms per call")


def test_posterior_survives_many_confident_answers_without_underflow():
    conf = cs.one_coin(0.999, K)
    post = cs.item_posterior(np.full(K, 1 / K), [conf] * 400, [2] * 400)
    assert np.isfinite(post).all() and post.argmax() == 2


def test_idx_reader_and_simulated_crowd_are_deterministic():
    labels = sim.fashion_mnist_labels("t10k")
    assert labels.shape == (10_000,) and np.bincount(labels).tolist() == [1000] * 10
    a = [i.accuracy for i in sim.make_crowd(seed=5)]
    b = [i.accuracy for i in sim.make_crowd(seed=5)]
    np.testing.assert_array_equal(a, b)  # spammers' accuracy is nan: undefined
    crowd = sim.make_crowd(40, seed=1)
    assert len(crowd) == 40
    rng1, rng2 = np.random.default_rng(1), np.random.default_rng(1)
    first = [sim.answer(crowd[0], 6, 0.5, rng1) for _ in range(50)]
    assert first == [sim.answer(crowd[0], 6, 0.5, rng2) for _ in range(50)]


def test_expected_calibration_error():
    truth = np.array([0, 1, 0, 1])
    perfect = np.eye(2)[truth]
    assert cs.expected_calibration_error(perfect, truth) == pytest.approx(0.0)
    overconfident = np.array([[0.99, 0.01]] * 4)  # says class 0 at 99%, right half the time
    assert cs.expected_calibration_error(overconfident, truth) == pytest.approx(0.49)
