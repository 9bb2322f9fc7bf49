"""Building an embedding space: embed every image of the project with the space's network,
calibrate the reused-photo rule on the project's own images (photo space), then hand over.

Resumable and idempotent: each pass embeds only the images the space lacks, so a crashed build
(or a redelivered task) picks up where it stopped, and the old space serves until the hand-over.
On an active space the same job fills gaps (images whose embedding step failed).
"""

import logging

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from labeling.embeddings.index import index_compact, index_remove, space_index
from labeling.embeddings.prototypes import prototypes_rebuild
from labeling.embeddings.reuse import alignment_scores, reuse_check
from labeling.embeddings.spaces import embedder_for
from labeling.embeddings.store import owners_embed
from labeling.models import CatalogImage, Embedding, EmbeddingSpace, Item, SpaceStatus
from ml import reuse as rule
from ml.perceptual_hash import hash_distance, load_rgb
from ml.reuse_verify import batch_signatures

logger = logging.getLogger(__name__)

BATCH = 256
DELETE_CHUNK = 5000
MIN_CALIBRATION_IMAGES = 200


def _missing(model, space: EmbeddingSpace, owner_field: str):
    has = Embedding.objects.filter(space=space, **{owner_field: OuterRef("pk")})
    return model.objects.filter(project_id=space.project_id).exclude(Exists(has)).order_by("pk")


def space_fill(*, space: EmbeddingSpace) -> int:
    """Embed every item and catalog photo the space lacks; returns how many were embedded."""
    done = 0
    for model, field in ((Item, "item"), (CatalogImage, "catalog_image")):
        while True:
            batch = list(_missing(model, space, field)[:BATCH])
            if not batch:
                break
            rows = owners_embed(space=space, owners=batch)
            done += len(rows)
            EmbeddingSpace.objects.filter(pk=space.pk).update(
                progress={"embedded": done, "updated_at": timezone.now().isoformat()}
            )
            if not rows:  # nothing in this batch was readable: do not loop on it forever
                logger.warning("Space %s: %d unreadable images left unembedded", space, len(batch))
                break
    return done


def reuse_calibrate(*, space: EmbeddingSpace, seed: int = 0) -> dict | None:
    """Calibrate the reused-photo rule on the project's own images: edited copies of half a
    sample are the positives (their originals are in the index), the other half, searched
    against everything else, the negatives. Too few images: keep the defaults (None)."""
    ids = list(
        Embedding.objects.filter(space=space, item__isnull=False).values_list("pk", flat=True)
    )
    if len(ids) < MIN_CALIBRATION_IMAGES:
        return None
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(len(ids), settings.REUSE_CALIBRATION_IMAGES), replace=False)
    rows = list(Embedding.objects.filter(pk__in=chosen.tolist()).select_related("item"))
    half = len(rows) // 2
    originals, others = rows[:half], rows[half:]
    copies = []
    for row in originals:
        with row.item.image.open("rb") as fh:
            image = load_rgb(fh.read())
        copy, _ = rule.reused_copy(image, rng)
        copies.append(copy)
    vectors = embedder_for(space).predict_and_embed(copies).embeddings
    hashes, prints, _ = batch_signatures(copies)
    index = space_index(space)
    k = settings.REUSE_CANDIDATES
    other_vectors = np.stack([np.frombuffer(bytes(r.vector), np.float16) for r in others])
    queries = np.concatenate([vectors, other_vectors.astype(np.float32)])
    query_hashes = np.concatenate(
        [hashes, np.array([[r.phash, r.phash_trimmed] for r in others], dtype=np.int64)]
    )
    query_prints = [*prints, *(r.fingerprint for r in others)]
    keys, distances = index.search(queries, k + 1)
    own = np.array([-1] * len(originals) + [r.pk for r in others])
    truth = np.array([r.pk for r in originals] + [-1] * len(others))
    cand = {
        e.pk: e
        for e in Embedding.objects.filter(pk__in={int(x) for x in keys.ravel() if x >= 0}).only(
            "pk", "phash", "phash_trimmed", "fingerprint"
        )
    }
    sims, hd, sim_ok, hash_ok, aligned, aligned_ok = [], [], [], [], [], []
    for q in range(len(queries)):
        keep = [
            (int(key), 1.0 - float(dist))
            for key, dist in zip(keys[q], distances[q], strict=True)
            if key >= 0 and key != own[q] and int(key) in cand
        ]
        if not keep:
            sims.append(-1.0), hd.append(64), sim_ok.append(False), hash_ok.append(False)
            aligned.append(-1.0), aligned_ok.append(False)
            continue
        dists = [
            int(hash_distance(query_hashes[q], np.array([c.phash, c.phash_trimmed])))
            for c in (cand[key] for key, _ in keep)
        ]
        scores = [
            -1.0 if a is None else a
            for a in (
                alignment_scores(query_prints[q], [cand[key] for key, _ in keep])
                if settings.REUSE_ALIGNMENT
                else [None] * len(keep)
            )
        ]
        by_sim = max(range(len(keep)), key=lambda i: keep[i][1])
        by_hash = min(range(len(keep)), key=lambda i: dists[i])
        by_aligned = int(np.argmax(scores))
        sims.append(keep[by_sim][1])
        hd.append(dists[by_hash])
        aligned.append(float(scores[by_aligned]))
        sim_ok.append(keep[by_sim][0] == truth[q])
        hash_ok.append(keep[by_hash][0] == truth[q])
        aligned_ok.append(keep[by_aligned][0] == truth[q])
    evidence = rule.Evidence(
        np.array(sims),
        np.array(hd),
        np.array(sim_ok),
        np.array(hash_ok),
        # Without the arm, calibration does not consider it (its thresholds stay off).
        aligned=np.array(aligned) if settings.REUSE_ALIGNMENT else None,
        aligned_is_original=np.array(aligned_ok) if settings.REUSE_ALIGNMENT else None,
    )
    calibration = rule.calibrate(
        evidence, truth >= 0, max_false_match=settings.REUSE_MAX_FALSE_MATCH
    ).as_dict()
    calibration["calibrated_at"] = timezone.now().isoformat()
    if calibration["recall"] == 0.0:
        return None  # too few images to prove the bound: the defaults serve better
    EmbeddingSpace.objects.filter(pk=space.pk).update(reuse_calibration=calibration)
    space.reuse_calibration = calibration
    return calibration


