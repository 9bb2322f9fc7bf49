"""Similar-image search: from any item, its nearest images in the project's active space.

Runs in the web process without torch: the item's stored vector is the query, the vector index
answers, and the database says what each neighbour is (an item with its label, or a catalog
photo). Admins use it to check that alike images got alike labels.
"""

from dataclasses import dataclass

import numpy as np

from labeling.embeddings.index import space_index
from labeling.embeddings.spaces import space_active
from labeling.errors import ServiceError
from labeling.models import CatalogImage, Embedding, Item, Project

MAX_K = 50


class NotEmbedded(ServiceError):
    status, code = 409, "not_embedded"


@dataclass(frozen=True)
class Neighbour:
    kind: str  # "item" or "catalog"
    id: int
    distance: float  # cosine distance, 0 = the same direction
    label: str | None
    item: Item | None
    catalog_image: CatalogImage | None


def similar_images(*, project: Project, item_id: int, k: int = 12) -> list[Neighbour]:
    """The ``k`` nearest images to item ``item_id`` (itself excluded), nearest first."""
    if not 1 <= k <= MAX_K:
        raise ServiceError(f"k must be between 1 and {MAX_K}.")
    space = space_active(project)
    row = (
        Embedding.objects.filter(space=space, item_id=item_id, item__project=project).first()
        if space
        else None
    )
    if row is None:
        raise NotEmbedded(
            "This image has no embedding yet: it is waiting for a worker, or the project's "
            "images are being embedded again by a new model."
        )
    query = np.frombuffer(bytes(row.vector), dtype=np.float16).astype(np.float32)
    keys, distances = space_index(space).search(query[None], k + 1)
    ids = [int(key) for key in keys[0] if key >= 0 and key != row.pk]
    rows = {
        r.pk: r
        for r in Embedding.objects.filter(pk__in=ids, space=space).select_related(
            "item__final_label", "catalog_image"
        )
    }
    found = []
    for key, distance in zip(keys[0].tolist(), distances[0].tolist(), strict=True):
        other = rows.get(key)
        if other is None or key == row.pk:
            continue
        found.append(
            Neighbour(
                kind="item" if other.item_id else "catalog",
                id=other.item_id or other.catalog_image_id,
                distance=round(max(0.0, float(distance)), 5),
                label=other.item.final_label.name
                if other.item and other.item.final_label
                else None,
                item=other.item,
                catalog_image=other.catalog_image,
            )
        )
    return found[:k]
