import pytest
from django.core.management import CommandError, call_command

from labeling.models import Item
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_import_folder_with_metadata(project, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "day1").mkdir(parents=True)
    (folder / "day1" / "a.png").write_bytes(image_bytes(color=(1, 1, 1)))
    (folder / "b.jpg").write_bytes(image_bytes("JPEG", color=(90, 90, 90)))
    (folder / "z.png").write_bytes(image_bytes(color=(1, 1, 1)))  # same pixels as day1/a.png
    (folder / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    meta = tmp_path / "meta.csv"
    meta.write_text("file,review_id,review_type\na.png,R-1,product\nb.jpg,R-2,style\n")

    call_command("import_images", "reviews", str(folder), "--metadata", str(meta))

    out, err = capsys.readouterr()
    assert "2 imported, 1 duplicates, 1 refused." in out
    assert "refused d.png" in err
    by_name = {item.original_name: item for item in Item.objects.filter(project=project)}
    assert set(by_name) == {"day1/a.png", "b.jpg"}
    assert by_name["day1/a.png"].metadata == {"review_id": "R-1", "review_type": "product"}
    assert by_name["b.jpg"].metadata["review_type"] == "style"


def test_import_refuses_unknown_project_and_missing_folder(project, tmp_path):
    with pytest.raises(CommandError, match="No project"):
        call_command("import_images", "nope", str(tmp_path))
    with pytest.raises(CommandError, match="not a folder"):
        call_command("import_images", "reviews", str(tmp_path / "missing"))


def test_import_reports_bad_metadata_file(project, tmp_path):
    bad = tmp_path / "meta.jsonl"
    bad.write_text('{"file": "a.png"}\nnot json\n')
    with pytest.raises(CommandError, match="line 2"):
        call_command("import_images", "reviews", str(tmp_path), "--metadata", str(bad))
