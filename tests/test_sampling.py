"""Samplers: determinism, validity, NAT2's depth uniformity (and NAT's lack of it), extreme networks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from factory.space.config import SpaceSpec, SubnetConfig, largest_config, smallest_config
from factory.space.encoding import Encoding, get_encoding
from factory.space.kinds import KINDS
from factory.space.repair import is_repaired
from factory.space.sampling import (
    extreme_vectors,
    largest_vector,
    sample_configs,
    sample_depth_uniform,
    sample_subnets,
    sample_uniform_genes,
    sample_vectors,
    smallest_vector,
)

ALL = [(name, kind) for name in ("nat", "nat2") for kind in KINDS]
SAMPLERS = [sample_uniform_genes, sample_depth_uniform]


def enc(name: str, kind: str, **kw: object) -> Encoding:
    return get_encoding(name, SpaceSpec(kind=kind, resolutions=(24, 28, 32), widths=(1.0, 1.2), **kw))


def stage_depths(e: Encoding, X: np.ndarray) -> np.ndarray:
    return (X[:, e.n_header :].reshape(-1, 5, 4) != 0).sum(-1)


def depth_counts(e: Encoding, X: np.ndarray, stage: int) -> np.ndarray:
    return np.array([(stage_depths(e, X)[:, stage] == d).sum() for d in e.spec.depths])


@pytest.mark.parametrize("name,kind", ALL)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samples_are_valid_and_deterministic(name: str, kind: str, sampler) -> None:
    e = enc(name, kind)
    X = sampler(e, 200, np.random.default_rng(7))
    assert X.shape == (200, e.n_genes) and X.dtype == np.int64
    e.validate(X)
    assert np.all(is_repaired(X))
    assert np.array_equal(X, sampler(e, 200, np.random.default_rng(7)))
    assert not np.array_equal(X, sampler(e, 200, np.random.default_rng(8)))
    configs = e.decode_all(X)
    assert all(isinstance(c, SubnetConfig) and set(c.depths) <= set(e.spec.depths) for c in configs)
    assert np.array_equal(e.encode_all(configs), X)


def test_sample_configs() -> None:
    e = enc("nat2", "ee-dense")
    configs = sample_configs(e, 30, np.random.default_rng(0))
    assert len(configs) == 30 and all(isinstance(c, SubnetConfig) for c in configs)
    assert configs == sample_configs(e, 30, np.random.default_rng(0))
    assert configs == e.decode_all(sample_vectors(e, 30, np.random.default_rng(0)))
    nat = sample_configs(e, 5, np.random.default_rng(0), sampler="uniform_genes")
    assert nat == e.decode_all(sample_uniform_genes(e, 5, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="unknown sampler"):
        sample_vectors(e, 5, np.random.default_rng(0), sampler="lhs")  # type: ignore[arg-type]


def test_sample_subnets_is_the_nat2_depth_uniform_sampler() -> None:
    e = enc("nat2", "ee-dense-parallel")
    drawn = sample_configs(e, 20, np.random.default_rng(3))
    at_width = sample_subnets(e.spec, 20, np.random.default_rng(3), width=1.2)
    assert sample_subnets(e.spec, 20, np.random.default_rng(3)) == drawn
    assert at_width == [SubnetConfig(c.resolution, 1.2, c.exit, c.blocks) for c in drawn]
    assert {c.exit for c in sample_subnets(e.spec, 200, np.random.default_rng(4))} == set(e.spec.exits())


def test_explicit_generator_required() -> None:
    e = enc("nat2", "se-base")
    for bad in (None, 0, np.random):
        with pytest.raises(TypeError, match="Generator"):
            sample_depth_uniform(e, 3, bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Generator"):
            sample_uniform_genes(e, 3, bad)  # type: ignore[arg-type]
    assert sample_depth_uniform(e, 0, np.random.default_rng(0)).shape == (0, 22)
    assert sample_uniform_genes(e, 0, np.random.default_rng(0)).shape == (0, 22)


@pytest.mark.parametrize("name,kind", [("nat2", "se-base"), ("nat2", "ee-parallel"), ("nat", "se-dense")])
def test_depth_uniform_sampler_is_uniform_over_depth(name: str, kind: str) -> None:
    e = enc(name, kind)
    X = sample_depth_uniform(e, 3000, np.random.default_rng(2024))
    for stage in range(5):
        assert chisquare(depth_counts(e, X, stage)).pvalue > 1e-3
    # blocks 3 and 4 are skipped with chance 1/3 and 2/3
    skipped = X[:, e.n_header :].reshape(-1, 5, 4) == 0
    assert np.allclose(skipped.mean(axis=(0, 1)), [0, 0, 1 / 3, 2 / 3], atol=0.02)


@pytest.mark.parametrize("name,kind", [("nat2", "se-base"), ("nat2", "ee-parallel"), ("nat", "se-dense")])
def test_uniform_gene_sampler_is_not(name: str, kind: str) -> None:
    e = enc(name, kind)
    X = sample_uniform_genes(e, 3000, np.random.default_rng(2024))
    for stage in range(5):
        counts = depth_counts(e, X, stage)
        assert chisquare(counts).pvalue < 1e-6
        assert counts[2] > 0.75 * len(X), "raw-gene sampling over-represents depth 4"


def test_depth_uniform_block_choices_are_uniform() -> None:
    e = enc("nat2", "ee-dense-parallel")
    X = sample_depth_uniform(e, 3000, np.random.default_rng(5))
    configs = e.decode_all(X)
    blocks = [b for c in configs for b in c.blocks if b is not None]
    for attr, values in (("kernel", e.spec.kernels), ("expand", e.spec.expands), ("branches", range(1, 8))):
        counts = np.array([sum(getattr(b, attr) == v for b in blocks) for v in values])
        assert chisquare(counts).pvalue > 1e-3, attr
    for gene, size in ((0, 3), (1, 2), (2, 5)):
        assert chisquare(np.bincount(X[:, gene], minlength=size)).pvalue > 1e-3


def test_depth_uniform_respects_spec_depths() -> None:
    e = enc("nat2", "se-base", depths=(2, 4))
    depths = stage_depths(e, sample_depth_uniform(e, 500, np.random.default_rng(0)))
    assert set(np.unique(depths)) == {2, 4}


@pytest.mark.parametrize("name,kind", ALL)
def test_extreme_vectors(name: str, kind: str) -> None:
    e = enc(name, kind)
    spec = e.spec
    big, small = largest_config(spec, width=1.2), smallest_config(spec, width=1.2)
    if not e.has_exit_gene:
        small = small.with_exit(5)
    assert e.decode(largest_vector(e, width=1.2)) == big
    assert e.decode(smallest_vector(e, width=1.2)) == small
    assert np.all(largest_vector(e)[e.n_header :] == e.upper[e.n_header :])
    first = e.block_code(small.blocks[0])
    assert first == (28 if spec.parallel else 1)
    assert np.all(smallest_vector(e)[e.n_header :].reshape(5, 4) == [first, first, 0, 0])
    rows = extreme_vectors(e)
    assert rows.shape == (2 * len(spec.widths), e.n_genes)
    assert [e.decode(r).width for r in rows] == [1.0, 1.0, 1.2, 1.2]
    assert e.decode(rows[1]) == largest_config(spec, width=1.0)
