"""Verifying a reuse candidate by aligning the two photos: the step that tells an edited copy from
a different photo of the same kind of thing.

Embeddings and perceptual hashes find *candidates* well (the original is usually among a new
photo's nearest neighbours), but they cannot separate a cropped or tinted copy from another photo
of a near-identical product: on a shop's uniform product shots both score alike
(bench/duplicates.py). Pixels can: a copy, once aligned with its original, correlates with it
almost perfectly, while a different photo of the same model does not.

Each image keeps a small *fingerprint*: its grey content with uniform borders (screenshot bars,
plain backdrops) trimmed away, longest side ``FINGERPRINT_SIDE`` pixels. ``match_scores`` aligns
a new image's fingerprint with each candidate's under the edits a reuser makes:
  - rotation of up to ±8° (4° steps, then refined to 0.5°), undone before trimming again, so
    corners filled by the rotation are trimmed like any border;
  - a crop of up to ~25 % of each side (the copy is a window of the original at some scale and
    offset), searched as a grid of scales × every offset;
  - colour filters and re-encoding, to which normalised cross-correlation is indifferent (it
    ignores brightness and contrast, and the fingerprint is grey).
The score is the best normalised cross-correlation found (1 = identical up to brightness and
contrast). The threshold that calls a score a reuse is calibrated like the other arms
(``ml.reuse.calibrate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from ml.perceptual_hash import HashSource, image_hashes, load_rgb

FINGERPRINT_SIDE = 64
# Coarse search: the frame both images are squeezed into, and the hypotheses tried in it.
COARSE = 32
ROTATIONS = (-8.0, -4.0, 0.0, 4.0, 8.0)
SCALES = (1.0, 0.88, 0.76)
# Refinement at the fingerprint's resolution around the best coarse hypothesis.
FINE = FINGERPRINT_SIDE
# (rotation step in degrees, scale step) of each refinement round.
REFINE_STEPS = ((2.0, 0.06), (1.0, 0.03), (0.5, 0.015))
OFFSET_SLACK = 3  # fine pixels either side of the coarse offset
# Only the original of a copy needs the whole search, and almost every candidate is a different
# photo; so the refinement is spent where it can matter. Measured on 280 copies made with the
# benchmark's edits (ml.reuse.reused_copy), each among 10 same-class look-alikes: of the copies
# the rule found, the original was the coarse search's best candidate every time and scored
# ≥ 0.87 there, ≥ 0.94 after the first round and ≥ 0.97 after the second. bench/duplicates.py
# with and without these cuts: one cropped copy of 900 lost in each space, at 2.5× less work.
#   - only the ``REFINED`` best candidates, if they reach ``REFINE_FROM`` and lie within
#     ``REFINE_MARGIN`` of the best;
#   - a candidate stops after a round whose score is below that round's ``REFINE_GATES`` entry.
# A score is the same function in calibration and in service, so the calibrated threshold stays
# a threshold on it; a threshold below the last gate would see truncated scores (the default and
# the benchmark's calibration are 0.985).
REFINED = 2
REFINE_FROM = 0.85
REFINE_MARGIN = 0.03
REFINE_GATES = (0.92, 0.95)
# Trimming: a border pixel is background while every channel is within TRIM_TOLERANCE of the
# border's median colour; a row or column is content once more than TRIM_SHARE of it is not
# background (so JPEG ringing along a bar's edge does not stop the trim).
TRIM_TOLERANCE = 24
TRIM_SHARE = 0.05
TRIM_PASSES = 4  # a rotation's corners, screenshot bars, a plain backdrop, and one to spare
TRIM_INSET = 0.01  # and this much more, to drop the resampled seam between bar and content
MIN_KEPT_SHARE = 0.2
# A picture without contrast has nothing to align: it matches nothing.
MIN_CONTRAST = 2.0
NO_MATCH = -1.0
FLAT_SPREAD = 1e-3  # grey levels of standard deviation below which a window is flat


def trim(array: np.ndarray) -> np.ndarray:
    """``array`` (H×W×C) without uniform borders, repeated while a border is left."""
    a = array
    for _ in range(TRIM_PASSES):
        h, w = a.shape[:2]
        ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
        background = np.median(ring, axis=0)
        # |pixel − background| > tolerance in any channel, as two comparisons per channel: the
        # same test as np.abs(a - background).max(axis=2), without a float copy of the image
        # (which made trimming most of the fingerprint's cost).
        content = np.zeros(a.shape[:2], dtype=bool)
        for c in range(a.shape[2]):
            channel = a[..., c]
            content |= channel < background[c] - TRIM_TOLERANCE
            content |= channel > background[c] + TRIM_TOLERANCE
        rows = np.flatnonzero(content.mean(axis=1) > TRIM_SHARE)
        cols = np.flatnonzero(content.mean(axis=0) > TRIM_SHARE)
        if not len(rows) or not len(cols):
            break
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        if (right - left) < MIN_KEPT_SHARE * w or (bottom - top) < MIN_KEPT_SHARE * h:
            break
        if (top, bottom, left, right) == (0, h, 0, w):
            break
        dx = max(1, round(TRIM_INSET * (right - left)))
        dy = max(1, round(TRIM_INSET * (bottom - top)))
        left, right = left + (dx if left else 0), right - (dx if right < w else 0)
        top, bottom = top + (dy if top else 0), bottom - (dy if bottom < h else 0)
        a = a[top:bottom, left:right]
    return a


def _grey(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).convert("L")


def fingerprint(image: Image.Image) -> bytes:
    """The image's fingerprint: trimmed grey content, longest side ``FINGERPRINT_SIDE``, as
    ``bytes([width, height]) + pixels`` (at most 4 KB; stored with the image's embedding)."""
    content = _grey(trim(np.asarray(image.convert("RGB"))))
    w, h = content.size
    scale = FINGERPRINT_SIDE / max(w, h)
    size = (max(1, min(255, round(w * scale))), max(1, min(255, round(h * scale))))
    small = content.resize(size, Image.Resampling.BILINEAR)
    return bytes(size) + small.tobytes()


def batch_signatures(
    sources: Sequence[HashSource],
) -> tuple[np.ndarray, list[bytes | None], dict[int, str]]:
    """Per image, from one decode: its two perceptual hashes (N×2, rows of 0 where decoding
    failed), its fingerprint (None where it failed) and the reason per failed index."""
    hashes = np.zeros((len(sources), 2), dtype=np.int64)
    prints: list[bytes | None] = [None] * len(sources)
    errors: dict[int, str] = {}
    for i, source in enumerate(sources):
        try:
            image = load_rgb(source)
            hashes[i] = image_hashes(image)
            prints[i] = fingerprint(image)
        except Exception as exc:  # one unreadable image must not fail the batch
            errors[i] = f"{type(exc).__name__}: {exc}"
    return hashes, prints, errors


def fingerprint_image(data: bytes) -> Image.Image:
    w, h = data[0], data[1]
    return Image.frombytes("L", (w, h), bytes(data[2:]))


def _frame(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def _centred(template: np.ndarray) -> tuple[np.ndarray, float]:
    """The template minus its mean, and its norm (0.0 for a flat template, which correlates
    with nothing)."""
    t = template - template.mean()
    norm = float(np.sqrt((t * t).sum()))
    return t, norm if norm > 1e-6 else 0.0


class _Frames:
    """Candidates squeezed into one H×W frame, with what every correlation against them needs
    precomputed: their spectra and their windowed sums (integral images)."""

    def __init__(self, frames: np.ndarray, pad: int) -> None:
        self.frames = frames
        self.k, self.h, self.w = frames.shape
        # FFT size (0: no FFT). The frame's own size is enough: a circular correlation wraps only
        # into the offsets where the template overhangs the frame, which ncc never reads.
        self.pad = pad
        # scipy's transforms keep float32 (numpy's widen to float64): same maps, less work.
        self.spectra = scipy.fft.rfft2(frames, s=(pad, pad)) if pad else None
        c = np.zeros((self.k, self.h + 1, self.w + 1))
        wide = frames.astype(np.float64)  # float32 sums would round a flat window into a spread
        c[:, 1:, 1:] = wide.cumsum(1).cumsum(2)
        c2 = np.zeros_like(c)
        c2[:, 1:, 1:] = (wide**2).cumsum(1).cumsum(2)
        self.sums, self.squares = c, c2
        self._inverse: dict[tuple[int, int], np.ndarray] = {}

    @staticmethod
    def _windows(c: np.ndarray, h: int, w: int) -> np.ndarray:
        return c[:, h:, w:] - c[:, :-h, w:] - c[:, h:, :-w] + c[:, :-h, :-w]

    def inverse_spread(self, h: int, w: int) -> np.ndarray:
        """1 / the pixel spread (root of the summed squared deviations) of every h×w window, 0
        for a flat window. Cached: the search tries only a handful of template sizes, each
        under several rotations."""
        found = self._inverse.get((h, w))
        if found is None:
            s1 = self._windows(self.sums, h, w)
            spread = np.sqrt(np.maximum(self._windows(self.squares, h, w) - s1 * s1 / (h * w), 0))
            # Flat: a standard deviation under 0.001 grey levels, which is the integral images'
            # rounding, not picture (an absolute floor let that rounding through as a score).
            flat = FLAT_SPREAD * np.sqrt(h * w)
            found = np.where(spread > flat, 1.0 / np.maximum(spread, flat), 0.0)
            self._inverse[(h, w)] = found
        return found

    def ncc(self, template: np.ndarray) -> np.ndarray:
        """Normalised cross-correlation of ``template`` (h×w) with every window of every frame:
        K×(H-h+1)×(W-w+1)."""
        h, w = template.shape
        t, t_norm = _centred(template)
        if not t_norm:
            return np.zeros((self.k, self.h - h + 1, self.w - w + 1))
        spectrum = scipy.fft.rfft2(t[::-1, ::-1], s=(self.pad, self.pad))
        full = scipy.fft.irfft2(self.spectra * spectrum, s=(self.pad, self.pad))
        return full[:, h - 1 : self.h, w - 1 : self.w] * self.inverse_spread(h, w) / t_norm

    def ncc_near(self, template: np.ndarray, y0: int, x0: int, slack: int) -> np.ndarray:
        """The same for the first frame, only at offsets within ``slack`` of ``(y0, x0)``:
        computed directly, which for a few dozen offsets is cheaper than a transform. Returns
        the map and its top-left offset."""
        h, w = template.shape
        ys, xs = max(0, y0 - slack), max(0, x0 - slack)
        ye, xe = min(self.h - h, y0 + slack), min(self.w - w, x0 + slack)
        if ye < ys or xe < xs:
            return np.zeros((0, 0)), (ys, xs)
        t, t_norm = _centred(template)
        region = self.frames[0, ys : ye + h, xs : xe + w]
        num = np.einsum("abij,ij->ab", sliding_window_view(region, (h, w)), t)
        if not t_norm:
            return np.zeros_like(num), (ys, xs)
        inverse = self.inverse_spread(h, w)[0, ys : ye + 1, xs : xe + 1]
        return num * inverse / t_norm, (ys, xs)


@dataclass
class _Query:
    image: Image.Image  # the fingerprint, trimmed grey
    views: dict[float, Image.Image]

    def view(self, rotation: float) -> Image.Image:
        """The fingerprint turned by ``rotation``, trimmed again (the turn's corners too)."""
        if rotation == 0:
            return self.image
        if rotation not in self.views:
            turned = self.image.rotate(
                rotation,
                resample=Image.Resampling.BILINEAR,
                expand=True,
                fillcolor=_border_level(self.image),
            )
            self.views[rotation] = _grey(trim(np.asarray(turned)[..., None].repeat(3, axis=2)))
        return self.views[rotation]


def _border_level(image: Image.Image) -> int:
    """The grey level around the picture (the median of its outermost pixels): what a turn's
    new corners are filled with, so the next trim removes them with the backdrop."""
    a = np.asarray(image)
    return int(np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])))


