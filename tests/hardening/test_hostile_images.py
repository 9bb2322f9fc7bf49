"""Hostile and broken images, generated here, through the upload API and ``item_ingest``: each is
refused with a reason a person can act on, or handled correctly; never a 500, never a half-stored
item (no Item row, no file left in storage)."""

import io
import json
import struct
import zlib

import pytest
from django.urls import reverse
from PIL import Image

from labeling.ingest import Upload, item_ingest
from labeling.models import Item

pytestmark = pytest.mark.django_db


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims ``width``×``height`` pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gradient(mode: str, size=(48, 32)) -> Image.Image:
    image = Image.new("L", size)
    image.putdata([(x * 5 + y * 3) % 256 for y in range(size[1]) for x in range(size[0])])
    return image.convert(mode) if mode != "L" else image


def frames(n: int = 3) -> list[Image.Image]:
    return [Image.new("RGB", (32, 32), (40 * i, 90, 200 - 40 * i)) for i in range(n)]


def animated(fmt: str) -> bytes:
    first, *rest = frames()
    return encode(first, fmt, save_all=True, append_images=rest, duration=100, loop=0)


def exif_rotated_jpeg() -> bytes:
    """40 wide × 20 high as stored, with EXIF orientation 6: upright it is 20 × 40."""
    image = Image.new("RGB", (40, 20), (250, 250, 250))
    image.paste((200, 0, 0), (0, 0, 10, 20))  # a red band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


def sixteen_bit_png() -> bytes:
    image = Image.new("I;16", (48, 32))
    image.putdata([(x * 1300 + y * 7) for y in range(32) for x in range(48)])
    return encode(image, "PNG")


def jpeg() -> bytes:
    return encode(gradient("RGB", (64, 64)), "JPEG", quality=90)


