"""Reading files that may come from someone else, without letting them run code or write outside their folder.

Teams pass each other super-networks, picks and bundles. A pickle can run any code while it is read, so every
torch file the factory reads back is loaded with `weights_only=True`: plain data only (tensors, numbers,
strings, lists, dicts), and a file holding any other Python object is refused before any of it runs. Archives
are extracted member by member, refusing absolute names and names that climb out of the target folder.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from factory.errors import FactoryError


class UnsafeFileError(FactoryError):
    """A file holds Python objects, not plain data: reading it could run code."""


class UnreadableFileError(FactoryError):
    """A file is not a readable torch file at all (truncated, another format)."""


def load_plain(path: str | os.PathLike[str]) -> Any:
    """torch.load restricted to plain data, onto the CPU.

    Raises UnsafeFileError for a file that holds Python objects (an earlier factory format, or a pickle made to
    run code: the two cannot be told apart without running it) and UnreadableFileError for anything unreadable.
    """
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):
            raise UnsafeFileError(
                f"{path} holds Python objects, not plain data, so reading it could run code; it was not read. "
                "If it is a file of an earlier factory version from a source you trust, convert it once with "
                f"`factory convert --trust {path}`; otherwise rebuild it"
            ) from None
        raise UnreadableFileError(f"{path} is not a readable factory file ({_first_line(exc)})") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors, ... for damaged files
        raise UnreadableFileError(f"{path} is not a readable factory file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def safe_member_path(root: Path, name: str) -> Path:
    """Where archive member `name` goes under `root`; a FactoryError for absolute names and `..` that climb out."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")) or ".." in pure.parts:
        raise FactoryError(f"archive member {name!r} would be written outside {root}; the archive was not extracted")
    target = (root / Path(*pure.parts)).resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise FactoryError(f"archive member {name!r} would be written outside {root}; the archive was not extracted")
    return target


def safe_extract(archive: str | os.PathLike[str], root: str | os.PathLike[str]) -> list[Path]:
    """Extract a zip archive into `root`, checking every member name before writing anything.

    Links and special files are refused too (a zip cannot make them, but a name check alone is not the point:
    nothing is written unless every member is a plain file or folder inside `root`).
    """
    root = Path(root)
    try:
        handle = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FactoryError(f"{archive} is not a readable zip archive ({_first_line(exc)})") from None
    with handle:
        members = handle.infolist()
        targets = [safe_member_path(root, m.filename) for m in members]
        for member in members:
            kind = (member.external_attr >> 16) & 0o170000
            if kind not in (0, 0o100000, 0o040000):
                raise FactoryError(
                    f"archive member {member.filename!r} is not a plain file; the archive was not extracted"
                )
        written = []
        for member, target in zip(members, targets, strict=True):
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with handle.open(member) as source, open(target, "wb") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
            written.append(target)
    return written
