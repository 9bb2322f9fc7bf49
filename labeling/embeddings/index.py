"""The vector index of one embedding space, kept consistent with the database.

The database rows (``Embedding``) are the truth; the usearch file is a cache of them that any
process can rebuild. Files live at ``EMBEDDING_INDEX_ROOT/<project>/<space>-<watermark>.usearch``:
the file holds every row of the space with ``id ≤ watermark``. A process maps the newest file
read-only (``view``: all processes share one copy in the page cache) and adds the rows above the
watermark to a small in-memory delta on each use (``space_index``). When the delta grows past
``EMBEDDING_INDEX_COMPACT_AFTER``, a worker writes a new file under an exclusive file lock
(``index_compact``): it checks the file's keys against the database ids (so a row committed late,
or deleted, is fixed there), saves to a temporary name and renames it, so a crash at any moment
leaves a complete older file and the rows above its watermark, which the next use catches up.
A missing or damaged file is rebuilt from the database.
"""

import fcntl
import logging
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils import timezone

from labeling.models import Embedding, EmbeddingSpace
from ml.embeddings import unpack
from ml.perceptual_hash import HashTable
from ml.vector_index import IndexUnreadable, LayeredIndex, VectorIndex

logger = logging.getLogger(__name__)

FETCH_CHUNK = 5000
# Rows younger than this are left to the delta when a file is written: a transaction that
# inserted a lower id may not have committed yet.
SETTLE = timedelta(seconds=60)
_FILE = re.compile(r"^(?P<space>\d+)-(?P<watermark>\d+)\.usearch$")


@dataclass
class _Loaded:
    index: LayeredIndex
    hashes: HashTable
    watermark: int
    path: Path | None
    created_at: object  # the space's creation time: a recreated space never reuses a cache


_loaded: dict[int, _Loaded] = {}
_lock = threading.Lock()


def index_forget() -> None:
    """Drop this process's loaded indexes (tests; a process that lost track)."""
    with _lock:
        _loaded.clear()


def index_dir(space: EmbeddingSpace) -> Path:
    return Path(settings.EMBEDDING_INDEX_ROOT) / str(space.project_id)


def _files(space: EmbeddingSpace) -> list[tuple[int, Path]]:
    """(watermark, path) of the space's index files, newest first."""
    folder = index_dir(space)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _FILE.match(path.name)
        if match and int(match["space"]) == space.pk:
            found.append((int(match["watermark"]), path))
    return sorted(found, reverse=True)


def _fetch(space: EmbeddingSpace, ids: list[int], with_vectors: bool = True):
    """(ids, vectors or None, hash pairs) of the given rows, in chunks of FETCH_CHUNK."""
    fields = ("pk", "phash", "phash_trimmed") + (("vector",) if with_vectors else ())
    for start in range(0, len(ids), FETCH_CHUNK):
        rows = list(
            Embedding.objects.filter(pk__in=ids[start : start + FETCH_CHUNK])
            .order_by("pk")
            .values_list(*fields)
        )
        if not rows:
            continue
        keys = np.array([r[0] for r in rows], dtype=np.int64)
        hashes = np.array([(r[1], r[2]) for r in rows], dtype=np.int64)
        vectors = unpack([r[3] for r in rows], space.dim) if with_vectors else None
        yield keys, vectors, hashes


def _hash_file(path: Path) -> Path:
    return path.with_name(path.name.replace(".usearch", ".hashes.npz"))


def _open(space: EmbeddingSpace) -> _Loaded:
    for watermark, path in _files(space):
        try:
            base = VectorIndex.load(path, ndim=space.dim, view=True)
        except IndexUnreadable as exc:
            logger.warning("Index file %s is unreadable (%s); removing it", path, exc)
            path.unlink(missing_ok=True)
            continue
        return _Loaded(
            LayeredIndex(space.dim, base),
            _load_hashes(space, path, watermark),
            watermark,
            path,
            space.created_at,
        )
    return _Loaded(LayeredIndex(space.dim, None), HashTable(), 0, None, space.created_at)


def _load_hashes(space: EmbeddingSpace, path: Path, watermark: int) -> HashTable:
    """The hashes of the rows in the file: saved beside it, or read from the database."""
    table = HashTable()
    try:
        with np.load(_hash_file(path)) as saved:
            table.add(saved["keys"], saved["hashes"])
        return table
    except (OSError, KeyError, ValueError) as exc:
        logger.info("No usable hash file beside %s (%s); reading the database", path, exc)
    return _hashes_from_db(space, watermark)


