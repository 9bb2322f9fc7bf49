"""Image decoding and preprocessing with Pillow.

Every image goes through the same steps, in training and in inference, so that a stored photo is
seen identically by both: open (path, bytes, file object, array or PIL image) → apply the EXIF
orientation (phones store portrait photos as rotated landscape pixels plus a tag) → flatten to
8-bit RGB (grey, palette, alpha, CMYK, 16-bit) → resize to the model's square input → normalise.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps

ImageSource = str | Path | bytes | bytearray | memoryview | BinaryIO | np.ndarray | Image.Image

# Transparent areas become white: product photos with a cut-out background are shown on white in
# a shop, and black would invent a strong dark silhouette the model never saw in ImageNet.
ALPHA_BACKGROUND = (255, 255, 255)

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class PreprocessConfig:
    """How a model wants its input. Saved in every checkpoint's ``config.json``.

    ``resize_mode``: ``"pad"`` fits the whole image inside the square and pads the rest (nothing
    is cut off: a full-body shot stays full-body), ``"squash"`` stretches to the square,
    ``"center_crop"`` scales the short side and crops the middle (ImageNet evaluation style).
    """

    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bilinear"
    resize_mode: str = "pad"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        fields = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        for key in ("mean", "std"):
            if key in fields:
                fields[key] = tuple(float(v) for v in fields[key])
        return cls(**fields)


def open_image(source: ImageSource, *, draft_size: int | None = None) -> Image.Image:
    """Decode ``source`` fully into an upright 8-bit RGB image.

    ``draft_size`` lets the JPEG decoder scale down by 1/2, 1/4 or 1/8 while decoding (keeping
    both sides ≥ ``draft_size``): a 12-megapixel phone photo headed for a 224 px model decodes
    several times faster and the final resize still sees more pixels than it keeps.

    Raises whatever Pillow raises for unreadable data (``PIL.UnidentifiedImageError``,
    ``OSError``); callers that process batches catch it per image.
    """
    if isinstance(source, (str, Path)):
        with Image.open(source) as fh:
            img = _upright_rgb(fh, draft_size)
            # Detach from the file: the handle closes when this block ends.
            return img.copy() if img is fh else img
    if isinstance(source, Image.Image):
        return _upright_rgb(source, draft_size)
    if isinstance(source, np.ndarray):
        return _upright_rgb(_from_array(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _upright_rgb(Image.open(io.BytesIO(bytes(source))), draft_size)
    return _upright_rgb(Image.open(source), draft_size)  # a binary file object


def _upright_rgb(img: Image.Image, draft_size: int | None = None) -> Image.Image:
    if draft_size and img.format == "JPEG":
        img.draft("RGB", (draft_size, draft_size))
    img.load()  # decode now so truncated files fail here, inside the caller's per-image guard
    img = ImageOps.exif_transpose(img)
    return to_rgb(img)


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # accept CHW as well as HWC
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif array.dtype in (np.float32, np.float64):
        scale = 255.0 if array.size and float(np.nanmax(array)) <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"unsupported array dtype {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def to_rgb(img: Image.Image) -> Image.Image:
    """Flatten any Pillow mode to 8-bit RGB (alpha composited onto white)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_bit_depth_to_rgb(img)
    if mode == "P":
        # Palette images may carry transparency in info["transparency"]; RGBA keeps it.
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    # L, 1, CMYK, YCbCr, LAB, HSV: Pillow's own conversions are correct for these.
    return img.convert("RGB")


def _high_bit_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey to 8-bit grey, then RGB.

    Pillow's ``convert("L")`` clips 16-bit values above 255 to white, which turns an ordinary
    16-bit photo into a blank image; scale instead. 16-bit data is mapped by its full range
    (÷257); ``I``/``F`` data whose values already fit 0..255 is kept as is.
    """
    array = np.asarray(img)
    if img.mode.startswith("I;16"):
        scaled = array.astype(np.float32) / 257.0
    else:
        array = array.astype(np.float64)
        top = float(array.max()) if array.size else 0.0
        if img.mode == "F" and top <= 1.0:
            scaled = array * 255.0
        elif top <= 255.0:
            scaled = array
        elif top <= 65535.0:
            scaled = array / 257.0
        else:
            scaled = array * (255.0 / top)
    grey = np.clip(scaled, 0, 255).round().astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def resize(img: Image.Image, cfg: PreprocessConfig) -> Image.Image:
    """Resize an RGB image to ``cfg.input_size`` square according to ``cfg.resize_mode``."""
    size = cfg.input_size
    method = _RESAMPLING[cfg.interpolation]
    w, h = img.size
    if (w, h) == (size, size):
        return img
    if cfg.resize_mode == "squash" or w == h:
        return img.resize((size, size), method)
    if cfg.resize_mode == "center_crop":
        return ImageOps.fit(img, (size, size), method=method)
    if cfg.resize_mode == "pad":
        scale = size / max(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        fill = tuple(round(255 * m) for m in cfg.mean)  # pads normalise to zero
        canvas = Image.new("RGB", (size, size), fill)
        canvas.paste(img.resize(new, method), ((size - new[0]) // 2, (size - new[1]) // 2))
        return canvas
    raise ValueError(f"unknown resize_mode {cfg.resize_mode!r}")


def to_uint8_array(source: ImageSource, cfg: PreprocessConfig) -> np.ndarray:
    """Decode and resize to a ``3×S×S`` uint8 array (the compact form training caches)."""
    img = resize(open_image(source, draft_size=cfg.input_size), cfg)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def normalize(batch_uint8: torch.Tensor | np.ndarray, cfg: PreprocessConfig) -> torch.Tensor:
    """``N×3×S×S`` uint8 → float32 normalised tensor, as the model expects."""
    x = torch.as_tensor(batch_uint8).float().div_(255.0)
    mean = torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def preprocess(source: ImageSource, cfg: PreprocessConfig) -> torch.Tensor:
    """One image → ``3×S×S`` float32 tensor."""
    return normalize(to_uint8_array(source, cfg)[None], cfg)[0]


def preprocess_batch(
    sources: Sequence[ImageSource], cfg: PreprocessConfig
) -> tuple[torch.Tensor, list[int], dict[int, str]]:
    """Preprocess many images, tolerating bad ones.

    Returns ``(tensor of the good images, their indices in sources, {bad index: error})``, so a
    corrupt upload costs one error entry instead of the whole batch.
    """
    arrays: list[np.ndarray] = []
    ok: list[int] = []
    errors: dict[int, str] = {}
    for i, src in enumerate(sources):
        try:
            arrays.append(to_uint8_array(src, cfg))
            ok.append(i)
        except Exception as exc:  # any decode failure stays with its image
            errors[i] = f"{type(exc).__name__}: {exc}"
    size = cfg.input_size
    if arrays:
        batch = normalize(np.stack(arrays), cfg)
    else:
        batch = torch.empty((0, 3, size, size), dtype=torch.float32)
    return batch, ok, errors
