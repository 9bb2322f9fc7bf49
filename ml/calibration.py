"""Temperature scaling and calibration error.

A single temperature T divides the logits before the softmax. It is fitted on held-out labels by
minimising the negative log-likelihood; it never changes the arg-max, so accuracy is untouched and
only the confidences move (Guo et al., 2017, "On Calibration of Modern Neural Networks").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64 (stable for large logits)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    bounds: tuple[float, float] = (0.05, 20.0),
    tol: float = 1e-4,
) -> float:
    """Temperature minimising held-out NLL.

    NLL is smooth and (in practice) unimodal in log T, so a coarse grid followed by a golden
    section search on log T is exact enough and, unlike LBFGS, cannot step to a negative or
    exploding temperature on a tiny or perfectly separated validation set.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    grid = np.linspace(lo, hi, 41)
    losses = [nll(logits, labels, math.exp(g)) for g in grid]
    best = int(np.argmin(losses))
    a = grid[max(best - 1, 0)]
    b = grid[min(best + 1, len(grid) - 1)]
    inv_phi = (math.sqrt(5) - 1) / 2
    c = b - inv_phi * (b - a)
    d = a + inv_phi * (b - a)
    fc, fd = nll(logits, labels, math.exp(c)), nll(logits, labels, math.exp(d))
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = nll(logits, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = nll(logits, labels, math.exp(d))
    return float(math.exp((a + b) / 2))


@dataclass(frozen=True)
class ReliabilityBins:
    """Top-label reliability diagram data: one entry per equal-width confidence bin."""

    edges: np.ndarray  # n_bins + 1 bin edges in [0, 1]
    confidence: np.ndarray  # mean confidence of the items in each bin (nan if empty)
    accuracy: np.ndarray  # fraction correct in each bin (nan if empty)
    counts: np.ndarray  # items per bin

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if total == 0:
            return 0.0
        used = self.counts > 0
        gaps = np.abs(self.accuracy[used] - self.confidence[used])
        return float(np.sum(gaps * self.counts[used]) / total)


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> ReliabilityBins:
    """Bin top-label confidences into ``n_bins`` equal-width bins (right-closed, as is usual)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right-closed bins: a confidence of exactly 1.0 belongs to the last bin, 0.0 to the first.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(idx, weights=conf, minlength=n_bins) / counts
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / counts
    return ReliabilityBins(edges=edges, confidence=confidence, accuracy=accuracy, counts=counts)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: count-weighted mean |accuracy − confidence| over equal-width bins."""
    return reliability(probs, labels, n_bins).ece
