"""What the benchmarks share: the median wall time of repeated runs (the median, so one slow round
from a garbage collection or a busy machine does not move the result)."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def median_seconds(action: Callable[[], Any], rounds: int) -> float:
    """Median wall time of ``rounds`` calls of ``action``, in seconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
