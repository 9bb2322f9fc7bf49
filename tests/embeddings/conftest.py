"""Embedding tests: the embedding step on, Fashion-MNIST photos, and tiny trained models."""

import io

import numpy as np
import pytest
from PIL import Image

from labeling.embeddings.index import index_forget
from ml.fashion_mnist import load_split
from tests.machine.fixtures import review_checkpoint, tiny_checkpoint  # noqa: F401
from tests.ml.conftest import _two_threads  # noqa: F401


@pytest.fixture(autouse=True)
def _embeddings_on(settings):
    settings.EMBEDDINGS_ENABLED = True
    settings.EMBEDDING_INPUT_SIZE = 64  # faster than the default 96 and enough for 28 px photos
    index_forget()  # each test's database starts empty; so does its index folder
    yield
    index_forget()


@pytest.fixture
def run_jobs(django_capture_on_commit_callbacks):
    """Call a service and run the jobs it queues on commit (as a worker would, inline)."""

    def run(service, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return service(**kwargs)

    return run


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST test images and labels (the real data the demo project uses)."""
    return load_split("test")


def photo(array: np.ndarray, size: int = 160) -> Image.Image:
    """A Fashion-MNIST image as a review photo: upscaled, RGB."""
    return Image.fromarray(array).resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()
