"""Generated shape images for the ml tests (no downloads)."""

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def shape_image(kind: str, rng: np.random.Generator, size: int = 40) -> Image.Image:
    """A coloured shape at a random place and size on a random light background."""
    bg = tuple(int(v) for v in rng.integers(180, 256, 3))
    fg = tuple(int(v) for v in rng.integers(0, 120, 3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fg)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    return img