# name, file name, bytes, the words the refusal must contain
REFUSED = [
    ("zero bytes", "empty.jpg", lambda: b"", "empty"),
    ("truncated JPEG", "cut.jpg", lambda: jpeg()[: len(jpeg()) // 2], "truncated"),
    ("decompression bomb", "bomb.png", lambda: png_declaring(100_000, 100_000), "pixels"),
    ("plain text named .jpg", "notes.jpg", lambda: b"just some text\n" * 20, "not an image"),
    (
        "HTML named .jpg",
        "page.jpg",
        lambda: b"<!doctype html><html><script>alert(document.cookie)</script></html>",
        "not an image",
    ),
    (
        "SVG",
        "drawing.svg",
        lambda: (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b'<script>alert(1)</script><rect width="10" height="10"/></svg>'
        ),
        "not an image",
    ),
    ("animated GIF", "moving.gif", lambda: animated("GIF"), "not accepted"),
    ("animated WebP", "moving.webp", lambda: animated("WEBP"), "animated"),
    ("animated PNG", "moving.png", lambda: animated("PNG"), "animated"),
    ("tiny", "dot.png", lambda: encode(Image.new("RGB", (4, 4)), "PNG"), "at least"),
    ("BMP", "old.bmp", lambda: encode(Image.new("RGB", (32, 32)), "BMP"), "not accepted"),
]

ACCEPTED = [
    ("CMYK JPEG", "cmyk.jpg", lambda: encode(gradient("CMYK"), "JPEG"), "image/jpeg"),
    ("16-bit PNG", "deep.png", sixteen_bit_png, "image/png"),
    ("alpha PNG", "alpha.png", lambda: encode(gradient("RGBA"), "PNG"), "image/png"),
    ("palette PNG", "palette.png", lambda: encode(gradient("P"), "PNG"), "image/png"),
    ("greyscale WebP", "grey.webp", lambda: encode(gradient("L"), "WEBP"), "image/webp"),
    ("EXIF-rotated JPEG", "rotated.jpg", exif_rotated_jpeg, "image/jpeg"),
]


def stored_files(settings) -> list[str]:
    root = settings.MEDIA_ROOT
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def admin_client(client, people):
    client.force_login(people["admin"])
    return client


def upload(client, project, files: list[tuple[str, bytes]], metadata: str | None = None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {"files": [SimpleUploadedFile(name, content) for name, content in files]}
    if metadata is not None:
        data["metadata"] = metadata
    return client.post(reverse("api-items-upload", args=[project.slug]), data)


@pytest.mark.parametrize(("case", "name", "make", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_the_upload_api_refuses_a_hostile_file_with_a_reason(
    admin_client, project, settings, case, name, make, reason
):
    response = upload(admin_client, project, [(name, make())])

    assert response.status_code == 200, response.content[:500]
    [result] = response.json()["results"]
    assert result["outcome"] == "rejected"
    assert reason in result["reason"], result["reason"]
    assert not Item.objects.exists()
    assert stored_files(settings) == []


@pytest.mark.parametrize(("case", "name", "make", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_item_ingest_refuses_a_hostile_file(project, settings, case, name, make, reason):
    report = item_ingest(project=project, uploads=[Upload(name, make())])

    [result] = report.results
    assert (result.outcome, reason in result.reason) == ("rejected", True), result.reason
    assert not Item.objects.exists()
    assert stored_files(settings) == []


def test_a_file_beyond_the_byte_and_pixel_limits_is_refused(admin_client, project, settings):
    settings.IMAGE_MAX_BYTES = 2_000
    settings.IMAGE_MAX_PIXELS = 10_000
    big_bytes = encode(Image.effect_noise((96, 96), 60).convert("RGB"), "PNG")
    warning_zone = encode(Image.new("RGB", (150, 100)), "PNG")  # 1.5× the pixel limit
    far_beyond = png_declaring(1_000, 1_000)

    response = upload(
        admin_client,
        project,
        [("heavy.png", big_bytes), ("wide.png", warning_zone), ("bomb.png", far_beyond)],
    )

    reasons = {r["name"]: r["reason"] for r in response.json()["results"]}
    assert "the limit is" in reasons["heavy.png"]
    assert "pixels" in reasons["wide.png"]
    assert "pixels" in reasons["bomb.png"]
    assert not Item.objects.exists()
    assert stored_files(settings) == []


@pytest.mark.parametrize(("case", "name", "make", "ctype"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_unusual_but_valid_images_are_stored_and_thumbnailed(
    admin_client, project, settings, case, name, make, ctype
):
    response = upload(admin_client, project, [(name, make())])

    assert response.status_code == 201, response.content[:500]
    [result] = response.json()["results"]
    assert result["outcome"] == "created", result["reason"]
    item = Item.objects.get(pk=result["item_id"])
    assert item.content_type == ctype
    with item.thumbnail.open("rb") as fh:
        thumb = Image.open(io.BytesIO(fh.read()))
        thumb.load()
    assert (thumb.format, thumb.mode) == ("JPEG", "RGB")
    low, high = min(thumb.getextrema()[0]), max(b[1] for b in thumb.getextrema())
    assert high - low > 20, "the thumbnail lost the picture (all one colour)"
    with item.image.open("rb") as fh:
        stored = Image.open(io.BytesIO(fh.read()))
        stored.load()
    assert stored.size == (item.width, item.height)


def test_an_exif_rotated_jpeg_is_stored_upright(admin_client, project):
    response = upload(admin_client, project, [("rotated.jpg", exif_rotated_jpeg())])

    item = Item.objects.get(pk=response.json()["results"][0]["item_id"])
    assert (item.width, item.height) == (20, 40)
    with item.image.open("rb") as fh:
        stored = Image.open(io.BytesIO(fh.read()))
        stored.load()
    assert stored.size == (20, 40)
    assert stored.getexif().get(0x0112, 1) == 1
    # Orientation 6 turns the stored left edge into the top: the red band is now on top.
    red, green, _ = stored.convert("RGB").getpixel((10, 2))
    assert red > 150 and green < 100


def test_a_bad_file_does_not_stop_the_rest_of_the_batch(admin_client, project, settings):
    good = encode(gradient("RGB"), "PNG")

    response = upload(admin_client, project, [("bad.jpg", b"<html>"), ("good.png", good)])

    assert response.status_code == 201
    assert response.json()["created"] == 1 and response.json()["rejected"] == 1
    assert Item.objects.count() == 1
    assert len(stored_files(settings)) == 2  # the image and its thumbnail


ODD_METADATA = [
    ("very long", {"note": "x" * 20_000}, "larger than"),
    ("nested", {"review": {"id": 1, "tags": ["a"]}}, "string, number or boolean"),
    ("a list", ["not", "an", "object"], "JSON object"),
    ("a NUL character", {"review_id": "abc\x00def"}, "text"),
    ("a lone surrogate", {"uploader": "bad\udcffname"}, "text"),
    ("a key with a lone surrogate", {"\ud800key": "value"}, "text"),
]


@pytest.mark.parametrize(
    ("case", "metadata", "reason"), ODD_METADATA, ids=[m[0] for m in ODD_METADATA]
)
def test_odd_metadata_is_refused_with_a_reason(project, settings, case, metadata, reason):
    report = item_ingest(
        project=project, uploads=[Upload("ok.png", encode(gradient("RGB"), "PNG"), metadata)]
    )

    [result] = report.results
    assert result.outcome == "rejected"
    assert reason in result.reason, result.reason
    assert not Item.objects.exists()
    assert stored_files(settings) == []


@pytest.mark.parametrize(
    ("case", "metadata", "reason"),
    [m for m in ODD_METADATA if m[0] != "a list"],
    ids=[m[0] for m in ODD_METADATA if m[0] != "a list"],
)
def test_odd_metadata_through_the_api_is_a_clear_answer_never_a_500(
    admin_client, project, settings, case, metadata, reason
):
    response = upload(
        admin_client,
        project,
        [("ok.png", encode(gradient("RGB"), "PNG"))],
        metadata=json.dumps(metadata),  # ASCII-escaped: \u0000, \udcff reach the server as is
    )

    assert response.status_code in (200, 400), response.content[:500]
    body = response.json()
    text = body.get("detail") or body["results"][0]["reason"]
    assert reason in text, text
    assert not Item.objects.exists()
    assert stored_files(settings) == []


def test_unusual_but_valid_metadata_is_kept(admin_client, project):
    metadata = {"uploader": "Zoë 👟 مرحبا", "review_id": 12, "verified": True, "note": None}

    response = upload(
        admin_client,
        project,
        [("ok.png", encode(gradient("RGB"), "PNG"))],
        metadata=json.dumps(metadata),
    )

    assert response.status_code == 201
    assert Item.objects.get().metadata == metadata


def test_a_file_name_with_a_path_never_reaches_storage(admin_client, project, settings):
    response = upload(
        admin_client, project, [("../../../etc/cron.d/evil.png", encode(gradient("RGB"), "PNG"))]
    )

    assert response.status_code == 201
    item = Item.objects.get()
    root = settings.MEDIA_ROOT.resolve()
    for name in (item.image.name, item.thumbnail.name):
        assert ".." not in name
        assert (root / name).resolve().is_relative_to(root)
        assert name.split("/")[-1].split(".")[0] == item.sha256


def test_file_names_that_are_not_valid_text_are_stored_cleaned(project):
    # A Linux file name in Latin-1 reaches Python as lone surrogates (surrogateescape).
    latin1 = b"caf\xe9.png".decode("utf-8", "surrogateescape")
    uploads = [
        Upload(latin1, encode(gradient("RGB"), "PNG")),
        Upload("nul\x00byte.png", encode(gradient("RGB", (40, 40)), "PNG")),
    ]

    report = item_ingest(project=project, uploads=uploads)

    assert [r.outcome for r in report.results] == ["created", "created"]
    names = set(Item.objects.values_list("original_name", flat=True))
    assert names == {"caf?.png", "nulbyte.png"}
