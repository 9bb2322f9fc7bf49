"""Checkpoint directories: ``model.pt`` (full state dict) + ``config.json`` (resolved config).

Written so that a crash never leaves a half-written checkpoint: each file goes to a temporary
name in the same directory, is flushed to disk, and is renamed into place (a rename within one
filesystem is atomic). ``config.json`` is written last and records the SHA-256 of ``model.pt``,
so a reader that finds a config always finds the weights it describes, and a stray pair from two
different runs is detected instead of silently loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from ml.checkpoint_files import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, read_config
from ml.factory import create_model

FORMAT_VERSION = 1


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(output_dir: str | Path, model: nn.Module, config: dict) -> Path:
    """Write ``model``'s state dict and ``config`` (plus format version and weights hash)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    weights_path = output_dir / WEIGHTS_FILE
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(weights_path, lambda fh: torch.save(state, fh))
    full = {"format_version": FORMAT_VERSION, **config, "weights_sha256": _sha256(weights_path)}
    text = json.dumps(full, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
    _atomic_write(output_dir / CONFIG_FILE, lambda fh: fh.write(text.encode()))
    return output_dir


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_checkpoint(checkpoint_dir: str | Path, *, verify: bool = True) -> tuple[nn.Module, dict]:
    """Rebuild the model described by ``config.json`` and load ``model.pt`` into it (eval mode)."""
    checkpoint_dir = Path(checkpoint_dir)
    config = read_config(checkpoint_dir)
    weights_path = checkpoint_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{checkpoint_dir}: config.json without {WEIGHTS_FILE}")
    if (
        verify
        and config.get("weights_sha256")
        and _sha256(weights_path) != config["weights_sha256"]
    ):
        raise CheckpointError(f"{checkpoint_dir}: {WEIGHTS_FILE} does not match config.json")
    model = create_model(
        config["architecture"], num_classes=len(config["class_names"]), weights="none"
    )
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval(), config
