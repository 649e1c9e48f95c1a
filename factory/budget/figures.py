"""What a budget limits, for one network: one record, computed in one place (`figures`) and read by the search's
members, the search problem, the picks and the summary.

On disk the figures keep the names the run folder has always used (`flash_bytes`, `ram_bytes`, `latency_ms`);
`RECORD_KEYS` is the one place that maps a budget's name to its key in a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BUDGETED = ("params", "macs", "flash", "ram", "latency")
RECORD_KEYS = {"params": "params", "macs": "macs", "flash": "flash_bytes", "ram": "ram_bytes", "latency": "latency_ms"}


@dataclass(frozen=True)
class Figures:
    """params and MACs (exact), flash and RAM bytes of the delivered graph and predicted latency in ms; None for a
    figure not computed (a search without a flash limit skips the footprint walk)."""

    params: int
    macs: int
    flash: int | None = None
    ram: int | None = None
    latency: float | None = None

    def value(self, name: str) -> float | None:
        """The figure of budget `name` ("params", "macs", "flash", "ram", "latency")."""
        if name not in BUDGETED:
            raise ValueError(f"unknown figure {name!r}; figures are {', '.join(BUDGETED)}")
        value = getattr(self, name)
        return None if value is None else float(value)

    def to_record(self) -> dict[str, Any]:
        """The figures under the run folder's keys, every key present (None when not computed)."""
        return {
            "params": int(self.params),
            "macs": int(self.macs),
            "latency_ms": None if self.latency is None else float(self.latency),
            "flash_bytes": None if self.flash is None else int(self.flash),
            "ram_bytes": None if self.ram is None else int(self.ram),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Figures:
        """The figures of an archive, search-result or pick record (missing optional figures are None)."""
        flash, ram, latency = (record.get(RECORD_KEYS[name]) for name in ("flash", "ram", "latency"))
        return cls(
            int(record["params"]),
            int(record["macs"]),
            None if flash is None else int(flash),
            None if ram is None else int(ram),
            None if latency is None else float(latency),
        )
