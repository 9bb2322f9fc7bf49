"""Reused-photo detection: the edits a reuser makes, the rule that calls two photos one, and how
its two thresholds are calibrated.

A reused photo is rarely a byte-identical copy (sha256 catches those at ingest). It is
re-encoded, resized, cropped, tinted, slightly rotated or screenshotted. Three signals, each
against the candidates (a new photo's nearest neighbours by embedding, and its closest perceptual
hash among all earlier photos):
  - the embedding's cosine similarity;
  - the perceptual-hash distance;
  - the alignment score (``ml.reuse_verify``): the two photos' pixels aligned under the edits
    above, then correlated. On uniform product shots, where a different photo of the same model
    is as similar by embedding and hash as an edited copy, only this one separates them.
The rule is their OR:

    reused  ⇔  similarity ≥ T_sim  or  hash distance ≤ T_hash  or  alignment ≥ T_aligned

Calibration builds positives by editing a sample of photos and negatives from other photos, and
picks the thresholds with the highest recall whose false-match rate on negatives is, with 95 %
confidence (Clopper-Pearson), at most ``max_false_match``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from scipy.stats import beta

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]

DEFAULT_MAX_FALSE_MATCH = 0.002
HASH_GRID = tuple(range(0, 17))
UNUSED_HASH = -1  # the hash arm is off
UNUSED_SCORE = 2.0  # a similarity or alignment arm is off (scores are at most 1)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def edit_reencode(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Saved again as a JPEG of quality 30-85."""
    return _jpeg(image, int(rng.integers(30, 86)))


