"""The surrogate search: pymoo problem, integer operators, budgets as constraints, algorithm per objective count."""

from __future__ import annotations

import numpy as np
import pytest
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.algorithms.soo.nonconvex.ga import GA

from factory.search.predictors import make_predictor
from factory.search.problem import IntegerLHS, SubnetProblem, build_algorithm, integer_genes, surrogate_search
from factory.search.settings import parse_objectives
from factory.space.config import SpaceSpec
from factory.space.counting import count_macs, count_params
from factory.space.encoding import get_encoding
from factory.space.sampling import largest_vector, sample_depth_uniform, smallest_vector


@pytest.fixture(scope="module")
def encoding():
    return get_encoding("nat2", SpaceSpec(kind="ee-dense", resolutions=(16, 24), stage_channels=(8, 8, 16, 16, 16)))


@pytest.fixture(scope="module")
def predictor(encoding):
    """A fitted predictor of a made-up error: deeper, wider, later exits are better."""
    X = sample_depth_uniform(encoding, 80, np.random.default_rng(0))
    y = 0.5 - 0.05 * X[:, 2] - 0.003 * (X[:, 3:] > 0).sum(axis=1) + 0.01 * np.random.default_rng(1).normal(size=80)
    return make_predictor("ridge", seed=0, encoding=encoding).fit(X, y)


def counts(encoding):
    def complexity(configs):
        spec = encoding.spec
        return {
            "params": np.array([count_params(spec, c) for c in configs], dtype=float),
            "macs": np.array([count_macs(spec, c) for c in configs], dtype=float),
        }

    return complexity


def test_integer_genes_round_clip_and_repair(encoding) -> None:
    X = np.array([encoding.upper + 3.3, encoding.lower - 2.0], dtype=float)
    X[0, encoding.n_header + 2] = 0  # a skipped block before an active one: "fill" repairs it
    out = integer_genes(encoding, X)
    assert out.dtype == np.int64 and encoding.is_valid(out)
    assert out[0, encoding.n_header + 2] == out[0, encoding.n_header + 1]


def test_integer_lhs_covers_every_value(encoding, predictor) -> None:
    problem = SubnetProblem(encoding, predictor, ("top1", "params"), counts(encoding))
    X = IntegerLHS().do(problem, 60, random_state=np.random.default_rng(0)).get("X")
    assert encoding.is_valid(X.astype(np.int64))
    assert set(X[:, 0]) == {0, 1} and set(X[:, 2]) == set(range(5))


def test_surrogate_search_respects_budgets(encoding, predictor) -> None:
    small = encoding.decode(smallest_vector(encoding))
    large = encoding.decode(largest_vector(encoding, 1.2))
    budget = (count_params(encoding.spec, small) + count_params(encoding.spec, large)) // 6
    problem = SubnetProblem(encoding, predictor, ("top1", "params"), counts(encoding), {"params": budget})
    final = surrogate_search(problem, population=20, generations=5, crossover_prob=0.9, mutation_eta=1.0, seed=0)
    assert len(final) >= 10
    assert all(p.feasible for p in final)
    assert all(count_params(encoding.spec, p.config) <= budget for p in final)
    assert len({p.config.key() for p in final}) == len(final)
    assert any(not p.feasible for p in problem.seen.values())  # the budget did bind


def test_surrogate_search_is_seeded(encoding, predictor) -> None:
    def run(seed):
        problem = SubnetProblem(encoding, predictor, ("top1", "macs"), counts(encoding))
        return [p.config.key() for p in surrogate_search(problem, 12, 3, 0.9, 1.0, seed)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_algorithm_follows_the_objective_count(encoding, predictor) -> None:
    assert isinstance(build_algorithm(encoding, 1, 20, 0.9, 1.0), GA)
    assert isinstance(build_algorithm(encoding, 2, 20, 0.9, 1.0), NSGA2)
    nsga3 = build_algorithm(encoding, 3, 20, 0.9, 1.0)
    assert isinstance(nsga3, NSGA3) and len(nsga3.ref_dirs) <= 20
    for objectives in (("top1",), ("top1", "params", "macs")):
        problem = SubnetProblem(encoding, predictor, objectives, counts(encoding))
        final = surrogate_search(problem, 15, 2, 0.9, 1.0, seed=0)
        assert final and all(p.F.shape == (len(objectives),) for p in final)


def test_parse_objectives() -> None:
    assert parse_objectives("macs", ("top1", "params")) == ("top1", "macs")
    assert parse_objectives(None, ("top1", "params")) == ("top1", "params")
    assert parse_objectives("params,macs", ()) == ("top1", "params", "macs")
    assert parse_objectives(["top1"], ()) == ("top1",)
    from factory.errors import FactoryError

    with pytest.raises(FactoryError, match="objectives"):
        parse_objectives("flops", ())
