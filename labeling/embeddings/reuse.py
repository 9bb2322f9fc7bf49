"""Reused-photo detection: each new image against the project's earlier images and its shop
catalog, with the rule of ``ml.reuse`` (embedding similarity, perceptual-hash distance or the
alignment score of ``ml.reuse_verify``).

A match marks the item ``reused`` and records which image it matched. The project's
``reuse_policy`` says what that does to the review credit (``labeling.credits``): ``deny`` it, or
hold it until an admin looks at the pair (``review``). An admin's decision (confirm or dismiss)
re-decides the credit.
"""

import logging

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from labeling.credits import credit_redecide
from labeling.embeddings.index import space_search
from labeling.errors import ServiceError
from labeling.models import (
    Embedding,
    EmbeddingSpace,
    Item,
    Project,
    ReuseMatch,
    ReusePolicy,
    ReuseStatus,
)
from ml.embeddings import normalize
from ml.perceptual_hash import hash_distance
from ml.reuse import UNUSED_SCORE, ReuseThresholds
from ml.reuse_verify import match_scores

logger = logging.getLogger(__name__)


def reuse_thresholds(space: EmbeddingSpace) -> ReuseThresholds:
    """The space's calibrated thresholds, or the defaults (bench/duplicates.py's figures)."""
    calibrated = (space.reuse_calibration or {}).get("thresholds")
    if calibrated:
        return ReuseThresholds(
            similarity=float(calibrated["similarity"]),
            hash_distance=int(calibrated["hash_distance"]),
            # Calibrations from before the alignment arm existed leave it off.
            aligned=float(calibrated.get("aligned", UNUSED_SCORE)),
        )
    return ReuseThresholds(
        similarity=settings.REUSE_SIMILARITY,
        hash_distance=settings.REUSE_HASH_DISTANCE,
        aligned=settings.REUSE_ALIGNED,
    )


def _hashes(row: Embedding) -> np.ndarray:
    return np.array([row.phash, row.phash_trimmed], dtype=np.int64)


def reuse_check(*, project: Project, space: EmbeddingSpace, rows: list[Embedding]) -> list:
    """Match each item row against the earlier images and the catalog; record the matches.

    Candidates: the ``REUSE_CANDIDATES`` nearest neighbours in the vector index, and the closest
    perceptual hash among all earlier rows; the item itself and anything uploaded after it (a
    later image is the copy, not the original) are left out.
    """
    rows = [r for r in rows if r.item_id is not None]
    if not rows:
        return []
    thresholds = reuse_thresholds(space)
    search = space_search(space)
    vectors = np.stack([np.frombuffer(bytes(r.vector), dtype=np.float16) for r in rows])
    keys, distances = search.vectors.search(
        vectors.astype(np.float32), settings.REUSE_CANDIDATES + 1
    )
    by_hash = [search.hashes.nearest(_hashes(r), exclude_from=r.pk)[0] for r in rows]
    candidate_ids = {int(k) for k in keys.ravel() if k >= 0} | {k for k in by_hash if k >= 0}
    candidates = {
        c.pk: c
        for c in Embedding.objects.filter(pk__in=candidate_ids, space=space).only(
            "pk", "item_id", "catalog_image_id", "phash", "phash_trimmed", "vector", "fingerprint"
        )
    }
    found = []
    for row, vector, row_keys, hash_key in zip(rows, vectors, keys, by_hash, strict=True):
        others = [
            other
            for key in dict.fromkeys([*row_keys.tolist(), hash_key])
            if (other := candidates.get(key)) is not None
            and other.pk != row.pk  # the item itself, or a row deleted since the index was written
            and not (other.item_id is not None and other.item_id >= row.item_id)
        ]
        best = _best_match(row, vector, others, thresholds)
        if best is None:
            continue
        match = _record(project, space, row.item_id, best)
        if match is not None:
            found.append(match)
    return found


def alignment_scores(query: bytes | None, others: list[Embedding]) -> list[float | None]:
    """Each candidate's alignment score with the ``query`` fingerprint (None where either has
    no fingerprint: rows written before fingerprints existed)."""
    usable = [i for i, o in enumerate(others) if query and o.fingerprint]
    scores: list[float | None] = [None] * len(others)
    if usable:
        found = match_scores(bytes(query), [bytes(others[i].fingerprint) for i in usable])
        for i, score in zip(usable, found, strict=True):
            scores[i] = float(score)
    return scores


