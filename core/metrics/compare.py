"""Two runs side by side: the same configs (by config hash) on the same dataset and target,
each run's score by one metric, which run does better on each, and which holds the best.

Pure: rankings in (one per run, already ranked by the same metric), rows out. The metric's
direction decides (`core.metrics.scores.is_better`); a tie keeps neither.

Design: docs/DESIGN.md, "Metrics and direction".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from n4afs_core.metrics.scores import METRICS, is_better

COLUMNS = (
    "dataset",
    "target",
    "config",
    "metric",
    "direction",
    "result_a",
    "score_a",
    "result_b",
    "score_b",
    "better",
)


@dataclass(frozen=True)
class Entry:
    """One result of a run in the comparison: its config, its label, its ranked value."""

    config_hash: str
    name: str
    label: str
    value: float | None


@dataclass(frozen=True)
class Row:
    dataset: str
    target: str | None
    config: str
    metric: str
    direction: str
    result_a: str | None
    score_a: float | None
    result_b: str | None
    score_b: float | None
    better: str  # "a", "b", "tie", "only a", "only b"

    def values(self) -> tuple:
        return tuple(getattr(self, c) for c in COLUMNS)


@dataclass(frozen=True)
class GroupComparison:
    """One dataset's target: the configs side by side and which run holds the best."""

    dataset: str
    target: str | None
    metric: str
    rows: list[Row]
    best_a: Entry | None
    best_b: Entry | None
    best_in: str  # "a", "b", "tie", or "none"


@dataclass(frozen=True)
class Comparison:
    """Two runs (their ids) and one `GroupComparison` per dataset and target either ran."""

    run_a: str
    run_b: str
    groups: list[GroupComparison]


def side_by_side(
    dataset: str, target: str | None, metric: str, a: Sequence[Entry], b: Sequence[Entry]
) -> GroupComparison:
    """`a`, `b`: each run's results on the group, best first by `metric` (where a run
    holds one config twice, its first, i.e. its better, stands). Rows in A's order, then
    the configs only B holds, in B's order."""
    first_a = _first_per_config(a)
    first_b = _first_per_config(b)
    direction = METRICS[metric].direction
    rows = []
    for config in [*first_a, *(c for c in first_b if c not in first_a)]:
        ea, eb = first_a.get(config), first_b.get(config)
        rows.append(
            Row(
                dataset,
                target,
                (ea or eb).name,
                metric,
                direction,
                ea.label if ea else None,
                ea.value if ea else None,
                eb.label if eb else None,
                eb.value if eb else None,
                _better(metric, ea, eb),
            )
        )
    best_a, best_b = (a[0] if a else None), (b[0] if b else None)
    best = _better(metric, best_a, best_b)
    best_in = {"only a": "a", "only b": "b"}.get(best, best) if (best_a or best_b) else "none"
    return GroupComparison(dataset, target, metric, rows, best_a, best_b, best_in)


def _first_per_config(entries: Sequence[Entry]) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for e in entries:
        found.setdefault(e.config_hash, e)
    return found


def _better(metric: str, a: Entry | None, b: Entry | None) -> str:
    if a is None:
        return "only b"
    if b is None:
        return "only a"
    if is_better(metric, a.value, b.value):
        return "a"
    if is_better(metric, b.value, a.value):
        return "b"
    return "tie"
