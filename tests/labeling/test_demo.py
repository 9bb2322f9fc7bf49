import gzip
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.utils import timezone

from labeling.demo import DEMO_TRAINING, demo_seed
from labeling.models import (
    GoldItem,
    Item,
    ItemSource,
    Manifest,
    ManifestKind,
    ModelStatus,
    ModelVersion,
    Project,
)
from labeling.reports import Period, cost_report_build

pytestmark = pytest.mark.django_db(transaction=True)

REAL_DATA = Path("/usr/share/datasets/fashion-mnist")


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """A tiny Fashion-MNIST in the Debian package's idx.gz layout."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + images.astype(np.uint8).tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(
            (0x0801).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes()
        )


@pytest.fixture
def fashion(tmp_path) -> Path:
    """A tiny Fashion-MNIST: 400 random images, 40 per class."""
    rng = np.random.default_rng(0)
    write_idx(
        tmp_path / "fm", rng.integers(0, 255, size=(400, 28, 28)), np.repeat(np.arange(10), 40)
    )
    return tmp_path / "fm"


def test_demo_seeding_creates_users_project_images_and_history(fashion, capsys):
    call_command(
        "seed_demo",
        *("--images", "30", "--history", "20", "--no-train"),
        *("--data-root", str(fashion), "--gold-share", "0.5"),
    )

    out = capsys.readouterr().out
    project = Project.objects.get(slug="fashion-demo")
    assert project.labels.count() == 10
    waiting = Item.objects.filter(project=project, metadata__source="fashion-mnist")
    imported = Item.objects.filter(project=project, final_source=ItemSource.IMPORTED)
    assert (waiting.count(), imported.count()) == (30, 20)
    assert 0 < GoldItem.objects.filter(project=project).count() < 30
    assert not GoldItem.objects.filter(item__in=imported).exists()
    # The history came in as a Ground Truth manifest, and none of it is a waiting image.
    manifest = Manifest.objects.get(project=project, kind=ManifestKind.IMPORT)
    assert manifest.line_count == 20 and manifest.job_name == "fashion-mnist-history"
    assert not set(waiting.values_list("sha256", flat=True)) & set(
        imported.values_list("sha256", flat=True)
    )
    assert not ModelVersion.objects.exists()  # --no-train
    # Credentials are printed once and work.
    line = next(line for line in out.splitlines() if "demo-inspector " in line)
    password = line.split("password:")[1].strip()
    assert authenticate(username="demo-inspector", password=password) is not None

    # Running it again adds nothing and prints no new passwords.
    call_command(
        "seed_demo", "--images", "30", "--history", "20", "--no-train", "--data-root", str(fashion)
    )
    again = capsys.readouterr().out
    assert "password:" not in again
    assert Item.objects.filter(project=project).count() == 50


def test_a_fresh_demo_shows_no_saving(fashion):
    """Seeded gold answers and the imported history came with the data: before anyone (person
    or model) has labeled anything, the cost report shows no inspector labels and no saving."""
    demo_seed(images=40, history=30, gold_share=0.5, train=False, data_root=fashion)
    project = Project.objects.get(slug="fashion-demo")
    gold = GoldItem.objects.filter(project=project).count()
    assert gold > 0

    today = timezone.localdate()
    s = cost_report_build(project=project, period=Period(today, today)).summary

    assert (s["auto_labeled"], s["human_labeled"]) == (0, 0)
    assert (s["imported"], s["seeded_gold"]) == (30, gold)
    assert s["answers"] == 0 and s["total_cost"] == 0
    assert s["baseline_cost"] == 0 and s["saving"] == 0 and s["saving_percent"] is None
    assert s["baseline_observed_answers_per_item"] is None


def test_the_demo_queues_its_first_model_once(fashion, settings):
    """The first model is queued to the worker (not run here) with the demo's training
    settings, and only once."""
    from labeling.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False  # queued to the (filesystem) broker; no worker runs

    first = demo_seed(images=20, history=30, train=True, data_root=fashion).first_model

    assert first is not None and first.status == ModelStatus.TRAINING
    assert first.progress["reason"] == "demo: first model from the imported history"
    assert {k: first.hyperparameters[k] for k in DEMO_TRAINING} == DEMO_TRAINING
    assert first.manifest.line_count == 30 + GoldItem.objects.count()
    assert demo_seed(images=20, history=30, train=True, data_root=fashion).first_model is None
    assert ModelVersion.objects.count() == 1


def test_demo_without_data_gives_empty_project_and_hint(tmp_path, capsys):
    call_command("seed_demo", "--images", "10", "--data-root", str(tmp_path / "absent"))
    out = capsys.readouterr().out
    assert Project.objects.get(slug="fashion-demo").items.count() == 0
    assert "import_images fashion-demo" in out


@pytest.mark.skipif(
    not REAL_DATA.exists(), reason="Debian's dataset-fashion-mnist is not installed"
)
def test_demo_on_real_fashion_mnist_subset(capsys):
    call_command("seed_demo", "--images", "20", "--history", "0")
    project = Project.objects.get(slug="fashion-demo")
    items = list(project.items.all())
    assert len(items) == 20
    assert all(item.width == 28 and item.height == 28 for item in items)
    assert all(item.metadata["source"] == "fashion-mnist" for item in items)