def _hashes_from_db(space: EmbeddingSpace, watermark: int) -> HashTable:
    table = HashTable()
    ids = list(
        Embedding.objects.filter(space=space, pk__lte=watermark)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for keys, _, hashes in _fetch(space, ids, with_vectors=False):
        table.add(keys, hashes)
    return table


@dataclass
class SpaceSearch:
    """What a process searches for one space: the vector index and the hash table."""

    vectors: LayeredIndex
    hashes: HashTable


def space_search(space: EmbeddingSpace) -> SpaceSearch:
    """The space's vector index and hash table in this process, caught up with every
    committed row."""
    with _lock:
        loaded = _loaded.get(space.pk)
        newest = _files(space)
        if (
            loaded is None
            or loaded.created_at != space.created_at
            or (newest and newest[0][0] > loaded.watermark)
        ):
            loaded = _loaded[space.pk] = _open(space)
        ids = list(
            Embedding.objects.filter(space=space, pk__gt=loaded.watermark)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        fresh = [i for i in ids if i not in loaded.index.delta_keys]
        for keys, vectors, hashes in _fetch(space, fresh):
            loaded.index.add(keys, vectors)
            loaded.hashes.add(keys, hashes)
        return SpaceSearch(loaded.index, loaded.hashes)


def space_index(space: EmbeddingSpace) -> LayeredIndex:
    """The space's vector index in this process, caught up with every committed row."""
    return space_search(space).vectors


def delta_size(space: EmbeddingSpace) -> int:
    loaded = _loaded.get(space.pk)
    return len(loaded.index.delta) if loaded else 0


@contextmanager
def _file_lock(space: EmbeddingSpace):
    folder = index_dir(space)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{space.pk}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def index_compact(
    space: EmbeddingSpace, *, rebuild: bool = False, settle: timedelta = SETTLE
) -> dict:
    """Write a new index file holding every settled row (``rebuild``: from nothing)."""
    with _lock, _file_lock(space):
        settled = (
            Embedding.objects.filter(space=space, created_at__lte=timezone.now() - settle)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        watermark = int(settled or 0)
        current = None if rebuild else next(iter(_files(space)), None)
        if current is not None:
            try:
                grown = VectorIndex.load(current[1], ndim=space.dim, view=False)
            except IndexUnreadable:
                grown, current = VectorIndex(space.dim), None
        else:
            grown = VectorIndex(space.dim)
        wanted = set(
            Embedding.objects.filter(space=space, pk__lte=watermark).values_list("pk", flat=True)
        )
        held = set(np.asarray(grown.index.keys).tolist()) if len(grown) else set()
        stale = held - wanted
        if stale:  # rows deleted since (their item or catalog photo was deleted)
            grown.index.remove(np.fromiter(stale, dtype=np.uint64))
        missing = sorted(wanted - held)
        for keys, vectors, _ in _fetch(space, missing):
            grown.add(keys, vectors)
        path = index_dir(space) / f"{space.pk}-{watermark}.usearch"
        hashes = _hashes_from_db(space, watermark)
        # The hash file first: a file without its hashes beside it still opens (the hashes
        # are then read from the database), never the other way round.
        tmp = _hash_file(path).with_suffix(".tmp.npz")
        np.savez(tmp, keys=hashes.keys, hashes=hashes.hashes)
        tmp.replace(_hash_file(path))
        grown.save(path)
        for _, old in _files(space):
            if old != path:
                old.unlink(missing_ok=True)
                _hash_file(old).unlink(missing_ok=True)
        _loaded.pop(space.pk, None)
        return {
            "watermark": watermark,
            "vectors": len(grown),
            "added": len(missing),
            "removed": len(stale),
            "path": str(path),
        }


def index_compact_if_due(space: EmbeddingSpace) -> dict | None:
    if delta_size(space) < settings.EMBEDDING_INDEX_COMPACT_AFTER:
        return None
    return index_compact(space)


def index_remove(space: EmbeddingSpace) -> None:
    """Forget a retired space's files."""
    with _lock:
        _loaded.pop(space.pk, None)
        for _, path in _files(space):
            path.unlink(missing_ok=True)
            _hash_file(path).unlink(missing_ok=True)
        (index_dir(space) / f"{space.pk}.lock").unlink(missing_ok=True)


def index_health(space: EmbeddingSpace) -> dict:
    """What a monitor compares: rows in the database, vectors this process searches."""
    index = space_index(space)
    rows = Embedding.objects.filter(space=space).count()
    files = _files(space)
    return {
        "rows": rows,
        "indexed": len(index),
        "delta": len(index.delta),
        "file": files[0][1].name if files else None,
        "watermark": files[0][0] if files else 0,
    }
