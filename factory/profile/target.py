"""The device side of latency profiling: time every network of a kit with onnxruntime, record the machine.

Imports only the standard library, numpy, onnxruntime, `factory.errors` and `factory.io`, so `factory profile`
runs on a device where only those and click are installed (the project wheel installed without its
dependencies).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.io import read_json_input, write_json_atomic

KIT_FORMAT = "factory-profile-kit/1"
PROFILE_FORMAT = "factory-profile/1"


class KitError(FactoryError):
    """A kit that cannot be used (missing, corrupt, other format); the message says what to do."""


def read_manifest(kit: str | Path) -> dict[str, Any]:
    """KIT/manifest.json, checked: format and the files it lists."""
    path = Path(kit) / "manifest.json"
    hint = "pass the folder `factory profile-kit --out` wrote"
    manifest = read_json_input(path, "kit manifest", KIT_FORMAT, hint, "networks")
    files = [f for n in manifest.get("networks", []) for f in (n["file"], n.get("int8_file")) if f]
    missing = [f for f in files if not (Path(kit) / f).is_file()]
    if missing:
        raise KitError(f"the kit lacks {missing[0]} (and {len(missing) - 1} more); copy the whole kit folder")
    return manifest


def machine() -> dict[str, Any]:
    """What the profile was measured on."""
    import numpy
    import onnxruntime

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
    }


def time_network(path: Path, resolution: int, threads: int, runs: int, warmup: int) -> list[float]:
    """Milliseconds of `runs` batch-1 inferences after `warmup` untimed ones (onnxruntime CPU)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:  # 0: onnxruntime's default, as the bench stage's
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    feed = {name: np.random.default_rng(0).random((1, 3, resolution, resolution), dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def latency_of(rounds: list[list[float]]) -> dict[str, float]:
    """The profile's figures of one network from its rounds of timed runs: `latency_ms`, the fastest run
    (what the predictor fits), and `median_ms`, the median of the rounds' medians (kept beside it).

    The fastest run is the network's own cost: on a shared machine the median drifts with the machine's
    state (measured on a 2-core build machine: two profiles of one kit differed by a median 4-31% in their
    medians, rho 0.60-0.77, and by 1-2% in their fastest runs, rho 0.996-0.998), while a quiet device gives
    the same figure either way.
    """
    return {
        "latency_ms": min(min(r) for r in rounds),
        "median_ms": statistics.median(statistics.median(r) for r in rounds),
    }


def measure_latency(path: Path, resolution: int, settings: dict[str, Any]) -> dict[str, float]:
    """One graph timed as a profile times its networks (`settings` as the profile records them)."""
    runs = [
        time_network(path, resolution, settings["threads"], settings["runs"], settings["warmup"])
        for _ in range(settings["rounds"])
    ]
    return latency_of(runs)


def profile_kit(
    kit: str | Path,
    out: str | Path,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 10,
    rounds: int = 3,
    on_network: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Time every network of `kit` and write the profile to `out` (atomically); returns it.

    Each round times every network `runs` times after `warmup` untimed runs, in a fresh session; the kit is
    walked `rounds` times in turn, so a slow spell of the machine hits one round of every network instead of
    a few networks. The figures of each network are `latency_of` its rounds, and those of its INT8 graph
    (under "int8") where the kit has one.
    """
    kit = Path(kit)
    manifest = read_manifest(kit)
    networks = manifest["networks"]
    samples: list[list[list[float]]] = [[] for _ in networks]
    int8: list[list[list[float]]] = [[] for _ in networks]
    for _ in range(rounds):
        for index, net in enumerate(networks):
            resolution = int(net["resolution"])
            samples[index].append(time_network(kit / net["file"], resolution, threads, runs, warmup))
            if net.get("int8_file"):
                int8[index].append(time_network(kit / net["int8_file"], resolution, threads, runs, warmup))
            if on_network is not None:
                on_network(1)
    profile = {
        "format": PROFILE_FORMAT,
        "kit": manifest["kit_id"],
        "space_fingerprint": manifest["space_fingerprint"],
        "machine": machine(),
        "settings": {"threads": threads, "runs": runs, "warmup": warmup, "rounds": rounds, "batch": 1},
        "networks": [
            {"file": net["file"], "config": net["config"], **latency_of(s), **({"int8": latency_of(q)} if q else {})}
            for net, s, q in zip(networks, samples, int8, strict=True)
        ],
    }
    write_json_atomic(out, profile)
    return profile