def edit_resize(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Scaled by 0.35-1.6 (a thumbnail, or an upscaled copy)."""
    scale = float(rng.uniform(0.35, 1.6))
    w, h = image.size
    return image.resize((max(16, round(w * scale)), max(16, round(h * scale))))


def edit_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Up to 20 % of the width and of the height cut away, split at random between the sides."""
    w, h = image.size
    fx, fy = rng.uniform(0.05, 0.2, 2)
    left, top = rng.uniform(0, fx), rng.uniform(0, fy)
    return image.crop(
        (round(left * w), round(top * h), round(w - (fx - left) * w), round(h - (fy - top) * h))
    )


def edit_tint(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A colour filter: each channel scaled by 0.7-1.3 and shifted by up to ±30 levels."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    tinted = array * rng.uniform(0.7, 1.3, 3) + rng.uniform(-30, 30, 3)
    return Image.fromarray(np.clip(tinted, 0, 255).astype(np.uint8))


def edit_rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Turned by up to ±8°, the corners filled with black or the frame grown to fit."""
    return image.convert("RGB").rotate(
        float(rng.uniform(-8, 8)),
        resample=Image.Resampling.BILINEAR,
        expand=bool(rng.integers(2)),
        fillcolor=(0, 0, 0),
    )


SCREEN_COLOURS = ((255, 255, 255), (242, 242, 242), (28, 28, 30), (0, 0, 0))


def edit_screenshot(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shown on a phone and screenshotted: bars above and below (status bar, app chrome),
    margins at the sides, in a light or dark theme."""
    image = image.convert("RGB")
    w, h = image.size
    width = round(w * rng.uniform(1.0, 1.3))
    top, bottom = round(h * rng.uniform(0.08, 0.25)), round(h * rng.uniform(0.05, 0.25))
    colour = SCREEN_COLOURS[int(rng.integers(len(SCREEN_COLOURS)))]
    canvas = Image.new("RGB", (width, h + top + bottom), colour)
    canvas.paste(image, ((width - w) // 2, top))
    return canvas


EDITS: dict[str, Edit] = {
    "reencode": edit_reencode,
    "resize": edit_resize,
    "crop": edit_crop,
    "tint": edit_tint,
    "rotate": edit_rotate,
    "screenshot": edit_screenshot,
}


def edit_combined(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Three different edits in a random order, then a JPEG re-encode (how a copy travels)."""
    names = rng.choice([n for n in EDITS if n != "reencode"], size=3, replace=False)
    for name in names:
        image = EDITS[str(name)](image, rng)
    return edit_reencode(image, rng)


ALL_EDITS: dict[str, Edit] = {**EDITS, "combined": edit_combined}


def reused_copy(
    image: Image.Image, rng: np.random.Generator, kind: str | None = None
) -> tuple[Image.Image, str]:
    """An edited copy of ``image`` as a reuser would make it, and the edit's name."""
    kind = kind or str(rng.choice(list(ALL_EDITS)))
    return ALL_EDITS[kind](image.convert("RGB"), rng), kind


@dataclass(frozen=True)
class ReuseThresholds:
    similarity: float  # cosine similarity at or above which two photos are one
    hash_distance: int  # perceptual-hash distance at or below which they are one (-1: off)
    aligned: float = UNUSED_SCORE  # alignment score at or above which they are one (2: off)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Evidence:
    """Per query (a new photo), its best candidates among earlier photos: the most similar one
    by embedding, the closest one by perceptual hash and the best aligned one (often all the
    same photo)."""

    similarity: np.ndarray  # best cosine similarity
    hash_distance: np.ndarray  # best hash distance
    # For calibration only: whether each best candidate is the query's true original (False
    # for every candidate of a query that has none).
    similar_is_original: np.ndarray | None = None
    hashed_is_original: np.ndarray | None = None
    aligned: np.ndarray | None = None  # best alignment score (None: not measured)
    aligned_is_original: np.ndarray | None = None

    def subset(self, mask: np.ndarray) -> Evidence:
        return Evidence(
            **{
                name: None if value is None else np.asarray(value)[mask]
                for name, value in self.__dict__.items()
            }
        )


def decide(evidence: Evidence, t: ReuseThresholds) -> tuple[np.ndarray, np.ndarray]:
    """``(flagged, arm)``: which queries are reused, and which arm names the matched photo:
    ``aligned`` first, then ``similarity``, then ``hash``."""
    by_similarity = np.asarray(evidence.similarity) >= t.similarity
    by_hash = np.asarray(evidence.hash_distance) <= t.hash_distance
    by_aligned = (
        np.asarray(evidence.aligned) >= t.aligned
        if evidence.aligned is not None
        else np.zeros_like(by_similarity)
    )
    arm = np.where(by_aligned, "aligned", np.where(by_similarity, "similarity", "hash"))
    return by_similarity | by_hash | by_aligned, arm


def names_original(evidence: Evidence, t: ReuseThresholds) -> np.ndarray:
    """Per query: whether it is flagged with its true original (calibration evidence only)."""
    flagged, arm = decide(evidence, t)
    aligned_right = (
        evidence.aligned_is_original
        if evidence.aligned_is_original is not None
        else np.zeros(len(flagged), dtype=bool)
    )
    right = np.where(
        arm == "aligned",
        aligned_right,
        np.where(arm == "similarity", evidence.similar_is_original, evidence.hashed_is_original),
    )
    return flagged & right.astype(bool)


def outcome(evidence: Evidence, t: ReuseThresholds) -> tuple[int, int]:
    """``(true matches, false matches)``: a flag is true only if it names the true original."""
    flagged, _ = decide(evidence, t)
    true = names_original(evidence, t)
    return int(true.sum()), int((flagged & ~true).sum())


def false_match_bound(false_matches: int, queries: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of the false-match rate."""
    if queries <= 0 or false_matches >= queries:
        return 1.0
    return float(beta.ppf(confidence, false_matches + 1, queries - false_matches))


@dataclass(frozen=True)
class Calibration:
    thresholds: ReuseThresholds
    recall: float  # share of reused copies flagged with their own original
    precision: float
    false_matches: int
    false_match_bound: float  # upper bound of false matches per query
    positives: int
    queries: int

    def as_dict(self) -> dict:
        return {**asdict(self), "thresholds": self.thresholds.as_dict()}


NEVER = ReuseThresholds(similarity=UNUSED_SCORE, hash_distance=UNUSED_HASH)


def calibrate(
    evidence: Evidence,
    is_copy: np.ndarray,
    *,
    max_false_match: float = DEFAULT_MAX_FALSE_MATCH,
    confidence: float = 0.95,
    grid: int = 400,
) -> Calibration:
    """The thresholds with the highest recall whose false matches per query are at most
    ``max_false_match`` with ``confidence`` (Clopper-Pearson), over a grid of similarity
    thresholds (quantiles of the copies' similarities) × hash thresholds 0-16 or off, and, when
    the evidence has alignment scores, a grid of alignment thresholds × hash thresholds.

    ``is_copy`` marks the queries that are edited copies of an earlier photo; the rest are
    different photos. A copy matched to the wrong photo is a false match, not a found one.
    Without enough queries to prove the bound, nothing is ever flagged (``NEVER``).
    """
    is_copy = np.asarray(is_copy, dtype=bool)
    n, positives = len(is_copy), int(is_copy.sum())

    def grid_of(scores: np.ndarray | None) -> np.ndarray:
        if scores is None or not positives:
            return np.array([])
        return np.unique(np.quantile(np.asarray(scores)[is_copy], np.linspace(0, 1, grid)))

    # Each family: thresholds in descending order, so recall and false matches only grow.
    families = [
        lambda v, h: ReuseThresholds(similarity=float(v), hash_distance=int(h)),
        lambda v, h: ReuseThresholds(
            similarity=UNUSED_SCORE, hash_distance=int(h), aligned=float(v)
        ),
    ]
    scores = [grid_of(evidence.similarity), grid_of(evidence.aligned)]
    best = Calibration(NEVER, 0.0, 1.0, 0, false_match_bound(0, n, confidence), positives, n)
    for make, values in zip(families, scores, strict=True):
        best = _walk(evidence, values, make, best, positives, n, max_false_match, confidence)
    return best


def _walk(
    evidence: Evidence,
    values: np.ndarray,
    make: Callable[[float, int], ReuseThresholds],
    best: Calibration,
    positives: int,
    n: int,
    max_false_match: float,
    confidence: float,
) -> Calibration:
    """One family's grid: each hash threshold, with the score threshold lowered until the
    false-match bound is exceeded; the best calibration seen so far, or ``best``."""
    for h in (UNUSED_HASH, *HASH_GRID):
        for v in values[::-1]:
            t = make(v, h)
            true, false = outcome(evidence, t)
            bound = false_match_bound(false, n, confidence)
            if bound > max_false_match:
                break
            recall = true / positives if positives else 0.0
            if recall > best.recall:
                precision = true / (true + false) if true + false else 1.0
                best = Calibration(t, recall, precision, false, bound, positives, n)
    return best
