"""The surrogate search as a pymoo problem: integer genes -> SubnetConfig -> predicted error and complexity.

`SubnetProblem._evaluate` decodes each (repaired) gene vector, asks the accuracy predictor for the
top-1 error and the complexity function for params / MACs / latency, and fills F (minimised) and G
(budgets as inequality constraints `value / budget - 1 <= 0`). The operators are NAT's integer ones:
integer Latin-hypercube sampling, two-point crossover, polynomial mutation rounded to integers, the
encoding's repair ("fill" for NAT2, "push" for NAT), and duplicates removed by config key (genes behind
an early exit never run, so two vectors can be one network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.algorithms.soo.nonconvex.ga import GA
from pymoo.core.algorithm import Algorithm
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.core.sampling import Sampling
from pymoo.operators.crossover.pntx import TwoPointCrossover
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.lhs import sampling_lhs
from pymoo.optimize import minimize
from pymoo.util.ref_dirs import get_reference_directions

from factory.search.predictors.base import Predictor
from factory.search.settings import ACCURACY
from factory.space.config import SubnetConfig
from factory.space.encoding import Encoding

# (configs) -> {objective or budget name: values}; names: "params", "macs", "latency".
ComplexityFn = Callable[[Sequence[SubnetConfig]], dict[str, np.ndarray]]


def integer_genes(encoding: Encoding, X: np.ndarray) -> np.ndarray:
    """Round, clip to the bounds and repair: the vectors every operator hands on are valid genes."""
    X = np.clip(np.round(np.asarray(X, dtype=np.float64)), encoding.lower, encoding.upper).astype(np.int64)
    return encoding.repair(X)


class EncodingRepair(Repair):
    """The encoding's repair as a pymoo Repair (runs after sampling and after every mating)."""

    def __init__(self, encoding: Encoding) -> None:
        super().__init__()
        self.encoding = encoding

    def _do(self, problem, X, **kwargs):
        return integer_genes(self.encoding, X)


class IntegerLHS(Sampling):
    """Latin-hypercube sampling over the integers: LHS in [lower - 0.5, upper + 0.5), then rounded, so every
    integer value of a gene gets an equal share of the strata."""

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        xl, xu = problem.bounds()
        X = sampling_lhs(n_samples, problem.n_var, xl=xl - 0.5, xu=xu + 0.4999, random_state=random_state)
        return np.clip(np.floor(X + 0.5), xl, xu).astype(np.int64)


class KeyDuplicates(DuplicateElimination):
    """Duplicates are vectors that decode to the same network (same config key)."""

    def __init__(self, encoding: Encoding) -> None:
        super().__init__()
        self.encoding = encoding
        self._keys: dict[bytes, str] = {}  # genes -> key; populations repeat across generations

    def _key(self, x: np.ndarray) -> str:
        genes = integer_genes(self.encoding, x)
        raw = genes.tobytes()
        if raw not in self._keys:
            self._keys[raw] = self.encoding.decode(genes).key()
        return self._keys[raw]

    def _do(self, pop, other, is_duplicate):
        seen = set() if other is None else {self._key(ind.X) for ind in other}
        for i, ind in enumerate(pop):
            key = self._key(ind.X)
            if key in seen:
                is_duplicate[i] = True
            else:
                seen.add(key)
        return is_duplicate


@dataclass
class Prediction:
    """What the problem computed for one network: its genes, objectives F and constraint values G."""

    x: np.ndarray
    config: SubnetConfig
    F: np.ndarray
    G: np.ndarray

    @property
    def feasible(self) -> bool:
        return bool(np.all(self.G <= 0))


