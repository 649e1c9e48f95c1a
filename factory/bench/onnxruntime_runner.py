"""onnxruntime runner: CPU by default, the CUDA or TensorRT execution provider where onnxruntime has it.

Imports only numpy and onnxruntime, so it runs on a device where nothing else is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from factory.runtime import PROVIDERS, make_session


class OnnxRuntimeRunner:
    """One InferenceSession; `call(batch)` returns a no-argument function that runs one batch."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 0, provider: str = "cpu") -> None:
        import onnxruntime as ort

        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
        available = ort.get_available_providers()
        if PROVIDERS[provider] not in available:
            raise RuntimeError(
                f"onnxruntime here has no {PROVIDERS[provider]} (available: {', '.join(available)}); "
                "install onnxruntime-gpu for cuda / tensorrt"
            )
        self.session = make_session(path, threads, provider)
        self.version = ort.__version__
        self.provider = PROVIDERS[provider]
        self.threads = threads
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_shape = [d if isinstance(d, int) else None for d in first.shape]
        self.float16 = "float16" in first.type
        meta = self.session.get_modelmeta()
        self.metadata = dict(meta.custom_metadata_map)

    def call(self, batch: int):
        """A function that runs one batch of `batch` random images (values do not change latency)."""
        shape = [batch, *[d or 1 for d in self.input_shape[1:]]]
        dtype = np.float16 if self.float16 else np.float32
        feed = {self.input_name: np.random.default_rng(0).standard_normal(shape).astype(dtype)}
        session = self.session
        return lambda: session.run(None, feed)

    def synchronize(self) -> None:
        """onnxruntime calls are synchronous."""

    def info(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "runtime_version": self.version,
            "provider": self.provider,
            "precision": "fp16" if self.float16 else "fp32",
            "threads": self.threads or "onnxruntime default (physical cores)",
            "input": {"name": self.input_name, "shape": self.input_shape},
        }
