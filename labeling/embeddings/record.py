"""The hook the prediction batch calls: store each image's embeddings and perceptual hashes,
then look for reused photos and prototype classes among the batch.

Every image goes to the photo space (the ImageNet backbone's vectors, where reused photos are
looked for) and, with an active model, to that model's label space too: its vectors come out of
the prediction's own forward pass, the photo vectors from one more pass of the ImageNet backbone
(``labeling.embeddings.spaces`` says why reuse is not looked for in the model's space). Whatever
goes wrong in this step is logged and leaves the batch's routing alone: a missing embedding is
found and filled by the next space build (``manage.py embeddings build``), and
``index_health`` shows the gap.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from labeling.embeddings.index import index_compact_if_due
from labeling.embeddings.prototypes import (
    PrototypeRoute,
    live_prototypes,
    prototype_routes,
    prototypes_absorb,
)
from labeling.embeddings.reuse import reuse_check
from labeling.embeddings.spaces import imagenet_predictor, space_for_model
from labeling.embeddings.store import embeddings_save
from labeling.models import Item, ModelVersion, Project, SpaceStatus
from ml.prototypes import HUMAN
from ml.reuse_verify import batch_signatures

logger = logging.getLogger(__name__)


@dataclass
class BatchEmbeddings:
    """What the router needs from this step: per item id, a prototype class's say (if any)."""

    prototype_routes: dict[int, PrototypeRoute] = field(default_factory=dict)
    reused: int = 0


def batch_embeddings_record(
    *,
    project: Project,
    model: ModelVersion | None,
    items: list[Item],
    sources: list[bytes],
    vectors: np.ndarray | None = None,
) -> BatchEmbeddings:
    """The prediction batch's hook (see the module docstring). ``vectors``: ``model``'s, from
    the prediction's forward pass; None when the project has no model."""
    if not settings.EMBEDDINGS_ENABLED or not items:
        return BatchEmbeddings()
    try:
        signatures = batch_signatures(sources)
        photo_vectors = (
            imagenet_predictor()
            .predict_and_embed(sources, batch_size=settings.PREDICTION_BATCH_SIZE)
            .embeddings
        )
        # The photo space first: on a project's very first batch it opens active.
        photo = space_for_model(project=project, model=None, dim=photo_vectors.shape[1])
        photo_rows = embeddings_save(
            space=photo, owners=items, vectors=photo_vectors, sources=sources, signatures=signatures
        )
        space, rows = photo, photo_rows
        if vectors is not None and model is not None:
            space = space_for_model(project=project, model=model, dim=vectors.shape[1])
            rows = embeddings_save(
                space=space, owners=items, vectors=vectors, sources=sources, signatures=signatures
            )
            prototypes_absorb(project=project, model=model)
        routes = prototype_routes(project=project, items=items, rows=rows, space=space)
        found = []
        if photo.status == SpaceStatus.ACTIVE:
            # (While the photo space is still being built from the project's history, the reuse
            # check of these items runs when the build finishes.)
            found = reuse_check(project=project, space=photo, rows=photo_rows)
        for used in {photo.pk: photo, space.pk: space}.values():
            index_compact_if_due(used)
        return BatchEmbeddings(prototype_routes=routes, reused=len(found))
    except Exception:
        logger.exception("Embedding step failed for %d items of %s", len(items), project.slug)
        # Without a distance, a prototype class cannot be ruled out: humans decide.
        live = live_prototypes(project)
        return BatchEmbeddings(
            prototype_routes={i.pk: PrototypeRoute(HUMAN, live[0].label, None) for i in items}
            if live
            else {}
        )
