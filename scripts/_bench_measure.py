"""Timing records shared by scripts/bench_run.py and scripts/bench_scaleout.py.

Both time the same sweep several ways, repeat it, and report medians and spreads; both
check that the scores of each way agree with a reference within a relative tolerance.
"""

from __future__ import annotations

import gc
import os
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Measure:
    """Seconds per key (one entry a repeat) and other values noted per key."""

    times: dict[str, list[float]] = field(default_factory=dict)
    values: dict[str, list[Any]] = field(default_factory=dict)

    def time(self, key: str, seconds: float) -> None:
        self.times.setdefault(key, []).append(seconds)

    def note(self, key: str, value: Any) -> None:
        self.values.setdefault(key, []).append(value)

    def median(self, key: str) -> float:
        return statistics.median(self.times[key])

    def span(self, key: str) -> str:
        values = self.times[key]
        return f"{min(values):.2f}–{max(values):.2f}"


def settle() -> None:
    """Before a timed step: collect garbage and flush dirty pages, so the step does not pay
    for what the one before left behind."""
    gc.collect()
    os.sync()


def max_rel_diff(a: dict[str, float], b: dict[str, float]) -> float:
    """The largest relative difference between two score tables; inf if their keys differ."""
    if set(a) != set(b):
        return float("inf")
    return max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-300) for k in a)
