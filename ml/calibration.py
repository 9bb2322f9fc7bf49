"""Temperature scaling, per class confidence calibration, and calibration error.

A single temperature T divides the logits before the softmax. It is fitted on held-out labels by
minimising the negative log-likelihood; it never changes the arg-max, so accuracy is untouched and
only the confidences move (Guo et al., 2017, "On Calibration of Modern Neural Networks").

One temperature calibrates the confidences *on average over classes*: a class the model is
reliably right about (trousers) stays under-confident and a hard one (shirts) over-confident. The
threshold floor (no auto-label under the target) reads the confidence as "how likely this label
is right", which is a per predicted class question, so a second, per class step follows:
top-label calibration (Gupta & Ramdas, 2022, "Top-label calibration and multiclass-to-binary
reductions"): for each predicted class k, a Platt map ``σ(a_k · logit(p) + b_k)`` of the
temperature-scaled confidence p, fitted on the held-out items predicted k, shrunk towards the
identity (a = 1, b = 0) so a class with few items keeps roughly its temperature-scaled
confidence. The map rises with p (a > 0), so within a class it keeps the order of images (a
class's thresholds select the same images) and it never changes the arg-max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


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


# Pull of the per class map towards the identity: a penalty of STRENGTH · ((a − 1)² + b²) on the
# log-likelihood, i.e. about as strong as a handful of items. Measured (docs/ml.md,
# bench/class_calibration.py): it wins back 8-55 % of the floor's cost in per class scope (most
# with little evidence) while the worst class stays within a point of the target on average.
CLASS_CALIBRATION_STRENGTH = 1.0
_SLOPE_BOUNDS = (0.05, 20.0)
_INTERCEPT_BOUNDS = (-20.0, 20.0)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class ClassCalibration:
    """Per predicted class Platt maps of the top-label confidence (see the module docstring)."""

    slopes: np.ndarray
    intercepts: np.ndarray

    @classmethod
    def identity(cls, num_classes: int) -> ClassCalibration:
        return cls(np.ones(num_classes), np.zeros(num_classes))

    @classmethod
    def from_list(cls, rows: Sequence[Sequence[float]]) -> ClassCalibration:
        """From the checkpoint's ``class_calibration``: one ``[slope, intercept]`` per class."""
        values = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(values).all() or (values[:, 0] <= 0).any():
            raise ValueError("class_calibration needs a finite [slope > 0, intercept] per class")
        return cls(values[:, 0].copy(), values[:, 1].copy())

    def to_list(self) -> list[list[float]]:
        return [[float(a), float(b)] for a, b in zip(self.slopes, self.intercepts, strict=True)]

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """``probs`` (N×K, temperature-scaled) with each row's top probability replaced by its
        class's calibrated confidence and the other classes rescaled to share the rest. The new
        top is kept at least as large as the new runner-up, so the arg-max never changes. Rows
        with NaN (failed images) stay NaN."""
        probs = np.asarray(probs, dtype=np.float64)
        if len(self.slopes) != probs.shape[1]:
            raise ValueError(f"{len(self.slopes)} class maps for {probs.shape[1]} classes")
        out = probs.copy()
        ok = ~np.isnan(probs).any(axis=1)
        if not ok.any():
            return out
        p = probs[ok]
        rows = np.arange(len(p))
        top = p.argmax(axis=1)
        conf = p[rows, top]
        z = self.slopes[top] * _logit(conf) + self.intercepts[top]
        new = 1.0 / (1.0 + np.exp(-z))
        rest = np.maximum(1.0 - conf, 1e-300)
        second = np.where(np.arange(p.shape[1]) == top[:, None], -1.0, p).max(axis=1)
        # Where the map would let the runner-up overtake, stop at the tie: new / (1 - new) ≥
        # second / rest.
        new = np.maximum(new, second / (rest + second))
        scaled = p * ((1.0 - new) / rest)[:, None]
        scaled[rows, top] = new
        out[ok] = scaled
        return out


def fit_class_calibration(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    strength: float = CLASS_CALIBRATION_STRENGTH,
) -> ClassCalibration:
    """Per predicted class Platt maps fitted on held-out ``probs`` (temperature-scaled) and
    ``labels`` by penalised maximum likelihood (a class nobody was predicted as keeps the
    identity)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    k = probs.shape[1]
    slopes, intercepts = np.ones(k), np.zeros(k)
    pred = probs.argmax(axis=1)
    z_all = _logit(probs.max(axis=1))
    right_all = (pred == labels).astype(np.float64)
    for c in range(k):
        mask = pred == c
        if not mask.any():
            continue
        z, right = z_all[mask], right_all[mask]

        def loss(ab: np.ndarray, z=z, right=right) -> float:
            s = ab[0] * z + ab[1]
            log_lik = right * -np.logaddexp(0.0, -s) + (1 - right) * -np.logaddexp(0.0, s)
            return float(-log_lik.sum() + strength * ((ab[0] - 1.0) ** 2 + ab[1] ** 2))

        fit = minimize(
            loss, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[_SLOPE_BOUNDS, _INTERCEPT_BOUNDS]
        )
        slopes[c], intercepts[c] = fit.x
    return ClassCalibration(slopes, intercepts)


def calibrated(
    logits: np.ndarray, temperature: float, class_calibration: ClassCalibration | None = None
) -> np.ndarray:
    """Calibrated probabilities: the temperature, then the per class map when there is one."""
    probs = softmax(logits, temperature)
    return probs if class_calibration is None else class_calibration.apply(probs)


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
