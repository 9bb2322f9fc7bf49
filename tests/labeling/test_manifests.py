"""Ground Truth manifests: export → import round trip, and clear errors for bad lines."""

import json

import pytest
from django.core.management import call_command

from labeling.answers import item_finalize
from labeling.ingest import Upload, item_ingest
from labeling.manifests import manifest_export, manifest_import, manifest_read
from labeling.models import Item, ItemSource
from labeling.project_setup import project_create
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def labeled_project(project, n=6):
    labels = list(project.labels.all())
    ids = item_ingest(
        project=project,
        uploads=[Upload(f"{i}.png", image_bytes(color=(i * 30, 5, 5))) for i in range(n)],
    ).created_ids
    sources = [ItemSource.CONSENSUS, ItemSource.EXPERT, ItemSource.MACHINE]
    for i, item_id in enumerate(ids):
        item = Item.objects.get(pk=item_id)
        item_finalize(
            item=item, label=labels[i % 4], source=sources[i % 3], confidence=0.9 + i / 100
        )
    return ids


def test_export_has_ground_truth_form_and_no_machine_labels(project):
    labeled_project(project)
    manifest = manifest_export(project=project)
    lines = manifest_read(manifest)
    assert manifest.line_count == len(lines) == 4  # 2 of 6 were machine labels
    line = lines[0]
    meta = line["category-metadata"]
    assert set(line) == {"source-ref", "category", "category-metadata"}
    assert meta["type"] == "groundtruth/image-classification"
    assert meta["human-annotated"] == "yes"
    assert meta["job-name"] == manifest.job_name
    assert project.labels.get(name=meta["class-name"]).position == line["category"]
    assert {"confidence", "creation-date"} <= set(meta)


def test_export_import_round_trip_is_lossless(project):
    labeled_project(project)
    exported = manifest_export(project=project)
    other = project_create(name="Copy", slug="copy", labels=project.label_names())
    with exported.file.open("rb") as fh:
        content = fh.read()

    report = manifest_import(project=other, content=content)

    assert report.errors == [] and report.created == exported.line_count
    original = {
        (i.sha256, i.final_label.name, round(i.final_confidence, 6))
        for i in Item.objects.filter(project=project, final_source__in=["consensus", "expert"])
    }
    copied = {
        (i.sha256, i.final_label.name, round(i.final_confidence, 6))
        for i in Item.objects.filter(project=other)
    }
    assert copied == original
    assert set(Item.objects.filter(project=other).values_list("final_source", flat=True)) == {
        "imported"
    }
    # Exporting the copy gives the same labels again.
    again = manifest_read(manifest_export(project=other))

    def strip(lines):
        return sorted((x["category"], x["category-metadata"]["confidence"]) for x in lines)

    assert strip(again) == strip(manifest_read(exported))


def test_malformed_lines_are_reported_with_their_line_numbers(project, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(image_bytes(color=(9, 9, 9)))
    good = {
        "source-ref": "s3://shop-bucket/reviews/a.png",
        "category": 1,
        "category-metadata": {
            "class-name": "product",
            "confidence": 0.88,
            "type": "groundtruth/image-classification",
        },
    }
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps(
            {**good, "category-metadata": {**good["category-metadata"], "class-name": "selfie"}}
        ),
        json.dumps({**good, "source-ref": "s3://shop-bucket/reviews/missing.png"}),
        json.dumps({"category": 1}),
    ]
    report = manifest_import(project=project, content="\n".join(lines).encode(), images_dir=folder)
    assert report.created == 1
    errors = dict(report.errors)
    assert set(errors) == {2, 3, 4, 5}
    assert "not valid JSON" in errors[2]
    assert "unknown class 'selfie'" in errors[3]
    assert "image not found" in errors[4]
    assert "source-ref" in errors[5]
    item = Item.objects.get(project=project)
    assert (item.final_label.name, item.final_source, item.final_confidence) == (
        "product",
        "imported",
        0.88,
    )


def test_import_cannot_escape_the_images_folder(project, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(image_bytes())
    (tmp_path / "imgs").mkdir()
    line = {
        "source-ref": "../secret.png",
        "category": 0,
        "category-metadata": {"class-name": "package"},
    }
    report = manifest_import(
        project=project, content=json.dumps(line).encode(), images_dir=tmp_path / "imgs"
    )
    assert report.created == 0 and "image not found" in report.errors[0][1]


def test_manifest_commands(project, tmp_path, capsys):
    labeled_project(project)
    out = tmp_path / "labels.manifest"
    call_command("export_manifest", "reviews", "-o", str(out))
    assert "4 labels" in capsys.readouterr().out
    project_create(name="Copy", slug="copy", labels=project.label_names())
    call_command("import_manifest", "copy", str(out))
    assert "4 imported" in capsys.readouterr().out
