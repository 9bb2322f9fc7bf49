"""Is this image like the ones the model was calibrated on? Per-image scores and a drift alarm.

The thresholds' guarantee (``ml.thresholds``) holds for images *exchangeable* with the held-out
calibration images: drawn the same way. A photo taken differently (padded onto a white canvas,
tinted, blurred …) is not, and the model can be confidently wrong on it; calibrated confidence
says nothing there. So every image is also scored for how unusual it is, in two spaces:

* **features**: the model's penultimate features (the pooled ``conv_head`` output the classifier
  reads). The score is the class-conditional Mahalanobis distance with one shared covariance
  (Lee et al. 2018): the distance to the nearest class mean, in a metric fitted on the reference
  features. The covariance is shrunk towards a scaled identity (Ledoit & Wolf 2004), since
  1,280 dimensions need more than a few thousand images for a plain estimate.
* **image statistics**: channel means, contrast, colourfulness, the border's level and
  uniformity, and edge energy of the model's input; again a Mahalanobis distance to their
  reference mean. They catch what a photo's framing and colour do before the network sees it.

Each score becomes a **conformal p-value** against the same score on held-out images (never
trained on): ``p = (1 + #{held-out scores ≥ s}) / (n + 1)``. For an image exchangeable with the
held-out ones, ``P(p ≤ α) ≤ α``, whatever the model; ``flag`` combines the two scores'
p-values (Bonferroni: flagged when either is ≤ α/2), so at most an ``α`` share of ordinary images
is flagged (sent to humans), and a much larger share of shifted ones.

**Drift** is a sustained rise in the share of *odd* images, those whose combined p-value is at
most a looser level (``DEFAULT_DRIFT_LEVEL``, 0.1; ordinary images: at most 10 %). Counting odd
rather than unusual images sees a moderate shift that moves most images' scores but few of them
past the routing level, at no cost in routing. A Bernoulli CUSUM (Page 1954) accumulates the
log-likelihood ratio of "odd rate ``p1``" against "odd rate ``p0``" and alarms when it crosses
``h``; the images since it was last zero are the estimated start of the shift. ``h`` comes from
the exact average run length of the CUSUM's Markov chain (:func:`cusum_threshold`), chosen so
that images exchangeable with the held-out ones raise a false alarm less than once per
``arl`` images even at the upper end of the flag rate's uncertainty (a conformal threshold's
realised rate varies with the calibration draw, Vovk 2012): ``p0`` is that upper bound.

Statistics are fitted at training time (features of the training images, ``ml.training``) or,
for a model trained elsewhere, on half of the project's held-out images, and calibrated on
held-out images the reference never saw. They are saved as ``shift.npz`` beside the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse, stats
from scipy.sparse import linalg as sparse_linalg

SHIFT_FILE = "shift.npz"
DEFAULT_ALPHA = 0.01  # share of ordinary images sent to humans as unusual
DEFAULT_DRIFT_LEVEL = 0.10  # the drift monitor counts images with p ≤ this ("odd")
DEFAULT_P1 = 0.30  # the share of odd images the drift alarm is designed to catch quickly
DEFAULT_ARL = 1_000_000  # images between false drift alarms, at least, on ordinary images
BORDER = 0.08  # the outer 8 % of each side is "the border"


# --- the reference: means and metrics in two spaces ------------------------------------------


def shrunk_covariance(x: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariance of the rows of ``x``: the sample covariance pulled towards
    ``trace/d · I`` by the data-driven amount that minimises the expected squared error."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    mu = np.trace(s) / d
    delta = ((s - mu * np.eye(d)) ** 2).sum() / d
    # beta = (1/n²) Σ_i ||x_i x_iᵀ − S||²_F / d, expanded so no d×d matrix per row is formed.
    norms = (xc**2).sum(axis=1)
    quad = np.einsum("ij,jk,ik->i", xc, s, xc)
    beta = (norms**2 - 2 * quad + (s**2).sum()).sum() / (n**2 * d)
    shrink = 1.0 if delta <= 0 else min(beta, delta) / delta
    return shrink * mu * np.eye(d) + (1 - shrink) * s


def _whitening(cov: np.ndarray) -> np.ndarray:
    """``W`` with ``Wᵀ W = cov⁻¹`` (eigen-decomposition, tiny eigenvalues floored)."""
    values, vectors = np.linalg.eigh(cov)
    floor = max(values.max(), 1e-12) * 1e-8
    return (vectors / np.sqrt(np.maximum(values, floor))).T


@dataclass
class Metric:
    """Squared Mahalanobis distance to the nearest of ``centres`` under a shared metric."""

    centres: np.ndarray  # C×D (one row: a single Gaussian)
    whitening: np.ndarray  # D×D

    @classmethod
    def fit(cls, x: np.ndarray, groups: np.ndarray | None = None) -> Metric:
        x = np.asarray(x, dtype=np.float64)
        if groups is None:
            centres = x.mean(axis=0, keepdims=True)
            residual = x - centres
        else:
            groups = np.asarray(groups)
            present = np.unique(groups)
            centres = np.stack([x[groups == g].mean(axis=0) for g in present])
            residual = x - centres[np.searchsorted(present, groups)]
        cov = shrunk_covariance(residual)
        return cls(centres.astype(np.float32), _whitening(cov).astype(np.float32))

    def score(self, x: np.ndarray) -> np.ndarray:
        z = np.asarray(x, dtype=np.float32) @ self.whitening.T
        c = self.centres @ self.whitening.T
        d2 = (z**2).sum(1)[:, None] - 2 * z @ c.T + (c**2).sum(1)[None, :]
        return np.maximum(d2.min(axis=1), 0.0).astype(np.float64)


def image_statistics(batch_uint8: np.ndarray) -> np.ndarray:
    """N×9 statistics of ``N×3×S×S`` uint8 model inputs: channel means (3), grey contrast,
    colourfulness, border mean and spread, mean gradient magnitude, mean |Laplacian|."""
    x = np.asarray(batch_uint8, dtype=np.float32) / 255.0
    grey = x.mean(axis=1)
    n, s = grey.shape[0], grey.shape[-1]
    b = max(1, round(s * BORDER))
    ring = np.ones((s, s), dtype=bool)
    ring[b:-b, b:-b] = False
    border = grey[:, ring]
    rg, yb = x[:, 0] - x[:, 1], 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    colourful = np.sqrt(rg.reshape(n, -1).std(1) ** 2 + yb.reshape(n, -1).std(1) ** 2) + 0.3 * (
        np.sqrt(rg.reshape(n, -1).mean(1) ** 2 + yb.reshape(n, -1).mean(1) ** 2)
    )
    gx, gy = np.diff(grey, axis=2), np.diff(grey, axis=1)
    gradient = 0.5 * (np.abs(gx).reshape(n, -1).mean(1) + np.abs(gy).reshape(n, -1).mean(1))
    lap = (
        4 * grey[:, 1:-1, 1:-1]
        - grey[:, :-2, 1:-1]
        - grey[:, 2:, 1:-1]
        - grey[:, 1:-1, :-2]
        - grey[:, 1:-1, 2:]
    )
    return np.column_stack(
        [
            x.reshape(n, 3, -1).mean(2),
            grey.reshape(n, -1).std(1),
            colourful,
            border.mean(1),
            border.std(1),
            gradient,
            np.abs(lap).reshape(n, -1).mean(1),
        ]
    ).astype(np.float64)


# --- conformal p-values ------------------------------------------------------------------------


def conformal_pvalues(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(1 + #{calibration ≥ s}) / (n + 1)`` per score (higher score = more unusual)."""
    cal = np.sort(np.asarray(calibration, dtype=np.float64))
    s = np.asarray(scores, dtype=np.float64)
    at_least = len(cal) - np.searchsorted(cal, s, side="left")
    p = (1.0 + at_least) / (len(cal) + 1.0)
    return np.where(np.isnan(s), np.nan, p)


