"""TensorRT engine runner (TensorRT 10+ tensor API), buffers held as CUDA tensors from PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TensorRTRunner:
    """Deserialises an engine built by `factory export` and runs it on the current CUDA stream."""

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
        self.stream = torch.cuda.Stream()

    def _dtype(self, name: str):
        return {
            self.trt.float32: self.torch.float32,
            self.trt.float16: self.torch.float16,
            self.trt.int32: self.torch.int32,
        }[self.engine.get_tensor_dtype(name)]

    def call(self, batch: int):
        """Bind input and output buffers for `batch` images; return the enqueue function."""
        torch = self.torch
        shape = (batch, *self.input_shape[1:])
        name = self.inputs[0]
        if not self.context.set_input_shape(name, shape):
            low, _, high = self.engine.get_tensor_profile_shape(name, 0)
            raise RuntimeError(f"batch {batch} is outside the engine's profile [{low[0]}, {high[0]}]")
        x = torch.randn(*shape, device="cuda").to(self._dtype(name))
        self.stream.wait_stream(torch.cuda.current_stream())
        buffers = [x]
        self.context.set_tensor_address(name, x.data_ptr())
        for out in self.outputs:
            y = torch.empty(tuple(self.context.get_tensor_shape(out)), device="cuda", dtype=self._dtype(out))
            buffers.append(y)
            self.context.set_tensor_address(out, y.data_ptr())
        context, stream = self.context, self.stream

        def run():
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT failed to enqueue the engine")
            return buffers

        return run

    def synchronize(self) -> None:
        self.stream.synchronize()

    def info(self) -> dict[str, Any]:
        torch = self.torch
        return {
            "runtime": self.runtime,
            "runtime_version": self.trt.__version__,
            "provider": torch.cuda.get_device_name(),
            "precision": str(self.engine.get_tensor_dtype(self.inputs[0])),
            "threads": None,
            "input": {"name": self.inputs[0], "shape": [None if d < 0 else d for d in self.input_shape]},
            "cuda": torch.version.cuda,
        }
