"""Flash and RAM of ONNX graphs, on tiny hand-built graphs whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from factory.graphs.memory import peak_ram_bytes, weight_bytes


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


def _float(name, *dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def test_a_skip_keeps_its_tensor_alive_until_the_add():
    # X -> Relu -> A -> Relu -> B; Y = A + B. While the Add runs, A, B and Y are alive: 3 x 8 floats.
    model = _model(
        [
            helper.make_node("Relu", ["X"], ["A"]),
            helper.make_node("Relu", ["A"], ["B"]),
            helper.make_node("Add", ["A", "B"], ["Y"]),
        ],
        [_float("X", "batch", 8)],
        [_float("Y", "batch", 8)],
    )
    assert peak_ram_bytes(model) == 3 * 8 * 4
    assert weight_bytes(model) == 0


def test_the_input_counts_and_weights_are_flash():
    # Y = X @ W with W 8x16: RAM = X (8 floats) + Y (16 floats) while the MatMul runs; flash = W.
    w = numpy_helper.from_array(np.ones((8, 16), np.float32), "W")
    model = _model(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])], [_float("X", "batch", 8)], [_float("Y", "batch", 16)], [w]
    )
    assert peak_ram_bytes(model) == (8 + 16) * 4
    assert weight_bytes(model) == 8 * 16 * 4


def test_a_tensor_is_freed_after_its_last_consumer():
    # X -> Relu -> A -> Relu -> B -> Relu -> C (1,000 floats each): never more than two alive at once.
    model = _model(
        [
            helper.make_node("Relu", ["X"], ["A"]),
            helper.make_node("Relu", ["A"], ["B"]),
            helper.make_node("Relu", ["B"], ["C"]),
        ],
        [_float("X", 1, 1000)],
        [_float("C", 1, 1000)],
    )
    assert peak_ram_bytes(model) == 2 * 1000 * 4


def test_qdq_activations_count_as_int8_and_weight_dequantization_as_flash():
    # X (float input, 8) -> Q -> Xq (int8) -> DQ -> Xf; Wq (int8 8x8) -> DQ -> Wf; Y = Xf @ Wf (float, 8).
    # RAM: while Q runs X (32) + Xq (8); while the MatMul runs Xq (8) + Y (32): peak 40 bytes.
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    wq = numpy_helper.from_array(np.ones((8, 8), np.int8), "Wq")
    model = _model(
        [
            helper.make_node("QuantizeLinear", ["X", "s", "z"], ["Xq"]),
            helper.make_node("DequantizeLinear", ["Xq", "s", "z"], ["Xf"]),
            helper.make_node("DequantizeLinear", ["Wq", "s", "z"], ["Wf"]),
            helper.make_node("MatMul", ["Xf", "Wf"], ["Y"]),
        ],
        [_float("X", "batch", 8)],
        [_float("Y", "batch", 8)],
        [scale, zero, wq],
    )
    assert peak_ram_bytes(model) == 32 + 8
    assert weight_bytes(model) == 4 + 1 + 64


def test_a_tensor_without_a_static_shape_is_an_error():
    model = _model([helper.make_node("Relu", ["X"], ["A"])], [_float("X", "batch", "n")], [_float("A", "batch", "n")])
    with pytest.raises(ValueError, match="static shape"):
        peak_ram_bytes(model)
