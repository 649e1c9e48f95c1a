"""The device side of the hand-off: check a bundle's files, rerun its samples, time its graphs.

Imports only the standard library, numpy, onnxruntime and `factory.errors`, `factory.io` and
`factory.profile.target` (themselves standard library, numpy and onnxruntime), so `factory verify` runs
where only onnxruntime, numpy and click are installed beside the project wheel (installed without its
dependencies).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.io import file_sha256, write_json_atomic
from factory.profile.target import latency_of, machine, time_network

REPORT_FORMAT = "factory-device-report/1"
FP32_TOLERANCE = 1e-3  # max |logit difference| / (1 + |expected logit|) an FP32 graph may show on another CPU
INT8_MIN_AGREEMENT = 0.9  # share of samples whose INT8 top-1 must equal the recorded one (kernels round differently)


def check_hashes(bundle: Path) -> list[str]:
    """One line per file whose SHA-256 differs from SHA256SUMS, or that is missing."""
    sums = bundle / "SHA256SUMS"
    if not sums.is_file():
        raise FactoryError(f"{sums} not found; pass the folder of an unpacked `factory bundle`")
    problems = []
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        expected, name = line.split(maxsplit=1)
        path = bundle / name.strip().lstrip("*")
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif file_sha256(path) != expected:
            problems.append(f"{name}: SHA-256 differs from SHA256SUMS (the file was changed or damaged)")
    return problems


def run_graph(path: Path, images: Any, threads: int) -> Any:
    """The graph's outputs for `images` (one at a time: batch 1, as on the device)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i : i + 1]})[0] for i in range(len(images))])


def compare_outputs(graph: dict[str, Any], got: Any, expected: Any, sample_ids: list[str]) -> tuple[dict, list[str]]:
    """FP32: every sample within FP32_TOLERANCE; INT8: top-1 agreement of at least INT8_MIN_AGREEMENT."""
    import numpy as np

    agree = got.argmax(1) == expected.argmax(1)
    scaled = np.abs(got - expected) / (1.0 + np.abs(expected))
    worst = scaled.max(axis=1)
    problems = []
    if graph["precision"] == "fp32":
        for i in np.flatnonzero(worst > FP32_TOLERANCE):
            problems.append(
                f"{graph['file']}: sample {sample_ids[i]} differs by {worst[i]:.3g} (tolerance {FP32_TOLERANCE:g})"
            )
    elif agree.mean() < INT8_MIN_AGREEMENT:
        for i in np.flatnonzero(~agree):
            problems.append(
                f"{graph['file']}: sample {sample_ids[i]} top-1 {got[i].argmax()} != {expected[i].argmax()}"
            )
    stats = {"max_scaled_diff": float(worst.max()), "top1_agreement": float(agree.mean()), "samples": len(agree)}
    return stats, problems


def verify_bundle(
    bundle: str | Path, threads: int = 1, out: str | Path | None = None, runs: int = 50, rounds: int = 3
) -> tuple[dict[str, Any], list[str]]:
    """Check, rerun and time a bundle; write its device report (default BUNDLE/device-report.json).

    Returns the report and one line per problem (none: everything matches).
    """
    import numpy as np

    bundle = Path(bundle)
    try:
        manifest = json.loads((bundle / "bundle.json").read_text())
    except (OSError, ValueError):
        raise FactoryError(f"{bundle}/bundle.json is missing or unreadable; pass an unpacked bundle folder") from None
    problems = check_hashes(bundle)
    samples = np.load(bundle / "samples.npz")
    images, sample_ids = samples["images"], [str(s) for s in samples["ids"]]
    resolution = int(images.shape[-1])
    settings = {"threads": threads, "runs": runs, "warmup": 10, "rounds": rounds}
    graphs = []
    for graph in manifest["graphs"]:
        path = bundle / graph["file"]
        if not path.is_file():
            continue  # reported by the hash check
        got = run_graph(path, images, threads)
        stats, found = compare_outputs(graph, got, samples[graph["outputs"]], sample_ids)
        problems += found
        timing = [time_network(path, resolution, threads, runs, 10) for _ in range(rounds)]
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
        "problems": problems,
        "ok": not problems,
    }
    write_json_atomic(Path(out) if out is not None else bundle / "device-report.json", report)
    return report, problems
