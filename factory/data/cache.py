"""Caching of decoded datasets: per process in memory, and on disk as uint8 tensors.

Decoding 60,000 JPEGs takes a while; reading them back from one `torch.save` file takes well under a
second. A disk cache entry is keyed by the source (absolute path plus a fingerprint of the file listing:
names, sizes, mtimes), the dataset name and the decode size, so editing, adding or touching a file
invalidates it. Entries are written atomically (temp file + os.replace); an unreadable or inconsistent
entry is reported with a warning and rebuilt, never a crash. The in-memory cache keeps the last few
finished `DatasetSplits` so loading the same data twice in one process is free.

Location: `cfg.cache_dir`, else `$FACTORY_CACHE`, else `~/.cache/factory`; dataset entries live under
its `datasets/` folder and can be deleted at any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from factory.data.config import option
from factory.io import save_torch_atomic

CACHE_FORMAT = 1
MEMORY_ENTRIES = 4

_MEMORY: OrderedDict[str, Any] = OrderedDict()


@dataclass
class Decoded:
    """What a disk cache entry holds: class names and, per part ("train", "test", ...), (images, labels)."""

    class_names: list[str]
    parts: dict[str, tuple[torch.Tensor, torch.Tensor]]


def cache_root(cfg: Any = None) -> Path:
    """The cache folder: cfg.cache_dir, else $FACTORY_CACHE, else ~/.cache/factory."""
    explicit = option(cfg, "cache_dir") if cfg is not None else None
    root = explicit or os.environ.get("FACTORY_CACHE") or Path.home() / ".cache" / "factory"
    return Path(root).expanduser()


def file_entry(path: Path, root: Path) -> tuple[str, int, int]:
    """(path relative to root, size, mtime in ns): one line of a source fingerprint."""
    stat = path.stat()
    return (path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns)


def fingerprint(entries: Iterable[tuple[str, int, int]]) -> str:
    """A cheap hash of a file listing (names, sizes, mtimes): changes when any file is added, removed or touched."""
    digest = hashlib.sha256()
    for name, size, mtime in entries:
        digest.update(f"{name}\t{size}\t{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def make_key(**parts: Any) -> str:
    """A stable hex key from JSON-able parts (dataset name, absolute path, fingerprint, image size, ...)."""
    text = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(cfg: Any, label: str, key: str) -> Path:
    """Where the disk entry for `key` lives, e.g. ~/.cache/factory/datasets/imagefolder-32px-1a2b3c4d5e6f7a8b.pt."""
    return cache_root(cfg) / "datasets" / f"{label}-{key[:16]}.pt"


def _validated(payload: Any, key: str) -> Decoded:
    """The payload as a Decoded, or ValueError when it is not a complete entry for `key`."""
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT or payload.get("key") != key:
        raise ValueError("not a cache entry for this source")
    names = payload.get("class_names")
    parts = payload.get("parts")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not isinstance(parts, dict):
        raise ValueError("class names or parts missing")
    checked: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for part, value in parts.items():
        images, labels = value["images"], value["labels"]
        if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.dim() == 4):
            raise ValueError(f"part {part!r}: images are not a uint8 N x C x H x W tensor")
        if not (isinstance(labels, torch.Tensor) and labels.dtype == torch.int64 and len(labels) == len(images)):
            raise ValueError(f"part {part!r}: labels do not match the images")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(names)):
            raise ValueError(f"part {part!r}: labels outside 0..{len(names) - 1}")
        checked[part] = (images, labels)
    return Decoded(class_names=names, parts=checked)


def _read(path: Path, key: str) -> Decoded:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return _validated(payload, key)


def _write_atomic(path: Path, key: str, decoded: Decoded) -> None:
    """Atomically (temp file, then rename): readers never see a half-written entry."""
    payload = {
        "format": CACHE_FORMAT,
        "key": key,
        "class_names": list(decoded.class_names),
        "parts": {name: {"images": imgs, "labels": lbls} for name, (imgs, lbls) in decoded.parts.items()},
    }
    save_torch_atomic(path, payload)


def disk_cached(cfg: Any, *, label: str, key: str, build: Callable[[], Decoded]) -> Decoded:
    """The decoded source for `key` from the disk cache, or `build()` it and store it.

    A corrupt or foreign entry is warned about and rebuilt; a cache folder that cannot be written is warned
    about and the data is used uncached.
    """
    path = cache_path(cfg, label, key)
    if path.is_file():
        try:
            return _read(path, key)
        except Exception as exc:  # any unreadable entry is rebuilt, whatever the reason
            warnings.warn(
                f"dataset cache {path} is unreadable ({type(exc).__name__}: {exc}); rebuilding it", stacklevel=2
            )
            with contextlib.suppress(OSError):
                path.unlink()
    decoded = build()
    try:
        _write_atomic(path, key, decoded)
    except OSError as exc:
        warnings.warn(
            f"cannot write dataset cache {path} ({exc}); set data.cache_dir or $FACTORY_CACHE to a writable folder",
            stacklevel=2,
        )
    return decoded


def memory_get(key: str) -> Any | None:
    """The in-process entry for `key` (refreshed as most recently used), or None."""
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    return None


def memory_put(key: str, value: Any) -> None:
    """Keep `value` for this process; the oldest entries beyond MEMORY_ENTRIES are dropped."""
    _MEMORY[key] = value
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)


def clear_memory_cache() -> None:
    """Forget every in-process entry (the disk cache stays)."""
    _MEMORY.clear()
