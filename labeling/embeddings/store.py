"""Embedding rows: writing them, and embedding images that were not embedded in the prediction
batch (a space's build, catalog photos, a prototype's examples)."""

import logging

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from labeling.embeddings.spaces import embedder_for
from labeling.models import CatalogImage, Embedding, EmbeddingSpace, Item
from ml.embeddings import pack, unpack
from ml.reuse_verify import batch_signatures

logger = logging.getLogger(__name__)


def embeddings_save(
    *,
    space: EmbeddingSpace,
    owners: list[Item] | list[CatalogImage],
    vectors: np.ndarray,
    sources: list[bytes],
    signatures: tuple | None = None,
) -> list[Embedding]:
    """Store the vectors (rows with NaN are skipped), hashes and fingerprints; existing rows
    are kept. ``signatures``: ``batch_signatures(sources)`` when the caller has them already
    (one batch saved in two spaces computes them once)."""
    hashes, prints, hash_errors = signatures or batch_signatures(sources)
    catalog = bool(owners) and isinstance(owners[0], CatalogImage)
    rows = []
    for i, owner in enumerate(owners):
        if i in hash_errors or np.isnan(vectors[i]).any():
            continue
        rows.append(
            Embedding(
                space=space,
                item=None if catalog else owner,
                catalog_image=owner if catalog else None,
                vector=pack(vectors[i]),
                phash=int(hashes[i, 0]),
                phash_trimmed=int(hashes[i, 1]),
                fingerprint=prints[i],
            )
        )
    key = "catalog_image_id" if catalog else "item_id"
    try:
        with transaction.atomic():
            Embedding.objects.bulk_create(rows)
    except IntegrityError:
        # A redelivered batch: keep the rows already there, add the rest one by one.
        for row in rows:
            lookup = {"space": space, key: getattr(row, key)}
            Embedding.objects.get_or_create(
                **lookup,
                defaults={
                    "vector": row.vector,
                    "phash": row.phash,
                    "phash_trimmed": row.phash_trimmed,
                    "fingerprint": row.fingerprint,
                },
            )
    ids = [o.pk for o in owners]
    return list(Embedding.objects.filter(space=space, **{f"{key}__in": ids}).order_by(key))


def _read(owner: Item | CatalogImage) -> bytes:
    with owner.image.open("rb") as fh:
        return fh.read()


def owners_embed(
    *, space: EmbeddingSpace, owners: list[Item] | list[CatalogImage]
) -> list[Embedding]:
    """Embed ``owners`` in ``space`` with its own network (worker only: runs torch)."""
    sources, readable = [], []
    for owner in owners:
        try:
            sources.append(_read(owner))
            readable.append(owner)
        except OSError as exc:
            logger.warning("Cannot read %s for embedding: %s", owner, exc)
    if not readable:
        return []
    result = embedder_for(space).predict_and_embed(
        sources, batch_size=settings.PREDICTION_BATCH_SIZE
    )
    return embeddings_save(space=space, owners=readable, vectors=result.embeddings, sources=sources)


def rows_vectors(space: EmbeddingSpace, rows: list[Embedding]) -> np.ndarray:
    return unpack([r.vector for r in rows], space.dim)
