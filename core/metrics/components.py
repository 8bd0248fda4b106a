"""Choosing the number of latent variables: RMSECV (and RMSEC, RMSEP) against the number of
components, one curve per preprocessing (and model, and any other generator choice).

Each component count is a result of its own; this gathers their scores into curves. Where
two results (two runs) hold the same point, the lower RMSECV stands for it. Each curve's
minimum is marked, and the lowest RMSECV of all is the chosen one.

Design: docs/DESIGN.md, "Metrics and direction".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

COLUMNS = (
    "curve",
    "preprocessing",
    "model",
    "n_components",
    "rmsec",
    "rmsecv",
    "rmsep",
    "curve_minimum",
    "chosen",
    "result",
    "run",
)


@dataclass(frozen=True)
class Point:
    curve: str  # what the curve holds fixed: `snv pls`, `sg1 pls savgol.window_length=11`
    preprocessing: str
    model: str
    n_components: int
    rmsec: float | None
    rmsecv: float | None
    rmsep: float | None
    result: str
    run: str
    curve_minimum: bool = False
    chosen: bool = False

    def row(self) -> tuple:
        return tuple(getattr(self, c) for c in COLUMNS)


def curve_name(preprocessing: str, model: str, other: dict) -> str:
    """`snv pls`, then every other generator choice as `name=value`, sorted."""
    return " ".join([preprocessing, model, *(f"{k}={v}" for k, v in sorted(other.items()))])


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def curves(points: Iterable[Point]) -> list[Point]:
    """The points sorted by curve then component count, one per (curve, count) (the lowest
    RMSECV), each curve's minimum and the overall minimum marked."""
    kept: dict[tuple[str, int], Point] = {}
    for p in points:
        key = (p.curve, p.n_components)
        old = kept.get(key)
        if old is None or _lower(p, old):
            kept[key] = p
    ordered = [kept[k] for k in sorted(kept)]
    best_of: dict[str, Point] = {}
    for p in ordered:
        if _finite(p.rmsecv) and (p.curve not in best_of or _lower(p, best_of[p.curve])):
            best_of[p.curve] = p
    chosen = None
    for p in best_of.values():
        if chosen is None or _lower(p, chosen):
            chosen = p
    return [
        replace(p, curve_minimum=best_of.get(p.curve) is p, chosen=p is chosen) for p in ordered
    ]


def _lower(a: Point, b: Point) -> bool:
    """Whether a's RMSECV is lower than b's (an undefined one is never lower); ties keep b."""
    if not _finite(a.rmsecv):
        return False
    return not _finite(b.rmsecv) or a.rmsecv < b.rmsecv
