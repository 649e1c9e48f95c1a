"""INT8 (QDQ, onnxruntime) against FP32 for a pick, per calibration method: accuracy, size and latency.

    python -m benchmarks.quantize --json                      # the shipped digits pick
    python -m benchmarks.quantize --cifar10-data-dir ../shared/datasets/cifar10-jpeg --json   # and the CIFAR-10 one

For each calibration method the pick's deployed graph is quantized as `factory export` does, both files are
run in onnxruntime on the whole test split (top-1, drop in points, agreement), their sizes compared (file and
initializers) and timed at batch 1 and 32. With --qat-epochs N the QAT fallback is timed and measured too.
The shipped CIFAR-10 pick (data/cifar10_pick.pt, from a `cifar10-cpu` build on the CIFAR-10 JPEG folder)
is measured when --cifar10-data-dir gives the images (test split, and training images to calibrate on).
Human lines go to stderr; the last stdout line is JSON when --json is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from factory.bench.stats import latency_summary
from factory.bench.timing import time_calls
from factory.data import load_dataset
from factory.data.augment import device_images
from factory.graphs.int8 import (
    METHODS,
    QuantSettings,
    calibration_images,
    compare,
    qat_network,
    quantize_graph,
)
from factory.graphs.memory import weight_bytes
from factory.graphs.onnx import deployment_graphs, export_onnx
from factory.nn.pick_file import load_pick_model
from factory.recipe import load_recipe
from factory.runtime import make_session

SHIPPED_PICK = Path(__file__).parent / "data" / "digits_pick.pt"
SHIPPED_CIFAR10_PICK = Path(__file__).parent / "data" / "cifar10_pick.pt"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _p50(path: Path, images: np.ndarray, batch: int, iterations: int) -> float:
    session = make_session(path)
    feed = {"image": np.ascontiguousarray(images[:batch])}
    return latency_summary(time_calls(lambda: session.run(None, feed), 5, iterations))["p50"]


def measure(
    pick: Path, recipe_name: str, iterations: int, qat_epochs: int, calib_count: int, data_dir: Path | None = None
) -> dict:
    """Every calibration method (and QAT when asked) on one pick's deployed graph (its data from `data_dir`,
    an image folder, when given; else the recipe's own dataset)."""
    recipe = load_recipe(recipe_name)
    if data_dir is not None:
        data = dataclasses.replace(recipe.data, dataset="imagefolder", data_dir=str(data_dir))
        recipe = dataclasses.replace(recipe, data=data)
    splits = load_dataset(recipe.data)
    network, config = load_pick_model(pick)
    graphs = deployment_graphs(network)
    name = "ensemble" if "ensemble" in graphs else f"exit{config.exit}"
    mean, std, res = recipe.data.mean, recipe.data.std, config.resolution
    test = device_images(splits.test.images, mean, std, res)
    labels = splits.test.labels.numpy()
    result: dict = {"pick": str(pick), "graph": name, "test_images": len(labels), "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(graphs[name], Path(tmp) / f"{name}.onnx", res, recipe.export.opset)
        fp32_ms = {b: _p50(fp32, test, b, iterations) for b in (1, 32)}
        started = time.perf_counter()
        calib = calibration_images(splits.train, calib_count, recipe.train.seed, mean, std, res)
        prep_s = time.perf_counter() - started
        sources = {"ptq": fp32}
        if qat_epochs:
            started = time.perf_counter()
            trained = qat_network(network, recipe, splits, qat_epochs, recipe.train.seed)
            sources["qat"] = export_onnx(deployment_graphs(trained)[name], Path(tmp) / "qat.onnx", res)
            result["qat_s"] = round(time.perf_counter() - started, 2)
        for kind, source in sources.items():
            for method in METHODS:
                started = time.perf_counter()
                int8 = quantize_graph(source, Path(tmp) / f"{kind}-{method}.onnx", calib, QuantSettings(method))
                seconds = prep_s + time.perf_counter() - started
                figures = compare(fp32, int8, test, labels)
                int8_ms = {b: _p50(int8, test, b, iterations) for b in (1, 32)}
                row = {
                    "fp32_top1": figures["fp32_top1"],
                    "int8_top1": figures["top1"],
                    "drop_points": figures["drop"],
                    "agreement": figures["agreement"],
                    "weight_bytes_ratio": round(weight_bytes(int8) / weight_bytes(fp32), 4),
                    "file_bytes_ratio": round(int8.stat().st_size / fp32.stat().st_size, 4),
                    "latency_ratio_batch1": round(int8_ms[1] / fp32_ms[1], 3),
                    "latency_ratio_batch32": round(int8_ms[32] / fp32_ms[32], 3),
                    "calibration_s": round(seconds, 2),
                }
                result["methods"][f"{kind}-{method}"] = row
                _say(f"{name} {kind}-{method}: {row}")
    result["fp32_p50_ms"] = fp32_ms
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pick", type=Path, default=SHIPPED_PICK, help="a pick's model.pt")
    parser.add_argument("--recipe", default="digits", help="recipe of the pick's dataset")
    parser.add_argument("--cifar10-pick", type=Path, default=SHIPPED_CIFAR10_PICK, help="a CIFAR-10 pick's model.pt")
    parser.add_argument(
        "--cifar10-data-dir", type=Path, default=None, help="CIFAR-10 as an image folder (train/, test/); needed for it"
    )
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    report = {"digits": measure(args.pick, args.recipe, args.iterations, args.qat_epochs, args.calibration_images)}
    if args.cifar10_data_dir is not None:
        report["cifar10"] = measure(
            args.cifar10_pick, "cifar10-cpu", args.iterations, args.qat_epochs, 256, args.cifar10_data_dir
        )
    else:
        report["cifar10"] = {"skipped": "pass --cifar10-data-dir DIR (CIFAR-10 as an image folder) to measure it"}
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
