"""The database itself refuses rows that break the invariants, whatever code writes them."""

import pytest
from django.db import IntegrityError, connection, transaction

from labeling.ingest import Upload, item_ingest
from labeling.models import Annotation, Item, Label, Project
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def item(project):
    return Item.objects.get(
        pk=item_ingest(project=project, uploads=[Upload("a.png", image_bytes())]).created_ids[0]
    )


def test_one_answer_per_inspector_per_item(project, people, item):
    label = project.labels.first()
    Annotation.objects.create(
        project=project, item=item, annotator=people["inspector"], label=label
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Annotation.objects.create(
            project=project, item=item, annotator=people["inspector"], label=label
        )


def test_status_must_be_a_known_value(item):
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.filter(pk=item.pk).update(status="finished-ish")


def test_final_label_needs_a_source(item, project):
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.filter(pk=item.pk).update(final_label=project.labels.first(), final_source="")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="composite keys are added on PostgreSQL"
)
def test_label_must_belong_to_the_items_project(project, people, item):
    other = Project.objects.get(slug="other-shop")
    foreign = Label.objects.filter(project=other).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Annotation.objects.create(
            project=project, item=item, annotator=people["inspector"], label=foreign
        )


def test_a_project_with_answers_and_labels_can_be_deleted(project, people, item):
    from labeling.answers import annotation_submit, annotation_undo
    from labeling.queue import assignment_next

    project.gold_rate = 0
    project.save()
    lease = assignment_next(project=project, user=people["inspector"])
    annotation_submit(
        project=project,
        assignment_id=lease.pk,
        user=people["inspector"],
        label_name="product",
        time_on_task_ms=3,
    )
    annotation_undo(project=project, user=people["inspector"])  # a chain of superseding rows
    project.delete()
    assert not Item.objects.filter(pk=item.pk).exists()
