"""Atomic file writes: a reader never sees a half-written file, and an interrupted write loses nothing."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _atomic(path: str | os.PathLike[str], write: Callable[[Any], None], mode: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and a rename."""
    _atomic(path, lambda h: h.write(text), "w")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically."""
    _atomic(path, lambda h: h.write(data), "wb")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a truncated checkpoint."""
    import torch

    _atomic(path, lambda h: torch.save(obj, h), "wb")
