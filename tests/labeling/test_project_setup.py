"""Creating and changing projects through the one service the pages, the API and the command
call: settings cleaned the same whatever their form, label-set changes guarded by the active
model, archived projects taking no work."""

from decimal import Decimal

import pytest

from labeling.access import projects_for_user
from labeling.answers import annotation_submit
from labeling.errors import ProjectArchived
from labeling.ingest import Upload, item_ingest
from labeling.machine.training import training_start
from labeling.models import AnnotatorSkill, Label, ModelStatus, ModelVersion
from labeling.project_settings import ProjectSettingsInvalid
from labeling.project_setup import (
    LabelSetChangeRefused,
    LabelSpec,
    project_archive,
    project_create,
    project_restore,
    project_update,
)
from labeling.queue import assignment_next
from tests.conftest import image_bytes
from tests.machine.fixtures import add_colours, install_model

pytestmark = pytest.mark.django_db

SHOP = ["package", "product", "full_body", "half_body"]


def test_a_project_is_created_with_every_setting_as_text_or_typed(make_user):
    admin = make_user("ada")
    project = project_create(
        name="Review photos",
        labels=[LabelSpec("package"), LabelSpec("product", "Product shot", "p"), "Full body"],
        by=admin,
        min_answers="2",
        max_answers=4,
        consensus_target="0.9",
        audit_rate=0.1,
        gold_rate="0.02",
        price_per_answer="0.05",
        machine_price_per_1000=Decimal("0.1"),
        credit_rules={"product": "product", "style": "full-body"},
        credit_grant_threshold="0.9",
        credit_deny_threshold=0.1,
        retrain_every="250",
        show_model_suggestion="on",
        currency="eur",
    )
    assert project.slug == "review-photos"
    labels = [(label.name, label.display_name, label.key) for label in project.labels.all()]
    # Keys default to 1, 2, … skipping the ones taken; names become slugs.
    assert labels == [
        ("package", "package", "1"),
        ("product", "Product shot", "p"),
        ("full-body", "Full body", "2"),
    ]
    assert (project.min_answers, project.max_answers, project.consensus_target) == (2, 4, 0.9)
    assert project.price_per_answer == Decimal("0.05") and project.currency == "EUR"
    assert project.retrain_every == 250 and project.show_model_suggestion is True
    # The creator is the project's first admin.
    assert project.memberships.get(user=admin).role == "admin"


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"min_answers": 3, "max_answers": 2}, "max_answers", "at least min answers"),
        ({"min_answers": "two"}, "min_answers", "whole number"),
        ({"consensus_target": 1.0}, "consensus_target", "below 1"),
        ({"audit_rate": 1.5}, "audit_rate", "at most 1"),
        ({"price_per_answer": "-1"}, "price_per_answer", "at least 0"),
        ({"price_per_answer": "0.123456"}, "price_per_answer", "decimal places"),
        ({"credit_rules": {"style": "full_body"}}, "credit_rules", "not a label"),
        (
            {"credit_grant_threshold": 0.2, "credit_deny_threshold": 0.5},
            "credit_deny_threshold",
            "must not be above",
        ),
        ({"currency": "dollars"}, "currency", "three-letter"),
        ({"colour": "red"}, "colour", "Unknown setting"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_field(values, field, words):
    with pytest.raises(ProjectSettingsInvalid, match=words) as refused:
        project_create(name="Shop", labels=["package", "product"], **values)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        (["only"], "at least two labels"),
        (["a", "A"], "used twice: a"),
        ([LabelSpec("a", key="1"), LabelSpec("b", key="1")], "own key"),
        ([LabelSpec("a", key="10"), "b"], "one letter or digit"),
        (["!!", "b"], "letters, digits"),
        ([f"c{i}" for i in range(21)], "At most 20"),
    ],
)
def test_a_bad_label_set_is_refused(labels, words):
    with pytest.raises(ProjectSettingsInvalid, match=words):
        project_create(name="Shop", labels=labels)


def test_default_keys_leave_undo_skip_and_zoom_free():
    project = project_create(name="Many", labels=[f"c{i}" for i in range(20)])
    keys = [label.key for label in project.labels.all()]
    assert not {"u", "s", "z"} & set(keys)
    assert keys[:11] == list("1234567890q")


def _activate_model(project, checkpoint) -> ModelVersion:
    """The reviews project's first model, imported and promoted by the gate: scored on three
    human labels (package, product, full_body; half_body stays unused, and too few labels to
    train on)."""
    add_colours(project, 3)
    model = install_model(project, checkpoint)
    assert model.status == ModelStatus.ACTIVE and model.version == 1
    project.refresh_from_db()
    return model


def test_display_names_and_keys_change_under_an_active_model(project, review_checkpoint):
    _activate_model(project, review_checkpoint)
    result = project_update(
        project=project,
        labels=[
            {"name": "package", "display_name": "Package", "key": "q"},
            {"name": "product", "display_name": "Product", "key": "w"},
            {"name": "full_body", "display_name": "Full body", "key": "1"},
            {"name": "half_body", "display_name": "Half body", "key": "2"},
        ],
    )
    assert result.changed == ["labels"] and result.retired is None
    assert [(label.display_name, label.key) for label in project.labels.all()] == [
        ("Package", "q"),
        ("Product", "w"),
        ("Full body", "1"),
        ("Half body", "2"),
    ]
    assert project.active_model.status == ModelStatus.ACTIVE


