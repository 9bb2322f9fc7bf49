"""Validation and normalisation of uploaded images with Pillow.

Everything here works on bytes, so the browser, the API and the import command get the same
checks and the same reasons.
"""

import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXIF_ORIENTATION = 0x0112


class ImageRejected(ValueError):
    """The file is not an image the service accepts; the message says why, for a person."""


@dataclass(frozen=True)
class CheckedImage:
    data: bytes  # what is stored: the original bytes, or re-encoded upright when EXIF rotated it
    sha256: str  # of the uploaded bytes, so the same upload is recognised again
    format: str
    extension: str
    content_type: str
    width: int
    height: int
    thumbnail: bytes


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale into 8 bits instead of clipping everything to white.
        image = image.convert("I")
        lo, hi = image.getextrema()
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        image = image.point(lambda v: (v - lo) * scale).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def image_check(data: bytes) -> CheckedImage:
    """Validate one upload and return what to store, or raise ImageRejected with the reason."""
    if not data:
        raise ImageRejected("the file is empty")
    if len(data) > settings.IMAGE_MAX_BYTES:
        raise ImageRejected(
            f"the file is {_megabytes(len(data))}; "
            f"the limit is {_megabytes(settings.IMAGE_MAX_BYTES)}"
        )
    max_pixels = settings.IMAGE_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit; treat that as the bomb it may be.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
            try:
                image = Image.open(io.BytesIO(data))
                fmt = image.format or ""
                if fmt not in ALLOWED_FORMATS:
                    raise ImageRejected(
                        f"{fmt or 'this'} format is not accepted; upload JPEG, PNG or WebP"
                    )
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"the image is {width}×{height} pixels; the limit is {max_pixels:,} pixels"
                    )
                if min(width, height) < settings.IMAGE_MIN_SIDE:
                    raise ImageRejected(
                        f"the image is {width}×{height} pixels; each side needs at least "
                        f"{settings.IMAGE_MIN_SIDE}"
                    )
                if getattr(image, "n_frames", 1) > 1:
                    raise ImageRejected("animated images are not accepted; upload a single frame")
                image.load()
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            f"the image declares more pixels than the limit of {max_pixels:,}; it may be built "
            "to exhaust memory"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("the file is not an image (or not a JPEG, PNG or WebP)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow's own words ("image file is truncated (151 bytes not processed)") mean nothing
        # to the person uploading; say what happened and what to do.
        if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
            raise ImageRejected(
                "the file is truncated: it ends before the image does, as after an interrupted "
                "copy or download; upload the complete file"
            ) from exc
        raise ImageRejected(
            "the image data is damaged and cannot be read; open and save the image again, then "
            "upload it"
        ) from exc

    stored = data
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    if orientation not in (1, None):
        # Store the image upright so every later reader (inspector page, model) agrees on it.
        upright = ImageOps.exif_transpose(image)
        stored = _encode(upright, fmt)
        width, height = upright.size
        image = upright

    thumb = to_rgb(image)
    thumb.thumbnail((settings.THUMBNAIL_SIZE, settings.THUMBNAIL_SIZE))
    thumb_bytes = io.BytesIO()
    thumb.save(thumb_bytes, "JPEG", quality=85)

    return CheckedImage(
        data=stored,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        extension=ALLOWED_FORMATS[fmt],
        content_type=CONTENT_TYPES[fmt],
        width=width,
        height=height,
        thumbnail=thumb_bytes.getvalue(),
    )


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = to_rgb(image)
        image.save(out, "JPEG", quality=95)
    elif fmt == "WEBP":
        image.save(out, "WEBP", lossless=True)
    else:
        image.save(out, "PNG")
    return out.getvalue()
