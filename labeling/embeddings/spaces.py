"""Embedding spaces: which network's vectors a project's images are compared in.

A project's first images are embedded by the ImageNet backbone. When a model is promoted, its
space is created as ``building``: a worker embeds every image again with the new model
(``labeling.embeddings.build``) while the old space keeps serving; then the new one becomes
``active`` and the old one is retired and its rows deleted. So vectors of two networks are never
compared, and a crash mid-build leaves the old space in charge and the build resumable.
"""

import logging
import threading

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.dispatch import BUILD_EMBEDDING_SPACE, job_queue
from labeling.machine.predictors import predictor_for
from labeling.models import EmbeddingSpace, ModelVersion, Project, SpaceStatus

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
    return EmbeddingSpace.objects.filter(project=project, status=SpaceStatus.ACTIVE).first()


def space_for_model(*, project: Project, model: ModelVersion | None, dim: int) -> EmbeddingSpace:
    """The space ``model``'s vectors go to (None: the ImageNet backbone's), created on first use.

    A project's first space is active at once. A later one starts ``building`` and queues the
    build that embeds the project's history in it; it takes over when that is done."""
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
            first = not EmbeddingSpace.objects.filter(
                project=project, status=SpaceStatus.ACTIVE
            ).exists()
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
    """The active space, or the one the project's next batch would open (its active model's,
    else the ImageNet backbone's)."""
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
