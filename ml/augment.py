"""Photo augmentation: random versions of a training image that vary the way users' photos do.

A model fine-tuned only on clean, centred product images fails on the same products photographed
differently: upscaled, tinted, padded onto a larger canvas, blurred, slightly rotated, or
re-encoded as JPEG/WebP (issue 15 measured 92 % → 64 % accuracy, with the model still confident).
Training on such variations keeps its accuracy there. Each transform below is one thing real
photos vary in; :func:`photo_augment` applies a random subset of them, with parameters drawn from
ranges wide enough to cover ordinary uploads and narrow enough to keep the product recognisable.

The augmented images go through the same ``ml.preprocess.resize`` as every other image, and the
training cache stores them as extra *views* of each training item (``ml.feature_cache``), so the
cost is paid once per view at caching time, not once per epoch.

Determinism: every draw comes from the ``numpy`` generator passed in, so a view is a pure function
of the image and the generator's seed.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

# Probability that each kind of variation is applied to one augmented view.
P_SCALE = 0.5
P_PAD = 0.4
P_CROP = 0.3
P_COLOUR = 0.6
P_BLUR = 0.3
P_ROTATE = 0.4
P_REENCODE = 0.4

_RESAMPLERS = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)


def _fill(rng: np.random.Generator, img: Image.Image) -> tuple[int, int, int]:
    """A background colour: white or black studio backgrounds, grey, the image's own border
    colour (a photo pasted on a matching canvas), or any colour."""
    kind = rng.integers(5)
    if kind == 0:
        return (255, 255, 255)
    if kind == 1:
        return (0, 0, 0)
    if kind == 2:
        v = int(rng.integers(64, 224))
        return (v, v, v)
    if kind == 3:
        r, g, b = img.getpixel((0, 0))[:3]
        return (int(r), int(g), int(b))
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def rescale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A different resolution: downsampled (detail lost) or upsampled (soft, interpolated)."""
    factor = float(np.exp(rng.uniform(np.log(0.5), np.log(4.0))))
    w, h = img.size
    size = (max(4, round(w * factor)), max(4, round(h * factor)))
    return img.resize(size, _RESAMPLERS[int(rng.integers(len(_RESAMPLERS)))])


def pad(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The product smaller on a larger canvas, not necessarily centred."""
    w, h = img.size
    left, right, top, bottom = (int(round(rng.uniform(0, 0.45) * s)) for s in (w, w, h, h))
    canvas = Image.new("RGB", (w + left + right, h + top + bottom), _fill(rng, img))
    canvas.paste(img, (left, top))
    return canvas


def crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A tighter framing: up to 12 % cut from each side."""
    w, h = img.size
    left, right = (int(rng.uniform(0, 0.12) * w) for _ in range(2))
    top, bottom = (int(rng.uniform(0, 0.12) * h) for _ in range(2))
    if w - left - right < 4 or h - top - bottom < 4:
        return img
    return img.crop((left, top, w - right, h - bottom))


def colour(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Exposure, contrast, saturation and a colour cast (white balance, tinted light)."""
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4))
    gains = rng.uniform(0.75, 1.25, size=3)
    gains = gains / gains.mean()
    array = np.asarray(img, dtype=np.float32) * gains[None, None, :]
    return Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8))


def blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Out of focus or shaken: a Gaussian blur of up to 2.5 % of the image's size."""
    radius = rng.uniform(0.3, 0.025 * max(img.size) + 0.3)
    return img.filter(ImageFilter.GaussianBlur(radius))


def rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A slightly tilted camera: up to ±12 degrees, the corners filled with a background."""
    return img.rotate(
        rng.uniform(-12, 12),
        resample=Image.Resampling.BILINEAR,
        expand=bool(rng.integers(2)),
        fillcolor=_fill(rng, img),
    )


def reencode(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A lossy JPEG or WebP round trip, as photo apps and shops' upload pipelines do."""
    buffer = io.BytesIO()
    fmt = "JPEG" if rng.random() < 0.6 else "WEBP"
    img.save(buffer, fmt, quality=int(rng.integers(30, 91)))
    buffer.seek(0)
    with Image.open(buffer) as out:
        return out.convert("RGB")


# Order matters: geometry first, then light and colour, then the camera's and encoder's losses.
TRANSFORMS = (
    (P_CROP, crop),
    (P_PAD, pad),
    (P_ROTATE, rotate),
    (P_SCALE, rescale),
    (P_COLOUR, colour),
    (P_BLUR, blur),
    (P_REENCODE, reencode),
)


def photo_augment(img: Image.Image, rng: np.random.Generator, *, flip: bool = False) -> Image.Image:
    """A random photo-like variation of an RGB image: each transform in :data:`TRANSFORMS` is
    applied with its probability (at least one always is); ``flip`` also mirrors it at random."""
    img = img.convert("RGB")
    chosen = [fn for p, fn in TRANSFORMS if rng.random() < p]
    if not chosen:
        chosen = [TRANSFORMS[int(rng.integers(len(TRANSFORMS)))][1]]
    for fn in chosen:
        img = fn(img, rng)
    if flip and rng.random() < 0.5:
        img = ImageOps.mirror(img)
    return img
