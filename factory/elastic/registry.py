"""Registry of super-network kinds: `build_supernet("ee-dense", 1.0)` instead of if-chains over kinds."""

from __future__ import annotations

from collections.abc import Callable

from factory.elastic.supernet import OFASupernet
from factory.errors import FactoryError
from factory.space.config import SpaceSpec
from factory.space.kinds import KINDS

SupernetBuilder = Callable[[SpaceSpec, float], OFASupernet]
_REGISTRY: dict[str, SupernetBuilder] = {}


def register_supernet(name: str) -> Callable[[SupernetBuilder], SupernetBuilder]:
    """Decorator: register `builder(spec, width) -> OFASupernet` under the kind `name`."""

    def decorate(builder: SupernetBuilder) -> SupernetBuilder:
        if name in _REGISTRY:
            raise ValueError(f"super-network kind {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorate


def list_supernets() -> list[str]:
    return list(_REGISTRY)


def build_supernet(kind_or_spec: str | SpaceSpec, width: float = 1.0) -> OFASupernet:
    """Build the super-network of a kind name (default channel plan) or of a full SpaceSpec, at `width`."""
    kind = kind_or_spec if isinstance(kind_or_spec, str) else kind_or_spec.kind
    if kind not in _REGISTRY:
        raise FactoryError(f"unknown super-network kind {kind!r}; choose one of {', '.join(_REGISTRY)}")
    spec = SpaceSpec(kind=kind) if isinstance(kind_or_spec, str) else kind_or_spec
    return _REGISTRY[kind](spec, width)


def _ofav2(kind: str) -> SupernetBuilder:
    def build(spec: SpaceSpec, width: float) -> OFASupernet:
        return OFASupernet(spec.with_kind(kind), width)

    return build


for _kind in KINDS:  # the eight OFAv2 kinds share one class; the spec's kind flags switch dense/parallel/exits
    register_supernet(_kind)(_ofav2(_kind))
