"""The hook the prediction batch calls: store each image's embedding and perceptual hashes,
then look for reused photos and prototype classes among the batch.

With an active model the vectors come out of the prediction's own forward pass; without one the
ImageNet backbone embeds the batch here. Whatever goes wrong in this step is logged and leaves
the batch's routing alone: a missing embedding is found and filled by the next space build
(``manage.py embeddings build``), and ``index_health`` shows the gap.
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
    """The prediction batch's hook (see the module docstring). ``vectors``: the model's, from
    the prediction's forward pass; None embeds with the ImageNet backbone."""
    if not settings.EMBEDDINGS_ENABLED or not items:
        return BatchEmbeddings()
    try:
        if vectors is None:
            model = None
            vectors = (
                imagenet_predictor()
                .predict_and_embed(sources, batch_size=settings.PREDICTION_BATCH_SIZE)
                .embeddings
            )
        space = space_for_model(project=project, model=model, dim=vectors.shape[1])
        rows = embeddings_save(space=space, owners=items, vectors=vectors, sources=sources)
        if model is not None:
            prototypes_absorb(project=project, model=model)
        routes = prototype_routes(project=project, items=items, rows=rows, space=space)
        if space.status != SpaceStatus.ACTIVE:
            # The project's history is still being embedded in this model's space: the reuse
            # check of these items runs when the build finishes.
            return BatchEmbeddings(prototype_routes=routes)
        found = reuse_check(project=project, space=space, rows=rows)
        index_compact_if_due(space)
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
