"""ONNX export of static networks: one graph per exit, the AEP ensemble graph, checker and parity.

Every graph has one input `image` (N x 3 x R x R float32, RGB scaled to [0, 1], minus the dataset mean,
over its std, resized to the pick's resolution R) and one output `logits` (N x classes), with a dynamic
batch axis. The TorchScript-based exporter is used: it takes ~0.3 s a graph against several seconds for the
dynamo exporter, and the networks have no data-dependent control flow, which is what dynamo adds.
The metadata of each file records the exit, resolution and normalisation, so a device needs nothing else.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from factory.errors import FactoryError
from factory.io import write_bytes_atomic
from factory.nn import StaticNetwork
from factory.runtime import make_session
from factory.training.aep import aep_weights

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class ParityError(FactoryError):
    """The exported graph does not compute what the PyTorch network computes."""


class EnsembleNetwork(nn.Module):
    """AEP ensemble of a multi-exit network: sum_i beta_i * logits_i, one `logits` output."""

    def __init__(self, network: StaticNetwork, beta: Sequence[float]) -> None:
        super().__init__()
        if len(beta) != len(network.exits):
            raise ValueError(f"{len(beta)} ensemble weights for {len(network.exits)} exits")
        self.network = network
        self.register_buffer("beta", torch.tensor(list(beta), dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.network(x)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        return sum(self.beta[i] * o for i, o in enumerate(outputs))


def exit_network(network: StaticNetwork, exit_: int) -> StaticNetwork:
    """The single-exit network of `exit_`: the shared prefix up to that stage plus its head, same weights."""
    if exit_ not in network.exits:
        raise FactoryError(f"exit {exit_} is not in this network (exits {list(network.exits)})")
    single = StaticNetwork(network.spec, network.config, (exit_,))
    wanted = single.state_dict()
    source = network.state_dict()
    single.load_state_dict({k: source[k] for k in wanted})
    return single.eval()


def export_onnx(
    module: nn.Module,
    path: str | Path,
    resolution: int,
    opset: int = 18,
    dynamic_batch: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Export `module` in eval mode (float32, on the CPU) to `path`, check it with onnx.checker, write atomically.

    The FP16 graph TensorRT 11 builds from is derived from this file by `fp16_graph`.
    """
    import onnx

    module = module.eval().to(device="cpu", dtype=torch.float32)
    example = torch.zeros(2 if dynamic_batch else 1, 3, resolution, resolution)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
            opset_version=opset,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.producer_name = "factory"
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    write_bytes_atomic(path, model.SerializeToString())
    return path


def simplify_onnx(path: str | Path) -> str:
    """Fold constants with onnxslim when it is installed; returns what happened, for the export record."""
    try:
        import onnxslim
    except ImportError:
        return "skipped: onnxslim is not installed (pip install onnxslim)"
    import onnx

    model = onnxslim.slim(onnx.load(str(path)))
    onnx.checker.check_model(model, full_check=True)
    write_bytes_atomic(path, model.SerializeToString())
    return "onnxslim"


FP16_MAX = 65504.0  # the largest finite float16


