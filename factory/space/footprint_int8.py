"""Flash and RAM of a sub-network's deployed INT8 graph, from its config, exactly as `factory.graphs.memory` measures
the QDQ file that `factory.graphs.int8` writes.

The search needs the figures of the precision the build delivers: an INT8 pick stores about a third of the
FP32 weights, so FP32 figures would leave two thirds of a flash budget unused. onnxruntime's static QDQ
quantizer turns the FP32 graph (`factory.space.footprint`) into one that is regular enough to replay:
- every activation, the input image included, becomes one int8 tensor (a QuantizeLinear / DequantizeLinear
  pair) with a float32 scale and an 8-bit zero point; MaxPool and Flatten reuse their input's pair;
- a ReLU after a quantized op disappears into it (its clamp is the uint8 range), unless the activations are
  symmetric int8; HardSwish becomes HardSigmoid then Mul, each quantized;
- a conv or Gemm weight is int8 with a float32 scale and an int8 zero point per output channel (one of each
  per tensor without `per_channel`), its bias int32 with a float32 scale and an int32 zero point per channel;
- a BatchNormalization that no conv absorbed keeps its mean and variance in float32, its scale int8 and its
  bias int32 with one scale and zero point each (onnxruntime's per-channel axis does not fit rank 1);
- an AEP ensemble's weights (Constant nodes in FP32) become uint8 initializers with a scale and a zero point,
  one per distinct value.
The QDQ file's nodes are written in the FP32 graph's order (`factory.graphs.graph_order`), so the peak is taken over
the same schedule; the float input image lives until its QuantizeLinear has run. `benchmarks.memory --int8`
checks both figures against quantized exports of random sub-networks of every kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.footprint import _Graph, _graph, _Node, _peak, footprint

FLOAT_BYTES = 4
INT32_BYTES = 4
QPARAM_BYTES = FLOAT_BYTES + 1  # a float32 scale and an 8-bit zero point
SHARED_QPARAMS = ("maxpool", "flatten")  # onnxruntime reuses the input's scale and zero point


@dataclasses.dataclass(frozen=True)
class Int8Layout:
    """The quantizer's choices that change the file's bytes (export.int8 in a recipe)."""

    per_channel: bool = True
    symmetric_activations: bool = False


def qdq_graph(g: _Graph, layout: Int8Layout) -> tuple[_Graph, list[int]]:
    """The nodes of FP32 graph `g` as the QDQ graph runs them, and each tensor's bytes per element."""
    out = _Graph(sizes=list(g.sizes))
    image = out.tensor(g.sizes[0])
    out.nodes.append(_Node("quantize", (0,), image))
    consumers: dict[int, int] = {}
    for node in g.nodes:
        for tensor in node.inputs:
            consumers[tensor] = consumers.get(tensor, 0) + 1
    producer: dict[int, _Node] = {}
    for node in g.nodes:
        inputs = tuple(image if t == 0 else t for t in node.inputs)
        source = producer.get(inputs[0])
        if node.op == "relu" and not layout.symmetric_activations and source and consumers[node.inputs[0]] == 1:
            source.out = node.out  # the producer writes the ReLU's (clamped) output itself
            producer[node.out] = source
            continue
        if node.op == "hswish":
            gate = out.tensor(g.sizes[node.out])
            out.nodes.append(_Node("hsigmoid", inputs, gate))
            made = _Node("mul", (inputs[0], gate), node.out)
        else:
            made = dataclasses.replace(node, inputs=inputs)
        out.nodes.append(made)
        producer[made.out] = made
    itemsize = [1] * len(out.sizes)
    itemsize[0] = FLOAT_BYTES  # the float image the application hands over
    return out, itemsize


def _node_bytes(node: _Node, per_channel: bool) -> int:
    """Initializer bytes one node of the QDQ graph adds (its weights and their quantization parameters)."""
    if node.op == "conv":
        weights = node.weights - (node.channels if node.bias else 0)
        scales = node.channels if per_channel else 1
        total = weights + QPARAM_BYTES * scales
        if node.bias:
            total += INT32_BYTES * node.channels + (FLOAT_BYTES + INT32_BYTES) * scales
        return total
    if node.op == "bn":  # int8 scale, int32 bias, float32 mean and variance; one scale and zero point each
        return node.channels * (1 + INT32_BYTES + 2 * FLOAT_BYTES) + QPARAM_BYTES + FLOAT_BYTES + INT32_BYTES
    return 0


def int8_footprint(
    spec: SpaceSpec,
    config: SubnetConfig,
    exits: tuple[int, ...] | None = None,
    layout: Int8Layout = Int8Layout(),
    betas: Sequence[float] | None = None,
) -> tuple[int, int]:
    """(flash_bytes, ram_bytes) of the INT8 QDQ graph of `config` with `exits` (one exit, or the AEP ensemble
    of several weighted by `betas`; equal weights share one initializer, as onnxruntime merges them)."""
    g, itemsize = qdq_graph(_graph(spec, config, exits), layout)
    flash = sum(_node_bytes(node, layout.per_channel) for node in g.nodes)
    activations = sum(node.op not in SHARED_QPARAMS for node in g.nodes)  # the image's Quantize included
    flash += QPARAM_BYTES * activations
    scaled = sum(node.op == "beta" for node in g.nodes)
    if scaled:
        distinct = len({float(b) for b in betas}) if betas is not None else scaled
        flash += distinct * (1 + QPARAM_BYTES)  # a uint8 value with its scale and zero point
    return flash, _peak(g, itemsize)


def delivered_footprint(
    spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None, int8: Int8Layout | None = None
) -> tuple[int, int]:
    """(flash_bytes, ram_bytes) of the graph a build delivers: INT8 with `int8`'s layout, else FP32."""
    return footprint(spec, config, exits) if int8 is None else int8_footprint(spec, config, exits, int8)


__all__ = ["Int8Layout", "delivered_footprint", "int8_footprint", "qdq_graph"]
