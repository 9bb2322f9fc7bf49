"""The consensus as a project lives it: answers arrive one by one, the stopping rule decides
when to stop asking, and the periodic refit re-estimates trust. Replayed through the very
functions the service calls (simulation/consensus_replay.py); plain numpy, no database."""

import json

import numpy as np
import pytest
from scipy import stats

from labeling import consensus as cs
from simulation import consensus_replay as cr

K = 10


def collected_answers(stream: cr.Stream, result: cr.ReplayResult):
    """The answers the replay actually used (the first ``answers_used`` of each item)."""
    taken = np.zeros(stream.n_items, int)
    keep = np.zeros(stream.items.size, bool)
    for j, i in enumerate(stream.items):
        keep[j] = taken[i] < result.answers_used[i]
        taken[i] += keep[j]
    return stream.items[keep], stream.workers[keep], stream.labels[keep]


def product_items(stream: cr.Stream, result: cr.ReplayResult) -> np.ndarray:
    keep = result.status != "unseen"
    keep[list(stream.gold)] = False
    return keep


@pytest.fixture(scope="module")
def good_crowd_run():
    """A very good crowd of 200 people at min 1 answer: most images close on one answer."""
    stream = cr.simulated_stream("good_many", n_items=3000, seed=1, max_answers=5)
    settings = cr.Settings(target=0.95, min_answers=1, max_answers=5)
    return stream, cr.replay(stream, settings)


def test_refit_on_adaptively_collected_answers_does_not_drift(good_crowd_run):
    # given the answers the stopping rule collected from a very good crowd at min 1
    stream, result = good_crowd_run
    items, workers, labels = collected_answers(stream, result)
    keep = product_items(stream, result)
    assert (result.answers_used[keep] == 1).mean() > 0.15  # many closed on one answer

    def accuracy(posteriors):
        return (posteriors.argmax(1) == stream.truth)[keep].mean()

    fit_args = dict(
        n_items=stream.n_items, n_annotators=stream.n_workers, n_classes=K, gold=stream.gold
    )
    # when the refit runs over them from scratch
    fit = cs.refit(items, workers, labels, **fit_args)
    # then EM ends at least where its first iteration was (one item of slack in 3,000) ...
    first = accuracy(fit.em.first_posteriors)
    assert accuracy(fit.em.posteriors) >= first - 0.001
    assert fit.em.converged
    # ... and the labels the service gave along the way are as good
    assert accuracy(result.posteriors) >= first - 0.002
    # while the old rule (single-answer images left out of the skill counts) drifts far below:
    # it saw only the images the first answer did not settle, a selection on the answers
    old = cs.refit(items, workers, labels, **fit_args, count_single_answers=False)
    assert accuracy(old.em.posteriors) < first - 0.05


def test_a_drifting_refit_is_not_applied(good_crowd_run, caplog):
    # given the estimate the service is running on
    stream, result = good_crowd_run
    items, workers, labels = collected_answers(stream, result)
    current = cs.SkillState(result.confusions, result.class_prior)
    # when a refit drifts (the old rule, on the same answers)
    with caplog.at_level("WARNING"):
        fit = cs.refit(
            items, workers, labels, n_items=stream.n_items, n_annotators=stream.n_workers,
            n_classes=K, gold=stream.gold, current=current, count_single_answers=False,
        )  # fmt: skip
    # then it is refused because it gets gold images wrong, and the refusal is logged
    assert not fit.applied
    assert "gold accuracy would fall" in fit.reason
    assert fit.gold_correct_after < fit.gold_correct_before
    assert "not applied" in caplog.text
    # and a sound refit from the same estimate is applied, warm, in few iterations
    sound = cs.refit(
        items, workers, labels, n_items=stream.n_items, n_annotators=stream.n_workers,
        n_classes=K, gold=stream.gold, current=current,
    )  # fmt: skip
    cold = cs.refit(
        items, workers, labels, n_items=stream.n_items, n_annotators=stream.n_workers,
        n_classes=K, gold=stream.gold,
    )  # fmt: skip
    assert sound.applied and sound.reason == ""
    assert sound.em.converged and sound.em.iterations < cold.em.iterations


@pytest.fixture(scope="module")
def hard_crowd():
    """Experts, average and careless people, a near-chance one, a class-biased one, two
    spammers and a colluding pair who copy each other's (near-chance) answers."""
    return cr.simulated_stream("hard", n_items=3000, seed=5, max_answers=10)


@pytest.fixture(scope="module")
def hard_crowd_run(hard_crowd):
    return cr.replay(hard_crowd, cr.Settings())


def names_of(stream, indices):
    return {stream.worker_kinds[i] for i in indices}