@pytest.mark.parametrize(
    "labels",
    [
        [*SHOP, "close_up"],  # added
        ["product", "package", "full_body", "half_body"],  # reordered
        ["package", "product", "full_body"],  # removed (unused)
    ],
)
def test_a_label_change_that_breaks_the_active_model_is_refused_with_the_reason(
    project, labels, review_checkpoint
):
    _activate_model(project, review_checkpoint)
    with pytest.raises(LabelSetChangeRefused) as refused:
        project_update(project=project, labels=labels, min_answers=1)
    assert "Model v1 is active" in refused.value.message
    assert "trained on the classes package, product, full_body, half_body" in refused.value.message
    # Nothing changed, settings included.
    project.refresh_from_db()
    assert project.label_names() == SHOP and project.min_answers == 2
    assert project.active_model.status == ModelStatus.ACTIVE


def test_confirming_retires_the_model_and_tries_a_training(project, review_checkpoint):
    model = _activate_model(project, review_checkpoint)
    result = project_update(project=project, labels=[*SHOP, "close_up"], retire_model=True)
    model.refresh_from_db()
    project.refresh_from_db()
    assert model.status == ModelStatus.RETIRED and project.active_model is None
    assert result.retired == model
    # Too few labels here to train on: the reason is said, nothing breaks.
    assert result.training is None and "at least 20 human labels" in result.training_refused
    assert "close_up" in project.label_names()
    assert "No training started" in result.summary()


@pytest.mark.django_db(transaction=True)  # the upload queues its prediction on commit
def test_a_label_with_answers_cannot_be_removed(project, people):
    item_ingest(project=project, uploads=[Upload("a.png", image_bytes())])
    project.gold_rate = 0
    project.save()
    lease = assignment_next(project=project, user=people["inspector"])
    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=people["inspector"],
        label_name="half_body",
        time_on_task_ms=1000,
    )
    with pytest.raises(LabelSetChangeRefused, match="half_body cannot be removed: 1 answer"):
        project_update(project=project, labels=SHOP[:3])


def test_reordering_without_a_model_starts_trust_afresh(project, people):
    AnnotatorSkill.objects.create(
        project=project,
        annotator=people["inspector"],
        counts=[[1] * 4] * 4,
        confusion=[[0.25] * 4] * 4,
    )
    project.consensus_state = {"class_prior": [0.25] * 4}
    project.save()
    project_update(project=project, labels=["half_body", "full_body", "product", "package"])
    assert project.label_names() == ["half_body", "full_body", "product", "package"]
    assert list(Label.objects.filter(project=project).values_list("position", flat=True)) == [
        0,
        1,
        2,
        3,
    ]
    skill = AnnotatorSkill.objects.get(annotator=people["inspector"])
    assert skill.confusion == [] and project.consensus_state == {}


def test_thresholds_are_not_changed_through_settings(project):
    with pytest.raises(ProjectSettingsInvalid, match="Thresholds page") as refused:
        project_update(project=project, target_precision=0.9)
    assert refused.value.field == "target_precision"


@pytest.mark.django_db(transaction=True)
def test_an_archived_project_leaves_the_lists_and_takes_no_work(project, people):
    [item] = item_ingest(project=project, uploads=[Upload("a.png", image_bytes())]).created_ids
    project.gold_rate = 0
    project.save()
    lease = assignment_next(project=project, user=people["inspector"])

    project_archive(project=project, by=people["admin"])

    assert not projects_for_user(people["inspector"]).filter(pk=project.pk).exists()
    assert projects_for_user(people["inspector"], include_archived=True).filter(pk=project.pk)
    with pytest.raises(ProjectArchived, match="archived"):
        item_ingest(project=project, uploads=[Upload("b.png", image_bytes(color=(1, 2, 3)))])
    with pytest.raises(ProjectArchived):
        assignment_next(project=project, user=people["inspector"])
    with pytest.raises(ProjectArchived):
        annotation_submit(
            project=project,
            assignment_id=lease.pk,
            user=people["inspector"],
            label_name="package",
            time_on_task_ms=10,
        )
    with pytest.raises(ProjectArchived):
        training_start(project=project)

    project_restore(project=project)
    assert projects_for_user(people["inspector"]).filter(pk=project.pk).exists()
    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=people["inspector"],
        label_name="package",
        time_on_task_ms=10,
    )
    assert item


def test_a_model_trained_on_the_old_labels_cannot_be_promoted_after_the_change(
    project, review_checkpoint
):
    from labeling.errors import ServiceError
    from labeling.machine.promotion import model_promote

    model = _activate_model(project, review_checkpoint)
    project_update(project=project, labels=[*SHOP, "close_up"], retire_model=True)
    with pytest.raises(ServiceError, match="cannot serve this project"):
        model_promote(model=model)


def test_a_refused_threshold_setting_leaves_no_half_made_project():
    from labeling.models import Project

    with pytest.raises(ProjectSettingsInvalid, match="between 0 and 1") as refused:
        project_create(name="Half", labels=["a", "b"], target_precision=2)
    assert refused.value.field == "target_precision"
    assert not Project.objects.filter(slug="half").exists()
