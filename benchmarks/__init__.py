"""The project's own measurement scripts, run as `python -m benchmarks.NAME` from a checkout.

The library never imports this package; each script prints human lines on stderr and, with --json, one
JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def run_cli(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], Any], argv: list[str] | None) -> int:
    """Parse `argv`, run the benchmark and, with --json, print its result as the last stdout line.

    The exit code is 1 when the result says `"ok": false`, else 0.
    """
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    return 1 if isinstance(result, dict) and result.get("ok") is False else 0
