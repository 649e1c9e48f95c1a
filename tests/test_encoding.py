"""Encodings: layout, bounds, joint block code, validation messages, repair modes, round trips, one-hot."""

from __future__ import annotations

import random
import re
import zlib

import numpy as np
import pytest

from factory.errors import FactoryError
from factory.space.config import BlockConfig, SpaceSpec, SubnetConfig, largest_config, smallest_config
from factory.space.encoding import ENCODINGS, Encoding, get_encoding
from factory.space.kinds import KINDS
from factory.space.repair import is_repaired, repair

ALL = [(name, kind) for name in ("nat", "nat2") for kind in KINDS]


def small_spec(kind: str) -> SpaceSpec:
    return SpaceSpec(kind=kind, resolutions=(24, 28, 32), widths=(1.0, 1.2))


def enc(name: str, kind: str) -> Encoding:
    return get_encoding(name, small_spec(kind))


def random_repaired(e: Encoding, n: int, seed: int) -> np.ndarray:
    """In-bound vectors with many skipped blocks, repaired with the encoding's own mode."""
    rng = np.random.default_rng(seed)
    X = rng.integers(e.lower, e.upper + 1, size=(n, e.n_genes))
    skip = (rng.random(X.shape) < 0.4) & (e.lower == 0)
    return e.repair(np.where(skip, 0, X))


def random_config(spec: SpaceSpec, rnd: random.Random) -> SubnetConfig:
    """A config built without the encoding code, to check encode/decode independently."""
    blocks: list[BlockConfig | None] = []
    for _ in range(5):
        depth = rnd.choice(spec.depths)
        for b in range(4):
            block = BlockConfig(rnd.choice(spec.kernels), rnd.choice(spec.expands), rnd.choice(spec.branch_masks()))
            blocks.append(block if b < depth else None)
    return SubnetConfig(rnd.choice(spec.resolutions), rnd.choice(spec.widths), rnd.choice(spec.exits()), tuple(blocks))


# --- layout and bounds -------------------------------------------------------------------------------


@pytest.mark.parametrize("name,kind", ALL)
def test_gene_count_and_bounds(name: str, kind: str) -> None:
    e = enc(name, kind)
    early = KINDS[kind].early_exit
    expected_header = 3 if (name == "nat2" and early) else 2
    assert e.n_header == expected_header
    assert e.n_genes == expected_header + 20
    assert e.repair_mode == ("push" if name == "nat" else "fill")
    assert e.lower.shape == e.upper.shape == (e.n_genes,)
    assert e.upper[0] == 2 and e.upper[1] == 1
    if expected_header == 3:
        assert e.upper[2] == 4
    assert np.all(e.lower[:expected_header] == 0)
    blocks_lo = e.lower[expected_header:].reshape(5, 4)
    blocks_hi = e.upper[expected_header:].reshape(5, 4)
    assert np.all(blocks_lo[:, :2] == 1) and np.all(blocks_lo[:, 2:] == 0)
    assert np.all(blocks_hi == (63 if KINDS[kind].parallel else 9))


def test_gene_labels() -> None:
    e = enc("nat2", "ee-base")
    assert e.gene_labels[:4] == ("resolution", "width", "exit", "stage 1 block 1")
    assert e.gene_labels[7] == "stage 2 block 1"
    assert e.gene_labels[-1] == "stage 5 block 4"


def test_registry() -> None:
    assert set(ENCODINGS) >= {"nat", "nat2"}
    with pytest.raises(FactoryError, match=r"unknown encoding 'nas'.*nat, nat2"):
        get_encoding("nas", small_spec("se-base"))
    assert enc("nat2", "ee-dense") == enc("nat2", "ee-dense")
    assert hash(enc("nat2", "ee-dense")) == hash(enc("nat2", "ee-dense"))
    assert enc("nat", "ee-dense") != enc("nat2", "ee-dense")


def test_bad_depths_rejected() -> None:
    with pytest.raises(FactoryError, match="depths"):
        get_encoding("nat2", SpaceSpec(kind="se-base", depths=(1, 2, 3)))


def test_narrow_depths_bounds() -> None:
    e = get_encoding("nat2", SpaceSpec(kind="se-base", depths=(3,)))
    assert np.all(e.lower[2:].reshape(5, 4) == [1, 1, 1, 0])
    assert np.all(e.upper[2:].reshape(5, 4) == [9, 9, 9, 0])


# --- joint block code --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,block,code",
    [
        ("se-parallel", BlockConfig(7, 6, 7), 63),
        ("se-parallel", BlockConfig(3, 3, 4), 28),
        ("se-parallel", BlockConfig(3, 3, 1), 1),
        ("se-parallel", BlockConfig(5, 4, 2), 1 + 1 + 3 * (1 + 3 * 1)),
        ("ee-dense-parallel", BlockConfig(7, 3, 1), 3),
        ("se-base", BlockConfig(3, 3, 4), 1),
        ("se-base", BlockConfig(5, 3, 4), 2),
        ("se-base", BlockConfig(3, 4, 4), 4),
        ("ee-dense", BlockConfig(7, 6, 4), 9),
    ],
)
def test_block_code_hand_cases(kind: str, block: BlockConfig, code: int) -> None:
    for name in ("nat", "nat2"):
        e = enc(name, kind)
        assert e.block_code(block) == code
        assert e.block_of(code) == block
    assert enc("nat2", kind).block_code(None) == 0 and enc("nat2", kind).block_of(0) is None


