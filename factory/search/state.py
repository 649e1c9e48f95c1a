"""The files of RUN/search/ and how a search is saved and resumed.

    archive.jsonl   every real evaluation, one JSON line each, appended as it happens
    state.json      resume state after the last finished iteration (written atomically)
    history.json    per-iteration records (hypervolume, predictor rho / tau, seconds per step)
    supernet.pt     the adapted super-networks (only when adaptation ran), factory checkpoint format
    result.json     the final archive and front, written when the search ends

The log is append-only (rewriting thousands of lines per evaluation would be quadratic); a crash can
leave a torn last line, which is ignored. `state.json` records how many log lines it covers: on resume,
the lines after that are results the interrupted run computed but never checkpointed. They are handed
back to the engine as pending results (reused, not recomputed) and cut from the file, so the resumed
search logs them again at the same point and ends with the same log and archive as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from factory.elastic import OFASupernet
from factory.errors import FactoryError
from factory.io import write_json_atomic, write_text_atomic
from factory.recipe import Recipe
from factory.runfolder import SEARCH_LOG, read_search_log
from factory.space.config import SpaceSpec
from factory.training.checkpoint import load_checkpoint, save_checkpoint

FORMAT = "factory-search/1"
LOG, STATE, HISTORY, RESULT = SEARCH_LOG, "state.json", "history.json", "result.json"
WEIGHTS, PREVIOUS_WEIGHTS = "supernet.pt", "supernet.prev.pt"
STATE_KEYS = ("format", "settings", "iteration", "version", "archive", "log_lines", "history", "reference")


class SearchFiles:
    """Paths and reads / writes of one RUN/search/ folder."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.log = self.folder / LOG
        self.state = self.folder / STATE
        self.history = self.folder / HISTORY
        self.result = self.folder / RESULT
        self.weights = self.folder / WEIGHTS
        self.previous_weights = self.folder / PREVIOUS_WEIGHTS

    def started(self) -> bool:
        """True when an earlier search left anything to resume."""
        return self.state.exists() or (self.log.exists() and self.log.stat().st_size > 0)

    # --- the evaluation log --------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Append one evaluation as a single write (a crash tears at most this line)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()

    def read_log(self) -> list[dict[str, Any]]:
        """Every complete, parseable line of the log (a torn or garbled line ends it)."""
        return read_search_log(self.log)

    def cut_log(self, records: list[dict[str, Any]]) -> None:
        """Rewrite the log with exactly `records` (atomically)."""
        write_text_atomic(self.log, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))

    # --- state ---------------------------------------------------------------------------------------

    def save_state(self, state: dict[str, Any]) -> None:
        write_json_atomic(self.state, {"format": FORMAT, **state})

    def load_state(self) -> dict[str, Any] | None:
        """The saved state, None when there is none; unreadable or incomplete state is a FactoryError."""
        if not self.state.exists():
            return None
        try:
            state = json.loads(self.state.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self.corrupt(f"{type(exc).__name__}") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise self.corrupt("not a factory search state")
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise self.corrupt(f"missing {', '.join(missing)}")
        return state

    def corrupt(self, why: str) -> FactoryError:
        return FactoryError(
            f"search state {self.state} is corrupt ({why}); delete {self.folder} or rerun with --force "
            "to start the search over"
        )

    # --- adapted weights -----------------------------------------------------------------------------

    def save_weights(
        self, recipe: Recipe, spec: SpaceSpec, supernets: dict[float, OFASupernet], version: str, iteration: int
    ) -> None:
        """Write the adapted super-networks; the previous file is kept until the next state is saved, so
        a crash between the two writes still finds the weights the saved state refers to."""
        if self.weights.exists():
            os.replace(self.weights, self.previous_weights)
        save_checkpoint(
            self.weights,
            {
                "recipe": recipe.to_dict(),
                "spec": spec,
                "supernets": {w: net.state_dict() for w, net in supernets.items()},
                "metrics": {},
                "search_version": version,
                "search_iteration": iteration,
            },
        )

    def drop_previous_weights(self) -> None:
        self.previous_weights.unlink(missing_ok=True)

    def load_weights(self, version: str) -> dict[float, dict[str, Any]]:
        """State dicts of the adapted super-networks saved with `version`; a FactoryError when none matches."""
        for path in (self.weights, self.previous_weights):
            if path.exists():
                try:
                    state = load_checkpoint(path)
                except FactoryError:
                    continue  # a torn file; the other one may be the right one
                if state.get("search_version") == version:
                    return state["supernets"]
        raise self.corrupt(f"the adapted super-network weights of version {version} are missing")
