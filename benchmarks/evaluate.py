"""Throughput of the sub-network evaluator against plain eager PyTorch.

    python -m benchmarks.evaluate --json

The largest width-1.0 sub-network of the real OFAv2 super-network (MobileNetV3-Large channel plan, 10
classes, exit 5) at 32x32, on CPU. Eager: torch inference mode, contiguous tensors, batch 256. Evaluator:
the search's `Evaluator` (in-memory ONNX export + onnxruntime), over a split of `--images` images, with
the export counted in its time (it is paid once per sub-network). BN recalibration is excluded from both.
Human lines go to stderr; the last stdout line is JSON when --json is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from factory.data import Split
from factory.elastic import build_supernet
from factory.space import SpaceSpec, largest_config
from factory.training.evaluate import Evaluator


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000, help="images per evaluation (CIFAR validation: 5000)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kind", default="ee-dense")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    spec = SpaceSpec(kind=args.kind, num_classes=10, resolutions=(32,))
    config = largest_config(spec, width=1.0, resolution=32)
    supernet = build_supernet(spec, 1.0)
    supernet.set_active(config)
    static = supernet.get_active_subnet().eval()
    g = torch.Generator().manual_seed(0)
    split = Split(
        torch.randint(0, 256, (args.images, 3, 32, 32), generator=g, dtype=torch.uint8),
        torch.randint(0, 10, (args.images,), generator=g),
    )
    evaluator = Evaluator(split, (0.5,) * 3, (0.5,) * 3, batch_size=args.batch_size, backend="onnxruntime")
    inputs = evaluator.inputs(32)

    with torch.inference_mode():
        static(inputs[: args.batch_size])
        start = time.perf_counter()
        for _ in range(args.repeats):
            for i in range(0, len(inputs), args.batch_size):
                static(inputs[i : i + args.batch_size])
        eager = args.repeats * len(inputs) / (time.perf_counter() - start)
    _say(f"eager (contiguous, batch {args.batch_size}): {eager:.0f} images/s")

    evaluator.top1(static, 32)  # warm-up: first onnxruntime session creation loads the library
    start = time.perf_counter()
    for _ in range(args.repeats):
        evaluator.top1(static, 32)
    fast = args.repeats * len(inputs) / (time.perf_counter() - start)
    _say(f"evaluator ({evaluator.backend}, export included): {fast:.0f} images/s")

    with torch.no_grad():
        reference = torch.cat([static(inputs[i : i + 500]) for i in range(0, len(inputs), 500)])
    agree = float((evaluator.logits(static, 32)[0].argmax(1) == reference.argmax(1)).float().mean())
    result = {
        "eager_images_per_s": round(eager, 1),
        "evaluator_images_per_s": round(fast, 1),
        "ratio": round(fast / eager, 2),
        "images": len(inputs),
        "backend": evaluator.backend,
        "threads": torch.get_num_threads(),
        "top1_agreement": agree,
    }
    if args.json:
        print(json.dumps(result))
    else:
        _say(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
