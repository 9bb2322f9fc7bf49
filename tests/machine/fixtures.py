"""Fixtures for the Django side of the model: a shapes project and a tiny trained checkpoint."""

import io
import shutil

import numpy as np
import pytest

from labeling.answers import item_finalize
from labeling.ingest import Upload, item_ingest
from labeling.models import Item, ItemSource, ModelStatus, ModelVersion
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


def shape_png(label: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    shape_image(SHAPES[label], np.random.default_rng(seed), size=40).save(buffer, "PNG")
    return buffer.getvalue()


def shapes_project(slug: str = "shapes", **settings):
    """A three-class project; no calibration share unless asked (routing tests expect every
    image to follow its confidence)."""
    settings.setdefault("calibration_share", 0.0)
    return project_create(name=slug.title(), slug=slug, labels=list(SHAPES), **settings)


def add_shapes(
    project, n: int, *, offset: int = 0, label_them: bool = False, queue_prediction: bool = True
) -> list[int]:
    """``n`` shape images (classes in turn); with ``label_them`` they get consensus labels;
    without ``queue_prediction`` they stay ``new``, as if the worker had not run yet."""
    uploads = [
        Upload(f"s{offset + i}.png", shape_png(i % 3, offset + i), {"truth": SHAPES[i % 3]})
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


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny model trained once per module, with its held-out predictions saved beside it."""
    from labeling.machine.predictors import heldout_save
    from ml.training import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny") / "model"
    train_samples = [(shape_png(i % 3, 10_000 + i), i % 3) for i in range(45)]
    val_samples = [(shape_png(i % 3, 20_000 + i), i % 3) for i in range(30)]
    params = {k: v for k, v in TINY.items() if k != "val_fraction"}
    result = train(
        TrainConfig(
            samples=train_samples,
            validation_samples=val_samples,
            class_names=list(SHAPES),
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


def install_model(
    project, checkpoint, settings, *, version: int = 1, status=ModelStatus.READY
) -> ModelVersion:
    """Copy a trained checkpoint under MODEL_ROOT and register it as a version of ``project``."""
    out, result = checkpoint
    target = settings.MODEL_ROOT / f"{project.pk}" / f"v{version}"
    shutil.copytree(out, target)
    return ModelVersion.objects.create(
        project=project,
        version=version,
        checkpoint_dir=str(target.relative_to(settings.MODEL_ROOT)),
        temperature=result.temperature,
        metrics={**result.metrics, "class_names": list(SHAPES)},
        status=status,
    )
