"""The NAT2 loop (and the NAT baseline) over a trained super-network, with resume.

    initialise: sample, evaluate, keep `archive_size - 2` by rank + crowding, add the smallest and the
                largest network (NAT: uniform-gene samples, everything kept)
    per iteration:
      1. fit the accuracy predictor on the archive (genes -> top-1 error)
      2. evolutionary search on the predictor (`factory.search.problem`)
      3. choose K new candidates spread along the front (`factory.front.subset`)
      4. evaluate them for real, add them, truncate the archive (NAT: no truncation)
      5. fit a per-gene distribution over the top archive members, adapt the super-networks on samples
         from it, re-evaluate the archive under the new weights
      6. record hypervolume, predictor rho / tau on the new candidates, seconds per step; save state

`SearchEngine` has pymoo's loop shape: `setup()` (resume or initialise), `has_next()` / `next()` (one
iteration: `ask()` steps 1-3, `evaluate()`, `tell()` steps 4-6 and the callbacks), `run()` and `finish()`.

Randomness: every step draws from a generator seeded by (search seed, iteration, step), never from a
shared stream, so nothing but the archive, the weights and the log has to be saved for a resumed search
to make exactly the choices an uninterrupted one makes.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from factory.budget import latency_profile_digest, parse_latency
from factory.budget.feasibility import Budget, check_feasible, delivered_precision, int8_layout, smallest_configs
from factory.budget.figures import Figures
from factory.budget.latency_model import LatencyModel
from factory.data import DatasetSplits, load_dataset
from factory.elastic import OFASupernet
from factory.errors import FactoryError
from factory.front.subset import select_subset
from factory.io import write_json_atomic
from factory.recipe import Recipe, load_recipe, recipe_from_dict
from factory.search.archive import Archive, Member, objective_matrix, rank_and_crowding
from factory.search.callbacks import IterationCallback, ProgressBar
from factory.search.distribution import GeneDistribution, width_epochs
from factory.search.evaluation import Complexity, SubnetEvaluator
from factory.search.hypervolume import hypervolume
from factory.search.metrics import kendall, spearman
from factory.search.predictors import PREDICTORS, Predictor, make_predictor, predictor_names
from factory.search.problem import Prediction, SubnetProblem, surrogate_search
from factory.search.settings import ACCURACY, SearchSettings, resolve_settings
from factory.search.state import SearchFiles
from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.encoding import get_encoding
from factory.space.sampling import largest_vector, sample_vectors, smallest_vector
from factory.training.device import resolve_device
from factory.training.trainer import adapt_supernets, load_supernets

# Independent random streams of one iteration.
STREAM_INIT, STREAM_PREDICTOR, STREAM_SEARCH, STREAM_ADAPT = range(4)


def stream_seed(seed: int, iteration: int, stream: int) -> int:
    """The seed of one step of one iteration (a 31-bit int, usable by LightGBM, pymoo and torch)."""
    return int(np.random.SeedSequence([seed, iteration, stream]).generate_state(1)[0]) % (2**31 - 1)


def build_predictor(name: str, seed: int, encoding: Any, features: str, folds: int) -> Predictor:
    """The recipe's predictor; `folds` goes to the ones that are CV ensembles (lgbm)."""
    if name not in PREDICTORS and name not in predictor_names():
        raise FactoryError(f"unknown predictor {name!r}; choose one of {', '.join(predictor_names())}")
    kw: dict[str, Any] = {"encoding": encoding, "features": features}
    if "folds" in inspect.signature(PREDICTORS[name]).parameters:
        kw["folds"] = folds
    return make_predictor(name, seed=seed, **kw)


