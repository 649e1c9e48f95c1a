"""The device budget: parsing the limits a user gives (`parse`) and the one `Budget` object with the figures it
limits and the feasibility checks (`feasibility`). A shared layer: every stage takes a `Budget` from here."""

from factory.budget.parse import (
    format_bytes,
    format_count,
    latency_profile_digest,
    parse_budget,
    parse_latency,
    parse_size,
)

__all__ = ["format_bytes", "format_count", "latency_profile_digest", "parse_budget", "parse_latency", "parse_size"]