@dataclass
class ShiftScores:
    """Per image: the raw scores, their p-values, the combined p-value and the flag."""

    feature_score: np.ndarray
    image_score: np.ndarray
    feature_p: np.ndarray
    image_p: np.ndarray

    @property
    def pvalue(self) -> np.ndarray:
        """Bonferroni combination of the two p-values (each alone is valid)."""
        return np.minimum(1.0, 2 * np.minimum(self.feature_p, self.image_p))

    def masked(self, failed: np.ndarray) -> ShiftScores:
        """NaN where ``failed`` (images that could not be decoded have no score)."""

        def nan(a):
            return np.where(failed, np.nan, a)

        return ShiftScores(
            *(nan(a) for a in (self.feature_score, self.image_score, self.feature_p, self.image_p))
        )


@dataclass
class ShiftReference:
    """What an image is compared with: fitted metrics and the held-out calibration scores."""

    features: Metric
    images: Metric
    feature_calibration: np.ndarray = field(default_factory=lambda: np.zeros(0))
    image_calibration: np.ndarray = field(default_factory=lambda: np.zeros(0))
    alpha: float = DEFAULT_ALPHA
    source: str = ""  # where the metrics were fitted, in words
    fitted_on: str = "training"  # "training" images, or half of the "heldout" ones

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        image_stats: np.ndarray,
        *,
        alpha: float = DEFAULT_ALPHA,
        source: str = "",
    ) -> ShiftReference:
        """Metrics from reference images (features grouped by class, image statistics as one
        Gaussian); calibrate on other images with :meth:`calibrate` before use."""
        return cls(
            Metric.fit(features, labels), Metric.fit(image_stats), alpha=alpha, source=source
        )

    def calibrate(self, features: np.ndarray, image_stats: np.ndarray) -> ShiftReference:
        """Held-out images' scores (images the metrics were not fitted on)."""
        self.feature_calibration = np.sort(self.features.score(features))
        self.image_calibration = np.sort(self.images.score(image_stats))
        return self

    @property
    def calibrated(self) -> bool:
        return len(self.feature_calibration) > 0 and len(self.image_calibration) > 0

    def score(self, features: np.ndarray, image_stats: np.ndarray) -> ShiftScores:
        fs, is_ = self.features.score(features), self.images.score(image_stats)
        return ShiftScores(
            fs,
            is_,
            conformal_pvalues(self.feature_calibration, fs),
            conformal_pvalues(self.image_calibration, is_),
        )

    def flags(self, scores: ShiftScores) -> np.ndarray:
        return scores.pvalue <= self.alpha

    def summary(
        self,
        *,
        drift_level: float = DEFAULT_DRIFT_LEVEL,
        p1: float = DEFAULT_P1,
        arl: float = DEFAULT_ARL,
    ) -> dict:
        """What the service keeps with the model version (plain values): the routing level,
        the calibration size, and the drift alarm built for it (None when too few held-out
        images exist to flag anything at the routing level)."""
        n = int(min(len(self.feature_calibration), len(self.image_calibration)))
        cusum = (
            cusum_threshold(alpha=drift_level, n_calibration=n, p1=p1, arl=arl)
            if can_flag(self.alpha, n)
            else None
        )
        return {
            "alpha": self.alpha,
            "drift_level": drift_level,
            "calibration_items": n,
            "source": self.source,
            "cusum": None if cusum is None else {"p0": cusum.p0, "p1": cusum.p1, "h": cusum.h},
            "false_alarm_images": arl,
        }

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SHIFT_FILE
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            feature_centres=self.features.centres,
            feature_whitening=self.features.whitening,
            image_centres=self.images.centres,
            image_whitening=self.images.whitening,
            feature_calibration=self.feature_calibration,
            image_calibration=self.image_calibration,
            alpha=np.array(self.alpha),
            source=np.array(self.source),
            fitted_on=np.array(self.fitted_on),
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ShiftReference | None:
        path = Path(directory) / SHIFT_FILE
        if not path.exists():
            return None
        with np.load(path) as data:
            return cls(
                Metric(data["feature_centres"], data["feature_whitening"]),
                Metric(data["image_centres"], data["image_whitening"]),
                data["feature_calibration"],
                data["image_calibration"],
                float(data["alpha"]),
                str(data["source"]),
                str(data["fitted_on"]),
            )


