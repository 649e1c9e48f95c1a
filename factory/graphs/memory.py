"""What a deployed ONNX graph asks of a device's memory: flash for its weights, RAM for its activations.

flash: the bytes of the graph's initializers (weights, biases, and in INT8 graphs their scales and zero
    points), in the precision the file stores them.
RAM: the peak activation memory of one image (batch 1), under the model a simple arena planner needs: the
    nodes run in the graph's order; a tensor is alive from the node that makes it (the graph's input: from
    the start) until its last consumer has run (a graph output: until the end), with no in-place reuse; the
    peak is the largest total size of tensors alive at once while a node runs (its inputs and outputs
    included). In a QDQ (INT8) graph an activation's QuantizeLinear / DequantizeLinear pair is the one int8
    tensor the fused kernels exchange: the float tensors around it are not counted (the float input the
    application hands over still is), and a DequantizeLinear of a weight is part of the weight (flash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _load(model: Any) -> Any:
    import onnx

    return onnx.load(str(model)) if isinstance(model, (str, Path)) else model


def weight_bytes(model: Any) -> int:
    """Bytes of the graph's initializers (a path or a loaded ModelProto): the flash a device needs."""
    import onnx

    return sum(onnx.numpy_helper.to_array(t).nbytes for t in _load(model).graph.initializer)


def _shapes_at_batch_one(model: Any) -> dict[str, tuple[int, np.dtype]]:
    """Element count and dtype of every tensor of `model` with its first input dimension set to 1."""
    import onnx
    from onnx import helper, shape_inference

    model = onnx.ModelProto.FromString(model.SerializeToString())
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name not in initializers and value.type.tensor_type.shape.dim:
            dim = value.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_value = 1
    del model.graph.value_info[:]
    for value in model.graph.output:
        value.type.tensor_type.ClearField("shape")
    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    out: dict[str, tuple[int, np.dtype]] = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if any(d is None for d in dims):
            continue
        out[value.name] = (int(np.prod(dims, dtype=np.int64)), helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    return out


def peak_ram_bytes(model: Any) -> int:
    """Peak activation bytes of one image through `model` (a path or a loaded ModelProto), as described above."""
    model = _load(model)
    graph = model.graph
    sizes = _shapes_at_batch_one(model)
    static = {t.name for t in graph.initializer}
    alias: dict[str, str] = {}  # a tensor -> the tensor whose memory it is (QDQ pairs, constants)

    def root(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            if name:
                consumers.setdefault(name, []).append(i)
    for node in graph.node:
        if node.op_type == "Constant" or (node.op_type == "Identity" and node.input[0] in static):
            static.update(node.output)  # a constant, or an alias of a weight (the exporter shares equal ones)
        elif node.op_type == "DequantizeLinear" and (node.input[0] in static or root(node.input[0]) in static):
            static.update(node.output)  # a weight's dequantization: flash
        elif node.op_type == "DequantizeLinear":
            alias[node.output[0]] = node.input[0]  # the int8 activation is what the fused kernel reads
    inputs = {value.name for value in graph.input}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in static | inputs:
            source = node.input[0]
            if all(graph.node[c].op_type == "QuantizeLinear" for c in consumers.get(source, [])):
                alias[source] = node.output[0]  # made directly in int8 by the fused producer

    last = len(graph.node) - 1
    start: dict[str, int] = {}
    end: dict[str, int] = {}

    def touch(name: str, index: int) -> None:
        if not name or name in static or root(name) in static:
            return
        key = root(name)
        start[key] = min(start.get(key, index), index)
        end[key] = max(end.get(key, index), index)

    for value in graph.input:
        if value.name not in static:
            touch(value.name, 0)
    for i, node in enumerate(graph.node):
        for name in [*node.input, *node.output]:
            touch(name, i)
    for value in graph.output:
        touch(value.name, last)
    missing = [name for name in start if name not in sizes]
    if missing:
        raise ValueError(f"no static shape for {missing[0]} at batch 1; cannot count the graph's RAM")
    bytes_of = {name: sizes[name][0] * np.dtype(sizes[name][1]).itemsize for name in start}
    delta = np.zeros(len(graph.node) + 1, dtype=np.int64)
    for name, size in bytes_of.items():
        delta[start[name]] += size
        delta[end[name] + 1] -= size
    return int(np.cumsum(delta)[:-1].max()) if len(graph.node) else sum(bytes_of.values())
