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

**A mild shift** moves every image's score a little and few of them past either level (photos
re-encoded at a low quality: their odd share rises from about 9 % to 13 %, under the CUSUM's
conservative in-control rate). The **window test** sees it: per window of ``DEFAULT_WINDOW`` fresh
images and per signal, a one-sided Mann-Whitney rank test of the window's scores against the
calibration scores of held-out images drawn *at random* from the stream (``window_*`` arrays;
a held-out set that mixes in the queue's hard images is not such a sample, so a caller says which
rows are random). Its null distribution has the calibration draw in it (the variance of the
rank-sum statistic counts both samples), so no upper bound on a realised rate is needed; its
level per window and signal is ``window/(2·arl)``, so ordinary images raise a false alarm at most
once per ``arl`` images in expectation, whatever the correlation between windows.

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
DEFAULT_WINDOW = 250  # fresh images per window of the window test
MIN_WINDOW_CALIBRATION = 200  # random held-out images the window test needs, at least
# A window whose statistic is at most -LOOKBACK_Z (one-sided 2.3 % on ordinary images) is
# suspicious though it does not alarm: a change that began inside it moved part of it. When a
# later window alarms, the look-back reaches back over the run of suspicious windows just before
# it, so the wrong auto-labels given between the change and the alarming window do not stay final.
LOOKBACK_Z = 2.0
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
    # p-values against the random calibration images only (the window test's); None without
    window_feature_p: np.ndarray | None = None
    window_image_p: np.ndarray | None = None

    @property
    def pvalue(self) -> np.ndarray:
        """Bonferroni combination of the two p-values (each alone is valid)."""
        return np.minimum(1.0, 2 * np.minimum(self.feature_p, self.image_p))

    def masked(self, failed: np.ndarray) -> ShiftScores:
        """NaN where ``failed`` (images that could not be decoded have no score)."""

        def nan(a):
            return None if a is None else np.where(failed, np.nan, a)

        return ShiftScores(
            *(
                nan(a)
                for a in (
                    self.feature_score,
                    self.image_score,
                    self.feature_p,
                    self.image_p,
                    self.window_feature_p,
                    self.window_image_p,
                )
            )
        )

    def window_pvalues(self, index: int) -> tuple[float, float] | None:
        """One image's two p-values for the window test (None without them, or unscored)."""
        if self.window_feature_p is None or self.window_image_p is None:
            return None
        pair = (float(self.window_feature_p[index]), float(self.window_image_p[index]))
        return pair if all(math.isfinite(p) for p in pair) else None


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
    # The calibration images drawn at random from the stream (the window test's reference).
    window_feature_calibration: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window_image_calibration: np.ndarray = field(default_factory=lambda: np.zeros(0))

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

    def calibrate(
        self,
        features: np.ndarray,
        image_stats: np.ndarray,
        random_rows: np.ndarray | None = None,
    ) -> ShiftReference:
        """Held-out images' scores (images the metrics were not fitted on). ``random_rows``:
        which of them were drawn at random from the stream (default: all, as a random
        validation split is); only those calibrate the window test."""
        feature_scores = self.features.score(features)
        image_scores = self.images.score(image_stats)
        self.feature_calibration = np.sort(feature_scores)
        self.image_calibration = np.sort(image_scores)
        rows = (
            np.ones(len(feature_scores), dtype=bool)
            if random_rows is None
            else np.asarray(random_rows, dtype=bool)
        )
        self.window_feature_calibration = np.sort(feature_scores[rows])
        self.window_image_calibration = np.sort(image_scores[rows])
        return self

    @property
    def calibrated(self) -> bool:
        return len(self.feature_calibration) > 0 and len(self.image_calibration) > 0

    def score(self, features: np.ndarray, image_stats: np.ndarray) -> ShiftScores:
        fs, is_ = self.features.score(features), self.images.score(image_stats)
        windowed = len(self.window_feature_calibration) and len(self.window_image_calibration)
        return ShiftScores(
            fs,
            is_,
            conformal_pvalues(self.feature_calibration, fs),
            conformal_pvalues(self.image_calibration, is_),
            conformal_pvalues(self.window_feature_calibration, fs) if windowed else None,
            conformal_pvalues(self.window_image_calibration, is_) if windowed else None,
        )

    def flags(self, scores: ShiftScores) -> np.ndarray:
        return scores.pvalue <= self.alpha

    def summary(
        self,
        *,
        drift_level: float = DEFAULT_DRIFT_LEVEL,
        p1: float = DEFAULT_P1,
        arl: float = DEFAULT_ARL,
        window: int = DEFAULT_WINDOW,
    ) -> dict:
        """What the service keeps with the model version (plain values): the routing level,
        the calibration size, the drift alarm built for it (None when too few held-out
        images exist to flag anything at the routing level) and the window test (None when
        ``window`` is 0 or fewer than ``MIN_WINDOW_CALIBRATION`` held-out images are random)."""
        n = int(min(len(self.feature_calibration), len(self.image_calibration)))
        n_random = int(
            min(len(self.window_feature_calibration), len(self.window_image_calibration))
        )
        test = window_test(n_calibration=n_random, size=window, arl=arl)
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
            "random_calibration_items": n_random,
            "window_size": int(window),
            "window": None if test is None else test.as_dict(),
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
            window_feature_calibration=self.window_feature_calibration,
            window_image_calibration=self.window_image_calibration,
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
                # References saved before the window test have no random calibration.
                data["window_feature_calibration"]
                if "window_feature_calibration" in data
                else np.zeros(0),
                data["window_image_calibration"]
                if "window_image_calibration" in data
                else np.zeros(0),
            )


