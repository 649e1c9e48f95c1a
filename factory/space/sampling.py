"""Samplers of sub-network gene vectors; all randomness comes from an explicit numpy Generator.

NAT drew each gene uniformly within its bounds. With one zero among 1 + n_codes values (10 in base
spaces, 64 in parallel ones) a skippable block is almost never skipped, so that sampler puts ~90% (~98%)
of stages at depth 4 and almost none at depth 2. NAT2's depth-uniform sampler first draws each stage's
depth uniformly from `spec.depths`, then each active block's (kernel, expand, branch mask) uniformly,
so the initial archive covers shallow and deep networks alike. Super-network training (and
`OFASupernet.sample_active`) draws from the same sampler through `sample_subnets`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from factory.space.config import (
    BLOCKS_PER_STAGE,
    NUM_SLOTS,
    NUM_STAGES,
    SpaceSpec,
    SubnetConfig,
    largest_config,
    smallest_config,
)
from factory.space.encoding import Encoding, get_encoding

Sampler = Literal["depth_uniform", "uniform_genes"]


def _check(n: int, rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (never the global RNG), got {type(rng).__name__}")
    if n < 0:
        raise ValueError(f"cannot sample {n} vectors")


def sample_uniform_genes(encoding: Encoding, n: int, rng: np.random.Generator) -> np.ndarray:
    """NAT's sampler: every gene uniform within its bounds, then repaired. Shape (n, n_genes), int64."""
    _check(n, rng)
    X = rng.integers(encoding.lower, encoding.upper + 1, size=(n, encoding.n_genes), dtype=np.int64)
    return encoding.repair(X)


def sample_depth_uniform(encoding: Encoding, n: int, rng: np.random.Generator) -> np.ndarray:
    """NAT2's sampler: header genes uniform; each stage's depth uniform over `spec.depths`; each active
    block uniform over its (kernel, expand, branch mask) codes, i.e. over all 7 masks in parallel spaces.

    The vectors are valid and repaired under every repair mode (active blocks form a stage's prefix).
    """
    _check(n, rng)
    h = encoding.n_header
    header = rng.integers(encoding.lower[:h], encoding.upper[:h] + 1, size=(n, h), dtype=np.int64)
    depths = rng.choice(np.asarray(encoding.spec.depths, dtype=np.int64), size=(n, NUM_STAGES))
    codes = rng.integers(1, encoding.n_codes + 1, size=(n, NUM_STAGES, BLOCKS_PER_STAGE), dtype=np.int64)
    active = np.arange(BLOCKS_PER_STAGE) < depths[..., None]
    blocks = np.where(active, codes, 0).reshape(n, NUM_SLOTS)
    return np.concatenate([header, blocks], axis=1)


SAMPLERS = {"depth_uniform": sample_depth_uniform, "uniform_genes": sample_uniform_genes}


def sample_vectors(
    encoding: Encoding, n: int, rng: np.random.Generator, sampler: Sampler = "depth_uniform"
) -> np.ndarray:
    """n vectors from the named sampler (NAT2's depth-uniform one by default)."""
    try:
        fn = SAMPLERS[sampler]
    except KeyError:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}") from None
    return fn(encoding, n, rng)


def sample_configs(
    encoding: Encoding, n: int, rng: np.random.Generator, sampler: Sampler = "depth_uniform"
) -> list[SubnetConfig]:
    """n decoded sub-networks from the named sampler."""
    return encoding.decode_all(sample_vectors(encoding, n, rng, sampler))


def sample_subnets(spec: SpaceSpec, n: int, rng: np.random.Generator, width: float | None = None) -> list[SubnetConfig]:
    """n depth-uniform sub-networks of the super-network family `spec`, over every exit (NAT2 encoding).

    This is what super-network training samples; `width` (one super-network) replaces the sampled width.
    """
    configs = sample_configs(get_encoding("nat2", spec), n, rng)
    if width is None:
        return configs
    return [SubnetConfig(c.resolution, width, c.exit, c.blocks) for c in configs]


def _last_exit(encoding: Encoding, config: SubnetConfig) -> SubnetConfig:
    # An encoding without an exit gene can only express the last exit.
    return config if encoding.has_exit_gene else config.with_exit(encoding.exits[-1])


def largest_vector(encoding: Encoding, width: float | None = None, resolution: int | None = None) -> np.ndarray:
    """The gene vector of `largest_config` (defaults as there: largest resolution, smallest width)."""
    return encoding.encode(_last_exit(encoding, largest_config(encoding.spec, width, resolution)))


def smallest_vector(encoding: Encoding, width: float | None = None, resolution: int | None = None) -> np.ndarray:
    """The gene vector of `smallest_config` (first exit where the encoding has an exit gene, else the last)."""
    return encoding.encode(_last_exit(encoding, smallest_config(encoding.spec, width, resolution)))


def extreme_vectors(encoding: Encoding) -> np.ndarray:
    """The smallest and the largest network of every width (rows: smallest, largest per width, in order).

    NAT2 adds "the smallest and the largest network" to the initial archive; the widths are separate
    super-networks, so the archive may want the pair for each.
    """
    rows = []
    for width in encoding.spec.widths:
        rows += [smallest_vector(encoding, width), largest_vector(encoding, width)]
    return np.stack(rows)
