"""Fixtures for the Django side of the model: generated image classes (shapes, colours), tiny
trained checkpoints, and bringing one into a project the supported way (model import)."""

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeling.answers import item_finalize
from labeling.ingest import Upload, item_ingest
from labeling.models import Item, ItemSource, ModelVersion
from labeling.project_setup import project_create
from tests.ml.shapes import SHAPES, shape_image

TINY = {
    "input_size": 32,
    "trainable_blocks": [1],
    "epochs": [3],
    "learning_rates": [0.003],
    "time_budget_s": 90,
    "batch_size": 8,
    "val_fraction": 0.34,
    "min_support": 2,
}
# The label set of the tests' "reviews" project (tests/conftest.py), one colour per class.
REVIEW_LABELS = ("package", "product", "full_body", "half_body")
COLOURS = ((200, 40, 40), (40, 160, 40), (40, 60, 200), (200, 180, 40))
HELDOUT_OFFSET = 30_000  # seeds of the labeled images an imported model is scored on


def shape_png(label: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    shape_image(SHAPES[label], np.random.default_rng(seed), size=40).save(buffer, "PNG")
    return buffer.getvalue()


def colour_png(label: int, seed: int) -> bytes:
    """A noisy patch of the class's colour: a class a tiny model learns in seconds."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(
        np.array(COLOURS[label]) + rng.integers(-35, 36, size=(40, 40, 3)), 0, 255
    ).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def shapes_project(slug: str = "shapes", **settings):
    """A three-class project; no calibration share unless asked (routing tests expect every
    image to follow its confidence)."""
    settings.setdefault("calibration_share", 0.0)
    return project_create(name=slug.title(), slug=slug, labels=list(SHAPES), **settings)


def _add(project, names, png, n, *, offset, label_them, queue_prediction) -> list[int]:
    k = len(names)
    uploads = [
        Upload(f"s{offset + i}.png", png(i % k, offset + i), {"truth": names[i % k]})
        for i in range(n)
    ]
    ids = item_ingest(
        project=project, uploads=uploads, queue_prediction=queue_prediction
    ).created_ids
    if label_them:
        labels = {label.name: label for label in project.labels.all()}
        for item in Item.objects.filter(pk__in=ids):
            item_finalize(
                item=item,
                label=labels[item.metadata["truth"]],
                source=ItemSource.CONSENSUS,
                confidence=0.99,
            )
    return ids


def add_shapes(
    project, n: int, *, offset: int = 0, label_them: bool = False, queue_prediction: bool = True
) -> list[int]:
    """``n`` shape images (classes in turn); with ``label_them`` they get consensus labels;
    without ``queue_prediction`` they stay ``new``, as if the worker had not run yet."""
    return _add(
        project,
        SHAPES,
        shape_png,
        n,
        offset=offset,
        label_them=label_them,
        queue_prediction=queue_prediction,
    )


def add_colours(project, n: int, *, offset: int = 0, label_them: bool = True) -> list[int]:
    """``n`` colour images for the reviews project's labels (classes in turn), labeled by
    consensus unless ``label_them`` is false (then they stay ``new``)."""
    return _add(
        project,
        REVIEW_LABELS,
        colour_png,
        n,
        offset=offset,
        label_them=label_them,
        queue_prediction=False,
    )


def train_tiny(out: Path, class_names, png: Callable[[int, int], bytes]):
    """A tiny model trained on generated images (15 per class, 10 held out per class), with
    its held-out predictions saved beside it; returns (folder, TrainResult)."""
    from labeling.machine.predictors import heldout_save
    from ml.training import TrainConfig, train

    k = len(class_names)
    train_samples = [(png(i % k, 10_000 + i), i % k) for i in range(15 * k)]
    val_samples = [(png(i % k, 20_000 + i), i % k) for i in range(10 * k)]
    params = {key: value for key, value in TINY.items() if key != "val_fraction"}
    result = train(
        TrainConfig(
            samples=train_samples,
            validation_samples=val_samples,
            class_names=list(class_names),
            output_dir=out,
            seed=3,
            **params,
        )
    )
    heldout_save(
        out,
        [s for s, _ in val_samples],
        np.array([y for _, y in val_samples]),
        # Not items of any test project (it was trained elsewhere): ids no row will have.
        list(range(10**9, 10**9 + len(val_samples))),
    )
    return out, result


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny shapes model trained once per module."""
    return train_tiny(tmp_path_factory.mktemp("tiny") / "model", SHAPES, shape_png)


@pytest.fixture(scope="module")
def review_checkpoint(tmp_path_factory):
    """A tiny model for the reviews project's four labels, trained once per module."""
    return train_tiny(tmp_path_factory.mktemp("reviews") / "model", REVIEW_LABELS, colour_png)


def recalibrated(checkpoint, folder: Path, *, factor: float = 5.0):
    """A copy of ``checkpoint`` whose temperature is ``factor`` times its own: the same
    weights, worse calibrated (under-confident), so the promotion gate keeps an active model
    with the original calibration."""
    source, result = checkpoint
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    config["temperature"] = config["temperature"] * factor
    (folder / "config.json").write_text(json.dumps(config))
    return folder, result


def label_heldout(project, n: int = 30) -> list[int]:
    """``n`` shape images labeled by consensus (classes in turn), the human labels a model
    brought into the project is scored on."""
    return add_shapes(project, n, offset=HELDOUT_OFFSET, label_them=True, queue_prediction=False)


def install_model(project, checkpoint, *, heldout: int = 30) -> ModelVersion:
    """Bring a tiny trained checkpoint into ``project`` the supported way
    (``labeling.machine.model_import``): checked against the project's labels, scored on its
    human labels (for a shapes project without any, ``heldout`` labeled shape images are added
    first) and judged by the promotion gate, which promotes a project's first model."""
    from labeling.machine.model_import import heldout_items, model_import, model_import_score

    folder, _ = checkpoint
    if heldout and not heldout_items(project)[0]:
        label_heldout(project, heldout)
    model = model_import(project=project, checkpoint_dir=folder, queue=False)
    return model_import_score(model_version_id=model.pk)
