"""The timing loop every runner shares: warm-up, then a fixed count or a fixed duration of timed calls."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_calls(
    call: Callable[[], object],
    warmup: int = 10,
    iterations: int = 200,
    duration_s: float = 0.0,
    synchronize: Callable[[], None] | None = None,
) -> list[float]:
    """Seconds per call of `call`, warm-up excluded.

    With `duration_s` > 0 calls are timed until that much time has passed (at least `iterations` // 10 and
    at least 10 of them); otherwise exactly `iterations` calls. `synchronize` waits for asynchronous work
    (a CUDA stream) so each time covers the whole call.
    """
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        call()
    sync()
    times: list[float] = []
    deadline = time.perf_counter() + duration_s
    minimum = max(10, iterations // 10)
    while True:
        start = time.perf_counter()
        call()
        sync()
        end = time.perf_counter()
        times.append(end - start)
        if duration_s > 0:
            if end >= deadline and len(times) >= minimum:
                break
        elif len(times) >= iterations:
            break
    return times