@pytest.mark.parametrize("kind", KINDS)
def test_block_code_is_a_bijection(kind: str) -> None:
    e = enc("nat2", kind)
    blocks = [e.block_of(c) for c in range(1, e.n_codes + 1)]
    assert len(set(blocks)) == e.n_codes
    assert [e.block_code(b) for b in blocks] == list(range(1, e.n_codes + 1))


def test_block_code_rejects_foreign_blocks() -> None:
    with pytest.raises(ValueError, match="branch masks"):
        enc("nat2", "se-base").block_code(BlockConfig(3, 3, 7))
    with pytest.raises(ValueError, match="kernels"):
        enc("nat2", "se-parallel").block_code(BlockConfig(9, 3, 7))


# --- round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,kind", ALL)
def test_vector_round_trip(name: str, kind: str) -> None:
    e = enc(name, kind)
    X = random_repaired(e, 300, seed=zlib.crc32(f"{name}/{kind}".encode()))
    assert np.all(is_repaired(X))
    assert (X[:, e.n_header :] == 0).any(), "the sample should exercise skipped blocks"
    for x in X:
        assert np.array_equal(e.encode(e.decode(x)), x)


@pytest.mark.parametrize("name,kind", ALL)
def test_config_round_trip(name: str, kind: str) -> None:
    e = enc(name, kind)
    rnd = random.Random(f"{name}/{kind}")
    for _ in range(300):
        c = random_config(e.spec, rnd)
        if not e.has_exit_gene:
            c = c.with_exit(5)
        x = e.encode(c)
        assert x.dtype == np.int64 and x.shape == (e.n_genes,)
        assert e.decode(x) == c
    assert e.decode_all(e.encode_all([c, c])) == [c, c]


def test_stages_after_exit_are_encoded() -> None:
    e = enc("nat2", "ee-dense")
    c = largest_config(e.spec).with_exit(1)
    x = e.encode(c)
    assert x[2] == 0 and np.all(x[3:] == 9)
    assert e.decode(x) == c


def test_exit_handling() -> None:
    nat, nat2 = enc("nat", "ee-base"), enc("nat2", "ee-base")
    x = nat.encode(largest_config(nat.spec))
    assert nat.decode(x).exit == 5
    with pytest.raises(ValueError, match="no exit gene"):
        nat.encode(smallest_config(nat.spec))
    y = nat2.encode(largest_config(nat2.spec))
    y[2] = 2
    assert nat2.decode(y).exit == 3
    se = enc("nat2", "se-base")
    with pytest.raises(ValueError, match="exit 3"):
        se.encode(largest_config(se.spec).with_exit(3))


def test_encode_rejects_values_outside_the_space() -> None:
    e = enc("nat2", "se-base")
    c = largest_config(e.spec)
    with pytest.raises(ValueError, match="resolution 64"):
        e.encode(SubnetConfig(64, c.width, c.exit, c.blocks))
    with pytest.raises(ValueError, match=r"width 1\.5"):
        e.encode(SubnetConfig(c.resolution, 1.5, c.exit, c.blocks))


def test_decode_repairs_first() -> None:
    e = enc("nat2", "se-base")
    x = e.encode(largest_config(e.spec))
    x[2:6] = [1, 2, 0, 3]
    assert e.decode(x).stage(0) == tuple(e.block_of(g) for g in (1, 2, 2, 3))
    n = enc("nat", "se-base")
    assert n.decode(x).stage(0) == tuple(n.block_of(g) for g in (1, 2, 3))


# --- validation --------------------------------------------------------------------------------------


def test_validate_names_the_gene() -> None:
    e = enc("nat2", "ee-base")
    good = e.encode(largest_config(e.spec))
    e.validate(good)
    e.validate(good.astype(float))  # integral floats (as pymoo produces) are fine
    cases = [
        (7, 70, "gene 7 (stage 2 block 1) = 70 is outside 1..9"),
        (3, 0, "gene 3 (stage 1 block 1) = 0 is outside 1..9"),
        (22, -1, "gene 22 (stage 5 block 4) = -1 is outside 0..9"),
        (0, 3, "gene 0 (resolution) = 3 is outside 0..2"),
        (1, 2, "gene 1 (width) = 2 is outside 0..1"),
        (2, 5, "gene 2 (exit) = 5 is outside 0..4"),
    ]
    for gene, value, message in cases:
        bad = good.copy()
        bad[gene] = value
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            e.validate(bad)
        with pytest.raises(ValueError, match="gene"):
            e.decode(bad)
    frac = good.astype(float)
    frac[4] = 2.5
    with pytest.raises(ValueError, match=r"gene 4 \(stage 1 block 2\) = 2.5 is not an integer"):
        e.validate(frac)
    frac[4] = np.nan
    with pytest.raises(ValueError, match=r"gene 4 \(stage 1 block 2\) = nan is not an integer"):
        e.validate(frac)
    with pytest.raises(ValueError, match="expected 23 genes, got 22"):
        e.validate(good[:-1])
    with pytest.raises(ValueError, match="expected 22 genes, got 23"):
        enc("nat", "ee-base").validate(good)
    with pytest.raises(ValueError, match="integers"):
        e.validate(np.array(["a"] * 23))
    pop = np.stack([good, good])
    pop[1, 9] = 10
    with pytest.raises(ValueError, match=r"^row 1: gene 9 \(stage 2 block 3\) = 10 is outside 0..9$"):
        e.validate(pop)
    assert not e.is_valid(pop) and e.is_valid(good)


