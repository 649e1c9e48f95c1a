"""Shared helpers of the data-layer tests."""

from __future__ import annotations

from types import SimpleNamespace

from factory.data import DATA_DEFAULTS


def data_cfg(**overrides: object) -> SimpleNamespace:
    """A data config (every default, plus `overrides`) as the loaders see it."""
    return SimpleNamespace(**{**DATA_DEFAULTS, **overrides})
