"""What runs after each search iteration: `run()`'s progress bar and any caller's own hook.

`SearchEngine` calls its callbacks in order once an iteration (0: the initial archive) is recorded and its
state saved; raising from one stops the search, and a later run resumes after that iteration.
"""

from __future__ import annotations

from typing import Any, Protocol

from tqdm.auto import tqdm

# The engine (`factory.search.engine.SearchEngine`) calls its callbacks with itself; it is not imported here,
# since the engine imports its callbacks.
SearchEngine = Any


class IterationCallback(Protocol):
    """Anything with `on_iteration_end`; raise from it to stop the search."""

    def on_iteration_end(self, engine: SearchEngine, record: dict[str, Any]) -> None: ...


class ProgressBar:
    """The iteration bar of `run()`, with the last hypervolume and predictor rho."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, initial=min(done, total), desc="search", unit="it", disable=not enabled)

    def on_iteration_end(self, engine: SearchEngine, record: dict[str, Any]) -> None:
        self.bar.set_postfix(hv=f"{record['hypervolume']:.4f}", rho=_fmt(record["spearman"]))
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
