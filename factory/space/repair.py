"""Repair of skipped-block genes, so every integer vector within bounds decodes to a valid SubnetConfig.

A stage is valid when no active block follows a skipped one. Crossover and mutation break that freely,
so the encodings repair before decoding and pymoo repairs whole populations. Block genes are always the
last `NUM_SLOTS` genes of a vector (stage-major, `BLOCKS_PER_STAGE` per stage), so repair needs no
knowledge of the header (resolution, width, exit) genes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from factory.space.config import BLOCKS_PER_STAGE, NUM_SLOTS, NUM_STAGES

RepairMode = Literal["push", "fill"]
REPAIR_MODES: tuple[str, ...] = ("push", "fill")


def repair(x: np.ndarray, mode: RepairMode = "fill") -> np.ndarray:
    """Return a repaired copy of one vector (1-D) or a population (2-D, one vector per row).

    - "push" (NAT): a stage's active genes move forward in order and its zeros go to the end, so
      [a, b, 0, c] becomes [a, b, c, 0]: the stage keeps its blocks but they change position.
    - "fill" (NAT2, the default): a zero followed by an active block in the same stage becomes a copy of
      the preceding active gene, so [a, b, 0, c] becomes [a, b, b, c]: the depth stays the position of
      the stage's last active block and every other block keeps its slot (and its shared weights). A
      leading zero, which has no preceding active gene (only possible outside the bounds), copies the
      first active gene after it. An all-zero stage stays all zero; the bounds forbid it.

    Header genes and the dtype are kept; trailing zeros are already valid and stay.
    """
    if mode not in REPAIR_MODES:
        raise ValueError(f"unknown repair mode {mode!r}; choose one of {', '.join(REPAIR_MODES)}")
    arr = np.array(x, copy=True)
    if arr.ndim not in (1, 2) or arr.shape[-1] < NUM_SLOTS:
        raise ValueError(f"repair needs vectors of at least {NUM_SLOTS} genes, got shape {arr.shape}")
    pop = arr.reshape(-1, arr.shape[-1])
    header = pop.shape[1] - NUM_SLOTS
    blocks = pop[:, header:].reshape(-1, NUM_STAGES, BLOCKS_PER_STAGE)
    active = blocks != 0
    pos = np.arange(BLOCKS_PER_STAGE)
    if mode == "push":
        # A stable sort on "is skipped" keeps the active genes' order and moves the zeros last.
        order = np.argsort(~active, axis=-1, kind="stable")
    else:
        # Forward fill: each slot takes the nearest active slot at or before it ...
        prev = np.maximum.accumulate(np.where(active, pos, -1), axis=-1)
        # ... or, for leading zeros, the nearest active slot after it.
        nxt = np.minimum.accumulate(np.where(active, pos, BLOCKS_PER_STAGE)[..., ::-1], axis=-1)[..., ::-1]
        source = np.where(prev >= 0, prev, np.minimum(nxt, BLOCKS_PER_STAGE - 1))
        last = np.max(np.where(active, pos, -1), axis=-1, keepdims=True)
        # Slots after the last active block stay skipped (they are the stage's valid tail).
        order = np.where(pos <= last, source, pos)
    pop[:, header:] = np.take_along_axis(blocks, order, axis=-1).reshape(-1, NUM_SLOTS)
    return pop.reshape(arr.shape)


def is_repaired(x: np.ndarray) -> np.ndarray | bool:
    """True where no active block follows a skipped one (per row for a population)."""
    arr = np.asarray(x)
    blocks = arr[..., arr.shape[-1] - NUM_SLOTS :].reshape(*arr.shape[:-1], NUM_STAGES, BLOCKS_PER_STAGE)
    active = blocks != 0
    # Valid stage: the active flags never go from False back to True.
    ok = np.all(active[..., :-1] | ~active[..., 1:], axis=(-1, -2))
    return bool(ok) if arr.ndim == 1 else ok
