"""Fashion-MNIST (Debian's ``dataset-fashion-mnist``): the demo project and benchmark truth."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# idx magic numbers: 0x0801 = unsigned bytes, 1 dim (labels); 0x0803 = 3 dims (images).
_LABEL_MAGIC = 0x00000801
_IMAGE_MAGIC = 0x00000803


def _read_idx(path: Path, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: idx magic {found:#x}, expected {magic:#x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims).copy()


def load_split(
    split: str = "train", root: str | Path = DEFAULT_ROOT
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 N×28×28, labels int64 N)`` for ``split`` in {"train", "test"}."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    root = Path(root)
    images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz", _IMAGE_MAGIC)
    labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", _LABEL_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    return images, labels


def write_pngs(
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: str | Path,
    *,
    indices: np.ndarray | list[int] | None = None,
    class_subdirs: bool = True,
) -> list[tuple[Path, int]]:
    """Write images as PNG files and return ``[(path, label), ...]`` in the order written.

    With ``class_subdirs`` the files land in ``out_dir/<class index>_<slug>/<index>.png``,
    which is how a user would usually hand over a folder of labelled photos.
    """
    out_dir = Path(out_dir)
    if indices is None:
        indices = range(len(images))
    written: list[tuple[Path, int]] = []
    for i in indices:
        label = int(labels[i])
        folder = out_dir
        if class_subdirs:
            slug = CLASS_NAMES[label].lower().replace("/", "-").replace(" ", "-")
            folder = out_dir / f"{label}_{slug}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{int(i):05d}.png"
        Image.fromarray(np.ascontiguousarray(images[i])).save(path)
        written.append((path, label))
    return written


def stratified_subset(labels: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced random subset of ``size`` items (sorted)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    chosen: list[np.ndarray] = []
    per_class = size // len(classes)
    extra = size - per_class * len(classes)
    for rank, c in enumerate(classes):
        pool = np.flatnonzero(labels == c)
        take = min(len(pool), per_class + (1 if rank < extra else 0))
        chosen.append(rng.choice(pool, size=take, replace=False))
    return np.sort(np.concatenate(chosen))


def checkpoint_validation(labels: np.ndarray, config: dict) -> np.ndarray:
    """Training-split indices of the validation items a benchmark checkpoint held out: the same
    class-balanced subset and split ``ml.training.train`` made (from its ``config.json``)."""
    from ml.training import stratified_split

    size = config["data"]["train_items"] + config["data"]["validation_items"]
    idx = stratified_subset(labels, size, seed=config["seed"])
    _, val_pos = stratified_split(labels[idx], config["data"]["val_fraction"], config["seed"])
    return idx[val_pos]
