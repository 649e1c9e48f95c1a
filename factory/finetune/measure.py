"""Parameters and MACs of static networks, measured with fvcore's FlopCountAnalysis at batch 1.

The search ranks sub-networks with the analytic counts of `factory.space.counting` (no modules built);
this module measures the built network by tracing it, so reports carry a traced figure and tests can
prove that the analytic counts are exact.

Conventions:
- `params`: trainable parameters of the network (sum of `numel` over `requires_grad` parameters),
  BN affine weights included. Equals `count_params`.
- `macs` (the HEADLINE figure, the papers' convention): multiply-adds of conv and linear layers only;
  one fused multiply-add = 1 MAC; bias additions are not counted. Equals `count_macs`.
- `macs_full`: `macs` plus the ops the headline leaves out, each counted with a handle registered here:
  batch norm = 1 per output element (inference-time BN is one scale-and-shift per element);
  adaptive avg pool = 1 per input element (each input is summed once); max / avg pool = kernel area per
  output element; elementwise ops (add, sub, mul, div, relu, hardswish, hardsigmoid, sigmoid, ...) = 1 per
  output element. These are operation counts, not MACs in the strict sense; use them to see what the
  headline omits, never to compare with the papers.
- Networks are traced in eval mode (dropout is the identity, BN uses running statistics) under no_grad;
  the module's training flag is restored afterwards.

No op is silently counted as zero: fvcore ignores ~60 ops by default (relu, clamp, cat, max, ...) and
reports others as "unsupported". Here every op the network runs must either have a handle above or be
listed in `FREE_OPS` with a reason; anything else lands in `Measurement.unsupported`, and with
`strict=True` raises `UncountedOpError`.

fvcore is imported inside the functions: it is an optional, heavy import that the device-side
`factory bench` never needs.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from factory.nn.network import StaticNetwork
from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.counting import resolve_exits

# Categories (the keys of `Measurement.by_op`) that make up the headline count.
HEADLINE_CATEGORIES: frozenset[str] = frozenset({"conv", "linear"})

# Ops that run but cost nothing worth counting, with the reason. Anything not here needs a handle.
FREE_OPS: dict[str, str] = {
    "aten::flatten": "reshape of a contiguous tensor: metadata only",
    "aten::view": "metadata only",
    "aten::reshape": "metadata only for contiguous tensors",
    "aten::squeeze": "metadata only",
    "aten::unsqueeze": "metadata only",
    "aten::size": "shape query at trace time",
    "aten::Int": "scalar conversion at trace time",
    "aten::ScalarImplicit": "scalar conversion at trace time",
    "aten::dropout": "identity at inference (traced in eval mode)",
    "aten::feature_dropout": "identity at inference (traced in eval mode)",
    "aten::detach": "no computation",
    "aten::contiguous": "no-op on the contiguous activations of these networks",
}

# Elementwise ops counted as one op per output element in the full count (in-place variants alike).
ELEMENTWISE_OPS: tuple[str, ...] = (
    "add",
    "sub",
    "mul",
    "div",
    "relu",
    "relu6",
    "hardtanh",
    "hardswish",
    "hardsigmoid",
    "sigmoid",
    "silu",
    "tanh",
    "clamp",
)


class UncountedOpError(RuntimeError):
    """A traced network ran an op that has no counting handle and is not listed in `FREE_OPS`."""


@dataclass(frozen=True)
class Measurement:
    """Counts of one network at batch 1 (see the module docstring for the conventions).

    Attributes:
        params: trainable parameters.
        macs: headline MACs, conv + linear only (the papers' convention).
        macs_full: `macs` plus batch norm, pooling and elementwise ops.
        unsupported: ops the network ran that were counted as nothing (op name -> occurrences); empty when
            every op is accounted for.
        by_op: the full count per category ("conv", "linear", "batch_norm", "add", ...).
    """

    params: int
    macs: int
    macs_full: int
    unsupported: dict[str, int] = field(default_factory=dict)
    by_op: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExitMeasurements:
    """Counts of every exit of a sub-network.

    Attributes:
        exits: the exits measured: those the kind has, up to `config.exit` (only 5 in single-exit kinds).
        single: exit -> the deployable single-exit network of that exit (`StaticNetwork(spec, config, (x,))`).
        aep: the multi-exit network carrying all of `exits` (AEP fine-tuning); the same object as
            `single[5]` in single-exit kinds, where both networks are identical.
    """

    exits: tuple[int, ...]
    single: dict[int, Measurement]
    aep: Measurement

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: {"exits": [...], "single": {"1": {...}, ...}, "aep": {...}}."""
        return {
            "exits": list(self.exits),
            "single": {str(x): m.to_dict() for x, m in self.single.items()},
            "aep": self.aep.to_dict(),
        }


def _fvcore() -> Any:
    """Import fvcore.nn quietly (its package __init__ scripts a loss, which warns on recent torch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import fvcore.nn
        import fvcore.nn.jit_handles
    return fvcore.nn


def _numel(value: Any) -> int:
    """Elements of a traced tensor value (fvcore's `get_shape`, without its import per call)."""
    if not value.isCompleteTensor():
        raise ValueError(f"the trace has a tensor without a complete shape: {value}")
    return math.prod(value.type().sizes())


def _int_list(value: Any) -> list[int]:
    """A traced int-list argument (a prim::ListConstruct of constants, or one constant)."""
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [int(v.toIValue()) for v in node.inputs()]
    ivalue = value.toIValue()
    return [int(v) for v in ivalue] if isinstance(ivalue, list | tuple) else [int(ivalue)]


Handle = Callable[[list[Any], list[Any]], Counter]


def _tagged(category: str, fn: Callable[[list[Any], list[Any]], Any]) -> Handle:
    """Wrap a fvcore handle (number or Counter) so its count lands under `category` in `by_operator()`."""

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        value = fn(inputs, outputs)
        return Counter({category: int(sum(value.values()) if isinstance(value, Counter) else value)})

    return handle


def _per_output(category: str) -> Handle:
    return lambda inputs, outputs: Counter({category: _numel(outputs[0])})


def _per_input(category: str) -> Handle:
    return lambda inputs, outputs: Counter({category: _numel(inputs[0])})


def _pool(category: str) -> Handle:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter:
        kernel = _int_list(inputs[1])
        if len(kernel) == 1:
            kernel = kernel * 2
        return Counter({category: _numel(outputs[0]) * math.prod(kernel)})

    return handle


def _handles() -> dict[str, Handle]:
    """Op name -> handle for every op that is counted (headline and full)."""
    jh = _fvcore().jit_handles
    handles: dict[str, Handle] = {
        # Headline: fvcore's own conv / linear handles (only aten::_convolution's argument layout is known
        # to conv_flop_jit; a trace with aten::conv2d would show up as unsupported, not as a wrong count).
        "aten::_convolution": _tagged("conv", jh.conv_flop_jit),
        "aten::linear": _tagged("linear", jh.linear_flop_jit),
        "aten::addmm": _tagged("linear", jh.addmm_flop_jit),
        # Full count only.
        "aten::batch_norm": _per_output("batch_norm"),
        "aten::adaptive_avg_pool2d": _per_input("adaptive_avg_pool2d"),
        "aten::max_pool2d": _pool("max_pool2d"),
        "aten::avg_pool2d": _pool("avg_pool2d"),
    }
    for op in ELEMENTWISE_OPS:
        handles[f"aten::{op}"] = handles[f"aten::{op}_"] = _per_output(op)
    return handles


def count_trainable(model: nn.Module) -> int:
    """Trainable parameters of `model` (what `count_params` predicts)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def measure_network(model: nn.Module, resolution: int, strict: bool = False) -> Measurement:
    """Trace `model` on one 3 x `resolution` x `resolution` image and count it.

    Args:
        model: any module taking an image batch (a StaticNetwork, or a toy in tests).
        resolution: input height and width.
        strict: raise `UncountedOpError` if an op ran that is neither counted nor in `FREE_OPS`.
    """
    flop_count_analysis = _fvcore().FlopCountAnalysis
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    image = torch.zeros(1, 3, resolution, resolution, device=device)
    was_training = model.training
    model.eval()
    try:
        analysis = flop_count_analysis(model, (image,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        analysis.clear_op_handles()
        # fvcore's default ignore list would hide ops such as relu, cat or clamp: replace it by FREE_OPS so
        # every op is handled or explicitly free. There is no public way to empty that list; the strict-mode
        # test with aten::cat fails if this private attribute ever stops working.
        analysis._ignored_ops = set(FREE_OPS)
        analysis.set_op_handle(**_handles())
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            by_op = {k: int(v) for k, v in analysis.by_operator().items()}
            unsupported = {k: int(v) for k, v in analysis.unsupported_ops().items()}
    finally:
        model.train(was_training)
    if strict and unsupported:
        listed = ", ".join(f"{op} x{n}" for op, n in sorted(unsupported.items()))
        raise UncountedOpError(
            f"ops with no counting handle: {listed}; add a handle in factory.finetune.measure._handles() or list "
            "the op in FREE_OPS with the reason it costs nothing"
        )
    macs = sum(v for k, v in by_op.items() if k in HEADLINE_CATEGORIES)
    return Measurement(count_trainable(model), macs, sum(by_op.values()), unsupported, dict(sorted(by_op.items())))


def measure_config(
    spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None, strict: bool = False
) -> Measurement:
    """Build `StaticNetwork(spec, config, exits)` on the CPU and measure it at `config.resolution`.

    `exits=None` is the deployable single-exit network of `config.exit`; a tuple builds a multi-exit one.
    """
    return measure_network(StaticNetwork(spec, config, exits), config.resolution, strict=strict)


def measure_exits(spec: SpaceSpec, config: SubnetConfig, strict: bool = False) -> ExitMeasurements:
    """Measure the single-exit network of every exit up to `config.exit`, and the AEP network with all of them."""
    exits = tuple(x for x in spec.exits() if x <= config.exit)
    exits = resolve_exits(spec, config, exits)
    single = {x: measure_config(spec, config, (x,), strict=strict) for x in exits}
    aep = single[exits[0]] if len(exits) == 1 else measure_config(spec, config, exits, strict=strict)
    return ExitMeasurements(exits, single, aep)


__all__ = [
    "ELEMENTWISE_OPS",
    "FREE_OPS",
    "HEADLINE_CATEGORIES",
    "ExitMeasurements",
    "Measurement",
    "UncountedOpError",
    "count_trainable",
    "measure_config",
    "measure_exits",
    "measure_network",
]
