"""Nearest-neighbour search over image embeddings with usearch (HNSW), saved as single files.

Why usearch (docs/decisions.md): an HNSW graph that takes integer keys directly, quantises
vectors to 8 bits inside the index (a 1,280-dimension embedding costs 1.3 kB instead of 5 kB,
so a million images fit in about 1.5 GB), saves to one file, and can *view* that file through
``mmap``: every web and worker process shares one copy in the page cache instead of loading
its own.

:class:`VectorIndex` is one index (in memory, or a read-only view of a file).
:class:`LayeredIndex` is what a process searches: a viewed base file plus a small in-memory
index of what was added since the file was written; it merges their answers. Distances are
cosine distances (``1 - cosine similarity``) of L2-normalised vectors.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from usearch.index import Index

DEFAULT_DTYPE = "i8"
CONNECTIVITY = 16  # HNSW's M: edges per node; 16 is the usual trade of memory for recall
EXPANSION_ADD = 64  # ef_construction: 128 doubled insert time for no recall gain on duplicates
# ef at query time (raised to k when a caller asks for more). bench/embedding_index.py at a
# million vectors: recall@1 of a near-copy's original 0.71 at 96, 0.84 at 256, 0.89 at 512
# (the exact search finds all of them), query p95 1.3 / 2.1 / 2.9 ms on 2 cores.
EXPANSION_SEARCH = 512


class IndexUnreadable(Exception):
    """A saved index file is missing, truncated or not an index of the expected shape."""


class VectorIndex:
    """One HNSW index of L2-normalised float vectors under int64 keys (cosine distance)."""

    def __init__(
        self,
        ndim: int,
        *,
        dtype: str = DEFAULT_DTYPE,
        connectivity: int = CONNECTIVITY,
        expansion_add: int = EXPANSION_ADD,
        expansion_search: int = EXPANSION_SEARCH,
        _index: Index | None = None,
    ) -> None:
        self.ndim = int(ndim)
        self.index = _index or Index(
            ndim=self.ndim,
            metric="cos",
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )
        self.viewed = False

    def __len__(self) -> int:
        return int(self.index.size)

    @property
    def memory_bytes(self) -> int:
        return int(self.index.memory_usage)

    def add(self, keys: np.ndarray, vectors: np.ndarray, *, threads: int = 0) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.ndim:
            raise ValueError(f"vectors must be N×{self.ndim}, got {vectors.shape}")
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if self.viewed:
            raise ValueError("a viewed index is read-only; add to a LayeredIndex's delta")
        if len(keys):
            self.index.add(keys, vectors, threads=threads)

    def search(
        self, vectors: np.ndarray, k: int, *, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, distances)``, each ``N×k``; missing neighbours are key -1, distance inf."""
        vectors = np.atleast_2d(np.ascontiguousarray(vectors, dtype=np.float32))
        n = len(vectors)
        keys = np.full((n, k), -1, dtype=np.int64)
        distances = np.full((n, k), np.inf, dtype=np.float32)
        if len(self) == 0 or n == 0 or k <= 0:
            return keys, distances
        if self.index.expansion_search < k:
            self.index.expansion_search = k
        found = self.index.search(vectors, k, exact=exact)
        # One query row comes back as Matches (1-D arrays), several as BatchMatches.
        counts = np.atleast_1d(getattr(found, "counts", len(found.keys)))
        got_keys = np.atleast_2d(found.keys).astype(np.int64)
        got_distances = np.atleast_2d(found.distances).astype(np.float32)
        for row in range(n):
            c = int(counts[row])
            keys[row, :c] = got_keys[row, :c]
            distances[row, :c] = got_distances[row, :c]
        return keys, distances

    def save(self, path: str | Path) -> None:
        """Write atomically: a crash leaves either the old file or the new one, never half."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self.index.save(str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, *, ndim: int, view: bool = True) -> VectorIndex:
        """Open a saved index; ``view`` maps the file read-only instead of reading it."""
        path = Path(path)
        if not path.is_file():
            raise IndexUnreadable(f"{path}: no such index file")
        try:
            meta = Index.metadata(str(path))
            if meta is None or int(meta.get("dimensions", -1)) != ndim:
                raise IndexUnreadable(f"{path}: not an index of {ndim}-dimension vectors")
            index = Index.restore(str(path), view=view)
        except IndexUnreadable:
            raise
        except Exception as exc:  # usearch raises RuntimeError/ValueError for damaged files
            raise IndexUnreadable(f"{path}: {exc}") from exc
        if index is None or index.ndim != ndim:
            raise IndexUnreadable(f"{path}: unreadable index")
        # A restored index searches at usearch's default ef (64), not ours: a viewed file, which
        # is what the service serves from, found 0.64 of a million-vector index's originals
        # where the same index in memory found 0.70.
        index.expansion_search = EXPANSION_SEARCH
        loaded = cls(ndim, _index=index)
        loaded.viewed = view
        return loaded

    def copy_in_memory(self) -> VectorIndex:
        """A writable in-memory copy (to grow a viewed base before saving it again)."""
        copy = VectorIndex(self.ndim, _index=self.index.copy())
        return copy


class LayeredIndex:
    """A read-only base (usually a viewed file) plus an in-memory delta, searched as one."""

    def __init__(self, ndim: int, base: VectorIndex | None = None) -> None:
        self.ndim = ndim
        self.base = base
        self.delta = VectorIndex(ndim)
        self.delta_keys: set[int] = set()

    def __len__(self) -> int:
        return (len(self.base) if self.base is not None else 0) + len(self.delta)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> int:
        """Add the rows whose keys the delta does not hold yet; returns how many were new."""
        keys = np.asarray(keys, dtype=np.int64)
        fresh = np.array([k not in self.delta_keys for k in keys.tolist()], dtype=bool)
        if fresh.any():
            self.delta.add(keys[fresh], np.asarray(vectors)[fresh])
            self.delta_keys.update(keys[fresh].tolist())
        return int(fresh.sum())

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [self.delta.search(vectors, k)]
        if self.base is not None:
            parts.insert(0, self.base.search(vectors, k))
        if len(parts) == 1:
            return parts[0]
        keys = np.concatenate([p[0] for p in parts], axis=1)
        distances = np.concatenate([p[1] for p in parts], axis=1)
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(keys, order, 1), np.take_along_axis(distances, order, 1)
