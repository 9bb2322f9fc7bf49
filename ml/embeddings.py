"""Embedding vectors as the database keeps them, and distances to class centroids.

Vectors are L2-normalised penultimate features (``ml.inference.Predictor.predict_and_embed``),
stored as float16 bytes: half the space of float32, and the rounding (about 1e-3 relative) is
far below the gaps between a reused copy and a different photo that the thresholds separate.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

STORED_DTYPE = np.float16


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def pack(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=STORED_DTYPE).tobytes()


def unpack(blobs: Iterable[bytes | memoryview], dim: int) -> np.ndarray:
    """N×dim float32 from stored rows; renormalised, since float16 rounding moves the length."""
    rows = [np.frombuffer(bytes(blob), dtype=STORED_DTYPE) for blob in blobs]
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    array = np.stack(rows).astype(np.float32)
    if array.shape[1] != dim:
        raise ValueError(f"stored vectors have {array.shape[1]} dimensions, expected {dim}")
    return normalize(array)


def cosine_distance(vectors: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """``1 - cos`` between each row and a (normalised) centroid."""
    return 1.0 - normalize(vectors) @ normalize(centroid[None])[0]
