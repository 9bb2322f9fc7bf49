"""Perceptual hashes of photos (imagehash's DCT pHash) and their Hamming distances.

Two 64-bit hashes per image: the pHash of the whole upright image, and the pHash of the image
with its uniform borders trimmed away. A screenshot of a photo adds bars around it (status bar,
navigation bar, a letterbox); trimming the bars of the copy and the plain background of the
original lands both on the same content box, where the plain pHash of the two would differ.
Hashes are kept as signed 64-bit integers so any database stores them in a BIGINT column.
"""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageChops, ImageOps

# Bytes, a path, an open file or a decoded image (what ml.preprocess.ImageSource accepts but
# arrays; this module stays free of torch so the web process can use it).
HashSource = bytes | bytearray | memoryview | str | Path | Image.Image | io.IOBase

HASH_BITS = 64
# A border pixel counts as background while it differs from the corner colour by at most this
# much (JPEG ringing and noise at the edge of a bar).
TRIM_TOLERANCE = 24
# Never trim an image down to less than this share of either side: a picture that is "all
# border" (a blank image) keeps its frame instead of hashing a few noisy pixels.
MIN_KEPT_SHARE = 0.2
TRIM_PASSES = 3
# pHash works on a 32×32 grey thumbnail; decoding a huge photo at full size buys nothing.
DRAFT_SIZE = 256
# A (nearly) uniform picture has no pHash worth the name: every blank image would share it, and
# two different blank uploads would look like one photo reused. It gets NO_HASH instead, which
# matches nothing (its distance to anything is HASH_BITS).
NO_HASH = 0
MIN_CONTRAST = 2.0  # standard deviation of the 32×32 grey thumbnail, in 0-255 levels


def _to_signed(value: int) -> int:
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def _hash_int(image: Image.Image) -> int:
    thumb = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BILINEAR), float)
    if thumb.std() < MIN_CONTRAST:
        return NO_HASH
    bits = imagehash.phash(image).hash.flatten()
    value = _to_signed(int("".join("1" if b else "0" for b in bits), 2))
    return value if value != NO_HASH else 1  # keep NO_HASH for blank pictures only


def trim_borders(image: Image.Image) -> Image.Image:
    """The image without uniform bars along its edges (repeated: bars, then a plain backdrop)."""
    for _ in range(TRIM_PASSES):
        w, h = image.size
        corner = image.getpixel((0, 0))
        background = Image.new(image.mode, image.size, corner)
        diff = ImageChops.difference(image, background).convert("L")
        box = diff.point(lambda v: 255 if v > TRIM_TOLERANCE else 0).getbbox()
        if box is None:
            return image
        left, top, right, bottom = box
        if (right - left) < MIN_KEPT_SHARE * w or (bottom - top) < MIN_KEPT_SHARE * h:
            return image
        if (left, top, right, bottom) == (0, 0, w, h):
            return image
        image = image.crop(box)
    return image


def load_rgb(source: HashSource) -> Image.Image:
    """Decode to an upright RGB image (EXIF orientation applied, transparency on white)."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        image = Image.open(io.BytesIO(bytes(source)))
    else:
        image = Image.open(source)
    if image.format == "JPEG":
        image.draft("RGB", (DRAFT_SIZE, DRAFT_SIZE))
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def image_hashes(source: HashSource) -> tuple[int, int]:
    """``(phash, phash of the border-trimmed image)`` as signed 64-bit integers."""
    image = load_rgb(source)
    return _hash_int(image), _hash_int(trim_borders(image))


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between signed 64-bit hashes (broadcasts like numpy)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return np.bitwise_count(x).astype(np.int64)


def hash_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between two images' hash pairs: the closer of whole-to-whole and
    trimmed-to-trimmed (``a`` and ``b`` broadcast over leading axes, last axis holds the pair);
    a blank picture's NO_HASH is HASH_BITS away from everything."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)

    def one(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        blank = (x == NO_HASH) | (y == NO_HASH)
        return np.where(blank, HASH_BITS, hamming(x, y))

    return np.minimum(one(a[..., 0], b[..., 0]), one(a[..., 1], b[..., 1]))


class HashTable:
    """Every image's hash pair under its key, searched exhaustively: a popcount over a million
    pairs takes a few milliseconds, so the hash arm of the reuse rule sees every earlier image,
    not only the embedding's nearest neighbours (a screenshot's embedding can be far from its
    original's while their trimmed hashes are equal)."""

    CHUNK = 262_144

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.hashes = np.zeros((0, 2), dtype=np.int64)
        self._known: set[int] = set()

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, keys: np.ndarray, hashes: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        fresh = np.array([k not in self._known for k in keys.tolist()], dtype=bool)
        if not fresh.any():
            return
        self.keys = np.concatenate([self.keys, keys[fresh]])
        self.hashes = np.concatenate([self.hashes, np.asarray(hashes, dtype=np.int64)[fresh]])
        self._known.update(keys[fresh].tolist())

    def nearest(self, query: np.ndarray, *, exclude_from: int | None = None) -> tuple[int, int]:
        """``(key, distance)`` of the closest pair to ``query`` (a hash pair); keys at or above
        ``exclude_from`` are skipped (later images). ``(-1, 65)`` when there is none."""
        best_key, best = -1, HASH_BITS + 1
        query = np.asarray(query, dtype=np.int64)
        for start in range(0, len(self.keys), self.CHUNK):
            keys = self.keys[start : start + self.CHUNK]
            distance = hash_distance(self.hashes[start : start + self.CHUNK], query)
            if exclude_from is not None:
                distance = np.where(keys < exclude_from, distance, HASH_BITS + 1)
            if len(distance):
                i = int(distance.argmin())
                if distance[i] < best:
                    best_key, best = int(keys[i]), int(distance[i])
        return best_key, best