def test_a_colluding_pair_is_flagged_and_counted_as_one(hard_crowd, hard_crowd_run):
    last = hard_crowd_run.last_refit
    # the copying pair, and no honest pair, fails the agreement test
    assert [tuple(sorted(p)) for p in last.linked_pairs] == hard_crowd.colluding
    pair = next(p for p in last.pair_tests if p.flagged)
    assert pair.shared >= 20 and pair.agreements > 2 * pair.expected_agreements
    honest = [p for p in last.pair_tests if not p.flagged]
    assert len(honest) > 50
    # and their two answers on an image weigh as much as one
    a, b = hard_crowd.colluding[0]
    conf = hard_crowd_run.confusions
    prior = np.full(K, 1 / K)
    rule = dict(target=0.95, min_answers=1, max_answers=10)
    both = cs.answer_update(prior, [a, b], conf[[a, b]], [3, 3], **rule, linked_pairs=[(a, b)])
    halves = cs.item_posterior(prior, conf[[a, b]], [3, 3], weights=[0.5, 0.5])
    np.testing.assert_allclose(both.posterior, halves)
    unlinked = cs.answer_update(prior, [a, b], conf[[a, b]], [3, 3], **rule)
    assert unlinked.posterior[3] > both.posterior[3]


def test_spammers_and_near_chance_inspectors_are_found_by_the_test(hard_crowd, hard_crowd_run):
    tests = hard_crowd_run.last_refit.inspector_tests
    flagged = {hard_crowd.worker_kinds[t.annotator] for t in tests if t.near_chance}
    assert {"near_chance", "spammer_uniform", "spammer_constant"} <= flagged
    assert not flagged & {"expert", "average", "careless"}
    for t in tests:
        if t.near_chance:
            assert t.p_value < 0.01 and t.accuracy < t.floor


def test_a_strong_class_bias_shows_through_as_such(hard_crowd, hard_crowd_run):
    biased = hard_crowd.worker_kinds.index("class_biased")
    last = hard_crowd_run.last_refit
    found = [b for b in last.biases if b.annotator == biased]
    # "answers Shirt for T-shirts", estimated close to the truth (always), not shrunk to ~0.6
    assert [(b.true_class, b.given_class) for b in found] == [(0, 6)]
    assert found[0].share > 0.85
    assert hard_crowd_run.confusions[biased, 0, 6] > 0.85
    # nobody honest is reported biased
    honest = {i for i, k in enumerate(hard_crowd.worker_kinds) if k in ("expert", "average")}
    assert not {b.annotator for b in last.biases} & honest


@pytest.mark.parametrize("target", [0.95, 0.99])
def test_items_labeled_at_a_target_are_right_at_least_that_often(hard_crowd, target):
    result = cr.replay(hard_crowd, cr.Settings(target=target))
    keep = product_items(hard_crowd, result) & (result.status == "labeled")
    right = int((result.posteriors.argmax(1) == hard_crowd.truth)[keep].sum())
    n = int(keep.sum())
    assert n > 2000
    # not significantly below the target (one-sided exact binomial test at 1 %)
    assert stats.binom.cdf(right, n, target) > 0.01, (right, n)
    # and the service's monitor, the stopping rule replayed on gold images, agrees
    check = result.last_refit.stopping_on_gold
    assert check["target"] == target and check["gold_stopped"] > 20
    assert check["p_value"] > 0.01


def test_leave_one_out_evidence_does_not_let_an_answer_vouch_for_itself():
    trusted = cs.one_coin(0.99, K)
    prior = np.full(K, 1 / K)
    rule = dict(target=0.95, min_answers=1, max_answers=5)
    # one trusted answer closes the image, but says nothing about its giver
    alone = cs.answer_update(prior, [7], [trusted], [4], **rule)
    assert alone.decision == "labeled" and alone.evidence == {}
    # two agreeing answers: each is judged by the other one
    pair = cs.answer_update(prior, [7, 8], [trusted, trusted], [4, 4], **rule)
    assert set(pair.evidence) == {7, 8}
    judged_by_other = cs.item_posterior(prior, [trusted], [4])
    np.testing.assert_allclose(pair.evidence[7][:, 4], judged_by_other)
    assert pair.evidence[7][:, [i for i in range(K) if i != 4]].sum() == 0
    # and the evidence given on closing can be rebuilt from the stored posterior (undo)
    rebuilt = cs.closing_evidence(pair.posterior, [7, 8], [trusted, trusted], [4, 4])
    np.testing.assert_allclose(rebuilt[7], pair.evidence[7], atol=1e-9)


def test_a_jsonl_file_replays_exactly_like_the_stream_it_came_from(tmp_path):
    stream = cr.simulated_stream("default", n_items=300, seed=2, max_answers=5, gold_rate=0)
    path = tmp_path / "answers.jsonl"
    cr.stream_to_jsonl(stream, path)
    again = cr.stream_from_jsonl(path)
    settings = cr.Settings(target=0.95, max_answers=5, refit_every=200)
    first, second = cr.replay(stream, settings), cr.replay(again, settings)
    # items and workers are numbered by first appearance, which is stream order here too
    order = np.unique(stream.items, return_index=True)[1]
    items_in_order = stream.items[np.sort(order)]
    np.testing.assert_allclose(first.posteriors[items_in_order], second.posteriors)
    assert list(first.status[items_in_order]) == list(second.status)


def test_a_bad_answer_line_is_refused_with_its_line_number(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps({"item": "a", "worker": "w", "label": 1}) + "\n" + '{"item": "b"}\n')
    with pytest.raises(ValueError, match="answers.jsonl:2"):
        cr.stream_from_jsonl(path)
