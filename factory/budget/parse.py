"""Parsing of device budgets ("0.3M", "300k", "300000", "12.5M") shared by every command."""

from __future__ import annotations

import re

from factory.errors import FactoryError

_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgG]?)\s*$")


def parse_budget(text: str | int | float | None, what: str = "budget") -> int | None:
    """Turn a human budget into an integer count; None stays None (no budget).

    Accepted: plain integers ("300000"), decimals with a k / M / G suffix ("0.3M", "300k", "12.5M").
    Zero, negatives, other suffixes and empty strings raise a FactoryError naming the flag.
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise FactoryError(f"{what}: expected a count like 0.3M, 300k or 300000, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _PATTERN.match(str(text))
        if not match:
            raise FactoryError(
                f"{what}: cannot read {text!r}; write a positive count like 0.3M, 300k or 300000 (suffixes k, M, G)"
            )
        value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    count = round(value)
    if count <= 0:
        raise FactoryError(f"{what}: must be positive, got {text!r}; write a count like 0.3M, 300k or 300000")
    return count


def format_count(count: int | float | None) -> str:
    """Short human form of a count: 300000 -> '0.30M', 12500 -> '12.5k'."""
    if count is None:
        return "-"
    if count >= 1_000_000:
        return f"{count / 1_000_000:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.1f}k"
    return str(int(count))


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1_000,
    "mb": 1_000_000,
    "gb": 1_000_000_000,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int | None, what: str = "size") -> int | None:
    """Turn a memory size into bytes; None stays None (no budget).

    Accepted: bytes ("262144", "512B"), decimal units KB / MB / GB (1000-based, as flash datasheets print
    them) and binary units KiB / MiB / GiB (1024-based), case-insensitive ("256KB", "1.5MB", "256KiB").
    Anything else raises a FactoryError naming the flag.
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise FactoryError(f"{what}: expected a size like 256KB, 1.5MB or 262144, got {text!r}")
    match = _SIZE_PATTERN.match(str(text))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _SIZE_UNITS:
        raise FactoryError(
            f"{what}: cannot read {text!r}; write a size like 256KB, 1.5MB, 256KiB or a byte count like 262144"
        )
    size = round(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise FactoryError(f"{what}: must be positive, got {text!r}; write a size like 256KB or 1.5MB")
    return size


def format_bytes(size: int | float | None) -> str:
    """Short human form of a byte count, decimal units: 262144 -> '262.1 KB'."""
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def parse_latency(text: str | float | None, profile: object | None) -> float | None:
    """A latency budget in milliseconds ("5", "2.5ms"); it needs the device profile that predicts latency."""
    if text is None:
        return None
    match = re.match(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms)?\s*$", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise FactoryError(f"--budget-latency: cannot read {text!r}; write milliseconds at batch 1, like 5 or 2.5ms")
    if profile is None:
        raise FactoryError(
            "--budget-latency needs --latency-profile FILE: make a kit with `factory profile-kit --run RUN`, "
            "time it on the device with `factory profile KIT --out FILE`"
        )
    return float(match.group(1))


def latency_profile_digest(path: object | None) -> str | None:
    """A short digest of a latency profile file, so a resumed search knows it is the same one."""
    if path is None:
        return None
    from factory.io import file_sha256

    try:
        return file_sha256(str(path))[:16]
    except OSError:
        raise FactoryError(f"--latency-profile {path} cannot be read; run `factory profile KIT --out FILE`") from None
