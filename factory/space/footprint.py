"""Flash and RAM of a sub-network's deployed FP32 graph, computed from its config without building anything.

The search needs these figures thousands of times, so like `counting` it walks the sub-network's plan
(`factory.space.plan`, the structure the static network is built from) instead of exporting. It replays the
exported ONNX graph's nodes in the order the exporter writes them (the order of each module's forward), with
each tensor's element count at batch 1, and applies `factory.graphs.memory`'s model:
- flash: the graph's initializers. The exporter folds every BatchNorm that follows a conv into that conv's
  weight and a bias, so a conv+BN costs its weights plus one bias per channel; a BatchNorm with no conv
  of its own (a parallel level's transformation branch on unchanged channels) stays a BatchNormalization
  node with its four per-channel vectors, unless its input is a conv output nothing else reads, into
  which the exporter folds it too.
- RAM: the peak total of tensors alive at once (from the node that makes one to its last consumer; the
  input from the start, the output to the end), without in-place reuse.
`benchmarks.memory` checks both against the exported graphs of random sub-networks of every kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from factory.space.config import SpaceSpec, SubnetConfig
from factory.space.plan import HeadPlan, LevelPlan, MBConvPlan, StagePlan, plan_network
from factory.space.shapes import conv_out

FLOAT_BYTES = 4


@dataclass
class _Node:
    """One graph node: its op family, the tensors it reads and makes, its initializer elements and MACs."""

    op: str  # conv (dense, grouped, or the classifier), bn, add, relu, hswish, hsigmoid, maxpool, flatten, beta, other
    inputs: tuple[int, ...]
    out: int
    weights: int = 0
    macs: int = 0
    depthwise: bool = False
    channels: int = 0  # a conv's output channels (per-channel INT8 scales)
    bias: bool = False  # a conv with a bias (BatchNorm folded into it, or the classifier)


@dataclass
class _Graph:
    """Nodes in execution order and the element count of every tensor (at batch 1)."""

    sizes: list[int] = field(default_factory=list)
    nodes: list[_Node] = field(default_factory=list)

    def tensor(self, elements: int) -> int:
        self.sizes.append(elements)
        return len(self.sizes) - 1

    def node(self, inputs: tuple[int, ...], elements: int, weights: int = 0, op: str = "other", **extra: Any) -> int:
        """A node reading `inputs` and making one tensor of `elements`; its initializers hold `weights`."""
        out = self.tensor(elements)
        self.nodes.append(_Node(op, inputs, out, weights, **extra))
        return out

    def fold_batchnorms(self) -> None:
        """The exporter's eval peephole: a BatchNorm whose input is a conv output read by nothing else merges
        into that conv (which already has a bias), so the node, its weights and the conv's output disappear."""
        consumers: dict[int, int] = {}
        for node in self.nodes:
            for tensor in node.inputs:
                consumers[tensor] = consumers.get(tensor, 0) + 1
        producer = {node.out: node for node in self.nodes}
        kept = []
        for node in self.nodes:
            source = producer.get(node.inputs[0]) if node.op == "bn" else None
            if source is not None and source.op == "conv" and consumers[node.inputs[0]] == 1:
                source.out = node.out
            else:
                kept.append(node)
        self.nodes = kept

    @property
    def weights(self) -> int:
        return sum(node.weights for node in self.nodes)


@dataclass(frozen=True)
class _Map:
    """A feature map: its tensor id, channels and side."""

    tensor: int
    channels: int
    size: int


def _conv(g: _Graph, x: _Map, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True) -> _Map:
    """A conv whose BatchNorm was folded into it (bias=True), or a plain bias-free conv."""
    size = conv_out(x.size, kernel, stride)
    weights = x.channels // groups * cout * kernel * kernel + (cout if bias else 0)
    macs = x.channels // groups * cout * kernel * kernel * size * size
    out = g.node(
        (x.tensor,), cout * size * size, weights, op="conv", macs=macs, depthwise=groups > 1, channels=cout, bias=bias
    )
    return _Map(out, cout, size)


def _unary(g: _Graph, x: _Map, op: str = "other") -> _Map:
    """An elementwise node (an activation, a constant's scale, a flatten) of the same size as its input."""
    return _Map(g.node((x.tensor,), x.channels * x.size * x.size, op=op), x.channels, x.size)


def _batchnorm(g: _Graph, x: _Map) -> _Map:
    """A BatchNormalization node (scale, bias, mean, variance per channel), unless `fold_batchnorms` merges it."""
    elements, channels = x.channels * x.size * x.size, x.channels
    return _Map(g.node((x.tensor,), elements, 4 * channels, op="bn", channels=channels), channels, x.size)


def _add(g: _Graph, a: _Map, b: _Map) -> _Map:
    return _Map(g.node((a.tensor, b.tensor), a.channels * a.size * a.size, op="add"), a.channels, a.size)


def _mbconv(g: _Graph, x: _Map, p: MBConvPlan) -> _Map:
    mid = p.mid
    h = x if p.expand == 1 else _unary(g, _conv(g, x, mid, 1), p.act)  # expand conv + act
    h = _unary(g, _conv(g, h, mid, p.kernel, p.stride, groups=mid), p.act)  # depthwise + act
    if p.se:
        pooled = _Map(g.node((h.tensor,), mid), mid, 1)  # GlobalAveragePool
        s = _unary(g, _conv(g, pooled, p.reduced, 1), "relu")  # reduce + ReLU
        s = _unary(g, _conv(g, s, mid, 1), "hsigmoid")  # expand + HardSigmoid
        h = _Map(g.node((h.tensor, s.tensor), mid * h.size * h.size), mid, h.size)  # Mul
    h = _conv(g, h, p.cout, 1)
    return _add(g, h, x) if p.residual else h


