"""The one place the factory opens an onnxruntime session (evaluation, parity, INT8 calibration, bench, verify).

Imports only onnxruntime, and only when a session is opened, so every layer (and a bare device) can use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def make_session(model: str | Path | bytes, threads: int = 0, provider: str = "cpu") -> Any:
    """The one place the factory opens an onnxruntime session (a file path or serialized bytes).

    `threads` 0 lets onnxruntime choose (physical cores); warnings are silenced, errors still raise.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=[PROVIDERS[provider]])


__all__ = ["PROVIDERS", "make_session"]