def test_parallel_bound_message() -> None:
    e = enc("nat2", "se-parallel")
    x = e.encode(largest_config(e.spec))
    x[2] = 64
    with pytest.raises(ValueError, match=r"gene 2 \(stage 1 block 1\) = 64 is outside 1..63"):
        e.validate(x)


# --- repair ------------------------------------------------------------------------------------------


def _vec(*stages: list[int], header: tuple[int, ...] = (1, 0)) -> np.ndarray:
    return np.array(list(header) + [g for s in stages for g in s])


FULL = [5, 5, 5, 5]


@pytest.mark.parametrize(
    "stage,push,fill",
    [
        ([1, 2, 0, 3], [1, 2, 3, 0], [1, 2, 2, 3]),
        ([1, 2, 3, 0], [1, 2, 3, 0], [1, 2, 3, 0]),
        ([1, 2, 0, 0], [1, 2, 0, 0], [1, 2, 0, 0]),
        ([4, 5, 6, 7], [4, 5, 6, 7], [4, 5, 6, 7]),
        # outside the bounds, for completeness
        ([1, 0, 0, 3], [1, 3, 0, 0], [1, 1, 1, 3]),
        ([0, 2, 0, 0], [2, 0, 0, 0], [2, 2, 0, 0]),
        ([0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]),
    ],
)
def test_repair_hand_cases(stage: list[int], push: list[int], fill: list[int]) -> None:
    for position in range(5):
        x = _vec(*[stage if s == position else FULL for s in range(5)])
        before = x.copy()
        assert list(repair(x, "push")[2 + 4 * position : 6 + 4 * position]) == push
        assert list(repair(x, "fill")[2 + 4 * position : 6 + 4 * position]) == fill
        assert np.array_equal(x, before), "repair must not modify its input"
    # header genes are never touched, with or without an exit gene
    x = _vec([1, 2, 0, 3], *[FULL] * 4, header=(2, 1, 0))
    assert list(repair(x, "fill")[:3]) == [2, 1, 0]


def test_repair_population_matches_rows() -> None:
    e = enc("nat2", "ee-parallel")
    rng = np.random.default_rng(1)
    X = rng.integers(e.lower, e.upper + 1, size=(200, e.n_genes))
    X = np.where(rng.random(X.shape) < 0.5, 0, X) * (e.lower == 0) + X * (e.lower != 0)
    for mode in ("push", "fill"):
        R = repair(X, mode)
        assert np.array_equal(R, np.stack([repair(x, mode) for x in X]))
        assert np.all(is_repaired(R)) and not np.all(is_repaired(X))
        assert np.array_equal(repair(R, mode), R), "repair is idempotent"
        e.validate(R)
    depth_fill = (repair(X, "fill")[:, 3:].reshape(-1, 5, 4) != 0).sum(-1)
    last_active = 4 - np.argmax((X[:, 3:].reshape(-1, 5, 4) != 0)[..., ::-1], axis=-1)
    assert np.array_equal(depth_fill, last_active), "fill keeps the depth at the last active block"
    assert np.array_equal(repair(X.astype(float), "fill"), repair(X, "fill").astype(float))


def test_repair_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown repair mode"):
        repair(np.zeros(22, dtype=int), "shift")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 20 genes"):
        repair(np.zeros(5, dtype=int))


# --- one-hot -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,kind", ALL)
def test_one_hot(name: str, kind: str) -> None:
    e = enc(name, kind)
    X = random_repaired(e, 50, seed=3)
    H = e.one_hot(X)
    assert H.shape == (50, e.one_hot_size)
    assert e.one_hot_size == int(np.sum(e.upper - e.lower + 1))
    assert np.all(H.sum(axis=1) == e.n_genes)
    assert np.array_equal(e.one_hot(X[0]), H[0])
    # distinct vectors get distinct features
    assert len({h.tobytes() for h in H}) == len({x.tobytes() for x in X})


def test_one_hot_size_hand() -> None:
    assert enc("nat2", "se-base").one_hot_size == 3 + 2 + 5 * (9 + 9 + 10 + 10)
    assert enc("nat2", "ee-parallel").one_hot_size == 3 + 2 + 5 + 5 * (63 + 63 + 64 + 64)