def select_candidates(archive: Archive, problem: SubnetProblem, final: list[Prediction], k: int) -> list[Prediction]:
    """Step 3: K feasible candidates not in the archive, spread along its front; topped up with the
    best-predicted (rank + crowding on predictions) networks the search met. A function of its arguments
    alone (no engine, no randomness), so a stored archive pins what the search proposes."""
    known = archive.keys()
    pool = [p for p in final if p.config.key() not in known and p.feasible]
    if pool:
        order, _, _ = rank_and_crowding(np.array([p.F for p in pool]))
        pool = [pool[i] for i in order]
    if problem.n_obj == 1:
        chosen = pool[:k]
    else:
        front_F = objective_matrix(archive.front(), archive.objectives)
        picked = select_subset(front_F, np.array([p.F for p in pool]).reshape(len(pool), problem.n_obj), k)
        chosen = [pool[i] for i in picked]
    if len(chosen) < k:
        taken = known | {p.config.key() for p in chosen}
        extra = [p for key, p in problem.seen.items() if key not in taken and p.feasible]
        if extra:
            order, _, _ = rank_and_crowding(np.array([p.F for p in extra]))
            chosen += [extra[i] for i in order[: k - len(chosen)]]
    return chosen


@dataclasses.dataclass
class _Asked:
    """An iteration between `ask()` and `tell()`: its candidates and the seconds its steps took so far."""

    iteration: int
    candidates: list[Prediction]
    seconds: dict[str, float]