def reference_from_heldout(
    features: np.ndarray,
    labels: np.ndarray,
    image_stats: np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> ShiftReference:
    """For a model whose training images are unknown (imported): fit the metrics on a random
    half of each class of the held-out images and calibrate on the other half, so that the
    calibration scores come from images the metrics never saw (what conformal validity needs)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fit_mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        fit_mask[idx[: len(idx) // 2]] = True
    reference = ShiftReference.fit(
        features[fit_mask],
        labels[fit_mask],
        image_stats[fit_mask],
        alpha=alpha,
        source=f"half of {len(labels)} held-out images (the other half calibrates)",
    )
    reference.fitted_on = "heldout"
    return reference.calibrate(features[~fit_mask], image_stats[~fit_mask])


# --- the drift alarm ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cusum:
    """A Bernoulli CUSUM on per-image flags: ``p0`` the ordinary flag rate, ``p1`` the rate to
    catch, ``h`` the alarm level (in log-likelihood-ratio units)."""

    p0: float
    p1: float
    h: float

    @property
    def up(self) -> float:  # one flag
        return math.log(self.p1 / self.p0)

    @property
    def down(self) -> float:  # one ordinary image (negative)
        return math.log((1 - self.p1) / (1 - self.p0))


@dataclass
class DriftState:
    """The monitor's running state (kept per project and model version)."""

    statistic: float = 0.0
    seen: int = 0  # images scored since the monitor started
    flagged: int = 0
    run_start: int = 0  # index of the first image since the statistic was last zero
    run_flagged: int = 0  # flags among the images since then

    def as_dict(self) -> dict:
        return {
            "statistic": self.statistic,
            "seen": self.seen,
            "flagged": self.flagged,
            "run_start": self.run_start,
            "run_flagged": self.run_flagged,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> DriftState:
        data = data or {}
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def drift_update(state: DriftState, flag: bool, cusum: Cusum) -> bool:
    """Feed one image's flag; True when the alarm level is crossed (the state keeps counting).
    ``state.run_start`` then is the estimated first image of the shift."""
    state.seen += 1
    state.flagged += int(flag)
    if state.statistic <= 0.0:
        state.run_start = state.seen - 1
        state.run_flagged = 0
    state.statistic = max(0.0, state.statistic + (cusum.up if flag else cusum.down))
    state.run_flagged += int(flag)
    if state.statistic == 0.0:
        state.run_flagged = 0
    return state.statistic >= cusum.h


def cusum_arl(cusum: Cusum, rate: float, resolution: int = 20) -> float:
    """Average number of images until the CUSUM alarms when each is flagged with probability
    ``rate``, from the Markov chain of its statistic on a grid of ``down/resolution`` steps
    (Brook & Evans 1972). Exact for the discretised chain; the grid rounds ``up`` to whole
    steps, which the resolution keeps negligible."""
    step = -cusum.down / resolution
    up = max(1, round(cusum.up / step))
    states = math.ceil(cusum.h / step)  # 0 .. states-1 are below the alarm level
    i = np.arange(states)
    rows = np.concatenate([i, i[i + up < states]])
    cols = np.concatenate([np.maximum(0, i - resolution), (i + up)[i + up < states]])
    values = np.concatenate(
        [np.full(states, 1 - rate), np.full(int((i + up < states).sum()), rate)]
    )
    transitions = sparse.csr_matrix((values, (rows, cols)), shape=(states, states))
    arl = sparse_linalg.spsolve(
        sparse.identity(states, format="csr") - transitions, np.ones(states)
    )
    return float(arl[0])


def flag_rate_upper(alpha: float, n_calibration: int, confidence: float = 0.95) -> float:
    """Upper ``confidence`` bound on the share of ordinary images flagged by the combined test
    at level ``alpha`` with ``n_calibration`` held-out scores per signal. Given the calibration
    draw, one conformal threshold's realised rate is Beta(l, n + 1 − l) with l = ⌊a(n + 1)⌋
    (Vovk 2012); the combination flags when either signal's p-value is ≤ α/2, so its rate is at
    most the sum of two such rates at a = α/2 (each bounded at ``(1 + confidence)/2``)."""
    n = max(1, int(n_calibration))
    rank = max(1, math.floor(alpha / 2 * (n + 1)))
    one = float(stats.beta.ppf((1 + confidence) / 2, rank, n + 1 - rank))
    return min(1.0, 2 * one)


def can_flag(alpha: float, n_calibration: int) -> bool:
    """Whether any image can be flagged: the smallest combined p-value, 2/(n + 1), is ≤ α."""
    return 2.0 / (n_calibration + 1) <= alpha


def cusum_threshold(
    *,
    alpha: float = DEFAULT_ALPHA,
    n_calibration: int,
    p1: float = DEFAULT_P1,
    arl: float = DEFAULT_ARL,
) -> Cusum | None:
    """The drift alarm for flags at level ``alpha`` from ``n_calibration`` held-out scores:
    in control at ``p0`` = the flag rate's upper bound (:func:`flag_rate_upper`), built to
    catch ``p1`` (at least twice ``p0``), with the lowest alarm level ``h`` whose run length
    between false alarms at ``p0`` is at least ``arl`` images. None when too few held-out
    images exist to flag anything (:func:`can_flag`)."""
    if not can_flag(alpha, n_calibration):
        return None
    p0 = flag_rate_upper(alpha, n_calibration)
    p1 = min(0.9, max(p1, 2 * p0))
    if p0 >= p1:
        return None
    # The run length grows with h: bisect on a quarter-unit grid.
    low, high = 0, 160  # h = units / 4, at most 40 (run lengths far beyond any stream)
    while low < high:
        mid = (low + high) // 2
        run = cusum_arl(Cusum(p0, p1, mid / 4), p0)
        if not math.isfinite(run) or run <= 0 or run >= arl:  # ill-conditioned only when huge
            high = mid
        else:
            low = mid + 1
    return Cusum(p0, p1, low / 4)
