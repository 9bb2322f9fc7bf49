"""The Fashion-MNIST loader reads Debian's idx.gz files and writes PNG folders."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.fashion_mnist import CLASS_NAMES, DEFAULT_ROOT, load_split, stratified_subset, write_pngs

pytestmark = pytest.mark.skipif(
    not (Path(DEFAULT_ROOT) / "t10k-images-idx3-ubyte.gz").exists(),
    reason="dataset-fashion-mnist is not installed",
)


def test_test_split_has_10000_balanced_images():
    images, labels = load_split("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    assert len(CLASS_NAMES) == 10


def test_write_pngs_round_trips(tmp_path):
    images, labels = load_split("test")
    idx = stratified_subset(labels, 20, seed=0)
    written = write_pngs(images, labels, tmp_path, indices=idx)
    assert len(written) == 20
    path, label = written[0]
    assert path.parent.name.startswith(f"{label}_")
    assert np.array_equal(np.asarray(Image.open(path)), images[idx[0]])
    assert np.bincount([lab for _, lab in written]).tolist() == [2] * 10


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError):
        load_split("validation")
