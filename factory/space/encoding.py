"""Integer encodings of sub-networks (the genes NSGA-II evolves and the predictors read), behind a registry.

Layout: x[0] resolution index into `spec.resolutions`, x[1] width index into `spec.widths`, x[2] exit
index (exit = x[2] + 1; only NAT2 encodings of early-exit spaces), then 20 block genes, stage-major, four
per stage. A block gene is 0 for a skipped block, else one integer jointly coding the block:

    gene = 1 + k_idx + n_k * (e_idx + n_e * m_idx)

with k_idx / e_idx indices into `spec.kernels` / `spec.expands` and m_idx the index of the branch mask
in `spec.branch_masks()`: mask - 1 in parallel spaces (masks 1..7, genes 1..63), always 0 in the others
(mask 4 = MBConv only, genes 1..9). Mask outermost, kernel innermost, as the authors' code has it.

- "nat": the NAT baseline. Always 22 genes (no exit gene; decodes to the last exit) and "push" repair.
  In parallel spaces it still uses the joint (kernel, expand, mask) code, so it can express every block.
- "nat2": NAT2. 22 genes for single-exit kinds, 23 for early-exit kinds, and "fill" repair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from factory.errors import FactoryError
from factory.space.config import (
    BLOCKS_PER_STAGE,
    NUM_SLOTS,
    NUM_STAGES,
    BlockConfig,
    SpaceSpec,
    SubnetConfig,
)
from factory.space.repair import REPAIR_MODES, RepairMode, repair


@dataclass(frozen=True)
class EncodingScheme:
    """What distinguishes one encoding from another: its name, whether it has an exit gene, its repair."""

    name: str
    exit_gene: bool
    repair: RepairMode
    description: str = ""


class Encoding:
    """The integer encoding of one super-network space under one scheme.

    Bounds are inclusive (`lower <= x <= upper`) as pymoo expects. A block gene's lower bound is 1 for
    the first `min(spec.depths)` blocks of a stage (they cannot be skipped) and 0 for the others; a slot
    beyond `max(spec.depths)` has upper bound 0. The bounds are the hull of `spec.depths`: a gap such as
    depths (2, 4) is not enforced by them, only by the depth-uniform sampler.
    """

    def __init__(self, spec: SpaceSpec, scheme: EncodingScheme) -> None:
        if scheme.repair not in REPAIR_MODES:
            raise FactoryError(f"encoding {scheme.name!r}: unknown repair mode {scheme.repair!r}")
        if not spec.depths or not set(spec.depths) <= set(range(2, BLOCKS_PER_STAGE + 1)):
            raise FactoryError(f"space.depths must be values in 2..{BLOCKS_PER_STAGE}, got {spec.depths}")
        for name in ("resolutions", "widths", "kernels", "expands"):
            values = getattr(spec, name)
            if not values or len(set(values)) != len(values):
                raise FactoryError(f"space.{name} must be non-empty with no repeats, got {values}")
        self.spec = spec
        self.scheme = scheme
        self.name = scheme.name
        self.repair_mode: RepairMode = scheme.repair
        self.has_exit_gene = scheme.exit_gene and spec.early_exit
        self.exits: tuple[int, ...] = spec.exits()
        self.masks: tuple[int, ...] = spec.branch_masks()
        self.n_kernels = len(spec.kernels)
        self.n_expands = len(spec.expands)
        self.n_codes = self.n_kernels * self.n_expands * len(self.masks)
        self.n_header = 3 if self.has_exit_gene else 2
        self.n_genes = self.n_header + NUM_SLOTS

        header_upper = [len(spec.resolutions) - 1, len(spec.widths) - 1]
        if self.has_exit_gene:
            header_upper.append(len(self.exits) - 1)
        slot = np.arange(BLOCKS_PER_STAGE)
        block_lower = np.tile(np.where(slot < min(spec.depths), 1, 0), NUM_STAGES)
        block_upper = np.tile(np.where(slot < max(spec.depths), self.n_codes, 0), NUM_STAGES)
        self.lower = np.concatenate([np.zeros(self.n_header, dtype=np.int64), block_lower]).astype(np.int64)
        self.upper = np.concatenate([np.array(header_upper, dtype=np.int64), block_upper]).astype(np.int64)
        self.lower.setflags(write=False)
        self.upper.setflags(write=False)

        labels = ["resolution", "width"] + (["exit"] if self.has_exit_gene else [])
        labels += [f"stage {s + 1} block {b + 1}" for s in range(NUM_STAGES) for b in range(BLOCKS_PER_STAGE)]
        self.gene_labels: tuple[str, ...] = tuple(labels)

    def __repr__(self) -> str:
        return f"Encoding({self.name!r}, kind={self.spec.kind!r}, n_genes={self.n_genes})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoding) and (self.scheme, self.spec) == (other.scheme, other.spec)

    def __hash__(self) -> int:
        return hash((self.scheme, self.spec))

    # --- block codes -------------------------------------------------------------------------------

    def block_code(self, block: BlockConfig | None) -> int:
        """The gene of one block slot (0 when skipped)."""
        if block is None:
            return 0
        try:
            k_idx = self.spec.kernels.index(block.kernel)
            e_idx = self.spec.expands.index(block.expand)
            m_idx = self.masks.index(block.branches)
        except ValueError:
            raise ValueError(
                f"block {block} is not in the {self.spec.kind!r} space (kernels {self.spec.kernels}, "
                f"expands {self.spec.expands}, branch masks {self.masks})"
            ) from None
        return 1 + k_idx + self.n_kernels * (e_idx + self.n_expands * m_idx)

    def block_of(self, code: int) -> BlockConfig | None:
        """The block a gene codes (None for 0); the inverse of `block_code`."""
        code = int(code)
        if code == 0:
            return None
        if not 1 <= code <= self.n_codes:
            raise ValueError(f"block gene {code} is outside 0..{self.n_codes}")
        c = code - 1
        k_idx, c = c % self.n_kernels, c // self.n_kernels
        e_idx, m_idx = c % self.n_expands, c // self.n_expands
        return BlockConfig(self.spec.kernels[k_idx], self.spec.expands[e_idx], self.masks[m_idx])

    # --- vectors <-> configs -----------------------------------------------------------------------

    def encode(self, config: SubnetConfig) -> np.ndarray:
        """The gene vector of a config; raises ValueError when the config is not in this space."""
        spec = self.spec
        if config.resolution not in spec.resolutions:
            raise ValueError(f"resolution {config.resolution} is not one of {spec.resolutions}")
        widths = [i for i, w in enumerate(spec.widths) if np.isclose(w, config.width)]
        if not widths:
            raise ValueError(f"width {config.width} is not one of {spec.widths}")
        header = [spec.resolutions.index(config.resolution), widths[0]]
        if self.has_exit_gene:
            if config.exit not in self.exits:
                raise ValueError(f"exit {config.exit} is not one of {self.exits}")
            header.append(self.exits.index(config.exit))
        elif config.exit != self.exits[-1]:
            raise ValueError(
                f"encoding {self.name!r} has no exit gene and always decodes to exit {self.exits[-1]}; "
                f"got a config with exit {config.exit}"
            )
        x = np.array(header + [self.block_code(b) for b in config.blocks], dtype=np.int64)
        self.validate(x)
        return x

    def encode_all(self, configs: Iterable[SubnetConfig]) -> np.ndarray:
        """A population array (one row per config)."""
        rows = [self.encode(c) for c in configs]
        return np.stack(rows) if rows else np.zeros((0, self.n_genes), dtype=np.int64)

    def decode(self, x: np.ndarray) -> SubnetConfig:
        """The config of one vector: validated, then repaired, so any in-bounds integer vector decodes."""
        arr = np.asarray(x)
        if arr.ndim != 1:
            raise ValueError(f"decode takes one vector, got shape {arr.shape}; use decode_all for a population")
        self.validate(arr)
        genes = [int(v) for v in self.repair(arr)]
        exit_ = self.exits[genes[2]] if self.has_exit_gene else self.exits[-1]
        blocks = tuple(self.block_of(g) for g in genes[self.n_header :])
        return SubnetConfig(self.spec.resolutions[genes[0]], float(self.spec.widths[genes[1]]), exit_, blocks)

    def decode_all(self, X: np.ndarray) -> list[SubnetConfig]:
        """The configs of a population array."""
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"decode_all takes a 2-D population, got shape {arr.shape}")
        return [self.decode(row) for row in arr]

    def repair(self, x: np.ndarray) -> np.ndarray:
        """Repair one vector or a population with this encoding's mode (see `factory.space.repair`)."""
        return repair(x, self.repair_mode)

    # --- checks and features -----------------------------------------------------------------------

    def validate(self, x: np.ndarray) -> None:
        """Raise ValueError naming the first bad gene (length, non-integer, out of bounds); rows for 2-D."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"genes must be integers, got dtype {arr.dtype}")
        if arr.ndim not in (1, 2):
            raise ValueError(f"expected a vector or a 2-D population, got shape {arr.shape}")
        if arr.shape[-1] != self.n_genes:
            raise ValueError(
                f"expected {self.n_genes} genes, got {arr.shape[-1]} (encoding {self.name!r}, kind {self.spec.kind!r})"
            )
        pop = arr.reshape(-1, self.n_genes)
        bad_int = ~np.isfinite(pop) | (pop != np.round(pop)) if arr.dtype.kind == "f" else np.zeros(pop.shape, bool)
        bad_bounds = ~bad_int & ((pop < self.lower) | (pop > self.upper))
        bad = bad_int | bad_bounds
        if not bad.any():
            return
        row, gene = np.argwhere(bad)[0]
        value = pop[row, gene]
        shown = int(value) if np.isfinite(value) and value == round(value) else float(value)
        where = f"row {row}: " if arr.ndim == 2 else ""
        label = f"gene {gene} ({self.gene_labels[gene]}) = {shown}"
        if bad_int[row, gene]:
            raise ValueError(f"{where}{label} is not an integer")
        raise ValueError(f"{where}{label} is outside {self.lower[gene]}..{self.upper[gene]}")

    def is_valid(self, x: np.ndarray) -> bool:
        """True when `validate` accepts the vector (or every row of a population)."""
        try:
            self.validate(x)
        except ValueError:
            return False
        return True

    @property
    def one_hot_size(self) -> int:
        return int(np.sum(self.upper - self.lower + 1))

    def one_hot(self, X: np.ndarray) -> np.ndarray:
        """One-hot features (NAT's predictor input): per gene, one column per value in its bound range.

        A 1-D vector gives a 1-D row, a 2-D population a (n, one_hot_size) float array. The vectors are
        used as given (not repaired): the archive holds repaired vectors already.
        """
        arr = np.asarray(X)
        self.validate(arr)
        pop = arr.reshape(-1, self.n_genes).astype(np.int64)
        sizes = self.upper - self.lower + 1
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out = np.zeros((pop.shape[0], self.one_hot_size), dtype=np.float64)
        out[np.arange(pop.shape[0])[:, None], offsets + pop - self.lower] = 1.0
        return out[0] if arr.ndim == 1 else out


ENCODINGS: dict[str, EncodingScheme] = {}


def register_encoding(scheme: EncodingScheme) -> EncodingScheme:
    """Add a scheme to the registry (a name already taken is a bug)."""
    if scheme.name in ENCODINGS:
        raise ValueError(f"encoding {scheme.name!r} is already registered")
    ENCODINGS[scheme.name] = scheme
    return scheme


register_encoding(EncodingScheme("nat", exit_gene=False, repair="push", description="NAT baseline, 22 genes"))
register_encoding(EncodingScheme("nat2", exit_gene=True, repair="fill", description="NAT2, exit gene in EE spaces"))


def get_encoding(name: str, spec: SpaceSpec) -> Encoding:
    """The encoding `name` of the space `spec`; an unknown name is a user error listing the valid ones."""
    try:
        scheme = ENCODINGS[name]
    except KeyError:
        raise FactoryError(f"unknown encoding {name!r}; choose one of {', '.join(ENCODINGS)}") from None
    return Encoding(spec, scheme)
