"""Seeded search regression: one NAT2 step on a stored archive proposes the stored networks (same seed, same front).

The data: `tests/data/digits_archive_60.jsonl` holds the header and the first 60 networks of the shipped digits
archive (`benchmarks/data/digits_archive.jsonl`, real validation top-1 of a trained digits super-network); 60
is the digits recipe's `archive_size`. The step is `SearchEngine.ask()` without the super-network: fit the
recipe's predictor (LightGBM, deterministic and single-threaded) on the archive, run NSGA-II on it, choose K
candidates along the front, all seeded as iteration 1 of a search with seed 0. Nothing depends on the clock
or the thread count, so any change to the front or the candidates is a change of the search itself.

`tests/data/search_regression.json` holds the expected keys. When a change of the search (or of LightGBM or
pymoo) is meant to move them, regenerate the file and say so in the commit:

    python -m tests.test_search_regression
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from factory.recipe import SearchSection
from factory.search.archive import Archive, Member
from factory.search.engine import (
    STREAM_PREDICTOR,
    STREAM_SEARCH,
    build_predictor,
    select_candidates,
    stream_seed,
)
from factory.search.evaluation import Complexity
from factory.search.problem import SubnetProblem, surrogate_search
from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.encoding import Encoding, get_encoding

DATA = Path(__file__).resolve().parent / "data"
ARCHIVE = DATA / "digits_archive_60.jsonl"
EXPECTED = DATA / "search_regression.json"

OBJECTIVES = ("top1", "params")
BUDGETS = {"params": 300_000}  # the digits demo's --budget-params 0.3M: a constraint that binds
# The digits recipe's search section (factory/recipes/digits.yaml), as the values stood when the file was made.
SEARCH = SearchSection(predictor_folds=5, population=40, generations=10, candidates_per_iteration=8, seed=0)


def read_archive(path: Path) -> tuple[Encoding, list[Member]]:
    """The archive file's encoding and members (`factory-archive/1`: a header line, then one network a line)."""
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    spec = SpaceSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in header["spec"].items()})
    encoding = get_encoding(header["encoding"], spec)
    members = []
    for line in lines[1:]:
        row = json.loads(line)
        x = np.array(row["encoding"], dtype=np.int64)
        config = encoding.decode(x)
        assert config.key() == row["key"], "the archive's genes no longer decode to its networks"
        members.append(Member(config, tuple(int(v) for v in x), row["top1"], row["params"], row["macs"]))
    return encoding, members


def search_step(path: Path = ARCHIVE, iteration: int = 1) -> dict[str, Any]:
    """The archive's front and what one seeded search step proposes from it, as config keys."""
    encoding, members = read_archive(path)
    archive = Archive(OBJECTIVES, BUDGETS)
    archive.add(members)
    cfg = SEARCH
    predictor = build_predictor(
        cfg.predictor, stream_seed(cfg.seed, iteration, STREAM_PREDICTOR), encoding, "integer", cfg.predictor_folds
    )
    predictor.fit(archive.X(), np.array([m.error for m in archive]))
    complexity = Complexity(encoding.spec)

    def params(configs: list[SubnetConfig]) -> dict[str, np.ndarray]:
        return {"params": np.array([complexity(c)[0] for c in configs], dtype=np.float64)}

    problem = SubnetProblem(encoding, predictor, OBJECTIVES, params, BUDGETS)
    final = surrogate_search(
        problem,
        cfg.population,
        cfg.generations,
        cfg.crossover_prob,
        cfg.mutation_eta,
        stream_seed(cfg.seed, iteration, STREAM_SEARCH),
    )
    chosen = select_candidates(archive, problem, final, cfg.candidates_per_iteration)
    return {
        "front": [m.key for m in archive.front()],
        "population": [p.config.key() for p in final],
        "candidates": [p.config.key() for p in chosen],
    }


def test_a_seeded_search_step_proposes_the_stored_networks() -> None:
    expected = json.loads(EXPECTED.read_text())
    got = search_step()
    assert got["front"] == expected["front"], "the archive's non-dominated front changed"
    assert got["population"] == expected["population"], "NSGA-II's final population on the predictor changed"
    assert got["candidates"] == expected["candidates"], "the candidates chosen along the front changed"


def test_the_step_repeats_itself() -> None:
    """Same seed, same answer within one process too (no state carried between runs)."""
    assert search_step() == search_step()


if __name__ == "__main__":
    EXPECTED.write_text(json.dumps(search_step(), indent=1) + "\n")
    print(f"wrote {EXPECTED}")