def space_activate(*, space: EmbeddingSpace) -> EmbeddingSpace:
    """Make a built space active; retire and empty the one of its kind it replaces (a model's
    space replaces the previous model's, a photo space an older photo space), never the other
    kind."""
    with transaction.atomic():
        old = list(
            EmbeddingSpace.objects.select_for_update()
            .filter(
                project_id=space.project_id,
                status=SpaceStatus.ACTIVE,
                model_version__isnull=space.model_version_id is None,
            )
            .exclude(pk=space.pk)
        )
        EmbeddingSpace.objects.filter(pk__in=[o.pk for o in old]).update(status=SpaceStatus.RETIRED)
        EmbeddingSpace.objects.filter(pk=space.pk).update(
            status=SpaceStatus.ACTIVE, activated_at=timezone.now()
        )
    for retired in old:
        while True:
            chunk = list(
                Embedding.objects.filter(space=retired).values_list("pk", flat=True)[:DELETE_CHUNK]
            )
            if not chunk:
                break
            Embedding.objects.filter(pk__in=chunk).delete()
        index_remove(retired)
    space.refresh_from_db()
    return space


def space_build(*, space_id: int) -> EmbeddingSpace | None:
    """The whole job (see the module docstring)."""
    space = EmbeddingSpace.objects.select_related("project").filter(pk=space_id).first()
    if space is None or space.status == SpaceStatus.RETIRED:
        return space
    building = space.status == SpaceStatus.BUILDING
    photos = space.model_version_id is None  # reused photos are looked for in this space
    embedded = space_fill(space=space)
    if photos and (building or not space.reuse_calibration):
        reuse_calibrate(space=space)
    index_compact(space, rebuild=building)
    if building:
        space = space_activate(space=space)
        prototypes_rebuild(project=space.project)
    if building and photos:
        # Images that arrived during the build were embedded here but not yet checked.
        late = list(
            Embedding.objects.filter(
                space=space, item__created_at__gte=space.created_at, item__reuse_match__isnull=True
            ).order_by("item_id")
        )
        for start in range(0, len(late), BATCH):
            reuse_check(project=space.project, space=space, rows=late[start : start + BATCH])
    EmbeddingSpace.objects.filter(pk=space.pk).update(
        progress={"embedded": embedded, "state": "done", "updated_at": timezone.now().isoformat()}
    )
    space.refresh_from_db()
    return space