def fp16_graph(source: str | Path, target: str | Path) -> Path:
    """The FP16 twin of the float32 graph `source`, written to `target`: same interface, FP16 inside.

    Every float32 weight and constant becomes float16 and so does every tensor computed from them, while the
    graph keeps its float32 `image` input and float32 `logits` output: a Cast to float16 follows each float
    input and a Cast to float32 precedes each float output. TensorRT 11 builds its strongly typed FP16 engines
    from this graph, so an engine takes and returns exactly what the ONNX file does. Derived from the checked
    float32 file (weights rounded once, after the exporter folded BatchNorm in float32), it needs no GPU.
    A weight beyond float16's range, or an op whose types cannot be float16, is an error, never a silent change.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    float_ = TensorProto.FLOAT

    def half_tensor(tensor: onnx.TensorProto) -> None:
        if tensor.data_type != float_:
            return
        array = numpy_helper.to_array(tensor)
        finite = array[np.isfinite(array)]
        if finite.size and float(np.abs(finite).max()) > FP16_MAX:
            raise ValueError(
                f"{source}: {tensor.name or 'a constant'} holds {float(np.abs(finite).max()):.3g}, beyond float16's "
                f"range ({FP16_MAX:g}); build this engine in FP32 (export.tensorrt.fp16: false)"
            )
        tensor.CopyFrom(numpy_helper.from_array(array.astype(np.float16), tensor.name))

    for tensor in graph.initializer:
        half_tensor(tensor)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise ValueError(f"{source}: {node.op_type} has a subgraph; the FP16 conversion does not handle it")
            if attribute.type == onnx.AttributeProto.TENSOR:
                half_tensor(attribute.t)
            elif attribute.name in ("to", "dtype") and attribute.type == onnx.AttributeProto.INT:
                if attribute.i == float_:  # Cast(to=float) and typed constant generators
                    attribute.i = TensorProto.FLOAT16
            elif node.op_type == "Constant" and attribute.name in ("value_float", "value_floats"):
                values = [attribute.f] if attribute.name == "value_float" else list(attribute.floats)
                shape = [] if attribute.name == "value_float" else [len(values)]
                tensor = numpy_helper.from_array(np.array(values, dtype=np.float16).reshape(shape))
                attribute.CopyFrom(helper.make_attribute("value", tensor))
    weights = {t.name for t in graph.initializer}
    renamed: dict[str, str] = {}
    first: list[onnx.NodeProto] = []
    for value in graph.input:
        if value.name not in weights and value.type.tensor_type.elem_type == float_:
            renamed[value.name] = f"{value.name}_fp16"
            first.append(helper.make_node("Cast", [value.name], [renamed[value.name]], to=TensorProto.FLOAT16))
    last: list[onnx.NodeProto] = []
    outputs = {v.name for v in graph.output if v.type.tensor_type.elem_type == float_}
    for name in outputs:
        renamed[name] = f"{name}_fp16"
        last.append(helper.make_node("Cast", [renamed[name]], [name], to=float_))
    for node in graph.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        node.output[:] = [renamed[o] if o in outputs else o for o in node.output]
    nodes = first + list(graph.node) + last
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # float32 annotations of inner tensors are stale; the checker infers them again
    onnx.checker.check_model(model, full_check=True)
    target = Path(target)
    write_bytes_atomic(target, model.SerializeToString())
    return target


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata a factory ONNX file carries (exit, resolution, mean, std, ...)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


@dataclass(frozen=True)
class Parity:
    """How closely onnxruntime reproduces PyTorch on real images."""

    images: int
    max_abs_diff: float
    top1_agreement: float
    atol: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.atol and self.top1_agreement == 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "max_abs_diff": self.max_abs_diff,
            "top1_agreement": self.top1_agreement,
            "atol": self.atol,
            "passed": self.passed,
        }


@torch.no_grad()
def check_parity(
    module: nn.Module,
    path: str | Path,
    inputs: torch.Tensor,
    atol: float = 1e-4,
    batch_size: int = 256,
    strict: bool = True,
) -> Parity:
    """Run `inputs` (normalised, N x 3 x R x R) through PyTorch and the ONNX file and compare.

    Passing means max |difference| <= atol over every logit and the same top-1 class for every image; with
    `strict` a failure raises ParityError (an export that fails parity must never be shipped silently). A NaN
    or infinite output on either side is an infinite difference: a NaN compares false with everything, so
    it would otherwise read as a difference of 0.
    """
    if len(inputs) == 0:
        raise FactoryError("the parity check got no images; set export.parity_images >= 1 and keep a validation split")
    module = module.eval().cpu().float()
    session = make_session(path)
    worst, agree = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size].contiguous()
        expected = module(batch).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]
        finite = bool(np.isfinite(expected).all() and np.isfinite(got).all())
        worst = max(worst, float(np.abs(expected - got).max()) if finite else math.inf)
        agree += int((expected.argmax(1) == got.argmax(1)).sum())
    parity = Parity(len(inputs), worst, agree / len(inputs), atol)
    if strict and not parity.passed:
        diff = "NaN or infinite outputs" if math.isinf(worst) else f"max abs diff {worst:.3g} > {atol:g}"
        raise ParityError(
            f"{path}: onnxruntime differs from PyTorch ({diff} or top-1 agreement "
            f"{parity.top1_agreement:.4f} < 1 over {len(inputs)} images); the export is not trustworthy, "
            "report it with this file"
        )
    return parity


def deployment_graphs(network: StaticNetwork) -> dict[str, torch.nn.Module]:
    """Name -> module to export: `exit<k>` for every exit of `network`, plus `ensemble` for several exits."""
    graphs: dict[str, torch.nn.Module] = {f"exit{k}": exit_network(network, k) for k in network.exits}
    if len(network.exits) > 1:
        graphs["ensemble"] = EnsembleNetwork(network, aep_weights("unif", len(network.exits))[1]).eval()
    return graphs


def graph_metadata(
    network: StaticNetwork, name: str, mean: tuple[float, ...], std: tuple[float, ...], classes: list[str]
) -> dict[str, Any]:
    """What a device needs to feed the graph: exit, resolution, normalisation, class names."""
    config = network.config
    return {
        "factory_graph": name,
        "exits": list(network.exits) if name == "ensemble" else [int(name.removeprefix("exit"))],
        "resolution": config.resolution,
        "input": f"image: N x 3 x {config.resolution} x {config.resolution} float32, RGB / 255, minus mean, over std",
        "mean": list(mean),
        "std": list(std),
        "classes": classes,
        "kind": network.spec.kind,
        "config": config.to_dict(),
    }
