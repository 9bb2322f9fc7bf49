"""What the embeddings page and API show: spaces, how much is embedded, the index's health."""

from labeling.embeddings.index import index_health
from labeling.embeddings.reuse import reuse_thresholds
from labeling.embeddings.spaces import space_active
from labeling.models import Embedding, EmbeddingSpace, Item, Project, SpaceStatus


def embedding_state(*, project: Project) -> dict:
    spaces = []
    active = space_active(project)
    for space in (
        EmbeddingSpace.objects.filter(project=project)
        .exclude(status=SpaceStatus.RETIRED)
        .select_related("model_version")
    ):
        health = index_health(space) if space.status == SpaceStatus.ACTIVE else None
        photos = space.model_version_id is None
        spaces.append(
            {
                "name": space.name,
                "status": space.status,
                # What the space serves (labeling.embeddings.spaces): the photo space finds
                # reused photos, the label space serves similar images and prototypes.
                "used_for": (["reused photos"] if photos else [])
                + (["similar images", "prototypes"] if active and active.pk == space.pk else []),
                "model_version": space.model_version.version if space.model_version else None,
                "dim": space.dim,
                "rows": health["rows"] if health else Embedding.objects.filter(space=space).count(),
                "indexed": health["indexed"] if health else None,
                "reuse_thresholds": reuse_thresholds(space).as_dict(),
                "reuse_calibration": space.reuse_calibration or {},
                "progress": space.progress or {},
            }
        )
    items = Item.objects.filter(project=project)
    return {
        "items": items.count(),
        "embedded": Embedding.objects.filter(space=active, item__isnull=False).count()
        if active
        else 0,
        "reused": items.filter(reused=True).count(),
        "spaces": spaces,
    }
