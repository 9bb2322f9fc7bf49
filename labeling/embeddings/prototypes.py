"""Prototype classes: an admin adds a label with a handful of example images, and until a
trained model knows the label, images near the examples' centroid are routed by distance
(``ml.prototypes``: accept as the new class, to humans, or not this class).

The examples become labeled items of the new class (an expert's label), so the next training
includes the class; once the active model's classes include it the prototype is ``absorbed``
and the model routes as for any other class.
"""

import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils.text import slugify

from labeling.answers import item_finalize
from labeling.dispatch import BUILD_PROTOTYPE, job_queue
from labeling.embeddings.spaces import space_current
from labeling.embeddings.store import owners_embed, rows_vectors
from labeling.errors import ServiceError
from labeling.ingest import Upload, item_ingest
from labeling.models import (
    Embedding,
    EmbeddingSpace,
    Item,
    ItemSource,
    Label,
    ModelVersion,
    Project,
    Prototype,
    PrototypeStatus,
    SpaceStatus,
)
from ml import prototypes as rule
from ml.embeddings import unpack

logger = logging.getLogger(__name__)

MIN_EXAMPLES = 5
MAX_EXAMPLES = 200
KEYS = "1234567890qwertyuiopasdfghjklzxcvbnm"
LIVE = (PrototypeStatus.PENDING, PrototypeStatus.ACTIVE)


class PrototypeRefused(ServiceError):
    status, code = 400, "prototype_refused"


@dataclass(frozen=True)
class PrototypeRoute:
    decision: str  # ml.prototypes.ACCEPT or HUMAN
    label: Label
    distance: float | None


def prototype_create(
    *,
    project: Project,
    name: str,
    uploads: list[Upload],
    display_name: str = "",
    by: AbstractBaseUser | None = None,
) -> Prototype:
    """Add label ``name`` with its example images and queue the prototype's build."""
    slug = slugify(name)[:60]
    if not slug:
        raise PrototypeRefused("Give the new label a name of letters, digits or dashes.")
    if project.labels.filter(name=slug).exists():
        raise PrototypeRefused(f"The project already has a label '{slug}'.")
    if not MIN_EXAMPLES <= len(uploads) <= MAX_EXAMPLES:
        raise PrototypeRefused(
            f"Send between {MIN_EXAMPLES} and {MAX_EXAMPLES} example images; got {len(uploads)}."
        )
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        used = set(project.labels.values_list("key", flat=True))
        key = next((k for k in KEYS if k not in used), None)
        if key is None:
            raise PrototypeRefused("Every keyboard key is taken; the project has too many labels.")
        position = (project.labels.aggregate(p=Max("position"))["p"] or 0) + 1
        label = Label.objects.create(
            project=project,
            name=slug,
            display_name=display_name or name,
            key=key,
            position=position,
        )
        report = item_ingest(project=project, uploads=uploads, uploader=by, queue_prediction=False)
        ids = sorted({r.item_id for r in report.results if r.item_id is not None})
        if len(ids) < MIN_EXAMPLES:
            reasons = "; ".join(f"{r.name}: {r.reason}" for r in report.results if r.reason)
            raise PrototypeRefused(
                f"Only {len(ids)} of the examples are usable images ({reasons})."
            )
        for item in Item.objects.select_for_update(of=("self",)).filter(pk__in=ids):
            item.project = project
            item_finalize(item=item, label=label, source=ItemSource.EXPERT, confidence=1.0)
        prototype = Prototype.objects.create(project=project, label=label, created_by=by)
        prototype.examples.set(ids)
        job_queue(BUILD_PROTOTYPE, prototype.pk)
    return prototype