class SubnetProblem(Problem):
    """Minimise (predicted top-1 error, complexity...) over the encoding's integer genes, within budgets.

    Args:
        encoding: the gene encoding; its bounds are the problem's.
        predictor: a fitted predictor of top-1 ERROR from (repaired) gene rows.
        objectives: "top1" first, then complexity objectives.
        complexity: computes the complexity columns (and budgeted counts) of configs.
        budgets: {"params" | "macs": budget}, inequality constraints.

    Every network evaluated is kept in `seen` (by config key), so the caller can fill a short candidate
    list with the best-predicted networks the search met.
    """

    def __init__(
        self,
        encoding: Encoding,
        predictor: Predictor,
        objectives: Sequence[str],
        complexity: ComplexityFn,
        budgets: dict[str, int] | None = None,
    ) -> None:
        if not objectives or objectives[0] != ACCURACY:
            raise ValueError(f"objectives must start with {ACCURACY!r}, got {objectives}")
        if not predictor.is_fitted:
            raise ValueError("the predictor must be fitted before the surrogate search")
        self.encoding = encoding
        self.predictor = predictor
        self.objectives = tuple(objectives)
        self.complexity = complexity
        self.budgets = dict(budgets or {})
        self.seen: dict[str, Prediction] = {}
        super().__init__(
            n_var=encoding.n_genes,
            n_obj=len(self.objectives),
            n_ieq_constr=len(self.budgets),
            xl=encoding.lower.astype(np.float64),
            xu=encoding.upper.astype(np.float64),
            vtype=int,
        )

    def _evaluate(self, X, out, *args, **kwargs):
        genes = integer_genes(self.encoding, X)
        configs = self.encoding.decode_all(genes)
        error = self.predictor.predict(genes)
        counts = self.complexity(configs) if len(self.objectives) > 1 or self.budgets else {}
        F = np.column_stack([error, *(counts[o] for o in self.objectives[1:])])
        G = np.column_stack([counts[b] / budget - 1.0 for b, budget in self.budgets.items()]) if self.budgets else None
        out["F"] = F
        if G is not None:
            out["G"] = G
        for i, config in enumerate(configs):
            key = config.key()
            if key not in self.seen:
                g = G[i] if G is not None else np.zeros(0)
                self.seen[key] = Prediction(genes[i].copy(), config, F[i].copy(), g.copy())


def reference_directions(n_obj: int, population: int) -> np.ndarray:
    """Das-Dennis directions for NSGA-III: the most partitions whose direction count fits the population."""
    partitions = 1
    while len(get_reference_directions("das-dennis", n_obj, n_partitions=partitions + 1)) <= population:
        partitions += 1
    return get_reference_directions("das-dennis", n_obj, n_partitions=partitions)


def build_algorithm(
    encoding: Encoding, n_obj: int, population: int, crossover_prob: float, mutation_eta: float
) -> Algorithm:
    """GA for one objective, NSGA-II for two, NSGA-III for more, with NAT's integer operators."""
    operators = {
        "sampling": IntegerLHS(),
        "crossover": TwoPointCrossover(prob=crossover_prob),
        "mutation": PM(eta=mutation_eta, vtype=float, repair=RoundingRepair()),
        "repair": EncodingRepair(encoding),
        "eliminate_duplicates": KeyDuplicates(encoding),
    }
    if n_obj == 1:
        return GA(pop_size=population, **operators)
    if n_obj == 2:
        return NSGA2(pop_size=population, **operators)
    return NSGA3(ref_dirs=reference_directions(n_obj, population), pop_size=population, **operators)


def surrogate_search(
    problem: SubnetProblem,
    population: int,
    generations: int,
    crossover_prob: float,
    mutation_eta: float,
    seed: int,
) -> list[Prediction]:
    """Run the evolutionary search on the predictor; returns the final population (unique networks)."""
    algorithm = build_algorithm(problem.encoding, problem.n_obj, population, crossover_prob, mutation_eta)
    result = minimize(problem, algorithm, ("n_gen", generations), seed=int(seed), verbose=False)
    final: list[Prediction] = []
    keys: set[str] = set()
    for x in result.pop.get("X"):
        config = problem.encoding.decode(integer_genes(problem.encoding, x))
        if config.key() not in keys:
            keys.add(config.key())
            final.append(problem.seen[config.key()])
    return final
