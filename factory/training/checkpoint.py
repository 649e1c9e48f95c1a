"""Checkpoints: plain data written atomically, holding the resolved recipe, checked on load.

A checkpoint holds only tensors, numbers, strings, lists and dicts (the space as `SpaceSpec.to_dict()`, the
recipe as its dict), and is read with `weights_only=True`, so a file from someone else cannot run code when
it is opened. A checkpoint that cannot be read, holds objects, or belongs to another recipe is a FactoryError
that says what to do, never a traceback and never a silent restart that would throw finished work away.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.io import save_torch_atomic
from factory.space.config import SpaceSpec
from factory.untrusted import UnreadableFileError, load_plain

FORMAT = "factory-supernet/2"
LEGACY_FORMAT = "factory-supernet/1"  # pickled SpaceSpec objects: read only by `factory convert --trust`


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write `state` (plus a format tag) atomically; a SpaceSpec under "spec" is stored as its plain dict."""
    save_torch_atomic(path, {"format": FORMAT, **to_plain(state)})


def to_plain(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with its space description as a plain dict."""
    spec = state.get("spec")
    return {**state, "spec": spec.to_dict()} if isinstance(spec, SpaceSpec) else dict(state)


def load_checkpoint(path: str | os.PathLike[str], expect_recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint as plain data and rebuild its SpaceSpec; a corrupt, unsafe or foreign file, or one from
    a different recipe, is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FactoryError(f"checkpoint {path} not found; train first (factory train) or give the right path")
    try:
        state = load_plain(path)
    except UnreadableFileError:
        raise FactoryError(
            f"checkpoint {path} is corrupt or not a factory checkpoint; delete it and retrain, or pass --force to "
            "start over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FactoryError(f"{path} is not a factory super-network checkpoint; give a file written by factory train")
    if isinstance(state.get("spec"), dict):
        state["spec"] = SpaceSpec.from_dict(state["spec"])
    if expect_recipe is not None:
        differs = _differences(state.get("recipe", {}), expect_recipe)
        if differs:
            raise FactoryError(
                f"checkpoint {path} was written with a different recipe ({', '.join(differs[:5])}); "
                "use the original recipe, or --force to start over"
            )
    return state


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain recipe dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def recipe_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human list of what differs between two resolved recipes or build requests (for resume checks)."""
    return _differences(old, new)
