"""The feature cache that makes fine-tuning affordable on a CPU.

Every training image is decoded, resized and pushed through the frozen trunk exactly once; only
the trunk's output is kept (float16 for training items, float32 for validation items, so that
validation logits are exactly what inference computes). Training items may be cached in several
views: mirrored, and photo-augmented (``ml.augment``) versions, each pushed through the trunk
once. Trials that train fewer top blocks derive their deeper cut from this cache by running the
extra frozen blocks over it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml import backbone
from ml.augment import photo_augment
from ml.preprocess import ImageSource, PreprocessConfig, normalize, open_image, resize
from ml.shift import image_statistics


@dataclass
class FeatureCache:
    """Trunk outputs. ``train`` holds ``views`` blocks of the same N items, one after the other:
    block 0 the images as they are, block 1 their mirrors (with ``flip``), then the augmented
    views (``ml.augment``). A trial picks one view per item per epoch."""

    train: torch.Tensor  # (views·N)×C×H×W float16
    train_labels: torch.Tensor  # views·N
    val: torch.Tensor  # M×C×H×W float32
    val_labels: torch.Tensor
    flipped: bool
    views: int = 1  # blocks in ``train``
    clean_views: int = 1  # the first blocks that are the images themselves (and mirrors)
    # Image statistics (ml.shift.image_statistics) of the items as they are (view 0): the shift
    # reference is fitted on the training items' and calibrated on the validation items'.
    train_stats: np.ndarray | None = None
    val_stats: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train, self.val))

    @property
    def items(self) -> int:
        return len(self.train_labels) // self.views


def _decode_all(
    sources: Sequence[ImageSource],
    pre: PreprocessConfig,
    skipped: dict[int, str],
    offset: int,
    augment_views: int,
    seed: int,
):
    """Yield ``(position, [uint8 array per view])`` for each decodable source; record failures.
    View 0 is the image itself; views 1.. are photo augmentations of it, each drawn from its own
    seeded generator so that the cache is a pure function of the data and the seed."""
    for i, src in enumerate(sources):
        try:
            img = open_image(src, draft_size=pre.input_size)
            arrays = [_array(resize(img, pre))]
            for v in range(augment_views):
                rng = np.random.default_rng((seed, offset + i, v))
                arrays.append(_array(resize(photo_augment(img, rng, flip=True), pre)))
            yield i, arrays
        except Exception as exc:  # one bad image must not fail the training run
            skipped[offset + i] = f"{type(exc).__name__}: {exc}"


def _array(img) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def build_cache(
    trunk: nn.Module,
    feature_shape: tuple[int, ...],
    train_sources: Sequence[ImageSource],
    train_labels: np.ndarray,
    val_sources: Sequence[ImageSource],
    val_labels: np.ndarray,
    pre: PreprocessConfig,
    flip: bool,
    skipped: dict[int, str],
    report: Callable[[int, int], None],
    chunk: int = 256,
    augment_views: int = 0,
    seed: int = 0,
) -> FeatureCache:
    total = len(train_sources) + len(val_sources)
    done = 0

    def encode(sources, labels, dtype, with_flip, augmented, offset):
        nonlocal done
        n = len(sources)
        # Per view: the image itself, its mirror (flip), the augmented views.
        views = 1 + int(with_flip) + augmented
        out = torch.empty((views, n, *feature_shape), dtype=dtype)
        stats = np.zeros((n, 9), dtype=np.float32)
        kept: list[int] = []
        buffer: list[list[np.ndarray]] = []

        def flush():
            if not buffer:
                return
            start = len(kept) - len(buffer)
            plain = np.stack([arrays[0] for arrays in buffer])
            out[0, start : start + len(buffer)] = _run(trunk, plain, pre).to(dtype)
            stats[start : start + len(buffer)] = image_statistics(plain)
            v = 1
            if with_flip:
                mirrored = np.ascontiguousarray(plain[..., ::-1])
                out[v, start : start + len(buffer)] = _run(trunk, mirrored, pre).to(dtype)
                v += 1
            for a in range(augmented):
                batch = np.stack([arrays[1 + a] for arrays in buffer])
                out[v + a, start : start + len(buffer)] = _run(trunk, batch, pre).to(dtype)
            buffer.clear()

        for i, arrays in _decode_all(sources, pre, skipped, offset, augmented, seed):
            kept.append(i)
            buffer.append(arrays)
            if len(buffer) == chunk:
                flush()
                done_now = done + kept[-1] + 1
                report(done_now, total)
        flush()
        done += n
        report(done, total)
        m = len(kept)
        features = out[:, :m].reshape(views * m, *feature_shape)
        kept_labels = np.tile(labels[kept], views)
        return features, torch.as_tensor(kept_labels, dtype=torch.int64), views, stats[:m]

    train_feats, train_y, views, train_stats = encode(
        train_sources, train_labels, torch.float16, flip, augment_views, 0
    )
    val_feats, val_y, _, val_stats = encode(
        val_sources, val_labels, torch.float32, False, 0, len(train_sources)
    )
    return FeatureCache(
        train_feats,
        train_y,
        val_feats,
        val_y,
        flip,
        views=views,
        clean_views=1 + int(flip),
        train_stats=train_stats,
        val_stats=val_stats,
    )


def pick_views(
    rng: np.random.Generator, n_items: int, cache_views: int, clean_views: int, share: float
) -> np.ndarray:
    """Row of the cache to train on for each of ``n_items`` this epoch: with probability
    ``share`` one of the augmented views, otherwise the image itself (or its mirror). Keeping
    half of every epoch on clean images keeps in-distribution accuracy (bench/learning_curve.py
    compares both recipes)."""
    view = rng.integers(0, clean_views, size=n_items)
    augmented = cache_views - clean_views
    if augmented > 0 and share > 0:
        use = rng.random(n_items) < share
        view = np.where(use, clean_views + rng.integers(0, augmented, size=n_items), view)
    return view * n_items


@torch.inference_mode()
def _run(module: nn.Module, batch_uint8: np.ndarray, pre: PreprocessConfig) -> torch.Tensor:
    x = normalize(batch_uint8, pre).contiguous(memory_format=torch.channels_last)
    return module(x).contiguous()


@torch.inference_mode()
def derive(
    blocks: nn.Module, features: torch.Tensor, dtype: torch.dtype, chunk: int = 512
) -> torch.Tensor:
    """Run extra frozen blocks over a cache, chunk by chunk."""
    parts = []
    for start in range(0, len(features), chunk):
        x = features[start : start + chunk].float().contiguous(memory_format=torch.channels_last)
        parts.append(blocks(x).contiguous().to(dtype))
    return torch.cat(parts) if parts else features.new_empty((0,))


def extra_blocks(model: nn.Module, deepest: int, depth: int) -> nn.Module:
    """The frozen blocks between the first cache's cut and the cut for ``depth``."""
    blocks = backbone.flat_blocks(model)
    return nn.Sequential(*blocks[len(blocks) - deepest : len(blocks) - depth]).eval()
