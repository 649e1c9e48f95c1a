"""Reading a run folder's picks, shared by the stages that work pick by pick (finetune, export, bench, report,
bundle): the pick list, the one "for each pick, skip what is done" loop, and whether a pick's export is current.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.io import file_sha256

SEARCH_LOG = "archive.jsonl"  # the search's record of every evaluation, in search/


def run_picks(run: Path) -> list[dict[str, Any]]:
    """The picks of RUN/picks/picks.json, or a clear error when post-processing has not run."""
    index = run / "picks" / "picks.json"
    if not index.is_file():
        raise FactoryError(f"{index} not found; run `factory finetune --run {run}` first")
    try:
        return json.loads(index.read_text())["picks"]
    except (json.JSONDecodeError, KeyError):
        raise FactoryError(f"{index} is corrupt; delete RUN/picks and rerun `factory finetune --run {run}`") from None


def export_done(folder: Path) -> bool:
    """True when folder/export.json exists, was made from the current model.pt, every ONNX file is there, and
    every engine it lists as built is there and was accuracy-checked (exports from before the engine check
    are redone, so no unchecked engine is benchmarked or delivered)."""
    path = folder / "export.json"
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
        if record.get("model_sha256") != file_sha256(folder / "model.pt"):
            return False
        for graph in record["graphs"]:
            engine = graph.get("tensorrt") or {}
            if not (folder / graph["onnx"]).is_file():
                return False
            if engine.get("status") == "built" and not (engine.get("check") and (folder / engine["engine"]).is_file()):
                return False
        return True
    except (json.JSONDecodeError, KeyError, TypeError, OSError):
        return False


@dataclass(frozen=True)
class PickStep:
    """One pick of a stage's loop: its number (from 1), its entry in picks.json, its folder, and whether the
    stage's own files say it is done (a resumed stage skips it)."""

    number: int
    entry: dict[str, Any]
    folder: Path
    done: bool


def pick_steps(
    run: Path,
    entries: Sequence[dict[str, Any]] | None = None,
    only: str | None = None,
    is_done: Callable[[Path], bool] = lambda folder: False,
) -> Iterator[PickStep]:
    """Each pick of `entries` (default: the run's picks.json) in order, `only` that one when given, with
    `is_done(folder)` telling whether the stage already finished it."""
    entries = run_picks(run) if entries is None else entries
    for number, entry in enumerate(entries, 1):
        if only is not None and entry["id"] != only:
            continue
        folder = run / "picks" / entry["id"]
        yield PickStep(number, entry, folder, is_done(folder))


def result_at(record: dict[str, Any], batch: int) -> dict[str, Any] | None:
    """The result entry of `batch` in a bench record (`bench/*.json`), if measured."""
    return next((r for r in record.get("results", []) if r["batch"] == batch), None)


def read_search_log(log: Path) -> list[dict[str, Any]]:
    """Every complete, parseable line of the search's archive log (a torn or garbled line ends it)."""
    if not log.exists():
        return []
    records = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(record, dict):
            break
        records.append(record)
    return records