def prototype_build(*, prototype_id: int) -> Prototype | None:
    """Embed the examples in the project's active space and calibrate the two thresholds
    (worker: runs the network). Also run again when the active space changes."""
    prototype = Prototype.objects.select_related("project", "label").filter(pk=prototype_id).first()
    if prototype is None or prototype.status == PrototypeStatus.ABSORBED:
        return prototype
    project = prototype.project
    space = space_current(project)
    examples = list(prototype.examples.all())
    rows = list(Embedding.objects.filter(space=space, item__in=examples))
    missing = [e for e in examples if e.pk not in {r.item_id for r in rows}]
    if missing:
        rows += owners_embed(space=space, owners=missing)
    if len(rows) < 2:
        return _fail(prototype, "The example images could not be embedded.")
    # Labeled images that never went through the prediction batch (imported labels) have no
    # vector yet: embed enough of them to calibrate against.
    unembedded = list(
        Item.objects.filter(project=project, final_label__isnull=False)
        .exclude(final_label=prototype.label)
        .exclude(embeddings__space=space)
        .order_by("-pk")[: settings.PROTOTYPE_NEGATIVES]
    )
    if unembedded:
        owners_embed(space=space, owners=unembedded)
    negatives = (
        Embedding.objects.filter(space=space, item__final_label__isnull=False)
        .exclude(item__final_label=prototype.label)
        .order_by("-pk")
        .values_list("vector", flat=True)[: settings.PROTOTYPE_NEGATIVES]
    )
    negative_vectors = unpack(list(negatives), space.dim)
    if len(negative_vectors) == 0:
        return _fail(
            prototype, "No labeled images of other classes yet: nothing to calibrate against."
        )
    center, calibration = rule.calibrate(
        rows_vectors(space, rows),
        negative_vectors,
        false_accept=settings.PROTOTYPE_FALSE_ACCEPT,
        human_share=settings.PROTOTYPE_HUMAN_SHARE,
        target_recall=settings.PROTOTYPE_TARGET_RECALL,
    )
    prototype.space = space
    prototype.centroid = center.astype(np.float32).tobytes()
    prototype.accept_distance = calibration.accept_distance
    prototype.reject_distance = calibration.reject_distance
    prototype.calibration = calibration.as_dict()
    prototype.status = PrototypeStatus.ACTIVE
    prototype.status_reason = ""
    prototype.save()
    return prototype


def _fail(prototype: Prototype, reason: str) -> Prototype:
    prototype.status = PrototypeStatus.FAILED
    prototype.status_reason = reason
    prototype.save(update_fields=["status", "status_reason", "updated_at"])
    return prototype


def live_prototypes(project: Project) -> list[Prototype]:
    return list(Prototype.objects.filter(project=project, status__in=LIVE).select_related("label"))


def prototypes_absorb(*, project: Project, model: ModelVersion) -> int:
    """Prototypes whose label ``model`` was trained on are absorbed: the model routes them."""
    names = set((model.metrics or {}).get("class_names") or [])
    if not names:
        return 0
    return Prototype.objects.filter(
        project=project, status__in=(*LIVE, PrototypeStatus.FAILED), label__name__in=names
    ).update(status=PrototypeStatus.ABSORBED, status_reason=f"learned by model v{model.version}")


def model_labels(project: Project, class_names: list[str]) -> list[Label]:
    """The project's labels that ``class_names`` (a model's classes, in order) stand for: every
    label but those a live prototype covers and the model does not know."""
    covered = {
        p.label_id
        for p in Prototype.objects.filter(project=project).exclude(status=PrototypeStatus.ABSORBED)
    }
    return [
        label
        for label in project.labels.all()
        if label.pk not in covered or label.name in class_names or label.display_name in class_names
    ]


def prototype_routes(
    *,
    project: Project,
    items: list[Item],
    rows: list[Embedding],
    space: EmbeddingSpace,
) -> dict[int, PrototypeRoute]:
    """Per item, what the nearest live prototype says: accept, humans, or nothing (not this
    class). A prototype not yet calibrated in this space sends every item to humans: the
    model cannot know that class, and nothing else can say the item is not of it."""
    live = live_prototypes(project)
    if not live:
        return {}
    ready = [
        p
        for p in live
        if p.status == PrototypeStatus.ACTIVE
        and p.space_id == space.pk
        and space.status == SpaceStatus.ACTIVE
    ]
    if len(ready) < len(live):
        unready = next(p for p in live if p not in ready)
        return {item.pk: PrototypeRoute(rule.HUMAN, unready.label, None) for item in items}
    by_item = {r.item_id: r for r in rows if r.item_id is not None}
    centroids = np.stack([np.frombuffer(bytes(p.centroid), dtype=np.float32) for p in ready])
    routes: dict[int, PrototypeRoute] = {}
    present = [item for item in items if item.pk in by_item]
    for item in items:
        if item.pk not in by_item:
            routes[item.pk] = PrototypeRoute(rule.HUMAN, ready[0].label, None)
    if not present:
        return routes
    vectors = rows_vectors(space, [by_item[item.pk] for item in present])
    which, distances = rule.nearest(vectors, centroids)
    for item, w, d in zip(present, which.tolist(), distances.tolist(), strict=True):
        prototype = ready[w]
        decision = rule.route(np.array([d]), prototype.accept_distance, prototype.reject_distance)
        if decision[0] != rule.REJECT:
            routes[item.pk] = PrototypeRoute(str(decision[0]), prototype.label, float(d))
    return routes


def prototypes_rebuild(*, project: Project) -> int:
    """Queue a rebuild of every live prototype (the active space changed)."""
    ids = [p.pk for p in live_prototypes(project)]
    for prototype_id in ids:
        job_queue(BUILD_PROTOTYPE, prototype_id)
    return len(ids)
