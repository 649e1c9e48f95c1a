"""Atomic file writes: a reader never sees a half-written file, and an interrupted write loses nothing."""

from __future__ import annotations

import errno
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.errors import FactoryError

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without leaving it changed (Linux: /proc/self/status, no window at all)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # os.umask can only be read by setting it: set and restore at once, one thread at a time
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException, folder: str | os.PathLike[str]) -> FactoryError | None:
    """The one-line error for a full disk (or quota) met while writing into `folder`; None for any other error.

    Every write is atomic and every stage resumes from its own files, so freeing space and resuming loses nothing.
    """
    if not isinstance(exc, OSError) or exc.errno not in DISK_FULL:
        return None
    return FactoryError(
        f"no space left on the device of {folder} ({exc.strerror or 'disk full'}); free some space and rerun the "
        "same command (with --resume for train and build) to continue"
    )


def sync_folder(folder: str | os.PathLike[str]) -> None:
    """fsync a folder, so the names of the files just renamed into it survive a power loss, not only their bytes.

    Platforms that cannot open a folder (Windows) skip it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise
    finally:
        os.close(fd)


def sync_file(path: str | os.PathLike[str]) -> None:
    """fsync a file written by other code (numpy, shutil, zipfile) before it is marked done."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _atomic(path: str | os.PathLike[str], write: Callable[[Any], None], mode: str) -> None:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise disk_full(exc, target.parent) or exc from None
    try:
        with os.fdopen(fd, mode) as handle:
            # mkstemp makes a private (0600) file; give it the mode an ordinary open() would (0666 & ~umask).
            os.chmod(tmp, 0o666 & ~current_umask())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        sync_folder(target.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        full = disk_full(exc, target.parent)
        if full is not None:
            raise full from None
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


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks (standard library only: the device side uses it too)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_torch_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a truncated checkpoint."""
    import torch

    _atomic(path, lambda h: torch.save(obj, h), "wb")


def read_json_input(path: Path, flag: str, fmt: str, missing: str, key: str) -> dict[str, Any]:
    """A JSON file the user hands over (`flag` names it in errors): missing, unreadable, or not of format `fmt`
    with a `key` entry is a one-line error; `missing` says how to make it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FactoryError(f"{flag} {path} not found; {missing}") from None
    except (OSError, ValueError):
        raise FactoryError(f"{flag} {path} is not readable JSON; copy it again") from None
    if not isinstance(data, dict) or data.get("format") != fmt or not data.get(key):
        raise FactoryError(f"{flag} {path} is not a {fmt} file; {missing}")
    return data
