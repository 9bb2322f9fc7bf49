"""Shared fixtures for the ml tests: small generated image sets (no downloads, no Django)."""

import io

import numpy as np
import pytest
import torch

from tests.ml.shapes import SHAPES, shape_image  # noqa: E402, F401


@pytest.fixture(scope="module")
def shape_samples(tmp_path_factory):
    """36 images (12 per class) as a mix of PNG paths, JPEG bytes and arrays, with labels."""
    tmp_path = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    samples = []
    for i in range(36):
        label = i % 3
        img = shape_image(SHAPES[label], rng)
        if i % 3 == 0:
            path = tmp_path / f"img{i}.png"
            img.save(path)
            samples.append((path, label))
        elif i % 3 == 1:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            samples.append((buf.getvalue(), label))
        else:
            samples.append((np.asarray(img), label))
    return samples


@pytest.fixture(autouse=True)
def _two_threads():
    # The test machine has two cores shared with other jobs.
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