def _level(g: _Graph, level: LevelPlan, x: _Map) -> _Map:
    """The level's branches in the order the network sums them (a level without parallel branches is its MBConv)."""
    out = None if level.mbconv is None else _mbconv(g, x, level.mbconv)
    if level.conv:
        branch = _unary(g, _conv(g, x, level.cout, 1, level.stride), level.act)
        out = branch if out is None else _add(g, out, branch)
    if level.transform:
        h = x
        if level.stride > 1:
            size = conv_out(x.size, 3, level.stride, 1)  # MaxPool 3x3, pad 1
            h = _Map(g.node((x.tensor,), x.channels * size * size, op="maxpool"), x.channels, size)
        h = _unary(g, _conv(g, h, level.cout, 1) if level.cin != level.cout else _batchnorm(g, h), level.act)
        out = h if out is None else _add(g, out, h)
    assert out is not None, "a level runs at least one branch"
    return out


def _stage(g: _Graph, stage: StagePlan, x: _Map) -> _Map:
    """`factory.nn.stage.stage_forward`, node for node: each block's dense additions, the block, then the tail's."""
    ys: list[_Map] = []
    for step in stage.blocks:
        for index in step.skips:
            x = _add(g, x, ys[index])
        x = _level(g, step.level, x)
        ys.append(x)
    out = ys[-1]
    for index in stage.tail:
        out = _add(g, out, ys[index])
    return out


def _head(g: _Graph, head: HeadPlan, x: _Map) -> _Map:
    h = _unary(g, _conv(g, x, head.mid, 1), "hswish")  # expand + BN folded + HardSwish
    h = _Map(g.node((h.tensor,), head.mid), head.mid, 1)  # GlobalAveragePool
    h = _unary(g, _conv(g, h, head.features, 1, bias=False), "hswish")  # features + HardSwish
    h = _unary(g, h, "flatten")
    n, weights = head.classes, head.features * head.classes + head.classes
    return _Map(g.node((h.tensor,), n, weights, op="conv", macs=weights - n, channels=n, bias=True), 1, 1)


def _graph(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> _Graph:
    """The network of `config` with `exits` as exported: one exit's network, or the AEP ensemble of several
    (sum_i beta_i * logits_i; the betas are Constant nodes, not initializers)."""
    plan = plan_network(spec, config, exits)
    g = _Graph()
    x = _Map(g.tensor(3 * plan.resolution**2), 3, plan.resolution)
    stem = plan.stem
    x = _unary(g, _conv(g, x, stem.cout, stem.kernel, stem.stride), stem.act)  # stem + BN folded + act
    x = _mbconv(g, x, plan.first)
    logits = []
    for stage in plan.stages:
        x = _stage(g, stage, x)
        if stage.head is not None:
            logits.append(_head(g, stage.head, x))
    if len(logits) > 1:
        total = _unary(g, logits[0], "beta")  # beta_1 * logits_1
        for head in logits[1:]:
            total = _add(g, total, _unary(g, head, "beta"))
    g.fold_batchnorms()
    return g


def _peak(g: _Graph, itemsize: list[int] | None = None) -> int:
    """The largest total size alive while a node runs (see the module docstring): elements, or bytes when
    `itemsize` gives each tensor's bytes per element."""
    last = len(g.nodes) - 1
    start = {0: 0}
    end = {0: 0}
    for index, node in enumerate(g.nodes):
        for tensor in (*node.inputs, node.out):
            start.setdefault(tensor, index)
            end[tensor] = index
    end[g.nodes[-1].out] = last  # the graph's output lives to the end
    delta = np.zeros(len(g.nodes) + 1, dtype=np.int64)
    for tensor, first in start.items():
        size = g.sizes[tensor] * (itemsize[tensor] if itemsize else 1)
        delta[first] += size
        delta[end[tensor] + 1] -= size
    return int(np.cumsum(delta)[:-1].max())


def flash_bytes(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> int:
    """Initializer bytes of the exported FP32 graph of `config` with `exits` (default: its own exit alone, the
    deployable network; several: their AEP ensemble), BatchNorm folded as the exporter does."""
    return _graph(spec, config, exits).weights * FLOAT_BYTES


def ram_bytes(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> int:
    """Peak activation bytes of one image through that exported FP32 graph (factory.graphs.memory's model)."""
    return _peak(_graph(spec, config, exits)) * FLOAT_BYTES


def footprint(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> tuple[int, int]:
    """(flash_bytes, ram_bytes) from one walk of the graph: the search asks for both at once."""
    g = _graph(spec, config, exits)
    return g.weights * FLOAT_BYTES, _peak(g) * FLOAT_BYTES


def graph_features(spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...] | None = None) -> dict[str, float]:
    """What a CPU's batch-1 latency follows, from the deployable graph without building it: the node count
    (each op pays a dispatch), dense and depthwise conv MACs (different arithmetic intensity), the activation
    elements every node reads and writes (memory traffic), the weights, and the peak activation memory."""
    g = _graph(spec, config, exits)
    traffic = sum(g.sizes[node.out] + sum(g.sizes[t] for t in node.inputs) for node in g.nodes)
    return {
        "nodes": float(len(g.nodes)),
        "convs": float(sum(node.op == "conv" for node in g.nodes)),
        "dense_macs": float(sum(node.macs for node in g.nodes if not node.depthwise)),
        "depthwise_macs": float(sum(node.macs for node in g.nodes if node.depthwise)),
        "traffic": float(traffic),
        "weights": float(g.weights),
        "peak": float(_peak(g)),
    }


__all__ = ["flash_bytes", "footprint", "graph_features", "ram_bytes"]
