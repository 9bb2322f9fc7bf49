"""Photo augmentation (ml.augment) and the cached views training picks from (ml.feature_cache)."""

import io

import numpy as np
from PIL import Image
from torch import nn

from ml.augment import photo_augment
from ml.feature_cache import build_cache, pick_views
from ml.preprocess import PreprocessConfig
from tests.ml.shapes import SHAPES, shape_image


def test_an_augmented_view_is_a_pure_function_of_the_image_and_the_seed():
    img = shape_image("circle", np.random.default_rng(0), size=40)
    one = photo_augment(img, np.random.default_rng((7, 3)), flip=True)
    again = photo_augment(img, np.random.default_rng((7, 3)), flip=True)
    other = photo_augment(img, np.random.default_rng((7, 4)), flip=True)
    assert one.mode == "RGB"
    assert np.array_equal(np.asarray(one), np.asarray(again))
    assert not (one.size == other.size and np.array_equal(np.asarray(one), np.asarray(other)))


def test_views_vary_the_way_photos_do():
    # Over many draws, the views differ from the original in size (scale, padding, cropping,
    # rotation) and in colour (a tint on a grey image).
    grey = Image.fromarray(np.random.default_rng(1).integers(0, 255, (28, 28), dtype=np.uint8))
    views = [photo_augment(grey, np.random.default_rng(i)) for i in range(60)]
    assert sum(v.size != (28, 28) for v in views) >= 20
    tinted = [np.ptp(np.asarray(v, dtype=int).mean(axis=(0, 1))) > 5 for v in views]
    assert sum(tinted) >= 10


def _png(label: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    shape_image(SHAPES[label], np.random.default_rng(seed), size=40).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_cache_holds_each_view_of_each_item_and_training_picks_half_augmented():
    pre = PreprocessConfig(input_size=16)
    sources = [_png(i % 3, i) for i in range(6)] + [b"not an image"]
    labels = np.array([i % 3 for i in range(7)])
    skipped: dict[int, str] = {}
    cache = build_cache(
        nn.Identity(),
        (3, 16, 16),
        sources,
        labels,
        sources[:2],
        labels[:2],
        pre,
        True,
        skipped,
        lambda done, total: None,
        augment_views=2,
        seed=5,
    )
    assert list(skipped) == [6]
    # Views: the images, their mirrors, two augmented versions; 6 decodable items each.
    assert (cache.views, cache.clean_views, cache.items) == (4, 2, 6)
    assert cache.train.shape == (24, 3, 16, 16)
    assert cache.train_labels.tolist() == [0, 1, 2, 0, 1, 2] * 4
    mirrored = cache.train[6:12].float().flip(-1)
    assert np.allclose(mirrored.numpy(), cache.train[:6].float().numpy(), atol=1e-2)
    assert cache.train_stats.shape == (6, 9) and cache.val_stats.shape == (2, 9)
    rows = pick_views(np.random.default_rng(0), 1000, cache_views=4, clean_views=2, share=0.5)
    views = rows // 1000
    assert set(views.tolist()) == {0, 1, 2, 3}
    assert 0.45 < (views >= 2).mean() < 0.55
