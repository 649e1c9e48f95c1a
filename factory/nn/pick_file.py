"""A pick's model.pt: the network with everything needed to rebuild it, as plain data (spec, config, exits,
weights). Written by the finetune stage, read by export, bench and convert, so it lives below them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.io import save_torch_atomic
from factory.nn.network import StaticNetwork
from factory.space.config import SpaceSpec, SubnetConfig
from factory.untrusted import UnsafeFileError, load_plain

PICK_FORMAT = "factory-pick/2"
LEGACY_PICK_FORMAT = "factory-pick/1"  # pickled SpaceSpec: read only by `factory convert --trust`


def save_pick_model(
    path: Path, spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...], model: StaticNetwork
) -> None:
    """A pick's network with everything needed to rebuild it, as plain data: spec, config, exits and weights."""
    save_torch_atomic(path, pick_state(spec, config, exits, model.state_dict()))


def pick_state(
    spec: SpaceSpec, config: SubnetConfig, exits: tuple[int, ...], weights: dict[str, Any]
) -> dict[str, Any]:
    """The content of a pick's model.pt (format factory-pick/2)."""
    return {
        "format": PICK_FORMAT,
        "spec": spec.to_dict(),
        "config": config.to_dict(),
        "exits": list(exits),
        "state_dict": weights,
    }


def load_pick_model(path: str | Path) -> tuple[StaticNetwork, SubnetConfig]:
    """Rebuild a pick's StaticNetwork (eval mode) from its model.pt, read as plain data (no code can run)."""
    try:
        state = load_plain(path)
        if not isinstance(state, dict) or state.get("format") != PICK_FORMAT:
            raise ValueError("not a pick")
        spec = SpaceSpec.from_dict(state["spec"])
        config = SubnetConfig.from_dict(state["config"])
        net = StaticNetwork(spec, config, tuple(state["exits"]))
        net.load_state_dict(state["state_dict"])
    except UnsafeFileError:
        raise
    except Exception:
        raise FactoryError(f"{path} is not a readable pick model; rerun `factory finetune` for it") from None
    return net.eval(), config
