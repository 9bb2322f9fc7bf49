"""Every kind of upload ends up as an upright RGB tensor of the model's size."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ml.preprocess import PreprocessConfig, open_image, preprocess, preprocess_batch

CFG = PreprocessConfig(input_size=32, resize_mode="pad")


def _jpeg_with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    return buf.getvalue()


def test_exif_rotation_is_applied():
    # A landscape 40×20 image, red on the left half, stored with "rotate 90° CW to view".
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = (255, 0, 0)
    data = _jpeg_with_orientation(Image.fromarray(array), orientation=6)
    img = open_image(data)
    assert img.size == (20, 40)  # now portrait
    pixels = np.asarray(img)
    assert pixels[5, 10, 0] > 200 and pixels[35, 10, 0] < 60  # red moved to the top


def test_cmyk_jpeg_becomes_rgb():
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buf, format="JPEG")  # pure red in CMYK
    img = open_image(buf.getvalue())
    assert img.mode == "RGB"
    r, g, b = np.asarray(img)[8, 8]
    assert r > 200 and g < 60 and b < 60


def test_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (0, 0, 255, 0))  # fully transparent blue
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    path = tmp_path / "cutout.png"
    rgba.save(path)
    pixels = np.asarray(open_image(path))
    assert tuple(pixels[4, 4]) == (255, 255, 255)
    assert tuple(pixels[0, 0]) == (0, 0, 255)


def test_palette_with_transparency():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((1, 1), 1)
    img.info["transparency"] = 0
    buf = io.BytesIO()
    img.save(buf, format="PNG", transparency=0)
    pixels = np.asarray(open_image(buf.getvalue()))
    assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[1, 1]) == (255, 0, 0)


def test_16_bit_grey_png_keeps_its_contrast(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(open_image(path))
    assert pixels.shape == (8, 8, 3)
    assert pixels.min() == 0 and pixels.max() == 255  # not clipped to white


def test_grey_and_arrays_become_three_channels():
    grey = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    t = preprocess(grey, CFG)
    assert t.shape == (3, 32, 32) and t.dtype == torch.float32
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])


def test_pad_keeps_the_whole_image_and_pads_with_zero_after_normalising():
    wide = Image.new("RGB", (64, 16), (255, 255, 255))
    t = preprocess(wide, CFG)
    assert t.shape == (3, 32, 32)
    assert t[:, 0, :].abs().max() < 0.01  # padding normalises to ~0
    assert t[:, 16, :].min() > 0.99  # the white image itself, full width


def test_batch_reports_bad_images_by_index():
    good = np.zeros((10, 10), np.uint8)
    batch, ok, errors = preprocess_batch([good, b"not an image", good], CFG)
    assert batch.shape == (2, 3, 32, 32)
    assert ok == [0, 2]
    assert list(errors) == [1]


@pytest.mark.parametrize("mode", ["squash", "center_crop", "pad"])
def test_resize_modes_give_the_input_size(mode):
    img = Image.new("RGB", (50, 30), (10, 20, 30))
    cfg = PreprocessConfig(input_size=24, resize_mode=mode)
    assert preprocess(img, cfg).shape == (3, 24, 24)