def _best_match(
    row: Embedding, vector: np.ndarray, others: list[Embedding], thresholds: ReuseThresholds
) -> dict | None:
    """The candidate the rule calls the original of ``row``, with its scores, or None."""
    aligned = (
        alignment_scores(row.fingerprint, others)
        if settings.REUSE_ALIGNMENT and thresholds.aligned <= 1.0
        else [None] * len(others)
    )
    best = None
    mine = normalize(vector[None])[0]
    for other, score in zip(others, aligned, strict=True):
        # Exact cosine from the stored vectors (the index's 8-bit copy only ranks).
        theirs = np.frombuffer(bytes(other.vector), dtype=np.float16).astype(np.float32)
        similarity = float(mine @ normalize(theirs[None])[0])
        hashed = int(hash_distance(_hashes(row), _hashes(other)))
        by_aligned = score is not None and score >= thresholds.aligned
        by_similarity = similarity >= thresholds.similarity
        if not (by_aligned or by_similarity or hashed <= thresholds.hash_distance):
            continue
        # The arms in the order of ml.reuse.decide, then the closer candidate.
        arm = "aligned" if by_aligned else "similarity" if by_similarity else "hash"
        rank = (by_aligned, by_similarity, score or -1.0, similarity, -hashed)
        if best is None or rank > best["rank"]:
            best = {
                "rank": rank,
                "other": other,
                "similarity": similarity,
                "hashed": hashed,
                "aligned": score,
                "arm": arm,
            }
    return best


def _record(project: Project, space: EmbeddingSpace, item_id: int, best: dict):
    other = best["other"]
    with transaction.atomic():
        match, created = ReuseMatch.objects.get_or_create(
            item_id=item_id,
            defaults={
                "project": project,
                "matched_item_id": other.item_id,
                "matched_catalog_id": other.catalog_image_id,
                "similarity": round(best["similarity"], 5),
                "hash_distance": min(best["hashed"], 64),
                "aligned": None if best["aligned"] is None else round(best["aligned"], 5),
                "matched_by": best["arm"],
                "space": space,
            },
        )
        if created:
            item = Item.objects.select_for_update(of=("self",)).select_related("project")
            item = item.get(pk=item_id)
            item.reused = True
            item.save(update_fields=["reused", "updated_at"])
            # The credit reflects the reuse at once (denied, or waiting for an admin).
            credit_redecide(item=item)
    return match if created else None


def reuse_decide(
    *, project: Project, item_id: int, confirmed: bool, by: AbstractBaseUser | None
) -> ReuseMatch:
    """An admin confirms the reuse (the credit is denied) or dismisses it (the item is an
    ordinary photo again and its credit follows its label)."""
    with transaction.atomic():
        item = (
            Item.objects.select_for_update(of=("self",))
            .select_related("project")
            .filter(pk=item_id, project=project)
            .first()
        )
        match = ReuseMatch.objects.filter(item_id=item_id, project=project).first()
        if item is None or match is None:
            raise ServiceError("This image has no reuse match to decide.")
        match.status = ReuseStatus.CONFIRMED if confirmed else ReuseStatus.DISMISSED
        match.decided_by = by if by is not None and by.is_authenticated else None
        match.decided_at = timezone.now()
        match.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
        item.reused = confirmed
        item.save(update_fields=["reused", "updated_at"])
        credit_redecide(item=item)
    return match


def reuse_policy_set(*, project: Project, policy: str) -> Project:
    """What a reused photo does to its credit from now on: ``deny`` or ``review``. Credits
    already decided stay as they are."""
    if policy not in ReusePolicy.values:
        raise ServiceError(f"The reuse policy is one of: {', '.join(ReusePolicy.values)}.")
    Project.objects.filter(pk=project.pk).update(reuse_policy=policy)
    project.reuse_policy = policy
    return project


def reuse_matches(*, project: Project, status: str | None = None):
    """The project's matches, newest first, with both images' rows."""
    matches = ReuseMatch.objects.filter(project=project).select_related(
        "project", "item", "matched_item", "matched_catalog", "decided_by"
    )
    if status:
        matches = matches.filter(status=status)
    return matches
