"""The device side of the hand-off: check a bundle's files, rerun its samples, time its graphs.

Imports only the standard library, numpy, onnxruntime and `factory.errors`, `factory.io` and
`factory.device_side` (themselves standard library, numpy and onnxruntime), so `factory verify` runs
where only onnxruntime, numpy and click are installed beside the project wheel (installed without its
dependencies).

It passes only when every graph bundle.json lists was hashed (in SHA256SUMS, equal to bundle.json's record),
run from exactly the bytes hashed, and matched its recorded outputs; a graph whose hash differs is never
handed to onnxruntime. A malformed bundle is a FactoryError (one line), a mismatch a problem line.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from factory.device_side import (
    REPORT_FORMAT,
    SHA256,
    check_onnx,
    inside,
    latency_of,
    load_session,
    machine,
    relative_name,
    time_network,
)
from factory.errors import FactoryError
from factory.io import file_sha256, write_json_atomic

BUNDLE_FORMAT = "factory-bundle/1"
REPORT_NAME = "device-report.json"  # written into the bundle by default, so not expected in SHA256SUMS
PRECISIONS = ("fp32", "int8")
FP32_TOLERANCE = 1e-3  # max |logit difference| / (1 + |expected logit|) an FP32 graph may show on another CPU
INT8_MIN_AGREEMENT = 0.9  # share of samples whose INT8 top-1 must equal the recorded one (kernels round differently)
_SUMS_LINE = re.compile(r"([0-9a-fA-F]{64})[ \t]+\*?(.+)")
_DAMAGED = "the bundle is damaged or not made by `factory bundle`; copy it again"


def read_bundle_manifest(bundle: Path) -> dict[str, Any]:
    """BUNDLE/bundle.json with the keys verify relies on, at least one graph, and graph names inside the bundle."""
    path = bundle / "bundle.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        raise FactoryError(f"{path} is missing or unreadable; pass an unpacked bundle folder") from None
    if not isinstance(manifest, dict) or manifest.get("format", BUNDLE_FORMAT) != BUNDLE_FORMAT:
        raise FactoryError(f"{path} is not a {BUNDLE_FORMAT} manifest; {_DAMAGED}")
    missing = [key for key in ("id", "pick", "graphs") if key not in manifest]
    if missing:
        raise FactoryError(f"{path} lacks {', '.join(missing)}; {_DAMAGED}")
    graphs = manifest["graphs"]
    if not isinstance(graphs, list) or not graphs:
        raise FactoryError(f"{path} lists no graphs; a bundle holds at least one, {_DAMAGED}")
    for index, graph in enumerate(graphs, 1):
        keys = ("file", "precision", "outputs", "sha256")
        lacking = [k for k in keys if not isinstance(graph, dict) or not isinstance(graph.get(k), str)]
        if lacking:
            raise FactoryError(f"{path} graph {index} lacks {', '.join(lacking)}; {_DAMAGED}")
        if graph["precision"] not in PRECISIONS or not SHA256.fullmatch(graph["sha256"]):
            raise FactoryError(f"{path} graph {index} has an unknown precision or a malformed sha256; {_DAMAGED}")
        graph["file"] = relative_name(graph["file"], str(path))
    return manifest


def read_sums(bundle: Path) -> dict[str, str]:
    """SHA256SUMS as {name: lowercase SHA-256}; a line that is not `hash  name` or a name outside the bundle is a
    FactoryError."""
    path = bundle / "SHA256SUMS"
    if not path.is_file():
        raise FactoryError(f"{path} not found; pass the folder of an unpacked `factory bundle`")
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError):
        raise FactoryError(f"{path} is unreadable; {_DAMAGED}") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = _SUMS_LINE.fullmatch(line.strip())
        if match is None:
            raise FactoryError(f"{path} line {number} is not `<sha256>  <name>`; {_DAMAGED}")
        name = relative_name(match[2], f"{path} line {number}")
        if name in sums:
            raise FactoryError(f"{path} lists {name} twice; {_DAMAGED}")
        sums[name] = match[1].lower()
    return sums


def check_hashes(bundle: Path, sums: dict[str, str], skip: Collection[str] = ()) -> list[str]:
    """One line per file (but those in `skip`) whose SHA-256 differs from SHA256SUMS, or that is missing."""
    problems = []
    for name, expected in sums.items():
        if name in skip:
            continue
        path = inside(bundle, name)
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif file_sha256(path) != expected:
            problems.append(f"{name}: SHA-256 differs from SHA256SUMS (the file was changed or damaged)")
    return problems


def unlisted_files(bundle: Path, sums: dict[str, str], out: Path) -> list[str]:
    """Files in the bundle SHA256SUMS does not list (nothing vouches for them; verify never runs them)."""
    known = {*sums, "SHA256SUMS", REPORT_NAME}
    found = []
    for path in sorted(bundle.rglob("*")):
        name = path.relative_to(bundle).as_posix()
        if path.is_file() and name not in known and path.resolve() != out.resolve():
            found.append(name)
    return found


def read_samples(bundle: Path, graphs: list[dict[str, Any]]) -> dict[str, Any]:
    """samples.npz's arrays, checked: float32 N x C x H x W images, N ids, N x classes outputs of each graph.

    Loaded without pickle: an object array (which could run code while read) is refused like a damaged file.
    """
    import numpy as np

    path = bundle / "samples.npz"
    if not path.is_file():
        raise FactoryError(f"{path} not found; copy the whole bundle")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):
            raise ValueError("not an .npz archive")
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except Exception as exc:  # zipfile, zlib, OSError, ValueError (object arrays, bad headers), ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise FactoryError(f"{path} is unreadable ({first}); {_DAMAGED}") from None
    images = arrays.get("images")
    if images is None or images.ndim != 4 or images.dtype != np.float32 or not len(images):
        raise FactoryError(f"{path} holds no float32 N x C x H x W 'images'; {_DAMAGED}")
    ids = arrays.get("ids")
    if ids is None or ids.shape != (len(images),):
        raise FactoryError(f"{path} holds no 'ids' of its {len(images)} images; {_DAMAGED}")
    for graph in graphs:
        outputs = arrays.get(graph["outputs"])
        if outputs is None or outputs.ndim != 2 or len(outputs) != len(images) or outputs.dtype.kind != "f":
            raise FactoryError(
                f"{path} has no {graph['outputs']!r} (N x classes floats) for {graph['file']}; {_DAMAGED}"
            )
        if not outputs.shape[1]:
            raise FactoryError(f"{path}: {graph['outputs']!r} has no classes; {_DAMAGED}")
    return arrays


def run_graph(path: Path | bytes, images: Any, threads: int, name: str | None = None) -> Any:
    """The graph's outputs for `images` (one at a time: batch 1, as on the device); `path` may be the checked
    bytes of the graph, `name` names it in errors."""
    import numpy as np
    import onnxruntime as ort

    name = name or str(path)
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    session = load_session(path, name, options)
    input_name = session.get_inputs()[0].name
    try:
        return np.concatenate([session.run(None, {input_name: images[i : i + 1]})[0] for i in range(len(images))])
    except Exception as exc:  # onnxruntime's own errors: samples of another shape or type than the graph takes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise FactoryError(f"{name}: onnxruntime cannot run it on samples.npz ({first}); {_DAMAGED}") from None


def compare_outputs(graph: dict[str, Any], got: Any, expected: Any, sample_ids: list[str]) -> tuple[dict, list[str]]:
    """FP32: every sample within FP32_TOLERANCE; INT8: top-1 agreement of at least INT8_MIN_AGREEMENT.

    A NaN or infinite output, expected or produced, is a mismatch of its sample in either precision: every
    comparison with NaN is false, so it has to be caught before any tolerance is applied.
    """
    import numpy as np

    file = graph["file"]
    if got.shape != expected.shape:
        stats = {"max_scaled_diff": None, "top1_agreement": 0.0, "samples": len(expected), "non_finite": 0}
        return stats, [f"{file}: outputs of shape {got.shape}, samples.npz records {expected.shape}"]
    got, expected = got.astype(np.float64), expected.astype(np.float64)
    finite_got, finite_expected = np.isfinite(got).all(axis=1), np.isfinite(expected).all(axis=1)
    finite = finite_got & finite_expected
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.abs(got - expected) / (1.0 + np.abs(expected))
    worst = np.where(finite, scaled.max(axis=1), np.inf)
    agree = finite & (got.argmax(1) == expected.argmax(1))
    problems = []
    for i in np.flatnonzero(~finite):
        which = "recorded in samples.npz" if not finite_expected[i] else "produced by the graph"
        problems.append(f"{file}: sample {sample_ids[i]} has NaN or infinite outputs ({which})")
    if graph["precision"] == "fp32":
        for i in np.flatnonzero(finite & ~(worst <= FP32_TOLERANCE)):
            problems.append(f"{file}: sample {sample_ids[i]} differs by {worst[i]:.3g} (tolerance {FP32_TOLERANCE:g})")
    elif agree.mean() < INT8_MIN_AGREEMENT:
        for i in np.flatnonzero(finite & ~agree):
            problems.append(f"{file}: sample {sample_ids[i]} top-1 {got[i].argmax()} != {expected[i].argmax()}")
    stats = {
        "max_scaled_diff": float(worst.max()) if finite.all() else None,  # None: some output is not finite
        "top1_agreement": float(agree.mean()),
        "samples": len(agree),
        "non_finite": int((~finite).sum()),
    }
    return stats, problems


def _graph_bytes(bundle: Path, graph: dict[str, Any], sums: dict[str, str]) -> tuple[bytes | None, str | None]:
    """The graph's bytes when SHA256SUMS lists it and both SHA256SUMS and bundle.json record their hash; else
    the problem (the file is then not run)."""
    name = graph["file"]
    if name not in sums:
        return None, f"{name}: not listed in SHA256SUMS, so nothing vouches for it; not run"
    path = inside(bundle, name)
    try:
        data = path.read_bytes()
    except OSError:
        return None, f"{name}: missing"
    digest = hashlib.sha256(data).hexdigest()
    if digest != sums[name]:
        return None, f"{name}: SHA-256 differs from SHA256SUMS (the file was changed or damaged); not run"
    if digest != graph["sha256"]:
        return None, f"{name}: SHA-256 differs from the one bundle.json records; not run"
    return data, None


def verify_bundle(
    bundle: str | Path, threads: int = 1, out: str | Path | None = None, runs: int = 50, rounds: int = 3
) -> tuple[dict[str, Any], list[str]]:
    """Check, rerun and time a bundle; write its device report (default BUNDLE/device-report.json).

    Returns the report and one line per problem (none: every graph was hashed, run and matched). Everything
    malformed is refused before any graph runs.
    """
    bundle = Path(bundle)
    target = Path(out) if out is not None else bundle / REPORT_NAME
    manifest = read_bundle_manifest(bundle)
    sums = read_sums(bundle)
    samples = read_samples(bundle, manifest["graphs"])
    images, sample_ids = samples["images"], [str(s) for s in samples["ids"]]
    resolution = int(images.shape[-1])
    files = {graph["file"] for graph in manifest["graphs"]}
    problems = check_hashes(bundle, sums, skip=files)
    checked = []
    for graph in manifest["graphs"]:
        data, problem = _graph_bytes(bundle, graph, sums)
        if data is None:
            problems.append(problem or graph["file"])
            continue
        check_onnx(data, graph["file"])
        checked.append((graph, data))
    settings = {"threads": threads, "runs": runs, "warmup": 10, "rounds": rounds}
    graphs = []
    for graph, data in checked:
        got = run_graph(data, images, threads, graph["file"])
        stats, found = compare_outputs(graph, got, samples[graph["outputs"]], sample_ids)
        problems += found
        timing = [time_network(data, resolution, threads, runs, 10) for _ in range(rounds)]
        graphs.append({**graph, **stats, **latency_of(timing), "ok": not found})
    report = {
        "format": REPORT_FORMAT,
        "bundle": manifest["id"],
        "run": manifest.get("run"),
        "pick": manifest["pick"],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {**settings, "batch": 1},
        "graphs": graphs,
        "unlisted": unlisted_files(bundle, sums, target),
        "problems": problems,
        "ok": not problems,  # every graph either ran and matched or left a problem
    }
    write_json_atomic(target, report)
    return report, problems
