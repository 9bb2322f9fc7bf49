"""The alignment check of reused photos (ml.reuse_verify) and its arm of the reuse rule: an
edited copy aligns with its original, a different photo of the same kind of product does not,
and calibration picks the arm that separates them."""

import io

import numpy as np
import pytest
from PIL import Image

from ml import reuse
from ml.fashion_mnist import load_split
from ml.reuse_verify import NO_MATCH, batch_signatures, fingerprint, match_scores


@pytest.fixture(scope="module")
def photos():
    images, labels = load_split("test")
    return images, labels


def as_photo(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).resize((224, 224), Image.Resampling.BICUBIC).convert("RGB")


def nearest_same_class(images, labels, i: int, count: int) -> list[int]:
    """The ``count`` photos of the same class that look most like photo ``i`` (hard negatives:
    on Fashion-MNIST, where every shot of a class is alike)."""
    same = np.flatnonzero(labels[:3000] == labels[i])
    same = same[same != i]
    flat = images[same].reshape(len(same), -1).astype(np.float32)
    target = images[i].reshape(-1).astype(np.float32)
    return same[np.argsort(((flat - target) ** 2).sum(axis=1))[:count]].tolist()


@pytest.mark.parametrize("kind", ["reencode", "resize", "crop", "tint", "rotate", "screenshot"])
def test_an_edited_copy_aligns_with_its_original_and_not_with_look_alikes(photos, kind):
    images, labels = photos
    rng = np.random.default_rng(5)
    for i in (0, 1, 2):
        original = as_photo(images[i])
        copy, _ = reuse.reused_copy(original, rng, kind)
        others = nearest_same_class(images, labels, i, 5)
        scores = match_scores(
            fingerprint(copy),
            [fingerprint(original), *(fingerprint(as_photo(images[j])) for j in others)],
        )
        assert scores[0] >= 0.95, (kind, i, scores)
        assert scores[0] > scores[1:].max(), (kind, i, scores)


def test_a_fingerprint_is_small_and_keeps_the_content_s_shape(photos):
    images, _ = photos
    trousers = as_photo(images[2])  # a tall, narrow object on a black backdrop
    data = fingerprint(trousers)
    width, height = data[0], data[1]
    assert len(data) == 2 + width * height <= 4098
    assert height == 64 and width < 40  # the backdrop was trimmed away, the aspect kept


def test_a_blank_picture_matches_nothing():
    blank = fingerprint(Image.new("RGB", (100, 100), (240, 240, 240)))
    textured = fingerprint(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 50, 3), dtype=np.uint8))
    )
    assert match_scores(blank, [blank, textured]).tolist() == [NO_MATCH, NO_MATCH]
    assert match_scores(textured, [blank])[0] == NO_MATCH
    assert match_scores(textured, []).size == 0


def test_an_unreadable_image_fails_alone_in_a_batch(photos):
    images, _ = photos
    buffer = io.BytesIO()
    as_photo(images[0]).save(buffer, "PNG")
    hashes, prints, errors = batch_signatures([buffer.getvalue(), b"not an image"])
    assert prints[0] is not None and prints[1] is None
    assert list(errors) == [1] and hashes[1].tolist() == [0, 0]


def test_calibration_takes_the_alignment_arm_when_only_it_separates_copies():
    rng = np.random.default_rng(4)
    n = 4000
    is_copy = np.arange(n) < n // 2
    # Similarity and hash say nothing (same distributions); alignment separates.
    similarity = rng.uniform(0.9, 1.0, n)
    hashes = rng.integers(0, 20, n)
    aligned = np.where(is_copy, rng.uniform(0.97, 1.0, n), rng.uniform(0.6, 0.96, n))
    ok = is_copy.copy()
    ev = reuse.Evidence(similarity, hashes, ok, ok, aligned=aligned, aligned_is_original=ok)
    cal = reuse.calibrate(ev, is_copy, max_false_match=0.005)
    assert cal.thresholds.aligned < 0.975 and cal.recall > 0.98
    assert cal.thresholds.similarity == reuse.UNUSED_SCORE
    flagged, arm = reuse.decide(ev, cal.thresholds)
    assert (flagged & ~is_copy).sum() == cal.false_matches
    assert set(arm[flagged & is_copy].tolist()) == {"aligned"}
    # Without alignment scores (rows from before fingerprints) the arm stays off.
    old = reuse.calibrate(reuse.Evidence(similarity, hashes, ok, ok), is_copy)
    assert old.thresholds.aligned == reuse.UNUSED_SCORE


def test_the_fast_correlation_equals_the_direct_one_at_every_offset():
    # The coarse search transforms at the frame's own size (a circular correlation) and reuses
    # window spreads across templates; both must give what correlating window by window gives.
    from ml.reuse_verify import _Frames

    rng = np.random.default_rng(3)
    frames = rng.uniform(0, 255, (3, 32, 32)).astype(np.float32)
    frames[1, :, 2:30] = 40.3  # flat windows correlate with nothing
    fast = _Frames(frames, pad=32)
    for h, w in ((32, 32), (28, 24), (24, 32), (24, 24)):
        template = rng.uniform(0, 255, (h, w)).astype(np.float32)
        got = fast.ncc(template)
        t = template - template.mean()
        for k in range(3):
            for y in range(32 - h + 1):
                for x in range(32 - w + 1):
                    window = frames[k, y : y + h, x : x + w].astype(np.float64)
                    window = window - window.mean()
                    spread = np.sqrt((window * window).sum())
                    expected = (
                        0.0
                        if spread < 1e-6
                        else (window * t).sum() / spread / np.sqrt((t * t).sum())
                    )
                    assert got[k, y, x] == pytest.approx(expected, abs=1e-4)
