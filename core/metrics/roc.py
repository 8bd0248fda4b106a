"""ROC curves of a classifier from its pooled out-of-fold class probabilities: one curve per
class, that class against the others, with its area under the curve.

Only where probabilities exist: a model with `predict_proba` (LDA, logistic regression,
random forests...; never PLS-DA, whose scores are not probabilities). The predictions blob
holds labels only, so the probabilities come from the fold models themselves, each applied
to the samples it did not see (`out_of_fold_probabilities`).

Design: docs/DESIGN.md, "Metrics and direction".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

COLUMNS = ("class", "threshold", "false_positive_rate", "true_positive_rate", "auc")


@dataclass(frozen=True)
class Curve:
    label: str
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def has_probabilities(estimator: Any) -> bool:
    """Whether an (unfitted or fitted) estimator gives class probabilities."""
    try:
        return hasattr(estimator, "predict_proba")
    except Exception:  # an `available_if` check that needs a fit
        return False


def out_of_fold_probabilities(
    folds: Sequence[tuple[Any, np.ndarray, np.ndarray]], n_samples: int, classes: Sequence[Any]
) -> np.ndarray:
    """(n_samples, len(classes)) probabilities: each fold's fitted pipeline applied to the
    rows it validated (`folds`: (pipeline, row positions, X of those rows)). A fold that
    never saw a class gives it 0; rows no fold validated stay NaN. Classes match as text."""
    column = {str(c): i for i, c in enumerate(classes)}
    out = np.full((n_samples, len(classes)), np.nan)
    for pipeline, rows, x_rows in folds:
        proba = np.asarray(pipeline.predict_proba(x_rows), dtype=float)
        block = np.zeros((len(rows), len(classes)))
        for j, label in enumerate(pipeline.classes_):
            block[:, column[str(label)]] = proba[:, j]
        out[rows] = block
    return out


def roc_curves(
    y_true: Sequence[Any], probabilities: np.ndarray, classes: Sequence[Any]
) -> list[Curve]:
    """One-vs-rest ROC per class (labels compared as text), rows with NaN left out."""
    from sklearn.metrics import auc, roc_curve

    proba = np.asarray(probabilities, dtype=float)
    keep = ~np.isnan(proba).any(axis=1)
    truth = np.array([str(v) for v in y_true])[keep]
    proba = proba[keep]
    curves = []
    for i, label in enumerate(str(c) for c in classes):
        positive = truth == label
        if positive.all() or not positive.any():
            continue  # a class absent (or alone) has no ROC
        fpr, tpr, thresholds = roc_curve(positive, proba[:, i])
        curves.append(Curve(label, fpr, tpr, thresholds, float(auc(fpr, tpr))))
    return curves


def curve_rows(curves: Sequence[Curve]) -> list[tuple]:
    """roc.csv: every point of every curve, its class's AUC repeated."""
    return [
        (c.label, _finite(t), float(f), float(p), c.auc)
        for c in curves
        for t, f, p in zip(c.thresholds, c.fpr, c.tpr, strict=True)
    ]


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
