"""The eight OFAv2 super-network kinds: single-exit (se) or early-exit (ee) x base / dense / parallel / both."""

from __future__ import annotations

from dataclasses import dataclass

from factory.errors import FactoryError


@dataclass(frozen=True)
class Kind:
    """What a super-network kind adds to the plain OFA MobileNetV3."""

    name: str
    early_exit: bool
    dense: bool
    parallel: bool


KINDS: dict[str, Kind] = {}
for _exit in ("se", "ee"):
    for _suffix, _dense, _parallel in (
        ("base", False, False),
        ("dense", True, False),
        ("parallel", False, True),
        ("dense-parallel", True, True),
    ):
        _name = f"{_exit}-{_suffix}"
        KINDS[_name] = Kind(_name, early_exit=_exit == "ee", dense=_dense, parallel=_parallel)


def get_kind(name: str) -> Kind:
    """Look a kind up by name; an unknown name is a user error listing the valid ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise FactoryError(f"unknown super-network kind {name!r}; choose one of {', '.join(KINDS)}") from None
