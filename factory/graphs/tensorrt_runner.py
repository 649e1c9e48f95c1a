"""TensorRT engine runner (TensorRT 10+ tensor API), buffers held as CUDA tensors from PyTorch.

The precision a bench record states is the engine's build precision, read from the record `factory export`
writes beside it (`<engine>.json`), not the dtype of its input: every engine the factory builds takes float32
`image` and returns float32 `logits`, FP16 or not inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.graphs.tensorrt import build_precision


def engine_record(path: str | Path) -> dict[str, Any] | None:
    """The record written beside an engine (`<engine>.json`), or None when it is missing or unreadable."""
    import json

    path = Path(path)
    try:
        return json.loads(path.with_name(path.name + ".json").read_text())
    except (OSError, ValueError):
        return None


class TensorRTRunner:
    """Deserialises an engine built by `factory export` and runs it on its own CUDA stream."""

    runtime = "tensorrt"

    def __init__(self, path: str | Path, threads: int = 0, device: str = "cuda") -> None:
        import tensorrt as trt
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("TensorRT needs a CUDA device and none is visible")
        self.trt, self.torch = trt, torch
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{path} is not an engine for this TensorRT / GPU; rebuild it with `factory export`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.input_shape = list(self.engine.get_tensor_shape(self.inputs[0]))
        self.record = engine_record(path)
        self.stream = torch.cuda.Stream()

    def _dtype(self, name: str):
        return {
            self.trt.float32: self.torch.float32,
            self.trt.float16: self.torch.float16,
            self.trt.int32: self.torch.int32,
        }[self.engine.get_tensor_dtype(name)]

    def io_types(self) -> dict[str, tuple[str, str]]:
        """Every input and output tensor: name -> ("input" | "output", dtype such as "float32")."""
        found = {}
        for name in self.inputs + self.outputs:
            dtype = str(self._dtype(name)).removeprefix("torch.")
            found[name] = ("input" if name in self.inputs else "output", dtype)
        return found

    def _bind(self, x) -> list:
        """Bind input `x` (a CUDA tensor of the engine's input dtype) and fresh output buffers; returns them all."""
        torch = self.torch
        name = self.inputs[0]
        if not self.context.set_input_shape(name, tuple(x.shape)):
            low, _, high = self.engine.get_tensor_profile_shape(name, 0)
            raise RuntimeError(f"batch {x.shape[0]} is outside the engine's profile [{low[0]}, {high[0]}]")
        buffers = [x]
        self.context.set_tensor_address(name, x.data_ptr())
        for out in self.outputs:
            y = torch.empty(tuple(self.context.get_tensor_shape(out)), device="cuda", dtype=self._dtype(out))
            buffers.append(y)
            self.context.set_tensor_address(out, y.data_ptr())
        return buffers

    def call(self, batch: int):
        """Bind input and output buffers for `batch` images; return the enqueue function."""
        torch = self.torch
        shape = (batch, *self.input_shape[1:])
        x = torch.randn(*shape, device="cuda").to(self._dtype(self.inputs[0]))
        buffers = self._bind(x)
        self.stream.wait_stream(torch.cuda.current_stream())
        context, stream = self.context, self.stream

        def run():
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT failed to enqueue the engine")
            return buffers

        return run

    def run(self, images: Any, output: str = "logits") -> Any:
        """Run the engine on `images` (a numpy array, N x 3 x R x R) and return `output` as a float32 numpy array.

        The images go through in chunks the optimisation profile allows (a short last chunk is padded to the
        profile's smallest batch and the padding dropped), so any number of images can be checked.
        """
        import numpy as np

        torch = self.torch
        name = self.inputs[0]
        out_name = output if output in self.outputs else self.outputs[0]
        low, _, high = (int(s[0]) for s in self.engine.get_tensor_profile_shape(name, 0))
        images = np.ascontiguousarray(images, dtype=np.float32)
        results = []
        for start in range(0, len(images), high):
            chunk = images[start : start + high]
            count = len(chunk)
            if count < low:
                chunk = np.concatenate([chunk, np.zeros((low - count, *chunk.shape[1:]), dtype=np.float32)])
            x = torch.from_numpy(chunk).to("cuda").to(self._dtype(name)).contiguous()
            buffers = self._bind(x)
            self.stream.wait_stream(torch.cuda.current_stream())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT failed to enqueue the engine")
            self.stream.synchronize()
            y = buffers[1 + self.outputs.index(out_name)]
            results.append(y[:count].float().cpu().numpy())
        return np.concatenate(results) if results else np.zeros((0,), dtype=np.float32)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def info(self) -> dict[str, Any]:
        torch = self.torch
        return {
            "runtime": self.runtime,
            "runtime_version": self.trt.__version__,
            "provider": torch.cuda.get_device_name(),
            "precision": build_precision(self.record),
            "threads": None,
            "input": {"name": self.inputs[0], "shape": [None if d < 0 else d for d in self.input_shape]},
            "cuda": torch.version.cuda,
        }
