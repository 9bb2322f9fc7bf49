"""What a model trains on: human labels on the training side, machine labels only when the
project opts in and only of classes whose audit held up; and when the first model trains."""

import numpy as np
import pytest

from labeling.answers import item_finalize
from labeling.machine.training import (
    FIRST_MODEL_PER_CLASS,
    MIN_AUDITED_FOR_TRAINING,
    machine_labels_trusted,
    training_due,
    training_run,
    training_start,
)
from labeling.models import Item, ItemSource, Prediction, PredictionDecision
from tests.machine.fixtures import TINY, add_shapes, install_model, shapes_project

pytestmark = pytest.mark.django_db(transaction=True)


def label(project, ids, source=ItemSource.CONSENSUS, truth=True):
    labels = {x.name: x for x in project.labels.all()}
    names = list(labels)
    for item in Item.objects.filter(pk__in=ids):
        name = (
            item.metadata["truth"]
            if truth
            else names[(names.index(item.metadata["truth"]) + 1) % 3]
        )
        item_finalize(item=item, label=labels[name], source=source, confidence=0.99)


@pytest.fixture
def project(settings):
    settings.THRESHOLD_MIN_SUPPORT = 5
    project = shapes_project(target_precision=0.8, threshold_confidence=0.6, gold_rate=0)
    label(project, add_shapes(project, 45))
    return project


def machine_history(project, tiny_checkpoint, settings, *, audit_right: bool):
    """An earlier model v1 that auto-labeled 30 images and had 12 per class audited (all right,
    or all wrong)."""
    model = install_model(project, tiny_checkpoint)
    labels = {x.name: x for x in project.labels.all()}

    def predicted(ids, decision):
        for item in Item.objects.filter(pk__in=ids):
            Prediction.objects.create(
                item=item,
                model_version=model,
                probabilities=[0.98, 0.01, 0.01],
                label=labels[item.metadata["truth"]],
                confidence=0.98,
                decision=decision,
            )

    auto = add_shapes(project, 30, offset=2000, queue_prediction=False)
    predicted(auto, PredictionDecision.AUTO_LABELED)
    label(project, auto, source=ItemSource.MACHINE)
    audited = add_shapes(
        project, 3 * MIN_AUDITED_FOR_TRAINING + 6, offset=3000, queue_prediction=False
    )
    predicted(audited, PredictionDecision.AUDIT)
    Item.objects.filter(pk__in=audited).update(is_audit=True)
    label(project, audited, truth=audit_right)
    return auto


def train_now(project, **overrides):
    model = training_start(project=project, overrides={**TINY, **overrides}, queue=False)
    return training_run(model_version_id=model.pk)


def test_machine_labels_are_trained_on_only_when_the_project_opts_in(
    project, tiny_checkpoint, settings
):
    auto = machine_history(project, tiny_checkpoint, settings, audit_right=True)

    off = train_now(project)
    assert off.hyperparameters["machine_labels_trained"] == 0

    project.train_on_machine_labels = True
    project.save()
    on = train_now(project)
    used = on.hyperparameters["machine_labels_trained"]
    # class-balanced: machine labels only top a class up to the largest human class
    assert 0 < used <= len(auto)
    assert on.hyperparameters["human_labels_trained"] == off.hyperparameters["human_labels_trained"]
    # the held-out side is the same for both versions: the gate compares on the same images
    assert set(on.validation_items) == set(off.validation_items)


def test_machine_labels_of_classes_that_failed_their_audit_are_never_trained_on(
    project, tiny_checkpoint, settings
):
    machine_history(project, tiny_checkpoint, settings, audit_right=False)
    project.train_on_machine_labels = True
    project.save()
    assert machine_labels_trusted(project=project, human_counts=np.array([9, 9, 9]), seed=1) == []


def test_the_first_model_trains_once_every_class_has_a_few_labels(settings):
    project = shapes_project(slug="young", retrain_every=1000)
    ids = add_shapes(project, 3 * FIRST_MODEL_PER_CLASS)
    label(project, ids[:-1])  # one class one label short
    assert not training_due(project=project)
    label(project, ids[-1:])
    assert training_due(project=project)
