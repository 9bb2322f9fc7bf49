"""Splitting a timm EfficientNet-style model into a frozen trunk and a trainable top.

Fine-tuning only the top blocks lets training run the frozen trunk once per image and cache its
output: every later epoch and every grid trial then trains from the cache, which is what makes
fine-tuning affordable on two CPU cores. Both halves share parameters with the original model, so
training the top trains the model itself and the full model is saved afterwards.

"Blocks" are counted individually (timm's stages flattened): EfficientNet-Lite0 has 16, in
stages of 1, 2, 2, 3, 3, 4, 1. ``trainable_blocks=k`` trains the last k blocks plus the head
(``conv_head``, its BN and the classifier); ``k=0`` trains the head alone.
"""

from __future__ import annotations

import torch
from torch import nn


def flat_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's blocks, stage by stage, as one list."""
    blocks: list[nn.Module] = []
    for stage in model.blocks:
        blocks.extend(stage if isinstance(stage, nn.Sequential) else [stage])
    return blocks


def num_blocks(model: nn.Module) -> int:
    return len(flat_blocks(model))


class Trunk(nn.Module):
    """Stem plus the first ``len(blocks) - trainable_blocks`` blocks (the frozen part)."""

    def __init__(self, model: nn.Module, trainable_blocks: int) -> None:
        super().__init__()
        blocks = flat_blocks(model)
        _check_depth(trainable_blocks, len(blocks))
        self.conv_stem = model.conv_stem
        self.bn1 = model.bn1
        self.blocks = nn.Sequential(*blocks[: len(blocks) - trainable_blocks])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.bn1(self.conv_stem(x)))


class Top(nn.Module):
    """The last ``trainable_blocks`` blocks, ``conv_head``, its BN and the classifier."""

    def __init__(self, model: nn.Module, trainable_blocks: int) -> None:
        super().__init__()
        blocks = flat_blocks(model)
        _check_depth(trainable_blocks, len(blocks))
        self.blocks = nn.Sequential(*blocks[len(blocks) - trainable_blocks :])
        self.conv_head = model.conv_head
        self.bn2 = model.bn2
        self._model = [model]  # a list, so the whole model is not registered as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._model[0].forward_head(self.bn2(self.conv_head(self.blocks(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features (what the classifier reads), for the shift reference."""
        return self._model[0].forward_head(
            self.bn2(self.conv_head(self.blocks(x))), pre_logits=True
        )

    @property
    def classifier(self) -> nn.Module:
        return self._model[0].get_classifier()

    def parameters_with_head(self) -> list[nn.Parameter]:
        # forward_head's classifier is not a registered submodule of Top: add it explicitly.
        own = list(self.parameters())
        ids = {id(p) for p in own}
        return own + [p for p in self.classifier.parameters() if id(p) not in ids]


def _check_depth(trainable_blocks: int, total: int) -> None:
    if not 0 <= trainable_blocks <= total:
        raise ValueError(f"trainable_blocks must be in 0..{total}, got {trainable_blocks}")


def split(model: nn.Module, trainable_blocks: int) -> tuple[Trunk, Top]:
    """``(trunk, top)`` with ``top(trunk(x)) == model(x)``; the trunk is frozen (no grads)."""
    trunk, top = Trunk(model, trainable_blocks), Top(model, trainable_blocks)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in top.parameters_with_head():
        p.requires_grad_(True)
    return trunk, top
