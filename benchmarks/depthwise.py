"""Training cost of one depthwise convolution: plain F.conv2d against the factory's `depthwise_conv2d`.

    python -m benchmarks.depthwise --json

Forward + backward (input and weight gradients) at batch 128, channels-last, on CPU, for the layer
shapes of the MobileNetV3 plan at 32x32 where the map is smaller than, or near, the kernel. Human lines
go to stderr; the last stdout line is JSON: {"layers": [{"channels", "size", "kernel", "stride",
"plain_ms", "fast_ms", "speedup"}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from factory.nn.depthwise import depthwise_conv2d

LAYERS = ((480, 1, 7, 1), (240, 2, 7, 1), (336, 2, 7, 2), (144, 4, 7, 1), (144, 4, 5, 1), (96, 8, 7, 1))


def _ms(step: Callable[[], None], repeats: int) -> float:
    step()
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1000


def time_layer(channels: int, size: int, kernel: int, stride: int, batch: int, repeats: int) -> dict[str, float]:
    """Milliseconds of forward + backward of one depthwise layer, plain and fast, on the same tensors."""
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(channels, 1, kernel, kernel, requires_grad=True)
    plain_ms = _ms(lambda: F.conv2d(x, w, None, stride, kernel // 2, 1, channels).sum().backward(), repeats)
    fast_ms = _ms(lambda: depthwise_conv2d(x, w, stride).sum().backward(), repeats)
    return {"plain_ms": round(plain_ms, 2), "fast_ms": round(fast_ms, 2), "speedup": round(plain_ms / fast_ms, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    rows = []
    for channels, size, kernel, stride in LAYERS:
        row = {"channels": channels, "size": size, "kernel": kernel, "stride": stride}
        row |= time_layer(channels, size, kernel, stride, args.batch_size, args.repeats)
        rows.append(row)
        print(
            f"{channels}ch {size}x{size} k{kernel} s{stride}: {row['plain_ms']} -> {row['fast_ms']} ms", file=sys.stderr
        )
    result = {"layers": rows, "batch_size": args.batch_size, "threads": torch.get_num_threads()}
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