def _contrast(image: Image.Image) -> float:
    return float(np.asarray(image, dtype=np.float32).std())


def _refine(q: _Query, fine: _Frames, start: tuple) -> float:
    """Local search around a coarse hypothesis ``(score, rotation, sx, sy, y, x)`` at the
    fingerprint's resolution: each round tries every neighbour in rotation × both scales (and
    every offset within ``OFFSET_SLACK``), moves to the best, then halves the steps."""
    score, rotation, sx, sy, y0, x0 = start
    for round_, (turn, scale) in enumerate(REFINE_STEPS):
        if round_ and score < REFINE_GATES[round_ - 1]:
            break  # too far from a copy for the finer rounds to make it one
        here = (rotation, sx, sy, y0, x0)
        for dr in (-turn, 0.0, turn):
            view = q.view(here[0] + dr)
            for dsx in (-scale, 0.0, scale):
                for dsy in (-scale, 0.0, scale):
                    tx, ty = min(1.0, here[1] + dsx), min(1.0, here[2] + dsy)
                    template = _frame(view, (round(tx * FINE), round(ty * FINE)))
                    near, (ys, xs) = fine.ncc_near(template, here[3], here[4], OFFSET_SLACK)
                    if near.size and near.max() > score:
                        dy, dx = divmod(int(near.argmax()), near.shape[1])
                        score = float(near.max())
                        rotation, sx, sy, y0, x0 = here[0] + dr, tx, ty, ys + dy, xs + dx
    return score


