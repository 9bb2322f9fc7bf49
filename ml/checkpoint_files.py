"""What a checkpoint directory holds, readable without torch: the file names, the error, and
``read_config``. Web processes check an uploaded checkpoint's config with this module alone;
loading the weights (``ml.checkpoint``) imports torch and happens in workers."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"


class CheckpointError(RuntimeError):
    """A checkpoint directory is incomplete or inconsistent."""


def read_config(checkpoint_dir: str | Path) -> dict:
    path = Path(checkpoint_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint_dir}: no {CONFIG_FILE} (incomplete checkpoint?)")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{CONFIG_FILE} is not valid JSON ({exc})") from exc
