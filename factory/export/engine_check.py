"""Accuracy check of every TensorRT engine against its ONNX graph, on the real validation images of the parity check.

The reference is onnxruntime (CPU) running the float32 ONNX file the engine was built for; the engine runs the
same images through `TensorRTRunner.run`. An engine passes when

* its interface is the documented one: a float32 `image` input and a float32 `logits` output,
* every logit it returns is finite,
* its top-1 class equals the reference's on at least `MIN_TOP1_AGREEMENT` (99%) of the images, and
* max |engine logit - reference logit| <= `tolerance(reference)` = `RTOL` (0.05) x max(1, max |reference logit|).

Why that tolerance: FP16 keeps 11 significant bits (a rounding step of 2^-11, about 5e-4, relative); after the
rounding of weights and activations through a network's depth, a sound FP16 engine is expected to stay well
below 5% of the largest logit (the FP16 graph run by onnxruntime stays under 0.5% on the test networks); FP32
engines (built with TF32 off) are far inside it. The bound still fails engines that compute something else
(wrong input layout or normalisation, overflow, a broken fusion), whose errors are of the size of the logits
themselves. A channel whose batch-norm variance is near zero magnifies rounding (by 1 / sqrt(var + eps), up to
~300x): such a network can fail in FP16 and pass as an FP32 engine.
The floor of 1 logit unit keeps the bound meaningful for networks whose logits are all small (0.05 of a logit
moves a softmax probability by about 5% of itself). Top-1 agreement is the primary gate; the bound catches
engines that keep the ranking but distort the scores the AEP ensemble and any calibration depend on.

An engine that fails (or cannot be checked) is never delivered: it is renamed `<engine>.failed`, its record
`<engine>.failed.json` says "failed" with the figures, and the ONNX file stays the deliverable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from factory.io import write_json_atomic

MIN_TOP1_AGREEMENT = 0.99
RTOL = 0.05
INTERFACE = {"image": ("input", "float32"), "logits": ("output", "float32")}


def tolerance(reference: np.ndarray, rtol: float = RTOL) -> float:
    """The allowed max |engine - reference| in logit units: rtol x max(1, max |reference logit|)."""
    finite = np.abs(reference[np.isfinite(reference)])
    return float(rtol * max(1.0, float(finite.max()) if finite.size else 0.0))


def interface_problems(io_types: Mapping[str, tuple[str, str]]) -> list[str]:
    """How an engine's IO tensors ({name: (mode, dtype)}) differ from float32 `image` in, float32 `logits` out."""
    problems = []
    for name, (mode, dtype) in INTERFACE.items():
        got = io_types.get(name)
        if got is None:
            problems.append(f"no {mode} named {name!r}")
        elif tuple(got) != (mode, dtype):
            problems.append(f"{name} is a {got[1]} {got[0]}, not a {dtype} {mode}")
    extra = sorted(set(io_types) - set(INTERFACE))
    if extra:
        problems.append(f"unexpected IO tensors {', '.join(extra)}")
    return problems