class SearchEngine:
    """One search over `supernets`, writing to `out_dir` (RUN/search/).

    Args:
        recipe: the resolved recipe (search, train and data sections are read).
        spec: the super-networks' space.
        supernets: one trained super-network per width; adapted in place.
        splits: the dataset (validation evaluates, training calibrates BN and adapts).
        settings: from `resolve_settings`.
        out_dir: the RUN/search folder.
        device: torch device for extraction, calibration and adaptation.
        backend: evaluator backend ("auto": onnxruntime on CPU, eager on CUDA).
        progress: show tqdm bars.
        callbacks: called after every iteration, in order (`IterationCallback`).
    """

    def __init__(
        self,
        recipe: Recipe,
        spec: SpaceSpec,
        supernets: dict[float, OFASupernet],
        splits: DatasetSplits,
        settings: SearchSettings,
        out_dir: str | Path,
        device: torch.device | str = "cpu",
        backend: str = "auto",
        progress: bool = True,
        callbacks: Sequence[IterationCallback] = (),
        latency_model: Callable[..., float] | None = None,
    ) -> None:
        self.recipe = recipe
        self.latency_model = latency_model  # predicted ms from a device profile; None: measured here
        self.spec = spec
        self.supernets = supernets
        self.splits = splits
        self.settings = settings
        self.cfg = settings.config
        self.device = torch.device(device)
        self.progress = progress
        self.files = SearchFiles(out_dir)
        self.encoding = get_encoding(settings.mode.encoding, spec)
        self.complexity = Complexity(spec, int8_layout(recipe))
        self.evaluator = SubnetEvaluator(supernets, splits, recipe, self.device, backend)
        self.base_version = self.evaluator.version
        self.archive = Archive(settings.objectives, settings.budgets, settings.capacity)
        self.history: list[dict[str, Any]] = []
        self.iteration = -1  # last finished iteration; 0 = the initial archive
        self.reference: tuple[float, ...] | None = None
        self.log_lines = 0
        self.adapted = False
        self.callbacks: list[IterationCallback] = list(callbacks)
        self._asked: _Asked | None = None
        self._started = time.perf_counter()
        self._check_budgets()

    # ------------------------------------------------------------------ the loop
    def run(self, resume: bool = True) -> dict[str, Any]:
        """Run (or continue) the search to `search.iterations` and return the result (also in result.json)."""
        self.setup(resume)
        bar = ProgressBar(self.cfg.iterations, self.iteration, self.progress)
        self.callbacks.append(bar)
        try:
            while self.has_next():
                self.next()
        finally:
            self.callbacks.remove(bar)
            bar.close()
        return self.finish()

    def setup(self, resume: bool = True) -> None:
        """Continue the search the folder holds (refused without `resume`), or evaluate the initial archive."""
        if self.files.started():
            if not resume:
                raise FactoryError(
                    f"{self.files.folder} already holds a search; pass --resume to continue it or --force to start over"
                )
            self._resume()
        self._started = time.perf_counter()
        if self.iteration < 0:
            self._initialise()

    def has_next(self) -> bool:
        """True while iterations are left (after `setup()`)."""
        return 0 <= self.iteration < self.cfg.iterations

    def next(self) -> dict[str, Any]:
        """Run the next iteration and return its record."""
        return self.tell(self.evaluate(self.ask()))

    def ask(self) -> list[Prediction]:
        """The next iteration's candidates: fit the predictor on the archive, search on it, and choose K new
        networks spread along the predicted front (steps 1-3)."""
        if self.iteration < 0:
            raise RuntimeError("call setup() before asking for candidates")
        iteration = self.iteration + 1
        seconds: dict[str, float] = {}
        seed = self.cfg.seed

        tick = time.perf_counter()
        predictor = build_predictor(
            self.cfg.predictor,
            stream_seed(seed, iteration, STREAM_PREDICTOR),
            self.encoding,
            self.settings.mode.features,
            self.cfg.predictor_folds,
        )
        predictor.fit(self.archive.X(), np.array([m.error for m in self.archive]))
        seconds["fit"] = time.perf_counter() - tick

        tick = time.perf_counter()
        problem = SubnetProblem(
            self.encoding, predictor, self.settings.objectives, self._complexity_columns, self.settings.budgets
        )
        final = surrogate_search(
            problem,
            self.cfg.population,
            self.cfg.generations,
            self.cfg.crossover_prob,
            self.cfg.mutation_eta,
            stream_seed(seed, iteration, STREAM_SEARCH),
        )
        seconds["search"] = time.perf_counter() - tick

        tick = time.perf_counter()
        chosen = select_candidates(self.archive, problem, final, self.settings.candidates)
        seconds["select"] = time.perf_counter() - tick
        self._asked = _Asked(iteration, chosen, seconds)
        return chosen

    def evaluate(self, candidates: Sequence[Prediction]) -> list[Member]:
        """Real top-1 of the asked candidates, as members of the next iteration (through the cache, logged
        with their predicted error)."""
        asked = self._pending()
        tick = time.perf_counter()
        members = self._measure(
            [p.config for p in candidates],
            [p.x for p in candidates],
            asked.iteration,
            "candidate",
            predicted=[float(p.F[0]) for p in candidates],
        )
        asked.seconds["evaluate"] = asked.seconds.get("evaluate", 0.0) + time.perf_counter() - tick
        return members

    def tell(self, members: Sequence[Member]) -> dict[str, Any]:
        """Finish the asked iteration with its evaluated candidates (in the order asked): add them to the
        archive and truncate it, adapt the super-networks and re-evaluate the archive (steps 4-6), save, and
        call the callbacks. Returns the iteration's record."""
        asked = self._pending()
        if len(members) != len(asked.candidates):
            raise ValueError(f"{len(members)} members for the {len(asked.candidates)} candidates asked")
        seconds = asked.seconds
        tick = time.perf_counter()
        members = list(members)
        predicted = [float(p.F[0]) for p in asked.candidates]
        rho = tau = None
        if len(members) >= 2:
            errors = [m.error for m in members]
            rho, tau = spearman(errors, predicted), kendall(errors, predicted)
        self.archive.add(members)
        self.archive.truncate()
        seconds["evaluate"] = seconds.get("evaluate", 0.0) + time.perf_counter() - tick

        new = len(members)
        if self.cfg.adapt_epochs > 0:
            tick = time.perf_counter()
            self._adapt(asked.iteration)
            seconds["adapt"] = time.perf_counter() - tick
            tick = time.perf_counter()
            again = self._measure(
                [m.config for m in self.archive], [np.array(m.x) for m in self.archive], asked.iteration, "reevaluate"
            )
            self.archive.replace_members(again)
            new += len(again)
            seconds["reevaluate"] = time.perf_counter() - tick
        self._asked = None
        return self._conclude(asked.iteration, seconds, new=new, rho=rho, tau=tau)

    def finish(self) -> dict[str, Any]:
        """Rank the archive, write result.json and return it with the history and the folder."""
        return self._finish(time.perf_counter() - self._started)

    def _pending(self) -> _Asked:
        if self._asked is None or self._asked.iteration != self.iteration + 1:
            raise RuntimeError("no candidates asked for the next iteration; call ask() first")
        return self._asked

    def _conclude(
        self, iteration: int, seconds: dict[str, float], new: int, rho: float | None, tau: float | None
    ) -> dict[str, Any]:
        """Record and save a finished iteration, then call the callbacks."""
        self.iteration = iteration
        record = self._record(iteration, seconds, new=new, rho=rho, tau=tau)
        self._save()
        for callback in self.callbacks:
            callback.on_iteration_end(self, record)
        return record

    # ------------------------------------------------------------------ checks
    def _check_budgets(self) -> None:
        # The smallest network of every width, resolution and exit the encoding can express (an encoding without
        # an exit gene reaches only the last exit): the one meeting every limit at once may be at any of them.
        exits = self.encoding.exits if self.encoding.has_exit_gene else self.encoding.exits[-1:]
        budget = Budget.from_dict(self.settings.budgets).with_model(self.latency_model)
        budget = budget.with_int8(self.complexity.int8)
        check_feasible(self.spec, budget, smallest_configs(self.spec, exits), f"raise {budget.flags()}")

    # ------------------------------------------------------------------ evaluation
    def _latency(self, config: SubnetConfig) -> float:
        """Predicted from the device profile when there is one, else measured on this CPU."""
        return self.latency_model(config) if self.latency_model is not None else self.evaluator.latency_ms(config)

    def _top1(self, config: SubnetConfig, base: dict[str, Any]) -> tuple[float, bool]:
        """top-1 of `config`; logs a line for every real (or recovered) evaluation. Returns (top1, evaluated)."""
        recovered = self.evaluator.recover(config)
        if recovered is not None:
            top1 = float(recovered["top1"])
            self._log({**base, "top1": top1, "error": 1.0 - top1, "eval_s": recovered.get("eval_s")})
            return top1, True
        before = time.perf_counter()
        top1, cached = self.evaluator.top1(config)
        if not cached:
            self._log({**base, "top1": top1, "error": 1.0 - top1, "eval_s": round(time.perf_counter() - before, 4)})
        return top1, not cached

    def _log(self, record: dict[str, Any]) -> None:
        self.files.append(record)
        self.log_lines += 1

    def _measure(
        self,
        configs: Sequence[SubnetConfig],
        xs: Sequence[np.ndarray],
        iteration: int,
        phase: str,
        predicted: Sequence[float] | None = None,
    ) -> list[Member]:
        """Evaluate configs for real (through the cache) into archive members."""
        members = []
        bar = tqdm(total=len(configs), desc=f"evaluate ({phase})", unit="net", leave=False, disable=not self.progress)
        for i, (config, x) in enumerate(zip(configs, xs, strict=True)):
            timed = "latency" in (*self.settings.objectives, *self.settings.budgets)
            figures = self.complexity.figures(config, self._latency(config) if timed else None)
            member = Member.of(config, tuple(int(v) for v in x), figures, iteration, self.evaluator.version)
            base = {**member.to_record(), "phase": phase}
            if predicted is not None:
                base["predicted_error"] = float(predicted[i])
            top1, _ = self._top1(config, base)
            members.append(member.with_top1(top1, iteration, self.evaluator.version))
            bar.update(1)
        bar.close()
        return members

    # ------------------------------------------------------------------ initialisation
    def _initialise(self) -> None:
        """Pre-processing: sample, evaluate everything, keep the best by rank + crowding plus the extremes."""
        start = time.perf_counter()
        rng = np.random.default_rng(stream_seed(self.cfg.seed, 0, STREAM_INIT))
        widths = self.spec.widths
        extremes = [smallest_vector(self.encoding, min(widths)), largest_vector(self.encoding, max(widths))]
        extreme_keys = {self.encoding.decode(x).key() for x in extremes}
        X = sample_vectors(self.encoding, self.settings.initial_samples - 2, rng, self.settings.mode.sampler)
        pool_x, keys = [], set(extreme_keys)
        for x in X:
            key = self.encoding.decode(x).key()
            if key not in keys:
                keys.add(key)
                pool_x.append(x)
        xs = [*extremes, *pool_x]
        members = self._measure(self.encoding.decode_all(np.array(xs)), xs, 0, "init")
        ends, pool = members[:2], members[2:]
        if self.settings.capacity is not None:
            keep = Archive(self.settings.objectives, self.settings.budgets, self.settings.capacity - 2)
            keep.add(pool)
            keep.truncate()
            pool = keep.members
        self.archive.add([*ends, *pool])
        self.reference = self._resolve_reference()
        self._conclude(0, {"evaluate": time.perf_counter() - start}, new=len(members), rho=None, tau=None)

    def _resolve_reference(self) -> tuple[float, ...]:
        """The fixed hypervolume reference: the recipe's value where its objective is the one searched, else
        1.0 for the error and 1.1 x the largest value in the initial archive for a complexity objective."""
        given, named = self.cfg.hv_reference, self.cfg.objectives
        ref = []
        for i, name in enumerate(self.settings.objectives):
            if i < len(given) and i < len(named) and named[i] == name:
                ref.append(float(given[i]))
            elif name == ACCURACY:
                ref.append(1.0)
            else:
                ref.append(1.1 * max(m.objective(name) for m in self.archive))
        return tuple(ref)

    # ------------------------------------------------------------------ one iteration
    def _complexity_columns(self, configs: Sequence[SubnetConfig]) -> dict[str, np.ndarray]:
        names = set(self.settings.objectives[1:]) | set(self.settings.budgets)
        out: dict[str, np.ndarray] = {}
        if names & {"params", "macs"}:
            counts = np.array([self.complexity(c) for c in configs], dtype=np.float64).reshape(-1, 2)
            out["params"], out["macs"] = counts[:, 0], counts[:, 1]
        if names & {"flash", "ram"}:
            sizes = np.array([self.complexity.footprint(c) for c in configs], dtype=np.float64).reshape(-1, 2)
            out["flash"], out["ram"] = sizes[:, 0], sizes[:, 1]
        if "latency" in names:
            out["latency"] = np.array([self._latency(c) for c in configs], dtype=np.float64)
        return out

    def _adapt(self, iteration: int) -> None:
        """Adapt the super-networks on sub-networks drawn from the top archive members' gene distribution, at
        peak lr `search.adapt_lr` (0: `train.lr`), `search.adapt_epochs` epochs in all, split over the widths as
        the top members use them. A super-network trained on the target data itself is already
        converged; restarting it at a from-scratch lr (digits: 0.05) for one epoch lowered every member's
        accuracy (digits front hypervolume 0.982 -> 0.929 in 3 iterations, 0.981 at lr 0.005)."""
        top = self.archive.ranked()[: self.cfg.distribution_top]
        distribution = GeneDistribution.fit(self.encoding, np.array([m.x for m in top]))
        widths = [m.config.width for m in top]
        recipe = self.recipe
        if self.cfg.adapt_lr > 0:
            recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, lr=self.cfg.adapt_lr))
        adapt_supernets(
            recipe,
            self.supernets,
            self.splits,
            distribution.sample_configs,
            width_epochs(self.cfg.adapt_epochs, widths),
            stream_seed(self.cfg.seed, iteration, STREAM_ADAPT),
            device=self.device.type,
            progress=self.progress,
        )
        version = self.evaluator.refresh()
        self.files.save_weights(self.recipe, self.spec, self.supernets, version, iteration)
        self.adapted = True

    # ------------------------------------------------------------------ records and state
    def _record(
        self, iteration: int, seconds: dict[str, float], new: int, rho: float | None, tau: float | None
    ) -> dict[str, Any]:
        assert self.reference is not None
        front = self.archive.front()
        record = {
            "iteration": iteration,
            "hypervolume": hypervolume(objective_matrix(front, self.settings.objectives), self.reference),
            "spearman": rho,
            "kendall": tau,
            "archive_size": len(self.archive),
            "front_size": len(front),
            "best_top1": max(m.top1 for m in self.archive),
            "new_evaluations": new,
            "evaluations": self.evaluator.evaluations,
            "cache_hits": self.evaluator.cache_hits,
            "version": self.evaluator.version,
            "seconds": {k: round(v, 3) for k, v in seconds.items()} | {"total": round(sum(seconds.values()), 3)},
        }
        self.history.append(record)
        write_json_atomic(self.files.history, self.history)
        return record

    def _save(self) -> None:
        self.files.save_state(
            {
                "settings": self.settings.fingerprint(),
                "iteration": self.iteration,
                "version": self.evaluator.version,
                "adapted": self.adapted,
                "reference": list(self.reference or ()),
                "archive": [m.to_record() for m in self.archive],
                "log_lines": self.log_lines,
                "evaluations": self.evaluator.evaluations,
                "cache_hits": self.evaluator.cache_hits,
                "latency_ms": self.evaluator.latency,
                "history": self.history,
            }
        )
        self.files.drop_previous_weights()

    def _resume(self) -> None:
        state = self.files.load_state()
        log = self.files.read_log()
        if state is None:  # interrupted during initialisation: everything logged is pending
            state_lines = 0
        else:
            saved = state["settings"]
            if saved != self.settings.fingerprint():
                now = self.settings.fingerprint()
                differs = [k for k in now if saved.get(k) != now[k]]
                raise FactoryError(
                    f"the search in {self.files.folder} was started with other settings ({', '.join(differs)}); "
                    "rerun with the same options and recipe, or pass --force to start over"
                )
            state_lines = int(state["log_lines"])
            if len(log) < state_lines:
                raise self.files.corrupt(f"{self.files.log.name} has {len(log)} lines, the state expects {state_lines}")
            try:
                self._load_state(state)
            except (KeyError, TypeError, ValueError) as exc:
                raise self.files.corrupt(f"{type(exc).__name__}: {exc}") from None
        self.evaluator.replay(log, state_lines)
        self.files.cut_log(log[:state_lines])
        self.log_lines = state_lines

    def _load_state(self, state: dict[str, Any]) -> None:
        version = state["version"]
        if version != self.base_version:
            weights = self.files.load_weights(version)
            for width, net in self.supernets.items():
                net.load_state_dict(weights[width])
            if self.evaluator.refresh() != version:
                raise ValueError(f"the saved weights do not match version {version}")
            self.adapted = True
        self.iteration = int(state["iteration"])
        self.reference = tuple(float(v) for v in state["reference"])
        self.archive.members = [Member.from_record(r) for r in state["archive"]]
        self.history = list(state["history"])
        self.evaluator.restore(state.get("evaluations", 0), state.get("cache_hits", 0), state.get("latency_ms", {}))

    def _finish(self, seconds: float) -> dict[str, Any]:
        order, rank, crowd = rank_and_crowding(self.archive.F(), self.archive.cv())
        ranked = []
        for i in order:
            record = self.archive.members[i].to_record()
            record["rank"], record["crowding"] = int(rank[i]), _finite(crowd[i])
            ranked.append(record)
        names = self.settings.objectives[1:]
        front = sorted(
            (r for r in ranked if r["rank"] == 0), key=lambda r: [Figures.from_record(r).value(n) for n in names]
        )
        weights = self.files.weights if self.adapted else None
        result = {
            "algorithm": self.settings.mode.name,
            "objectives": list(self.settings.objectives),
            "budgets": self.settings.budgets,
            "flash_ram_precision": "fp32" if self.complexity.int8 is None else "int8",
            "latency_profile": str(getattr(self.latency_model, "path", "")) or None,
            "iterations": self.iteration,
            "evaluations": self.evaluator.evaluations,
            "cache_hits": self.evaluator.cache_hits,
            "hypervolume": self.history[-1]["hypervolume"] if self.history else None,
            "hv_reference": list(self.reference or ()),
            "version": self.evaluator.version,
            "supernet": str(weights) if weights is not None else None,
            "seconds": round(seconds, 2),
            "front": front,
            "archive": ranked,
        }
        write_json_atomic(self.files.result, result)
        return {**result, "history": self.history, "folder": str(self.files.folder)}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _resolve_recipe(recipe: Recipe | str | Path | None, run: Path, checkpoint: dict[str, Any]) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if recipe is not None:
        return load_recipe(recipe)
    if (run / "recipe.yaml").is_file():
        return load_recipe(run / "recipe.yaml")
    if "recipe" not in checkpoint:
        raise FactoryError(f"{run} has no recipe.yaml and its checkpoint holds no recipe; pass --recipe")
    return recipe_from_dict(checkpoint["recipe"], f"{run}/supernet/supernet.pt")


