import gzip
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from labeling.models import GoldItem, Item, Project

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


def test_demo_seeding_creates_users_project_and_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 4)
    write_idx(tmp_path / "fm", rng.integers(0, 255, size=(40, 28, 28)), labels)

    call_command(
        "seed_demo", "--images", "30", "--data-root", str(tmp_path / "fm"), "--gold-share", "0.5"
    )

    out = capsys.readouterr().out
    project = Project.objects.get(slug="fashion-demo")
    assert project.labels.count() == 10
    assert Item.objects.filter(project=project).count() == 30
    assert 0 < GoldItem.objects.filter(project=project).count() < 30
    # Credentials are printed once and work.
    line = next(line for line in out.splitlines() if "demo-inspector " in line)
    password = line.split("password:")[1].strip()
    assert authenticate(username="demo-inspector", password=password) is not None

    # Running it again adds nothing and prints no new passwords.
    call_command("seed_demo", "--images", "30", "--data-root", str(tmp_path / "fm"))
    again = capsys.readouterr().out
    assert "password:" not in again
    assert Item.objects.filter(project=project).count() == 30


def test_demo_without_data_gives_empty_project_and_hint(tmp_path, capsys):
    call_command("seed_demo", "--images", "10", "--data-root", str(tmp_path / "absent"))
    out = capsys.readouterr().out
    assert Project.objects.get(slug="fashion-demo").items.count() == 0
    assert "import_images fashion-demo" in out


@pytest.mark.skipif(
    not REAL_DATA.exists(), reason="Debian's dataset-fashion-mnist is not installed"
)
def test_demo_on_real_fashion_mnist_subset(capsys):
    call_command("seed_demo", "--images", "20")
    project = Project.objects.get(slug="fashion-demo")
    items = list(project.items.all())
    assert len(items) == 20
    assert all(item.width == 28 and item.height == 28 for item in items)
    assert all(item.metadata["source"] == "fashion-mnist" for item in items)
