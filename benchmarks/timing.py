"""What the benchmarks share: medians of repeated runs (so one slow round from a garbage collection
or a busy machine does not move the result), paired runs reported as ratios (on a loaded machine the
ratio of two things measured side by side is steadier than either time), and child-process usage."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def median_seconds(action: Callable[[], Any], rounds: int) -> float:
    """Median wall time of ``rounds`` calls of ``action``, in seconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def cpu_seconds(action: Callable[[], Any]) -> float:
    """CPU time (user + system) of one call of ``action`` in this process."""
    start = time.process_time()
    action()
    return time.process_time() - start


@dataclass(frozen=True)
class Usage:
    """One child process: wall seconds, CPU seconds (user + system), peak resident MiB."""

    wall: float
    cpu: float
    peak_mib: float


def run_child(argv: Sequence[str], *, env: dict[str, str] | None = None, stdin: str | None = None) -> Usage:
    """Run ``argv`` to completion (output discarded) and measure it. The peak RSS is the child's own
    (``ru_maxrss`` of ``wait4``), not the largest of every child so far; but Linux counts the
    high-water mark of the child's image before ``exec``, a copy of this process, so a child spawned
    after this process grew reports at least this process's size: measure children first."""
    start = time.perf_counter()
    process = subprocess.Popen(
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None,
        env={**os.environ, **(env or {})}, cwd=REPO,
    )
    if stdin:
        assert process.stdin is not None
        process.stdin.write(stdin.encode())
        process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # plan/check exit 1 on violations: still a complete run
        err = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {err[-2000:]}")
    if process.stderr:
        process.stderr.close()
    return Usage(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


@dataclass(frozen=True)
class Paired:
    """``a`` and ``b`` measured alternately, ``rounds`` times each."""

    a: list[float]
    b: list[float]

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios a/b."""
        return statistics.median(x / y for x, y in zip(self.a, self.b))

    @property
    def median_a(self) -> float:
        return statistics.median(self.a)

    @property
    def median_b(self) -> float:
        return statistics.median(self.b)


def paired(a: Callable[[], float], b: Callable[[], float], rounds: int) -> Paired:
    """Call ``a`` and ``b`` alternately (each returns the figure it measured), ``rounds`` times."""
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(rounds):
        xs.append(a())
        ys.append(b())
    return Paired(xs, ys)


def spread(values: Sequence[float]) -> float:
    """(max - min) / median, as a fraction: 0.1 is ±5 % around the middle."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


def self_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
