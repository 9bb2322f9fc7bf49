"""The plain-numpy/PyTorch parts of embeddings: vectors from the prediction pass, perceptual
hashes, the vector index file, the reuse rule's calibration, prototypes, confident learning."""

import io

import numpy as np
import pytest
from PIL import Image

from ml import prototypes, reuse
from ml.embeddings import pack, unpack
from ml.label_errors import find_label_issues
from ml.perceptual_hash import NO_HASH, HashTable, hash_distance, image_hashes
from ml.vector_index import EXPANSION_SEARCH, IndexUnreadable, LayeredIndex, VectorIndex


def unit(rng, n, d=32):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def product_photo(seed: int) -> Image.Image:
    """A textured object on a plain backdrop, like a product shot."""
    rng = np.random.default_rng(seed)
    image = np.zeros((120, 100, 3), dtype=np.uint8)
    texture = rng.integers(60, 255, size=(16, 12, 3), dtype=np.uint8)
    image[20:100, 20:80] = np.kron(texture, np.ones((5, 5, 1), dtype=np.uint8))[:80, :60]
    return Image.fromarray(image)


def test_embeddings_come_from_the_prediction_pass_and_do_not_change_it():
    from ml.inference import Predictor

    predictor = Predictor.imagenet(input_size=64, resize_mode="pad")
    images = [np.asarray(product_photo(s)) for s in range(3)] + [b"not an image"]
    plain = predictor.predict(images)
    both = predictor.predict_and_embed(images)
    np.testing.assert_allclose(both.probs[:3], plain.probs[:3], atol=1e-6)
    assert set(both.errors) == {3} and np.isnan(both.embeddings[3]).all()
    norms = np.linalg.norm(both.embeddings[:3], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    assert both.embeddings.shape[1] == predictor.embedding_dim == 1280


def test_stored_vectors_round_trip_as_float16():
    x = unit(np.random.default_rng(0), 5)
    back = unpack([pack(v) for v in x], 32)
    assert np.abs(back - x).max() < 2e-3
    with pytest.raises(ValueError):
        unpack([pack(x[0])], 16)


def encoded(image: Image.Image, fmt="PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_hashes_survive_reencoding_resizing_and_screenshots_but_not_other_photos():
    rng = np.random.default_rng(3)
    original = product_photo(1)
    base = np.array(image_hashes(encoded(original)))
    for kind in ("reencode", "resize", "screenshot"):
        copy, _ = reuse.reused_copy(original, rng, kind)
        assert hash_distance(base, np.array(image_hashes(encoded(copy)))) <= 4, kind
    other = np.array(image_hashes(encoded(product_photo(2))))
    assert hash_distance(base, other) > 10


def test_blank_pictures_match_nothing_by_hash():
    white = np.array(image_hashes(encoded(Image.new("RGB", (50, 40), (250, 250, 250)))))
    grey = np.array(image_hashes(encoded(Image.new("RGB", (90, 30), (120, 120, 120)))))
    assert (white == NO_HASH).all() and hash_distance(white, grey) == 64


def test_the_hash_table_finds_the_closest_earlier_image():
    table = HashTable()
    table.add(np.array([5, 9, 12]), np.array([[0b10, 0b10], [0b111, 0b111], [-1, -1]]))
    assert table.nearest(np.array([0b11, 0b11])) == (5, 1)
    assert table.nearest(np.array([0b11, 0b11]), exclude_from=9) == (5, 1)
    assert table.nearest(np.array([-1, -1]), exclude_from=12)[0] != 12
    table.add(np.array([5]), np.array([[1, 1]]))  # a key it holds is not added twice
    assert len(table) == 3


def test_the_index_file_reopens_and_a_damaged_one_is_refused(tmp_path):
    x = unit(np.random.default_rng(1), 500)
    index = VectorIndex(32)
    index.add(np.arange(100, 600), x)
    path = tmp_path / "1-599.usearch"
    index.save(path)
    viewed = VectorIndex.load(path, ndim=32, view=True)
    keys, distances = viewed.search(x[:3], 2)
    assert keys[:, 0].tolist() == [100, 101, 102] and distances[:, 0].max() < 0.02
    with pytest.raises(ValueError):
        viewed.add(np.array([1]), x[:1])  # a view is read-only
    # a reopened file searches as hard as the index that wrote it (usearch's own default, 64,
    # lost 6 points of recall at a million vectors)
    assert viewed.index.expansion_search == index.index.expansion_search == EXPANSION_SEARCH
    with pytest.raises(IndexUnreadable):
        VectorIndex.load(path, ndim=64)  # another space's shape
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexUnreadable):
        VectorIndex.load(path, ndim=32)


def test_the_layered_index_merges_base_and_delta():
    rng = np.random.default_rng(2)
    x = unit(rng, 50)
    base = VectorIndex(32)
    base.add(np.arange(40), x[:40])
    layered = LayeredIndex(32, base)
    assert layered.add(np.arange(40, 50), x[40:]) == 10
    assert layered.add(np.arange(40, 50), x[40:]) == 0  # caught up already
    keys, _ = layered.search(x[[3, 45]], 1)
    assert keys[:, 0].tolist() == [3, 45]
    empty = VectorIndex(32).search(x[:1], 3)
    assert (empty[0] == -1).all() and np.isinf(empty[1]).all()


def test_calibration_keeps_false_matches_under_the_bound_and_keeps_recall():
    rng = np.random.default_rng(4)
    n = 4000
    is_copy = np.arange(n) < n // 2
    similarity = np.where(is_copy, rng.uniform(0.85, 1.0, n), rng.uniform(0.2, 0.9, n))
    hashes = np.where(is_copy, rng.integers(0, 12, n), rng.integers(6, 40, n))
    ok = is_copy.copy()
    ev = reuse.Evidence(similarity, hashes, ok, ok)
    cal = reuse.calibrate(ev, is_copy, max_false_match=0.005)
    assert cal.false_match_bound <= 0.005 and cal.recall > 0.5
    flagged, _ = reuse.decide(ev, cal.thresholds)
    assert (flagged & ~is_copy).sum() == cal.false_matches
    # Too few queries to prove the bound: nothing is ever flagged.
    small = reuse.calibrate(
        reuse.Evidence(similarity[:100], hashes[:100], ok[:100], ok[:100]), is_copy[:100]
    )
    assert small.thresholds == reuse.NEVER


def test_a_copy_matched_to_the_wrong_photo_is_a_false_match():
    ev = reuse.Evidence(np.array([0.99]), np.array([50]), np.array([False]), np.array([False]))
    assert reuse.outcome(ev, reuse.ReuseThresholds(0.9, -1)) == (0, 1)


def test_prototype_thresholds_follow_their_definitions():
    rng = np.random.default_rng(5)
    d = 32
    direction = unit(rng, 1, d)[0]
    examples = unit(rng, 20, d) * 2.5 + direction  # spread: some examples lie far out
    negatives = unit(rng, 2000, d)
    center, cal = prototypes.calibrate(
        examples, negatives, false_accept=0.01, human_share=0.05, target_recall=0.9
    )
    neg_d = prototypes.cosine_distance(negatives, center)
    assert (neg_d <= cal.accept_distance).mean() <= 0.01
    assert (neg_d <= cal.reject_distance).mean() <= 0.06
    assert cal.accept_distance < cal.reject_distance
    decisions = prototypes.route(
        np.array([0.0, cal.reject_distance, cal.reject_distance + 0.01]),
        cal.accept_distance,
        cal.reject_distance,
    )
    assert decisions.tolist() == ["accept", "human", "reject"]
    with pytest.raises(ValueError):
        prototypes.calibrate(examples[:1], negatives)


def test_confident_learning_finds_injected_label_errors():
    rng = np.random.default_rng(6)
    n, k = 3000, 4
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), truth] += 3.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    noisy = truth.copy()
    flip = rng.random(n) < 0.1
    noisy[flip] = (truth[flip] + 1) % k
    issues = find_label_issues(probs, noisy)
    flagged = np.zeros(n, bool)
    flagged[issues.flagged] = True
    assert (flagged & flip).sum() / flagged.sum() > 0.9  # precision
    assert (flagged & flip).sum() / flip.sum() > 0.6  # recall
    assert (issues.suggested == truth[issues.flagged]).mean() > 0.9
    assert len(find_label_issues(probs, truth).flagged) < 0.02 * n  # clean labels: few flags
