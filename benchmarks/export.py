"""Export a pick to ONNX and compare onnxruntime on CPU with eager PyTorch at batch 1.

    python -m benchmarks.export --json                      # the shipped digits pick
    python -m benchmarks.export --pick runs/demo/picks/<id>/model.pt --json

The pick's deployed graph (its ensemble when it keeps several exits, else its exit) is exported with the
factory's exporter (export time measured), checked for parity on real validation images of the digits
data (embedded, no files needed; pass --recipe for a pick of another dataset), then timed in onnxruntime
and in eager PyTorch (inference mode), both with the same thread count, batch 1.
Human lines go to stderr; the last stdout line is JSON when --json is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from factory.bench.stats import latency_summary
from factory.bench.timing import time_calls
from factory.data import load_dataset
from factory.export.run import parity_inputs
from factory.graphs.onnx import check_parity, deployment_graphs, export_onnx
from factory.nn.pick_file import load_pick_model
from factory.recipe import load_recipe
from factory.runtime import make_session

SHIPPED_PICK = Path(__file__).parent / "data" / "digits_pick.pt"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pick", type=Path, default=SHIPPED_PICK, help="a pick's model.pt")
    parser.add_argument("--recipe", default="digits", help="recipe of the pick's dataset (parity images)")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's current thread count, for both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    network, config = load_pick_model(args.pick)
    graphs = deployment_graphs(network)
    name = "ensemble" if "ensemble" in graphs else f"exit{config.exit}"
    module = graphs[name]
    recipe = load_recipe(args.recipe)
    inputs = parity_inputs(recipe, load_dataset(recipe.data), config.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path = export_onnx(module, Path(tmp) / f"{name}.onnx", config.resolution, recipe.export.opset)
        export_s = time.perf_counter() - started
        parity = check_parity(module, path, inputs, recipe.export.parity_atol, strict=False)
        session = make_session(path, threads)
        x = torch.randn(1, 3, config.resolution, config.resolution)
        feed = {"image": x.numpy()}
        ort_times = time_calls(lambda: session.run(None, feed), args.warmup, args.iterations)

    def eager():
        with torch.inference_mode():
            return module(x)

    torch_times = time_calls(eager, args.warmup, args.iterations)
    ort, eager_lat = latency_summary(ort_times), latency_summary(torch_times)
    _say(f"pick {args.pick} graph {name}, resolution {config.resolution}, threads {threads}")
    _say(
        f"export {export_s:.3f} s; parity max abs diff {parity.max_abs_diff:.2e}, "
        f"top-1 agreement {parity.top1_agreement:.4f} over {parity.images} validation images"
    )
    _say(
        f"batch 1 p50: onnxruntime {ort['p50']:.3f} ms (p99 {ort['p99']:.3f}), "
        f"torch eager {eager_lat['p50']:.3f} ms (p99 {eager_lat['p99']:.3f})"
    )
    result = {
        "ort_over_torch_p50": ort["p50"] / eager_lat["p50"],
        "max_abs_diff": parity.max_abs_diff,
        "top1_agreement": parity.top1_agreement,
        "export_s": round(export_s, 4),
    }
    if args.json:
        print(json.dumps(result))
    else:
        _say(json.dumps(result))


if __name__ == "__main__":
    main()
