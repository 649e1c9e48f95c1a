"""Benchmark of the datasets layer: cold load, cached load, and augmented-batch throughput.

    python -m benchmarks.data --dataset imagefolder --data-dir ../shared/datasets/cifar10-jpeg --json

cold_load_s: decode everything into an empty cache folder with an empty in-memory cache. cached_load_s: the
same load again after clearing the in-memory cache, so it reads the disk cache (the OS page cache is warm
for both). augment_images_per_s: shuffled batches through gather + random crop + flip + normalize on the CPU.

The cache folder is a fresh temporary folder, deleted afterwards, so "cold" is honestly cold; --cache-dir
only chooses where that temporary folder is created (e.g. on the disk the real cache will use).
Human-readable lines go to stderr; the last stdout line is the JSON object when --json is given.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time

import torch

from factory.data import clear_memory_cache, iterate_batches, load_dataset, make_data_config
from factory.errors import FactoryError


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def augment_throughput(train, cfg, batch_size: int, batches: int) -> float:
    """Images per second through iterate_batches(augment=True) on the CPU, after a short warm-up."""
    generator = torch.Generator().manual_seed(0)

    def stream():
        while True:
            yield from iterate_batches(
                train,
                batch_size,
                shuffle=True,
                generator=generator,
                device="cpu",
                augment=True,
                cfg=cfg,
                drop_last=True,
            )

    source = stream()
    for _ in range(5):
        next(source)
    images = 0
    start = time.perf_counter()
    for _ in range(batches):
        x, _ = next(source)
        images += len(x)
    return images / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> dict:
    """Measure cold load, cached load and augmentation throughput; return the JSON-able result."""
    cache_dir = tempfile.mkdtemp(prefix="factory-data-bench-", dir=args.cache_dir)
    try:
        cfg = make_data_config(
            dataset=args.dataset, data_dir=args.data_dir, image_size=args.image_size, cache_dir=cache_dir
        )
        clear_memory_cache()
        start = time.perf_counter()
        splits = load_dataset(cfg)
        cold = time.perf_counter() - start
        sizes = splits.sizes()
        _say(f"{splits.name}: {sizes} classes={splits.num_classes} size={args.image_size}px")
        _say(f"cold load   {cold:8.2f} s  (cache folder {cache_dir})")
        del splits
        clear_memory_cache()
        start = time.perf_counter()
        splits = load_dataset(cfg)
        cached = time.perf_counter() - start
        _say(f"cached load {cached:8.2f} s  (disk cache, in-memory cache cleared)")
        if len(splits.train) < args.batch_size:
            raise FactoryError(f"--batch-size {args.batch_size} exceeds the {len(splits.train)} training images")
        rate = augment_throughput(splits.train, cfg, args.batch_size, args.batches)
        _say(
            f"augment     {rate:8.0f} images/s (crop+flip+normalize, batch {args.batch_size}, "
            f"{args.batches} batches, {torch.get_num_threads()} threads)"
        )
    finally:
        clear_memory_cache()
        shutil.rmtree(cache_dir, ignore_errors=True)
    return {
        "dataset": args.dataset,
        **sizes,
        "cold_load_s": round(cold, 3),
        "cached_load_s": round(cached, 3),
        "augment_images_per_s": round(rate, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="registry name (digits, cifar10, imagefolder, ...)")
    parser.add_argument("--data-dir", default=None, help="the dataset folder (not needed for digits)")
    parser.add_argument("--image-size", type=int, default=32, help="decode size in pixels (default 32)")
    parser.add_argument("--batch-size", type=int, default=256, help="batch size for the throughput test (default 256)")
    parser.add_argument("--batches", type=int, default=300, help="timed batches for the throughput test (default 300)")
    parser.add_argument(
        "--cache-dir", default=None, help="where to create the temporary cache folder (default: the system temp dir)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads for the throughput test (default: torch's choice)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last stdout line")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        result = run(args)
    except FactoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