def match_scores(query: bytes, candidates: Sequence[bytes]) -> np.ndarray:
    """For each candidate fingerprint, how well the query fingerprint aligns with it: the best
    normalised cross-correlation over rotations, crops and offsets (``NO_MATCH`` for a picture
    without contrast)."""
    scores = np.full(len(candidates), NO_MATCH, dtype=np.float64)
    if not candidates:
        return scores
    q = _Query(fingerprint_image(query), {})
    if _contrast(q.image) < MIN_CONTRAST:
        return scores
    images = [fingerprint_image(c) for c in candidates]
    usable = [i for i, im in enumerate(images) if _contrast(im) >= MIN_CONTRAST]
    if not usable:
        return scores
    coarse = _Frames(np.stack([_frame(images[i], (COARSE, COARSE)) for i in usable]), COARSE)
    # Coarse: every candidate against every (rotation, scale) at once.
    best = np.full(len(usable), -2.0)
    hypothesis: list[tuple] = [()] * len(usable)
    for rotation in ROTATIONS:
        view = q.view(rotation)
        for sx in SCALES:
            for sy in SCALES:
                template = _frame(view, (round(sx * COARSE), round(sy * COARSE)))
                maps = coarse.ncc(template)
                width = maps.shape[2]
                flat = maps.reshape(len(usable), -1)
                at = flat.argmax(axis=1)
                for k, j in enumerate(at):
                    if flat[k, j] > best[k]:
                        best[k] = flat[k, j]
                        hypothesis[k] = (rotation, sx, sy, divmod(int(j), width))
    # Fine: the most promising candidates, around their best hypothesis, at full resolution.
    ratio = FINE / COARSE
    top = float(best.max())
    for k in np.argsort(-best)[:REFINED]:
        if best[k] < max(REFINE_FROM, top - REFINE_MARGIN):
            break
        rotation, sx, sy, (y, x) = hypothesis[k]
        fine = _Frames(_frame(images[usable[k]], (FINE, FINE))[None], pad=0)
        start = (float(best[k]), rotation, sx, sy, round(y * ratio), round(x * ratio))
        best[k] = _refine(q, fine, start)
    scores[usable] = best
    return scores
