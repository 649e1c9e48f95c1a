"""Recipes: YAML files validated into typed dataclasses.

A recipe holds every setting of a build, section by section. Unknown or mistyped keys are errors that
name the key and the file, so a typo never silently falls back to a default. The resolved recipe is
written beside every run so a result can be reproduced and a run resumed.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union

import yaml

from factory.bounds import Count, Fraction, NonNegative, Positive, PositiveInt, Probability, Range, Seed
from factory.data.config import DataSection
from factory.errors import FactoryError
from factory.space.config import SpaceSection

# The shipped recipes: package data (factory/recipes/*.yaml).
RECIPES_DIR = importlib.resources.files("factory") / "recipes"


@dataclass
class TrainSection:
    """Super-network training: warm-up of the maximal networks, then elastic training (paper values in GPU recipes)."""

    batch_size: PositiveInt = 256
    warmup_epochs: Count = 100  # maximal networks (width 1.0 and 1.2)
    warmup_lr: Positive = 7.5e-3
    epochs: Count = 100  # elastic phase
    lr: Positive = 2.5e-3
    momentum: Fraction = 0.9
    nesterov: bool = True
    weight_decay: NonNegative = 3e-4
    label_smoothing: Fraction = 0.1
    grad_clip: NonNegative = 5.0  # 0 = no clipping
    subnets_per_batch: PositiveInt = 4  # sub-networks sampled per batch, gradients accumulated
    # How a step's sub-network losses combine: "sum" as OFA and NAT accumulate one backward per sub-network
    # (the paper's learning rates assume it), or "mean" (each step's loss scaled by 1/k).
    subnet_loss: str = "sum"
    # Sandwich rule (BigNAS), off in the paper's recipes: the maximal network also joins every elastic batch
    # with its warm-up objective, so a short elastic phase does not cost it accuracy.
    sandwich: bool = False
    sandwich_share: Fraction = 0.0  # the maximal network's share of each sandwich step's loss; 0 = 1/(k+1)
    # Builds only (`factory build` knows its budget): this share of the elastic phase's sampled sub-networks is
    # drawn from within the budget (factory.training.budget_sampler); 0 = the whole space, as `factory train`.
    budget_share: Probability = 0.0
    kd_weight: NonNegative = 1.0  # loss = kd_weight * KD + CE; teacher = width-1.2 maximal network
    aep_weighting: str = "desc"  # unif | asc | desc | mix: exit weights of early-exit maximal networks
    ens_kd: bool = True  # early-exit kinds: teacher = weighted ensemble of all its exits
    bn_calib_images: PositiveInt = 960  # BatchNorm recalibration subset of the training split
    bn_calib_batch: PositiveInt = 100
    eval_batch_size: PositiveInt = 500
    channels_last: bool = True
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: see factory.training.device (auto: fp32 on CPU)
    seed: Seed = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise FactoryError(f"train.precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.subnet_loss not in SUBNET_LOSSES:
            raise FactoryError(f"train.subnet_loss: {self.subnet_loss!r} is not one of {', '.join(SUBNET_LOSSES)}")


SUBNET_LOSSES = ("sum", "mean")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # train.precision: see factory.training.device
ROLES = ("source", "target")


@dataclass
class TransferSection:
    """What the recipe does with a pre-trained super-network (NAT's transfer).

    A source recipe trains its super-network from scratch (and the result can serve other datasets); a target
    recipe adapts one given with `--supernet`: the exit heads' classifiers are rebuilt for its classes, warmed
    up with the body frozen, then the search's adaptation epochs do the transfer. Any recipe accepts a
    `--supernet` from other data; only a target recipe is tuned for it.
    """

    role: str = "source"  # source | target
    source: str = ""  # target recipes: the source recipe their super-network comes from (named in errors)
    # Target recipes without --supernet: train from scratch with the train section (true; its settings must
    # suit training from scratch), or refuse with a one-line error naming the source to train (false).
    scratch: bool = False
    head_epochs: Count = 3  # warm-up of the rebuilt exit heads on the target, body frozen
    head_lr: Positive = 0.05  # its peak lr (SGD, cosine), as the train section's optimiser
    # Then, before the search: the whole maximal network (all exits, AEP) on the target, and elastic epochs
    # (sampled sub-networks, ENS-KD from that network) at search.adapt_lr (0: train.lr). The paper's flow is
    # 0 and 0 (the search's adaptation does it all); a small source on CPU needs both (benchmarks.transfer).
    tune_epochs: Count = 0
    tune_lr: Positive = 0.05
    elastic_epochs: Count = 0

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise FactoryError(f"transfer.role: {self.role!r} is not one of {', '.join(ROLES)}")


# The search's names and smallest archive, here so the recipe is refused when it is read, not after training.
SEARCH_ALGORITHMS = ("nat2", "nat")
ACCURACY_OBJECTIVE = "top1"
COMPLEXITY_OBJECTIVES = ("params", "macs", "flash", "ram", "latency")
# The smallest archive: a K-fold ensemble predictor (K >= 2) must fit every fold on at least 4 rows.
MIN_ARCHIVE = 8


@dataclass
class SearchSection:
    """The NAT2 loop (see the method note's search-loop section; NAT's values in brackets there)."""

    algorithm: str = "nat2"  # nat2 | nat
    objectives: tuple[str, ...] = ("top1", "params")  # second objective: params | macs | latency
    iterations: Count = 30
    archive_size: Annotated[int, Range(MIN_ARCHIVE)] = 300
    init_multiplier: PositiveInt = 10  # pre-processing samples init_multiplier * archive_size - 2
    candidates_per_iteration: PositiveInt = 25  # K [NAT: 8]
    predictor: str = "lgbm"
    predictor_folds: Annotated[int, Range(2)] = 10
    population: Annotated[int, Range(2)] = 100
    generations: PositiveInt = 20
    crossover_prob: Probability = 0.9
    mutation_eta: Positive = 1.0
    distribution_top: PositiveInt = 150  # archive members the adaptation distribution is fitted on
    adapt_epochs: Count = 5
    adapt_lr: NonNegative = 0.0  # adaptation's peak lr; 0 = train.lr (the paper adapts at its training lr, 2.5e-3)
    hv_reference: tuple[Positive, ...] = (1.0, 10_000_000.0)  # (top-1 error, second objective)
    nat_initial_samples: Annotated[int, Range(MIN_ARCHIVE)] = 100  # NAT baseline: uniform samples, then it grows
    seed: Seed = 0

    def __post_init__(self) -> None:
        """The names the search would reject are refused here, so a bad recipe never trains first."""
        if self.algorithm not in SEARCH_ALGORITHMS:
            raise FactoryError(f"search.algorithm: {self.algorithm!r} is not one of {', '.join(SEARCH_ALGORITHMS)}")
        known = (ACCURACY_OBJECTIVE, *COMPLEXITY_OBJECTIVES)
        names = list(self.objectives)
        if not names or any(n not in known for n in names) or len(set(names)) != len(names):
            raise FactoryError(
                f"search.objectives: {names!r} is not valid; give top1 plus any of {', '.join(COMPLEXITY_OBJECTIVES)}, "
                "each at most once"
            )


@dataclass
class FinetuneSection:
    """Two-step fine-tuning of the picks (paper section 3.5)."""

    picks: PositiveInt = 4  # the best-accuracy pick, the best in the second objective, and others along the front
    max_epochs: Count = 150
    patience: PositiveInt = 30
    batch_size: PositiveInt = 64
    optimizer: str = "adamw"  # single-exit picks: sgd worked best in the paper
    lr: Positive = 1e-4
    weight_decay: NonNegative = 5e-4
    aep_weighting: str = "unif"
    prune: bool = True


@dataclass
class TensorRTSection:
    """TensorRT engine building (GPU machines only)."""

    enabled: bool = True
    fp16: bool = True
    workspace_mb: PositiveInt = 1024
    min_batch: PositiveInt = 1
    opt_batch: PositiveInt = 8
    max_batch: PositiveInt = 64

    def __post_init__(self) -> None:
        if not self.min_batch <= self.opt_batch <= self.max_batch:
            raise FactoryError(
                f"export.tensorrt: min_batch {self.min_batch} <= opt_batch {self.opt_batch} <= max_batch "
                f"{self.max_batch} must hold; fix the batch profile"
            )


@dataclass
class Int8Section:
    """INT8 post-training quantization of every exported graph (QDQ, onnxruntime), with a QAT fallback.

    Defaults chosen by measurement on the digits picks (README, INT8): percentile calibration kept the logits
    closest to FP32, per-channel symmetric INT8 weights, asymmetric UINT8 activations, no op kept in float.
    """

    enabled: bool = True
    max_drop: NonNegative = 1.0  # test top-1 points an INT8 graph may lose against its FP32 graph
    qat_epochs: Count = 2  # quantization-aware fine-tuning when PTQ loses more; 0 = no QAT
    calibration_images: PositiveInt = 256  # training images, preprocessed as on the device
    method: str = "percentile"  # minmax | entropy | percentile
    per_channel: bool = True
    symmetric_activations: bool = False
    exclude_ops: tuple[str, ...] = ()  # ONNX op types kept in float, e.g. [HardSwish, Add]

    def __post_init__(self) -> None:
        if self.method not in ("minmax", "entropy", "percentile"):
            raise FactoryError(f"export.int8.method: {self.method!r} is not one of minmax, entropy, percentile")


@dataclass
class ExportSection:
    """ONNX export of each pick, one graph per exit."""

    opset: Annotated[int, Range(18)] = 18  # torch.onnx's dynamo exporter needs 18 at least
    dynamic_batch: bool = True
    simplify: bool = False
    parity_images: PositiveInt = 256
    parity_atol: Positive = 1e-4
    tensorrt: TensorRTSection = field(default_factory=TensorRTSection)
    int8: Int8Section = field(default_factory=Int8Section)


@dataclass
class BenchSection:
    """Latency measurement of each exported model."""

    warmup: Count = 10
    iterations: PositiveInt = 200
    duration_s: NonNegative = 0.0  # > 0: time for this long instead of a fixed count
    batch_sizes: tuple[PositiveInt, ...] = (1, 32)
    threads: Count = 0  # 0: onnxruntime's default (physical cores)


@dataclass
class Recipe:
    """A whole build: every section, with the file it came from."""

    name: str = "custom"
    description: str = ""
    data: DataSection = field(default_factory=DataSection)
    space: SpaceSection = field(default_factory=SpaceSection)
    train: TrainSection = field(default_factory=TrainSection)
    search: SearchSection = field(default_factory=SearchSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    export: ExportSection = field(default_factory=ExportSection)
    bench: BenchSection = field(default_factory=BenchSection)
    transfer: TransferSection = field(default_factory=TransferSection)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp` and convert lists to tuples; raise naming `where`."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        value = _coerce(value, base, where)
        for bound in extras:
            if isinstance(bound, Range) and not bound.contains(value):
                kind = "an integer" if base is int else "a number"
                raise FactoryError(f"{where}: {value!r} is out of range; expected {kind} {bound.describe()}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except FactoryError as exc:
                errors.append(str(exc))
        raise FactoryError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise FactoryError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise FactoryError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise FactoryError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FactoryError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FactoryError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise FactoryError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported recipe annotation {tp!r} at {where}")


# Keys of earlier recipe versions, with what to write instead (a run folder's recipe.yaml may hold them).
RENAMED = {"train.amp": "write train.precision: auto (for amp: true) or fp32 (for amp: false)"}


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FactoryError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        replaced = RENAMED.get(f"{where}.{key}".lstrip("."))
        if key not in names and replaced:
            raise FactoryError(f"{where}.{key} was replaced: {replaced}")
        if key not in names:
            known = ", ".join(sorted(names))
            raise FactoryError(f"{where}: unknown key {key!r} (known keys: {known})")
    kwargs = {key: _coerce(value, hints[key], f"{where}.{key}" if where else key) for key, value in data.items()}
    return cls(**kwargs)


# Sections renamed since earlier releases: an older recipe (or a run's stored recipe) still reads.
SECTION_ALIASES = {"postprocess": "finetune", "benchmark": "bench"}


def recipe_from_dict(data: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a plain mapping into a Recipe; errors name the key and `source`."""
    if isinstance(data, dict) and any(old in data for old in SECTION_ALIASES):
        data = {SECTION_ALIASES.get(k, k) if SECTION_ALIASES.get(k) not in data else k: v for k, v in data.items()}
    try:
        return _build(Recipe, data, "")
    except FactoryError as exc:
        raise FactoryError(f"{source}: {str(exc).lstrip(': ')}") from None


def resolve_recipe_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A recipe file path, or the name of a shipped recipe ("digits" -> recipes/digits.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    names = ", ".join(shipped_recipe_names())
    raise FactoryError(f"recipe {str(name_or_path)!r} not found; give a YAML file path or one of: {names}")


def shipped_recipe_names() -> list[str]:
    """The names of the recipes shipped in the package, sorted ("digits", "cifar10", ...)."""
    if not RECIPES_DIR.is_dir():
        return []
    return sorted(p.name.removesuffix(".yaml") for p in RECIPES_DIR.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """Load and validate a recipe file (or a shipped recipe by name)."""
    path = resolve_recipe_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise FactoryError(f"{path}: not valid YAML{at}; fix the file's syntax") from None
    return recipe_from_dict(data or {}, str(path))


def save_recipe(recipe: Recipe, path: str | os.PathLike[str]) -> None:
    """Write the resolved recipe as YAML, atomically."""
    from factory.io import write_text_atomic

    write_text_atomic(path, recipe.to_yaml())


def choose_recipe(
    name: str | None,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    seed: int | None = None,
    seeded: tuple[str, ...] = ("train", "search"),
) -> Recipe:
    """The recipe a command runs: the named one, else the dataset's own (its `-cpu` variant on a machine without
    a GPU or with device "cpu"; cifar10's for a dataset without a recipe), with the command line's dataset,
    data folder and seed (for the `seeded` sections) applied.

    The loaded recipe is validated once and then replaced, never edited, so what a run records is exactly what
    the file and the options said.
    """
    if name is None:
        import torch

        cpu = device == "cpu" or not torch.cuda.is_available()
        wanted = dataset or "digits"
        candidates = ([f"{wanted}-cpu"] if cpu else []) + [wanted, "cifar10-cpu" if cpu else "cifar10"]
        name = next(c for c in candidates if c in shipped_recipe_names())
    recipe = load_recipe(name)
    data_changes = {k: v for k, v in (("dataset", dataset), ("data_dir", data_dir)) if v is not None}
    if data_changes:
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, **data_changes))
    if seed is not None:
        sections = {name: dataclasses.replace(getattr(recipe, name), seed=seed) for name in seeded}
        recipe = dataclasses.replace(recipe, **sections)
    return recipe
