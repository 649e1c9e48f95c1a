"""`factory convert --trust FILE`: rewrite a file of the earlier, pickled format as plain data, once.

Super-network checkpoints and pick models written before format 2 hold a pickled SpaceSpec object, which
only a full unpickle can read, and a full unpickle runs whatever code the file carries. The factory never
does that by default: this command does it once, for a file the user says they trust, and writes the plain
format every other command reads safely. A file already in the plain format is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.io import save_torch_atomic
from factory.nn.pick_file import LEGACY_PICK_FORMAT, PICK_FORMAT
from factory.training.checkpoint import FORMAT, LEGACY_FORMAT, to_plain
from factory.untrusted import UnsafeFileError, load_plain

UPGRADES = {LEGACY_FORMAT: FORMAT, LEGACY_PICK_FORMAT: PICK_FORMAT}


def convert_file(path: str | os.PathLike[str], trust: bool = False) -> str:
    """Rewrite `path` (atomically, in place) in the plain format; returns what was done, in words."""
    path = Path(path)
    if not path.is_file():
        raise FactoryError(f"{path} not found; give a supernet.pt, checkpoint.pt or a pick's model.pt")
    try:
        state = load_plain(path)  # an unreadable file is a one-line error from here already
    except UnsafeFileError:
        state = None
    if state is not None:
        if isinstance(state, dict) and state.get("format") in UPGRADES.values():
            return f"{path} is already in the plain format ({state['format']}); nothing to do"
        raise FactoryError(f"{path} is not a factory checkpoint or pick model; nothing to convert")
    if not trust:
        raise FactoryError(
            f"{path} holds Python objects; converting it means running them. Pass --trust only for a file of an "
            "earlier factory version from a source you trust"
        )
    state = _unpickle_trusted(path)
    old = state.get("format") if isinstance(state, dict) else None
    if old not in UPGRADES:
        raise FactoryError(f"{path} is not a factory file of an earlier format (format {old!r}); nothing converted")
    save_torch_atomic(path, {**to_plain(state), "format": UPGRADES[old]})
    return f"{path}: {old} -> {UPGRADES[old]} (plain data, safe to load)"


def _unpickle_trusted(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise FactoryError(f"{path} could not be read ({type(exc).__name__}); nothing converted") from None