@dataclass(frozen=True)
class EngineCheck:
    """How closely an engine reproduces onnxruntime on the validation images, and whether that is enough."""

    images: int
    top1_agreement: float
    max_abs_diff: float  # over the logits the engine returned finite
    max_abs_logit: float  # of the reference
    tolerance: float
    nonfinite: int = 0  # NaN or infinite engine logits
    min_top1_agreement: float = MIN_TOP1_AGREEMENT
    interface: tuple[str, ...] = field(default_factory=tuple)  # problems with the engine's IO tensors

    @property
    def passed(self) -> bool:
        return (
            not self.interface
            and self.nonfinite == 0
            and self.top1_agreement >= self.min_top1_agreement
            and self.max_abs_diff <= self.tolerance
        )

    def failures(self) -> list[str]:
        """What made the check fail, with the figures (empty when it passed)."""
        found = [f"interface: {p}" for p in self.interface]
        if self.nonfinite:
            found.append(f"{self.nonfinite} non-finite logits")
        if self.top1_agreement < self.min_top1_agreement:
            found.append(f"top-1 agreement {self.top1_agreement:.2%} < {self.min_top1_agreement:.0%}")
        if self.max_abs_diff > self.tolerance:
            found.append(f"max abs diff {self.max_abs_diff:.3g} > tolerance {self.tolerance:.3g}")
        return found

    def reason(self) -> str:
        """One line for the record: 'accuracy check over 256 images: top-1 agreement 97.27% < 99%, ...'."""
        return f"accuracy check over {self.images} images: " + "; ".join(self.failures() or ["passed"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": "onnxruntime CPU, float32 ONNX graph",
            "images": self.images,
            "top1_agreement": self.top1_agreement,
            "min_top1_agreement": self.min_top1_agreement,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "tolerance_rule": f"{RTOL:g} x max(1, max |reference logit|)",
            "max_abs_logit": self.max_abs_logit,
            "nonfinite": self.nonfinite,
            "interface": list(self.interface),
            "passed": self.passed,
        }


def compare_logits(
    reference: np.ndarray,
    engine: np.ndarray,
    interface: list[str] | tuple[str, ...] = (),
    min_top1_agreement: float = MIN_TOP1_AGREEMENT,
    rtol: float = RTOL,
) -> EngineCheck:
    """Compare engine logits with the reference logits (both N x classes) and decide; pure, no GPU needed."""
    reference = np.asarray(reference, dtype=np.float64)
    engine = np.asarray(engine, dtype=np.float64)
    if reference.shape != engine.shape or reference.ndim != 2 or len(reference) == 0:
        raise ValueError(f"engine logits {engine.shape} do not match the reference's {reference.shape} (N x classes)")
    finite = np.isfinite(engine)
    both = finite & np.isfinite(reference)
    diffs = np.abs(engine - reference)[both]
    agree = engine.argmax(1) == reference.argmax(1)
    agree &= finite.all(1)  # an image with a NaN logit has no trustworthy top-1
    abs_ref = np.abs(reference[np.isfinite(reference)])
    return EngineCheck(
        images=len(reference),
        top1_agreement=float(agree.mean()),
        max_abs_diff=float(diffs.max()) if diffs.size else 0.0,
        max_abs_logit=float(abs_ref.max()) if abs_ref.size else 0.0,
        tolerance=tolerance(reference, rtol),
        nonfinite=int((~finite).sum()),
        min_top1_agreement=min_top1_agreement,
        interface=tuple(interface),
    )


def onnx_logits(onnx_path: str | Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The reference: onnxruntime (CPU) logits of the float32 ONNX graph for `images`."""
    from factory.runtime import make_session

    session = make_session(onnx_path)
    images = np.ascontiguousarray(images, dtype=np.float32)
    starts = range(0, len(images), batch_size)
    return np.concatenate([session.run(["logits"], {"image": images[s : s + batch_size]})[0] for s in starts])


def check_engine(engine_path: str | Path, onnx_path: str | Path, images: np.ndarray) -> EngineCheck:
    """Run `images` through the engine (GPU) and through onnxruntime on its ONNX graph, and compare."""
    from factory.graphs.tensorrt_runner import TensorRTRunner

    runner = TensorRTRunner(engine_path)
    problems = interface_problems(runner.io_types())
    return compare_logits(onnx_logits(onnx_path, images), runner.run(images), problems)


def failed_path(engine_path: str | Path) -> Path:
    """exit3.engine -> exit3.engine.failed: the name an engine that failed its check is kept under."""
    path = Path(engine_path)
    return path.with_name(path.name + ".failed")


def _record_path(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def settle(engine_path: str | Path, record: dict[str, Any], check: EngineCheck) -> dict[str, Any]:
    """Keep a passing engine (its record gains the check), or reject a failing one; returns the record."""
    if not check.passed:
        return reject(engine_path, record, check.reason(), check)
    engine_path = Path(engine_path)
    record = {**record, "status": "built", "check": check.to_dict()}
    write_json_atomic(_record_path(engine_path), record)
    stale = failed_path(engine_path)  # left by an earlier export of this graph
    stale.unlink(missing_ok=True)
    _record_path(stale).unlink(missing_ok=True)
    return record


def reject(
    engine_path: str | Path, record: dict[str, Any], reason: str, check: EngineCheck | None = None
) -> dict[str, Any]:
    """Take a failed engine out of delivery: rename it to `<engine>.failed`, write `<engine>.failed.json`
    (status "failed", the reason and the figures) and drop `<engine>.json`; returns the new record."""
    engine_path = Path(engine_path)
    failed = failed_path(engine_path)
    if engine_path.exists():
        os.replace(engine_path, failed)
    record = {**record, "status": "failed", "engine": failed.name, "reason": reason}
    if check is not None:
        record["check"] = check.to_dict()
    write_json_atomic(_record_path(failed), record)
    _record_path(engine_path).unlink(missing_ok=True)
    return record
