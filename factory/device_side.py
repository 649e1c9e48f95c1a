"""The device side of latency profiling: time every network of a kit with onnxruntime, record the machine.

Imports only the standard library, numpy, onnxruntime, `factory.errors` and `factory.io`, so `factory profile`
runs on a device where only those and click are installed (the project wheel installed without its
dependencies). It also holds the checks the device side makes before handing a file to onnxruntime (names
that stay inside their folder, SHA-256, ONNX graphs without external data), which `factory verify` shares.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from factory.errors import FactoryError
from factory.io import read_json_input, write_json_atomic

KIT_FORMAT = "factory-profile-kit/1"
PROFILE_FORMAT = "factory-profile/1"
REPORT_FORMAT = "factory-device-report/1"  # what `factory verify` writes
SHA256 = re.compile(r"[0-9a-f]{64}")


class KitError(FactoryError):
    """A kit that cannot be used (missing, corrupt, other format); the message says what to do."""


class HashMismatch(FactoryError):
    """A file whose SHA-256 differs from the one recorded for it: changed or damaged, so it is not run."""


def relative_name(name: object, where: str) -> str:
    """`name` as a normalised relative POSIX path; a FactoryError for anything that could leave its folder.

    Names come from files a device receives (bundle.json, SHA256SUMS, a kit's manifest): an absolute name or
    one with `..` would make the device hash, run or time a file outside the folder it was handed.
    """
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise FactoryError(f"{where} names {name!r}, which is not a file name; the folder is damaged, copy it again")
    pure = PurePosixPath(name.strip().replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and pure.parts[0].endswith(":")):
        raise FactoryError(f"{where} names {name!r}, outside its folder; refused (every file must lie inside it)")
    return pure.as_posix()


def inside(root: Path, name: str) -> Path:
    """root/name, refused when a symbolic link takes it out of `root` (`name` from `relative_name`)."""
    path = root / name
    if path.exists() and not path.resolve().is_relative_to(root.resolve()):
        raise FactoryError(f"{path} links outside {root}; refused (every file must lie inside it)")
    return path


def checked_bytes(path: Path, sha256: str, name: str) -> bytes:
    """The content of `path` (`name` in messages), read once, whose SHA-256 equals `sha256`: what is hashed is
    what gets run, with no window for the file to change in between."""
    try:
        data = path.read_bytes()
    except OSError:
        raise FactoryError(f"{path} is missing or unreadable; copy the whole folder again") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise HashMismatch(f"{name}: SHA-256 differs from the one recorded (the file was changed or damaged)")
    return data


# Where an ONNX model (onnx.proto field numbers) can hold tensors: message kind -> {field: nested kind}.
_NESTED: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},
}
_EXTERNAL_DATA, _DATA_LOCATION = 13, 14  # TensorProto fields; data_location 1 is EXTERNAL


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 70:
        if pos >= len(data):
            raise ValueError("truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad varint")


def _fields(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field, wire type, value or start, end) of one protobuf message in data[start:end]."""
    found = []
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            found.append((number, wire, value, pos))
        elif wire == 2:
            length, pos = _varint(data, pos)
            found.append((number, wire, pos, pos + length))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > end or number == 0:
            raise ValueError("truncated")
    return found


def check_onnx(data: bytes, name: str) -> None:
    """A FactoryError unless `data` is an ONNX model whose tensors are all stored inside it.

    onnxruntime reads a tensor stored as external data from the path the graph names, and older releases
    follow any path on the disk; the factory never writes such graphs, so the device refuses them before
    onnxruntime sees them. Reads the protobuf wire format itself (the `onnx` package is not on the device).
    """
    try:
        top = _fields(data, 0, len(data))
        if not any(n == 1 and w == 0 for n, w, _, _ in top) or not any(n == 7 and w == 2 for n, w, _, _ in top):
            raise ValueError("no IR version or graph")
        stack = [("model", 0, len(data))]
        while stack:
            kind, start, end = stack.pop()
            for number, wire, a, b in _fields(data, start, end):
                if kind == "tensor" and (number == _EXTERNAL_DATA or (number == _DATA_LOCATION and a == 1)):
                    raise FactoryError(
                        f"{name} stores tensors as external data (files beside the graph); refused: a factory graph "
                        "holds all its weights"
                    )
                nested = _NESTED[kind].get(number)
                if nested is not None:
                    if wire != 2:
                        raise ValueError(f"field {number} of a {kind}")
                    stack.append((nested, a, b))
    except ValueError as exc:
        raise FactoryError(f"{name} is not an ONNX graph ({exc}); the folder is damaged, copy it again") from None


def load_session(model: Path | bytes, name: str, options: Any) -> Any:
    """An onnxruntime CPU session of `model` (a path or the checked bytes of one); a FactoryError if it cannot
    load it."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(
            model if isinstance(model, bytes) else str(model), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf for bad graphs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise FactoryError(f"{name}: onnxruntime cannot load it ({first}); it is not a usable ONNX graph") from None


def _manifest_error(path: Path, message: str) -> KitError:
    return KitError(f"{path}: {message}; copy the whole kit again or regenerate it with `factory profile-kit`")


def read_manifest(kit: str | Path) -> dict[str, Any]:
    """KIT/manifest.json, checked before any network is timed: format, keys, names inside the kit, and each
    graph's SHA-256 and ONNX content (a HashMismatch for a changed graph)."""
    kit = Path(kit)
    path = kit / "manifest.json"
    hint = "pass the folder `factory profile-kit --out` wrote"
    manifest = read_json_input(path, "kit manifest", KIT_FORMAT, hint, "networks")
    for key in ("kit_id", "space_fingerprint"):
        if not isinstance(manifest.get(key), str):
            raise _manifest_error(path, f"no {key!r}")
    if not isinstance(manifest["networks"], list):
        raise _manifest_error(path, "'networks' is not a list")
    graphs = []
    for index, net in enumerate(manifest["networks"], 1):
        where = f"{path} network {index}"
        if not isinstance(net, dict):
            raise _manifest_error(path, f"network {index} is not an object")
        resolution = net.get("resolution")
        if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
            raise _manifest_error(path, f"network {index} has no positive integer 'resolution'")
        if not isinstance(net.get("config"), dict):
            raise _manifest_error(path, f"network {index} has no 'config'")
        for file_key, hash_key in (("file", "sha256"), ("int8_file", "int8_sha256")):
            if file_key == "int8_file" and not net.get(file_key):
                continue
            net[file_key] = relative_name(net.get(file_key), where)
            if hash_key not in net:
                raise KitError(
                    f"{path} records no SHA-256 of its graphs (a kit of an earlier factory version); regenerate it "
                    "with `factory profile-kit --run RUN --out KIT` and copy it to the device again"
                )
            if not isinstance(net[hash_key], str) or not SHA256.fullmatch(net[hash_key]):
                raise _manifest_error(path, f"network {index} has a malformed {hash_key!r}")
            graphs.append((net[file_key], net[hash_key]))
    missing = [f for f, _ in graphs if not inside(kit, f).is_file()]
    if missing:
        raise KitError(f"the kit lacks {missing[0]} (and {len(missing) - 1} more); copy the whole kit folder")
    for file, digest in graphs:
        check_onnx(checked_bytes(inside(kit, file), digest, file), file)
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


def time_network(path: Path | bytes, resolution: int, threads: int, runs: int, warmup: int) -> list[float]:
    """Milliseconds of `runs` batch-1 inferences after `warmup` untimed ones (onnxruntime CPU) of a graph file
    or of its checked bytes."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:  # 0: onnxruntime's default, as the bench stage's
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = load_session(path, "the graph" if isinstance(path, bytes) else str(path), options)
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

    def timed(file: str, digest: str, resolution: int) -> list[float]:  # the bytes hashed are the bytes timed
        return time_network(checked_bytes(inside(kit, file), digest, file), resolution, threads, runs, warmup)

    for _ in range(rounds):
        for index, net in enumerate(networks):
            resolution = net["resolution"]
            samples[index].append(timed(net["file"], net["sha256"], resolution))
            if net.get("int8_file"):
                int8[index].append(timed(net["int8_file"], net["int8_sha256"], resolution))
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
