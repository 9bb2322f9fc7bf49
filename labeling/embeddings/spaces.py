"""Embedding spaces: which network's vectors a project's images are compared in.

A project keeps two kinds of space:

- the **photo space**: the ImageNet backbone's vectors (``model_version`` null). It never
  changes with the model, holds every image and catalog photo, and is where reused photos are
  looked for. A fine-tuned model is trained to put every photo of a class in one place, which
  is the opposite of what telling two photos apart needs: in a fine-tuned space different photos
  of one class sit at a median cosine similarity of 0.96 (0.82 in the ImageNet space), and the
  reused-photo benchmark's recall at precision 0.998 falls from 0.95 to 0.91 (docs/embeddings.md).
- the **label space**: the active model's penultimate features, for similar-image search,
  prototype classes and label review; the photo space serves as label space while there is no
  model. When a model is promoted, its space is created as ``building``: a worker embeds every
  image again with the new model (``labeling.embeddings.build``) while the old space keeps
  serving; then the new one becomes ``active`` and the previous model's space is retired and its
  rows deleted.

So vectors of two networks are never compared, a crash mid-build leaves the old space in charge
and the build resumable, and a model change costs the reuse check nothing.
"""

import logging
import threading

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.dispatch import BUILD_EMBEDDING_SPACE, job_queue
from labeling.machine.predictors import predictor_for
from labeling.models import Embedding, EmbeddingSpace, ModelVersion, Project, SpaceStatus

logger = logging.getLogger(__name__)

# The ImageNet backbone's name (ml.factory.DEFAULT_ARCHITECTURE; not imported: that module loads
# timm and torch, which the web process never does).
IMAGENET_ARCHITECTURE = "tf_efficientnet_lite0"

_imagenet = {}
_imagenet_lock = threading.Lock()


def space_name(model: ModelVersion | None) -> str:
    if model is None:
        return f"imagenet:{IMAGENET_ARCHITECTURE}:{settings.EMBEDDING_INPUT_SIZE}"
    return f"model:{model.pk}:v{model.version}"


def space_active(project: Project) -> EmbeddingSpace | None:
    """The label space: the active model's space, else the photo space (None before any image
    is embedded)."""
    spaces = list(EmbeddingSpace.objects.filter(project=project, status=SpaceStatus.ACTIVE))
    for space in spaces:
        if space.model_version_id is not None:
            return space
    photo = space_name(None)
    return next((s for s in spaces if s.name == photo), spaces[0] if spaces else None)


def photo_space(project: Project) -> EmbeddingSpace | None:
    """The photo space reused photos are looked for in (active or still building), if any image
    or catalog photo was embedded yet."""
    return (
        EmbeddingSpace.objects.filter(project=project, name=space_name(None))
        .exclude(status=SpaceStatus.RETIRED)
        .first()
    )


def photo_space_open(project: Project) -> EmbeddingSpace:
    """The photo space, created on first use (built from the project's images if another space
    holds them already: a project that started before photo spaces existed)."""
    return space_for_model(project=project, model=None, dim=imagenet_predictor().embedding_dim)


def space_for_model(*, project: Project, model: ModelVersion | None, dim: int) -> EmbeddingSpace:
    """The space ``model``'s vectors go to (None: the photo space), created on first use.

    A space is active at once if no other space of the project holds a vector yet (nothing to
    embed again); otherwise it starts ``building`` and queues the build that embeds the
    project's history in it, and takes over when that is done."""
    name = space_name(model)
    space = EmbeddingSpace.objects.filter(project=project, name=name).first()
    if space is not None and space.status == SpaceStatus.RETIRED:
        # A rollback to an earlier model: its space's rows were deleted when it retired, so it
        # is built again (once: only the call that flips the status queues the build).
        with transaction.atomic():
            if EmbeddingSpace.objects.filter(pk=space.pk, status=SpaceStatus.RETIRED).update(
                status=SpaceStatus.BUILDING, progress={}
            ):
                job_queue(BUILD_EMBEDDING_SPACE, space.pk)
        space.refresh_from_db()
    if space is not None:
        return space
    try:
        with transaction.atomic():
            first = (
                not Embedding.objects.filter(space__project=project)
                .exclude(space__status=SpaceStatus.RETIRED)
                .exists()
            )
            space = EmbeddingSpace.objects.create(
                project=project,
                name=name,
                model_version=model,
                dim=dim,
                status=SpaceStatus.ACTIVE if first else SpaceStatus.BUILDING,
                activated_at=timezone.now() if first else None,
            )
            if not first:
                job_queue(BUILD_EMBEDDING_SPACE, space.pk)
    except IntegrityError:
        # Another worker created it (or activated a first space) at the same moment.
        space = EmbeddingSpace.objects.filter(project=project, name=name).first()
        if space is None:
            return space_for_model(project=project, model=model, dim=dim)
    return space


def space_current(project: Project) -> EmbeddingSpace:
    """The label space, or the one the project's next batch would open (its active model's,
    else the photo space)."""
    space = space_active(project)
    if space is not None:
        return space
    model = project.active_model
    if model is not None and model.is_calibrated and model.status == ModelVersion.Status.ACTIVE:
        dim = predictor_for(model).embedding_dim
        return space_for_model(project=project, model=model, dim=dim)
    return space_for_model(project=project, model=None, dim=imagenet_predictor().embedding_dim)


def imagenet_predictor():
    """The ImageNet backbone, loaded once per worker process."""
    from ml.inference import Predictor  # imports torch: only where a network runs

    with _imagenet_lock:
        size = settings.EMBEDDING_INPUT_SIZE
        if size not in _imagenet:
            _imagenet.clear()
            _imagenet[size] = Predictor.imagenet(
                input_size=size, num_threads=settings.INFERENCE_THREADS, resize_mode="pad"
            )
        return _imagenet[size]


def embedder_for(space: EmbeddingSpace):
    """The network that makes ``space``'s vectors (a Predictor)."""
    if space.model_version_id is None:
        return imagenet_predictor()
    return predictor_for(space.model_version)
