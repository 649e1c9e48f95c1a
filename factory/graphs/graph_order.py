"""Write a quantized graph's nodes in the order of the FP32 graph it came from.

A graph's node order is the schedule a simple runtime follows, so it decides the peak RAM
(`factory.graphs.memory`). onnxruntime's quantizer re-sorts the nodes on its way (its optimizer saves them in its own
topological order), which would make the INT8 file's schedule differ from the FP32 file's, and from the
forward order the search's analytic figures replay. This puts every compute node back at its FP32 position
(by the name of the tensor it makes; a node the quantizer made, such as HardSwish's HardSigmoid, just before
the node it feeds), each QuantizeLinear / DequantizeLinear right after the node whose output it converts, and
the weights' DequantizeLinear first. The order stays topological: ties and conflicts fall back on the
dependencies.
"""

from __future__ import annotations

import heapq
from typing import Any

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def order_like(model: Any, source: Any) -> Any:
    """`model` (a QDQ ModelProto) with its nodes re-sorted in place to follow `source` (the FP32 ModelProto)."""
    position = {name: i for i, node in enumerate(source.graph.node) for name in node.output}
    nodes = list(model.graph.node)
    producer = {name: k for k, node in enumerate(nodes) for name in node.output}
    consumers: dict[str, list[int]] = {}
    for k, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(k)
    keys: dict[int, tuple[float, int]] = {}

    def downstream(k: int, seen: frozenset[int] = frozenset()) -> float:
        """The FP32 position of the first compute node fed, through Q/DQ pairs, by node k's outputs."""
        found = []
        for name in nodes[k].output:
            for c in consumers.get(name, []):
                if c in seen:
                    continue
                if nodes[c].op_type in QDQ_OPS or not any(o in position for o in nodes[c].output):
                    found.append(downstream(c, seen | {k}))
                else:
                    found.append(min(position[o] for o in nodes[c].output if o in position))
        return min(found, default=float(len(position)))

    def key(k: int) -> tuple[float, int]:
        if k in keys:
            return keys[k]
        node = nodes[k]
        hits = [position[name] for name in node.output if name in position]
        if hits:
            result = (float(min(hits)), 0)
        elif node.op_type in QDQ_OPS:
            source_node = producer.get(node.input[0])
            if source_node is None:  # a weight's (first) or the graph input's (before the first node) conversion
                is_input = any(value.name == node.input[0] for value in model.graph.input)
                result = (-1.0, 1 + (node.op_type == "DequantizeLinear")) if is_input else (-2.0, 0)
            else:
                base, step = key(source_node)
                result = (base, step + 1)
        else:
            result = (downstream(k) - 0.5, 0)
        keys[k] = result
        return result

    waiting = {k: sum(1 for name in node.input if name in producer) for k, node in enumerate(nodes)}
    ready = [(key(k), k) for k, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(nodes[k])
        for name in nodes[k].output:
            for c in consumers.get(name, []):
                waiting[c] -= 1
                if waiting[c] == 0:
                    heapq.heappush(ready, (key(c), c))
    if len(order) != len(nodes):
        raise ValueError("the quantized graph has a cycle; cannot order it")
    del model.graph.node[:]
    model.graph.node.extend(order)
    return model
