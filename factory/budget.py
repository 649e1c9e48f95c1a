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
