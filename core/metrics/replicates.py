"""Predictions per group of replicate scans, and their scores.

When several scans measure one physical sample (a group), chemometricians report, beside
the per-scan scores, the scores of the group's averaged prediction against its reference.
One row per group: its number of scans, and

- regression: the mean y_true and the mean y_pred of its scans, residual = y_pred - y_true
  of those means;
- classification: the majority class of its scans' y_true and of their predicted classes
  (a vote: the class predicted for most scans; a tie goes to the class that sorts first as
  text), and whether the voted class is the group's class.

The scores are `core.metrics.scores.scores_for` on those per-group values: the same metrics
and directions as per scan. Ranking never uses them (`core.metrics.ranking` ranks on the
per-scan pooled out-of-fold score).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from n4afs_core.metrics.scores import scores_for

COLUMNS = {
    "regression": ("group", "n_scans", "y_true_mean", "y_pred_mean", "residual", "fold"),
    "classification": (
        "group",
        "n_scans",
        "y_true_majority",
        "y_pred_majority",
        "correct",
        "fold",
    ),
}
HOW = {
    "regression": "mean of the group's scans (y_true, y_pred); residual = y_pred - y_true",
    "classification": "majority vote of the group's scans (a tie: the class first as text)",
}


@dataclass(frozen=True)
class GroupPredictions:
    """Per-group values, groups in text order."""

    task: str
    groups: list[str]
    n_scans: list[int]
    y_true: np.ndarray
    y_pred: np.ndarray
    folds: list[str]  # the fold(s) the group's scans were validated in, space separated

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows of `COLUMNS[task]`."""
        if self.task == "regression":
            third = (self.y_pred - self.y_true).tolist()
        else:
            third = [int(p == t) for t, p in zip(self.y_true, self.y_pred, strict=True)]
        return list(
            zip(
                self.groups,
                self.n_scans,
                self.y_true.tolist(),
                self.y_pred.tolist(),
                third,
                self.folds,
                strict=True,
            )
        )

    def scores(self) -> dict[str, float]:
        """Every metric of the task on the per-group values (`scores_for`)."""
        return scores_for(self.task, self.y_true, self.y_pred)


def majority(values: Sequence[Any]) -> Any:
    """The most frequent value; a tie goes to the one first as text."""
    counts = Counter(values)
    top = max(counts.values())
    return min((v for v, n in counts.items() if n == top), key=str)


def by_group(
    task: str,
    groups: Sequence[str],
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    folds: Sequence[int] | None = None,
) -> GroupPredictions:
    """Per-scan predictions (one entry per scan in each sequence) gathered per group."""
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(str(g), []).append(i)
    names = sorted(members)
    regression = task == "regression"
    t, p = np.asarray(y_true), np.asarray(y_pred)
    true_values, pred_values, fold_text = [], [], []
    for name in names:
        rows = members[name]
        if regression:
            true_values.append(float(np.mean(t[rows].astype(float))))
            pred_values.append(float(np.mean(p[rows].astype(float))))
        else:
            true_values.append(majority(t[rows].tolist()))
            pred_values.append(majority(p[rows].tolist()))
        used = sorted({int(folds[i]) for i in rows}) if folds is not None else []
        fold_text.append(" ".join(str(f) for f in used if f >= 0))
    dtype = float if regression else object
    return GroupPredictions(
        task,
        names,
        [len(members[n]) for n in names],
        np.array(true_values, dtype=dtype),
        np.array(pred_values, dtype=dtype),
        fold_text,
    )
