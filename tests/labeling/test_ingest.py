"""Ingest: good images go in, duplicates and bad files get a reason, nothing else is lost."""

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from labeling.ingest import Upload, item_ingest
from labeling.models import Item, ItemStatus
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_mixed_batch_has_three_outcomes_and_loses_nothing(project):
    red, blue = image_bytes(color=(255, 0, 0)), image_bytes("JPEG", color=(0, 0, 255))
    corrupt = red[: len(red) // 2]
    uploads = [
        Upload("red.png", red, {"review_id": "r-1", "review_type": "product"}),
        Upload("blue.jpg", blue),
        Upload("red-again.png", red),
        Upload("broken.png", corrupt),
        Upload("notes.jpg", b"this is a text file, not a photo"),
    ]

    report = item_ingest(project=project, uploads=uploads)

    outcomes = {r.name: (r.outcome, r.reason) for r in report.results}
    assert outcomes["red.png"][0] == "created"
    assert outcomes["blue.jpg"][0] == "created"
    assert outcomes["red-again.png"][0] == "duplicate"
    assert f"item {report.results[0].item_id}" in outcomes["red-again.png"][1]
    assert outcomes["broken.png"] == ("rejected", outcomes["broken.png"][1])
    # In words a person can act on, not Pillow's ("image file is truncated (151 bytes …)").
    assert (
        "upload the complete file" in outcomes["broken.png"][1]
        or "damaged" in (outcomes["broken.png"][1])
    )
    assert "bytes not processed" not in outcomes["broken.png"][1]
    assert outcomes["notes.jpg"][0] == "rejected"
    assert "not an image" in outcomes["notes.jpg"][1]
    assert report.summary() == {"created": 2, "duplicate": 1, "rejected": 2}

    items = Item.objects.filter(project=project).order_by("pk")
    assert items.count() == 2
    first = items[0]
    assert first.metadata == {"review_id": "r-1", "review_type": "product"}
    assert default_storage.exists(first.image.name)
    assert default_storage.exists(first.thumbnail.name)
    assert default_storage.open(first.image.name).read() == red
    # Queued for prediction after commit; with no model yet, both wait for humans.
    assert set(items.values_list("status", flat=True)) == {ItemStatus.QUEUED}


def test_same_image_in_another_project_is_not_a_duplicate(project, people):
    from labeling.models import Project

    other = Project.objects.get(slug="other-shop")
    data = image_bytes()
    assert item_ingest(project=project, uploads=[Upload("a.png", data)]).count("created") == 1
    assert item_ingest(project=other, uploads=[Upload("a.png", data)]).count("created") == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (image_bytes("GIF", mode="P", color=1), "GIF format is not accepted"),
        (image_bytes("BMP"), "BMP format is not accepted"),
        (image_bytes(size=(4, 4)), "at least"),
    ],
    ids=["empty", "gif", "bmp", "tiny"],
)
def test_refused_files_say_why(project, data, reason):
    report = item_ingest(project=project, uploads=[Upload("x", data)])
    assert report.results[0].outcome == "rejected"
    assert reason in report.results[0].reason
    assert not Item.objects.exists()


def test_pixel_and_byte_limits(project, settings):
    settings.IMAGE_MAX_PIXELS = 100 * 100
    big = image_bytes(size=(120, 120))
    report = item_ingest(project=project, uploads=[Upload("big.png", big)])
    assert report.results[0].outcome == "rejected"
    assert "pixels" in report.results[0].reason

    settings.IMAGE_MAX_PIXELS = 10**8
    settings.IMAGE_MAX_BYTES = 100
    report = item_ingest(project=project, uploads=[Upload("big.png", big)])
    assert "limit is" in report.results[0].reason


def test_exif_orientation_is_applied(project):
    # A 40×20 landscape photo whose EXIF says "rotate 90°": stored upright as 20×40.
    image = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)

    report = item_ingest(project=project, uploads=[Upload("rotated.jpg", buffer.getvalue())])

    item = Item.objects.get(pk=report.results[0].item_id)
    assert (item.width, item.height) == (20, 40)
    stored = Image.open(default_storage.open(item.image.name))
    assert stored.size == (20, 40)
    assert stored.getexif().get(0x0112, 1) == 1


def test_bad_metadata_is_refused_per_file(project):
    report = item_ingest(
        project=project,
        uploads=[
            Upload("a.png", image_bytes(), {"nested": {"no": 1}}),
            Upload("b.png", image_bytes(color=(1, 2, 3))),
        ],
    )
    assert [r.outcome for r in report.results] == ["rejected", "created"]
    assert "metadata value" in report.results[0].reason
