"""The feature cache that makes fine-tuning affordable on a CPU.

Every training image is decoded, resized and pushed through the frozen trunk exactly once; only
the trunk's output is kept (float16 for training items, float32 for validation items, so that
validation logits are exactly what inference computes). Trials that train fewer top blocks derive
their deeper cut from this cache by running the extra frozen blocks over it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml import backbone
from ml.preprocess import ImageSource, PreprocessConfig, normalize, to_uint8_array


@dataclass
class FeatureCache:
    train: torch.Tensor  # N×C×H×W float16 (2N with flips: originals then mirrors)
    train_labels: torch.Tensor
    val: torch.Tensor  # M×C×H×W float32 (2M with test-time flips: originals then mirrors)
    val_labels: torch.Tensor  # M
    flipped: bool

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train, self.val))


def _decode_all(
    sources: Sequence[ImageSource], pre: PreprocessConfig, skipped: dict[int, str], offset: int
):
    """Yield ``(position, uint8 array)`` for each decodable source; record failures."""
    for i, src in enumerate(sources):
        try:
            yield i, to_uint8_array(src, pre)
        except Exception as exc:  # one bad image must not fail the training run
            skipped[offset + i] = f"{type(exc).__name__}: {exc}"


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
    val_flip: bool = False,
) -> FeatureCache:
    total = len(train_sources) + len(val_sources)
    done = 0

    def encode(sources, labels, dtype, with_flip, offset):
        nonlocal done
        n = len(sources)
        copies = 2 if with_flip else 1
        out = torch.empty((n * copies, *feature_shape), dtype=dtype)
        kept: list[int] = []
        buffer: list[np.ndarray] = []

        def flush():
            if not buffer:
                return
            batch = np.stack(buffer)
            start = len(kept) - len(buffer)
            feats = _run(trunk, batch, pre)
            out[start : start + len(buffer)] = feats.to(dtype)
            if with_flip:
                mirrored = _run(trunk, np.ascontiguousarray(batch[..., ::-1]), pre)
                out[n + start : n + start + len(buffer)] = mirrored.to(dtype)
            buffer.clear()

        for i, array in _decode_all(sources, pre, skipped, offset):
            kept.append(i)
            buffer.append(array)
            if len(buffer) == chunk:
                flush()
                done_now = done + kept[-1] + 1
                report(done_now, total)
        flush()
        done += n
        report(done, total)
        m = len(kept)
        if with_flip:
            features = torch.cat([out[:m], out[n : n + m]])
            kept_labels = np.concatenate([labels[kept], labels[kept]])
        else:
            features = out[:m]
            kept_labels = labels[kept]
        return features, torch.as_tensor(kept_labels, dtype=torch.int64)

    train_feats, train_y = encode(train_sources, train_labels, torch.float16, flip, 0)
    val_feats, val_y = encode(
        val_sources, val_labels, torch.float32, val_flip, len(train_sources)
    )
    if val_flip:  # the labels once: the mirrors follow the originals in the same order
        val_y = val_y[: len(val_y) // 2]
    return FeatureCache(train_feats, train_y, val_feats, val_y, flip)


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