def reference_from_heldout(
    features: np.ndarray,
    labels: np.ndarray,
    image_stats: np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    random_rows: np.ndarray | None = None,
) -> ShiftReference:
    """For a model whose training images are unknown (imported): fit the metrics on a random
    half of each class of the held-out images and calibrate on the other half, so that the
    calibration scores come from images the metrics never saw (what conformal validity needs).
    ``random_rows``: which held-out images were drawn at random from the stream (default all)."""
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
    random = None if random_rows is None else np.asarray(random_rows, dtype=bool)[~fit_mask]
    return reference.calibrate(features[~fit_mask], image_stats[~fit_mask], random)


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


# --- the window test ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowTest:
    """Per window of ``size`` fresh images and per signal, a one-sided rank test: do the
    window's scores exceed the ``n_calibration`` random calibration images' scores? It alarms
    when the standardised statistic is at most ``-z``."""

    size: int
    z: float
    n_calibration: int

    def statistic(self, mean_p: float, count: int) -> float:
        """The standardised Mann-Whitney statistic of ``count`` images whose p-values against
        the calibration images average ``mean_p``. Each p-value is ``(1 + c)/(n + 1)`` with
        ``c`` the calibration scores at least the image's; under exchangeability the mean of
        ``c/n`` is 1/2 with variance ``(n + m + 1)/(12 n m)``, the rank-sum test's, which
        already counts the calibration draw's own variability."""
        n, m = self.n_calibration, max(1, count)
        share = ((n + 1) * mean_p - 1) / n
        return (share - 0.5) / math.sqrt((n + m + 1) / (12 * n * m))

    def as_dict(self) -> dict:
        return {"size": self.size, "z": self.z, "n_calibration": self.n_calibration}


def window_test(
    *, n_calibration: int, size: int = DEFAULT_WINDOW, arl: float = DEFAULT_ARL
) -> WindowTest | None:
    """The window test for ``n_calibration`` random calibration images: its level per window
    and signal is ``size/(2·arl)`` (two signals), so images exchangeable with the calibration
    images raise a false alarm at most once per ``arl`` images in expectation (a union bound,
    valid however the windows, which share one calibration draw, are correlated). None when
    off (``size`` 0) or with fewer than ``MIN_WINDOW_CALIBRATION`` random images."""
    if size <= 0 or n_calibration < MIN_WINDOW_CALIBRATION:
        return None
    level = min(0.5, size / (2.0 * arl))
    return WindowTest(int(size), float(stats.norm.isf(level)), int(n_calibration))


@dataclass
class WindowState:
    """The window test's running state (kept per project and model version)."""

    count: int = 0  # images in the current window
    feature_sum: float = 0.0  # sums of their window p-values
    image_sum: float = 0.0
    windows: int = 0  # windows tested since the monitor started
    last: dict | None = None  # the last window's statistics

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "feature_sum": self.feature_sum,
            "image_sum": self.image_sum,
            "windows": self.windows,
            "last": self.last,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> WindowState:
        data = data or {}
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def window_update(state: WindowState, pvalues: tuple[float, float], test: WindowTest) -> bool:
    """Feed one image's two window p-values (features, image statistics); True when it closes
    a window whose scores are significantly higher than the calibration images' in either
    signal. ``state.last`` then holds the window's statistics; the next image starts a new
    window either way."""
    state.count += 1
    state.feature_sum += float(pvalues[0])
    state.image_sum += float(pvalues[1])
    if state.count < test.size:
        return False
    feature_z = test.statistic(state.feature_sum / state.count, state.count)
    image_z = test.statistic(state.image_sum / state.count, state.count)
    state.windows += 1
    state.last = {
        "images": state.count,
        "feature_z": round(feature_z, 3),
        "image_z": round(image_z, 3),
        "level": round(-test.z, 3),
    }
    state.count, state.feature_sum, state.image_sum = 0, 0.0, 0.0
    return min(feature_z, image_z) <= -test.z


def window_suspicious(last: dict | None) -> bool:
    """Whether a closed window (``WindowState.last``) looked shifted in either signal at the
    look-back's milder level (``LOOKBACK_Z``), alarming or not."""
    if not last:
        return False
    return min(last.get("feature_z", 0.0), last.get("image_z", 0.0)) <= -LOOKBACK_Z
