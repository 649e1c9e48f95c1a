"""Fast top-1 evaluation of static sub-networks, the call the search makes thousands of times.

On CPU the sub-network is exported in memory to ONNX (the legacy TorchScript-based exporter: ~0.4 s) and
run in onnxruntime, whose fused convolutions are several times faster than eager PyTorch on small
images. Inputs are normalised and resized once per resolution and reused for every sub-network. On CUDA
(or with backend="eager") the network runs eagerly at the run's precision (`factory.training.device`), with
the prepared inputs kept on the device and the top-1 counted there: one host sync per network, not one
copy per batch.
"""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn

from factory.data import Split, model_inputs
from factory.training.device import autocast

BACKENDS = ("auto", "onnxruntime", "eager")


def _as_list(output: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    return list(output) if isinstance(output, (list, tuple)) else [output]


def onnx_session(model: nn.Module, example: torch.Tensor, threads: int = 0):
    """An onnxruntime session of `model` exported in memory with a dynamic batch axis."""
    from factory.runtime import make_session

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            input_names=["image"],
            dynamic_axes={"image": {0: "batch"}},
            opset_version=17,
        )
    return make_session(buffer.getvalue(), threads or torch.get_num_threads())


class Evaluator:
    """Top-1 of static networks on one split; prepared inputs are cached per resolution."""

    def __init__(
        self,
        split: Split,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        batch_size: int = 500,
        backend: str = "auto",
        device: torch.device | str = "cpu",
        threads: int = 0,
        precision: str = "fp32",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown evaluator backend {backend!r}; choose one of {BACKENDS}")
        self.split = split
        self.mean, self.std = mean, std
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.backend = ("eager" if self.device.type == "cuda" else "onnxruntime") if backend == "auto" else backend
        self.threads = threads
        self.precision = precision
        self._inputs: dict[int, torch.Tensor] = {}
        self.labels = split.labels
        # Where the prepared inputs live: the device for eager runs, host memory for onnxruntime.
        self.home = self.device if self.backend == "eager" else torch.device("cpu")

    def inputs(self, resolution: int) -> torch.Tensor:
        """The whole split normalised and resized to `resolution` (computed once)."""
        if resolution not in self._inputs:
            chunks = []
            for start in range(0, len(self.labels), 1000):
                images = self.split.images[start : start + 1000].to(self.home)
                chunks.append(model_inputs(images, self.mean, self.std, resolution))
            self._inputs[resolution] = torch.cat(chunks).contiguous()
        return self._inputs[resolution]

    @torch.no_grad()
    def logits(self, model: nn.Module, resolution: int) -> list[torch.Tensor]:
        """Logits of every output of `model` (one per exit) over the whole split, on the CPU."""
        return [out.cpu() for out in self._outputs(model, resolution)]

    def top1(self, model: nn.Module, resolution: int) -> list[float]:
        """Top-1 accuracy (fraction) of every output of `model`, counted where the logits are."""
        labels = self.labels.to(self.home)
        return [top1(out, labels) for out in self._outputs(model, resolution)]

    @torch.no_grad()
    def _outputs(self, model: nn.Module, resolution: int) -> list[torch.Tensor]:
        """Every output's logits over the split: on the device for eager runs, in host memory for onnxruntime."""
        model.eval()
        inputs = self.inputs(resolution)
        outputs: list[list[torch.Tensor]] = []
        if self.backend == "onnxruntime":
            session = onnx_session(model, inputs[:2], self.threads)
            array = inputs.numpy()
            for start in range(0, len(array), self.batch_size):
                batch = array[start : start + self.batch_size]
                outputs.append([torch.from_numpy(o) for o in session.run(None, {"image": batch})])
        else:
            for start in range(0, len(inputs), self.batch_size):
                with autocast(self.device, self.precision):
                    outputs.append([o.float() for o in _as_list(model(inputs[start : start + self.batch_size]))])
        return [torch.cat(parts) for parts in zip(*outputs, strict=True)]


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose argmax equals the label."""
    return float((logits.argmax(1) == labels).float().mean().item()) if len(labels) else 0.0
