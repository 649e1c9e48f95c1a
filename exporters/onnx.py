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
from factory.latency.onnxruntime_runner import make_session
from factory.nn import StaticNetwork

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
    half: bool = False,
) -> Path:
    """Export `module` in eval mode to `path`, check it with onnx.checker, write atomically.

    float32 on CPU by default; `half` traces an FP16 graph on CUDA (TensorRT 11's strongly typed FP16).
    """
    import onnx

    device, dtype = ("cuda", torch.float16) if half else ("cpu", torch.float32)
    module = module.eval().to(device=device, dtype=dtype)
    example = torch.zeros(2 if dynamic_batch else 1, 3, resolution, resolution, device=device, dtype=dtype)
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
    `strict` a failure raises ParityError (an export that fails parity must never be shipped silently).
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
        worst = max(worst, float(np.abs(expected - got).max()))
        agree += int((expected.argmax(1) == got.argmax(1)).sum())
    parity = Parity(len(inputs), worst, agree / len(inputs), atol)
    if strict and not parity.passed:
        raise ParityError(
            f"{path}: onnxruntime differs from PyTorch (max abs diff {worst:.3g} > {atol:g} or top-1 agreement "
            f"{parity.top1_agreement:.4f} < 1 over {len(inputs)} images); the export is not trustworthy, "
            "report it with this file"
        )
    return parity
