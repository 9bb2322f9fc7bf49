"""Shifted versions of Fashion-MNIST test images: the same products as users would photograph them.

Each kind is one way real uploads differ from the clean, centred 28×28 catalogue images a model
was trained and calibrated on. They are written here, for the benchmarks, independently of the
training augmentation in ``ml.augment`` (other code, other parameters: fixed kinds instead of
random mixtures, and stronger settings), so that a model trained with augmentation is not
measured on its own training transforms.

    upscaled   blown up 4× with nearest-neighbour (a thumbnail saved at photo size): blocky edges
    tinted     a warm colour cast and a lifted, brown background (indoor light, a wooden table)
    padded     the product small and off-centre on a white canvas twice its size
    blurred    out of focus: Gaussian blur of 1 px at 28 px
    rotated    tilted 10 to 20 degrees either way
    reencoded  upscaled 3×, then JPEG at quality 20 or WebP at quality 15
    mixed      two or three of the above at random, per image
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("upscaled", "tinted", "padded", "blurred", "rotated", "reencoded")


def upscaled(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    return img.resize((w * 4, h * 4), Image.Resampling.NEAREST)


def tinted(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    array = np.asarray(img.convert("RGB"), dtype=np.float32)
    gains = np.array([1.0, 0.82, 0.6], dtype=np.float32)
    background = np.array([70, 48, 26], dtype=np.float32)
    # Light on the product scales its colours; the dark background becomes the brown surface.
    array = background + array * gains * (1 - background / 255.0)
    return Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8))


def padded(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    canvas = Image.new("RGB", (2 * w, 2 * h), (255, 255, 255))
    left, top = int(rng.integers(0, w + 1)), int(rng.integers(0, h + 1))
    canvas.paste(img.convert("RGB"), (left, top))
    return canvas


def blurred(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(1.0 * img.size[0] / 28))


def rotated(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = float(rng.uniform(10, 20)) * (1 if rng.random() < 0.5 else -1)
    return img.convert("RGB").rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def reencoded(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    big = img.convert("RGB").resize((w * 3, h * 3), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    if rng.random() < 0.5:
        big.save(buffer, "JPEG", quality=20)
    else:
        big.save(buffer, "WEBP", quality=15)
    buffer.seek(0)
    with Image.open(buffer) as out:
        return out.convert("RGB")


_BY_NAME = {fn.__name__: fn for fn in (upscaled, tinted, padded, blurred, rotated, reencoded)}


def shift_image(pixels: np.ndarray, kind: str, rng: np.random.Generator) -> Image.Image:
    """One 28×28 grey image as a ``kind`` photo (``clean`` leaves it as it is)."""
    img = Image.fromarray(np.ascontiguousarray(pixels))
    if kind == "clean":
        return img
    if kind == "mixed":
        chosen = rng.choice(len(KINDS), size=int(rng.integers(2, 4)), replace=False)
        # The canvas first (padding, rotation), then light, then the camera and encoder.
        order = ("padded", "rotated", "tinted", "upscaled", "blurred", "reencoded")
        names = [name for name in order if name in {KINDS[i] for i in chosen}]
        for name in names:
            img = _BY_NAME[name](img, rng)
        return img
    return _BY_NAME[kind](img, rng)


def shifted_png(pixels: np.ndarray, kind: str, seed: int) -> bytes:
    """``shift_image`` as PNG bytes (lossless, so a re-encoding's artefacts are kept as made)."""
    buffer = io.BytesIO()
    shift_image(pixels, kind, np.random.default_rng(seed)).save(buffer, "PNG")
    return buffer.getvalue()
