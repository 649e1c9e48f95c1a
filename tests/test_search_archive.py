"""Archive ordering (rank + crowding, constrained), hypervolume, subset selection and the gene distribution."""

from __future__ import annotations

import numpy as np
import pytest

from factory.front.subset import gap_spread, select_subset
from factory.search.archive import Archive, Member, non_dominated, rank_and_crowding
from factory.search.distribution import GeneDistribution
from factory.search.hypervolume import hypervolume
from factory.space.config import SpaceSpec
from factory.space.encoding import get_encoding
from factory.space.sampling import sample_depth_uniform


@pytest.fixture(scope="module")
def encoding():
    return get_encoding("nat2", SpaceSpec(kind="ee-dense", resolutions=(16, 24)))


def make_members(encoding, F: np.ndarray, seed: int = 0) -> list[Member]:
    """Members with distinct configs and the given (error, params) objectives."""
    X = sample_depth_uniform(encoding, 4 * len(F), np.random.default_rng(seed))
    members, keys = [], set()
    for x in X:
        config = encoding.decode(x)
        if config.key() in keys:
            continue
        keys.add(config.key())
        err, params = F[len(members)]
        members.append(Member(config, tuple(int(v) for v in x), 1.0 - float(err), int(params), int(params) * 10))
        if len(members) == len(F):
            break
    assert len(members) == len(F)
    return members


def test_rank_and_crowding_orders_fronts_then_crowding() -> None:
    F = np.array([[0.1, 5.0], [0.5, 1.0], [0.3, 3.0], [0.6, 6.0], [0.2, 4.0], [0.9, 9.0]])
    order, rank, crowd = rank_and_crowding(F)
    assert rank.tolist() == [0, 0, 0, 1, 0, 2]
    assert set(order[:4].tolist()) == {0, 1, 2, 4}
    assert order[:2].tolist() == [0, 1]  # the front's ends: infinite crowding, ties by index
    assert order[-2:].tolist() == [3, 5]
    assert np.isinf(crowd[[0, 1]]).all()


def test_infeasible_members_rank_after_feasible_ones_by_violation() -> None:
    F = np.array([[0.1, 1.0], [0.5, 1.0], [0.05, 9.0], [0.01, 20.0]])
    cv = np.array([0.0, 0.0, 0.5, 2.0])
    order, rank, _ = rank_and_crowding(F, cv)
    assert order.tolist() == [0, 1, 2, 3]
    assert rank.tolist() == [0, 1, -1, -1]
    assert non_dominated(F, cv).tolist() == [0]


def test_front_counts_identical_points_once_when_asked() -> None:
    F = np.array([[0.1, 5.0], [0.2, 1.0], [0.15, 2.0], [0.3, 0.5], [0.05, 10.0]])
    assert non_dominated(F).tolist() == [0, 1, 2, 3, 4]
    twins = np.array([[0.2, 1.0], [0.1, 1.0], [0.1, 1.0], [0.1, 2.0]])
    assert non_dominated(twins).tolist() == [1, 2]
    assert non_dominated(twins, distinct=True).tolist() == [1]


def test_truncation_keeps_the_non_dominated_front(encoding) -> None:
    rng = np.random.default_rng(1)
    params = np.arange(1, 31) * 1000.0
    front_err = 0.5 - params / 100_000  # error falls as params grow: all non-dominated
    dominated = np.column_stack([rng.uniform(0.6, 0.9, 30), rng.uniform(1000, 30000, 30)])
    F = np.vstack([np.column_stack([front_err, params])[:12], dominated])
    archive = Archive(("top1", "params"), capacity=20)
    archive.add(make_members(encoding, F))
    front_keys = {m.key for m in archive.front()}
    assert len(front_keys) == 12
    dropped = archive.truncate()
    assert len(archive) == 20 and len(dropped) == len(F) - 20
    assert front_keys <= archive.keys()
    # A front larger than the capacity keeps its extremes (infinite crowding).
    archive.truncate(5)
    values = archive.F()
    assert values[:, 1].min() == 1000.0 and values[:, 1].max() == 12000.0


def test_archive_rejects_duplicate_configs(encoding) -> None:
    members = make_members(encoding, np.array([[0.2, 10.0], [0.3, 5.0]]))
    archive = Archive(("top1", "params"))
    assert len(archive.add(members)) == 2
    assert archive.add(members) == []
    assert members[0].config in archive and len(archive) == 2


def test_member_record_round_trip(encoding) -> None:
    member = make_members(encoding, np.array([[0.25, 1234.0]]))[0]
    again = Member.from_record(member.to_record())
    assert again == member
    assert member.to_record()["error"] == pytest.approx(0.25)


def test_hypervolume_hand_cases() -> None:
    assert hypervolume(np.array([[0.5, 0.5]]), (1.0, 1.0)) == pytest.approx(0.25)
    assert hypervolume(np.array([[0.2, 500_000.0]]), (1.0, 1_000_000.0)) == pytest.approx(0.4)
    two = hypervolume(np.array([[0.2, 800_000.0], [0.6, 200_000.0]]), (1.0, 1_000_000.0))
    assert two == pytest.approx(0.8 * 0.2 + 0.4 * 0.6)
    assert hypervolume(np.array([[0.2, 2_000_000.0]]), (1.0, 1_000_000.0)) == 0.0  # beyond the reference
    assert hypervolume(np.array([[0.3], [0.1]]), (1.0,)) == pytest.approx(0.9)


def test_subset_selection_hand_case() -> None:
    front = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidates = np.array([[0.9, 0.1], [0.5, 0.5], [0.25, 0.75], [0.75, 0.25]])
    # 0.5 halves the one gap (spread 0); then 0.25 and 0.75 tie and the earlier row wins.
    assert select_subset(front, candidates, 2) == [1, 2]
    assert select_subset(front, candidates, 10) == [1, 2, 3, 0]
    assert select_subset(np.zeros((0, 2)), candidates, 1) == [0]
    assert select_subset(front, np.zeros((0, 2)), 3) == []
    assert gap_spread(np.array([[0.0], [0.5], [1.0]])) == 0.0


def test_subset_selection_by_distance_hand_case() -> None:
    held = np.array([[0.0, 1.0], [1.0, 0.0]])
    candidates = np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1], [0.45, 0.55]])
    # Farthest from both ends first (0.5, 0.5); then 0.1 and 0.9 tie and the earlier row wins.
    assert select_subset(held, candidates, 3, criterion="distance") == [1, 0, 2]
    assert select_subset(np.zeros((0, 2)), candidates, 2, criterion="distance") == [0, 2]
    with pytest.raises(ValueError, match="criterion"):
        select_subset(held, candidates, 1, criterion="random")  # type: ignore[arg-type]


def test_gene_distribution_samples_only_seen_values(encoding) -> None:
    X = sample_depth_uniform(encoding, 30, np.random.default_rng(0))
    dist = GeneDistribution.fit(encoding, X)
    sample = dist.sample(200, np.random.default_rng(1))
    assert sample.shape == (200, encoding.n_genes)
    assert encoding.is_valid(sample)
    for g in range(encoding.n_header):
        assert set(sample[:, g]) <= set(X[:, g])
    assert len(dist.sample_configs(3, np.random.default_rng(2))) == 3
    assert np.array_equal(dist.sample(5, np.random.default_rng(3)), dist.sample(5, np.random.default_rng(3)))