def run_search(
    run_dir: str | Path,
    recipe: Recipe | str | Path | None = None,
    objectives: str | Sequence[str] | None = None,
    budget: Budget | None = None,
    algorithm: str | None = None,
    device: str = "auto",
    resume: bool = True,
    progress: bool = True,
    *,
    latency_profile: str | Path | None = None,
    force: bool = False,
    backend: str = "auto",
    splits: DatasetSplits | None = None,
) -> dict[str, Any]:
    """Library entry point of `factory search`: NAT2 (or NAT) over RUN/supernet/supernet.pt into RUN/search/.

    Args:
        run_dir: the run folder `factory train --out` wrote.
        recipe: a Recipe, recipe file or shipped name; default RUN/recipe.yaml, else the checkpoint's recipe.
        objectives: "params" | "macs" | "latency" (accuracy plus that), a comma list, or a sequence; "top1"
            alone searches accuracy only. Default: the recipe's. Latency is measured with onnxruntime on
            this CPU for every new network the surrogate search meets: slow, for small searches.
        budget: the limits, constraints of the search (`Budget.parse("0.3M", flash="256KB", ...)`): params and
            MACs; flash and RAM in bytes of the graph the build delivers (INT8 when the recipe exports INT8);
            latency in milliseconds at batch 1 on the device `latency_profile` (a `factory profile` file) was
            measured on, predicted by the model fitted on it.
        latency_profile: that device profile; it also makes the latency objective predicted instead of
            measured on this CPU.
        algorithm: "nat2" (default: the recipe's) or "nat" (the baseline).
        device: "auto" | "cpu" | "cuda".
        resume: continue a search found in RUN/search (otherwise an existing search is an error).
        progress: tqdm bars on stderr.
        force: delete RUN/search first and start over.
        backend: evaluator backend ("auto", "onnxruntime", "eager").
        splits: the dataset, when the caller already holds it (tests); default `load_dataset(recipe.data)`.

    Writes RUN/search/: archive.jsonl (every evaluation), state.json (resume point, after every iteration),
    history.json (per-iteration records), supernet.pt (adapted weights, when adaptation ran) and
    result.json (see `factory.search.state`).

    Returns:
        result.json's content (front, ranked archive, hypervolume, evaluations, paths) plus `history`.
    """
    run = Path(run_dir)
    checkpoint = run / "supernet" / "supernet.pt"
    if not checkpoint.is_file():
        raise FactoryError(f"no trained super-network at {checkpoint}; run `factory train --out {run}` first")
    spec, supernets, state = load_supernets(checkpoint)
    resolved = _resolve_recipe(recipe, run, state)
    if budget is not None:
        parse_latency(budget.latency, latency_profile)  # a latency limit needs the device profile that predicts it
    settings = resolve_settings(resolved.search, objectives, budget, algorithm, latency_profile_digest(latency_profile))
    splits = splits if splits is not None else load_dataset(resolved.data)
    if splits.num_classes != spec.num_classes:
        raise FactoryError(
            f"the dataset has {splits.num_classes} classes but the super-network {spec.num_classes}; "
            "search with the recipe the run was trained with"
        )
    if resolved.space.to_spec(spec.num_classes) != spec:
        raise FactoryError(
            f"the recipe's space section differs from the super-network in {checkpoint}; "
            "search with the recipe the run was trained with"
        )
    folder = run / "search"
    if force and folder.exists():
        shutil.rmtree(folder)
    torch_device = resolve_device(device)
    precision = delivered_precision(resolved)
    model = LatencyModel(spec, latency_profile, precision) if latency_profile is not None else None
    engine = SearchEngine(
        resolved,
        spec,
        supernets,
        splits,
        settings,
        folder,
        torch_device,
        backend=backend,
        progress=progress,
        latency_model=model,
    )
    return engine.run(resume=resume)
