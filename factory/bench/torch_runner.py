"""Eager PyTorch runner: the pick's own network, the baseline the exported graph must not be slower than.

Given an ONNX file written by `factory export`, it rebuilds the same graph (exit or ensemble) from the
pick's model.pt in the same folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TorchRunner:
    """Eager execution of the graph an ONNX file was exported from (CPU, or CUDA with `device='cuda'`)."""

    runtime = "torch"

    def __init__(self, path: str | Path, threads: int = 0, device: str = "cpu") -> None:
        import torch

        from factory.graphs.onnx import deployment_graphs, read_metadata
        from factory.nn.pick_file import load_pick_model

        path = Path(path)
        model_path = path if path.suffix == ".pt" else path.parent / "model.pt"
        graph = "ensemble" if path.suffix == ".pt" else read_metadata(path).get("factory_graph", "")
        network, config = load_pick_model(model_path)
        graphs = deployment_graphs(network)
        if path.suffix == ".pt" and graph not in graphs:
            graph = f"exit{config.exit}"
        if graph not in graphs:
            raise RuntimeError(f"{path} names graph {graph!r}, which {model_path} does not have")
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(device)
        self.module = graphs[graph].to(self.device).eval()
        self.resolution = config.resolution
        self.threads = torch.get_num_threads()
        self.graph = graph

    def call(self, batch: int):
        """A function that runs one batch eagerly under no_grad."""
        torch = self.torch
        x = torch.randn(batch, 3, self.resolution, self.resolution, device=self.device)
        module = self.module

        def run():
            with torch.inference_mode():
                return module(x)

        return run

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def info(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "runtime_version": self.torch.__version__,
            "provider": str(self.device),
            "precision": "fp32",
            "threads": self.threads,
            "input": {"name": "image", "shape": [None, 3, self.resolution, self.resolution]},
            "graph": self.graph,
        }
