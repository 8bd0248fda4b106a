"""Chemometrics scores, defined as NIRS practitioners expect, and which way each one is better.

Nouns:

- *reference* (``y_true``, y): the laboratory value the model is calibrated against.
- *prediction* (``y_pred``, ŷ): the model's output for the same samples, in the same order.
- *residual* e = ŷ − y: predicted minus reference, so a positive bias means over-prediction.
- *direction*: "lower" (errors), "higher" (R², RPD, accuracy) or "zero" (bias: closest to zero
  is best, whatever the sign).
- *rankable*: whether a metric can pick a best model at all. Slope and offset describe the
  predicted-vs-reference line; neither alone says which model is better.

One RMSE formula serves three names: RMSEC on the calibration (train) set, RMSECV on the
*pooled* out-of-fold predictions of a cross-validation, RMSEP on a test set. The name says where
the predictions came from, not a different formula.

Degenerate data never raises or warns: a score that is undefined (too few samples, constant
reference, a zero denominator) is NaN, and NaN sorts last in `sort_key`/`best_index`, so one
broken run cannot win a ranking or crash a report.

Definitions follow:

- Næs, Isaksson, Fearn & Davies (2002), *A User-Friendly Guide to Multivariate Calibration and
  Classification*, NIR Publications (RMSEP, bias, SEP with n − 1).
- Fearn (2002), "Assessing calibrations: SEP, RPD, RER and R²", *NIR news* 13(6), 12–14.
- Williams (1987), in Williams & Norris (eds.), *Near-Infrared Technology in the Agricultural
  and Food Industries*, AACC (RPD).
- Bellon-Maurel et al. (2010), "Critical review of chemometric indicators commonly used for
  assessing the quality of the prediction of soil attributes by NIR spectroscopy",
  *TrAC* 29(9), 1073–1081 (RPIQ).

Design: docs/DESIGN.md, "Concepts".
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from n4afs_core.errors import MetricError, N4AError
from numpy.typing import ArrayLike

Direction = Literal["lower", "higher", "zero"]
Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class Metric:
    """A score's name, which way is better, its task, and whether it may rank models."""

    name: str
    direction: Direction
    task: Task
    description: str
    rankable: bool = True


_METRIC_LIST = (
    Metric(
        "rmse",
        "lower",
        "regression",
        "root mean squared error (RMSEC on train, RMSECV pooled out-of-fold, RMSEP on test)",
    ),
    Metric("mae", "lower", "regression", "mean absolute error"),
    Metric("bias", "zero", "regression", "mean of predicted minus reference (+ = over-predicts)"),
    Metric("sep", "lower", "regression", "bias-corrected standard error of prediction (n - 1)"),
    Metric("r2", "higher", "regression", "coefficient of determination, 1 - SS_res / SS_tot"),
    Metric(
        "r2_corr", "higher", "regression", "squared Pearson correlation of reference, predicted"
    ),
    Metric(
        "slope",
        "higher",
        "regression",
        "slope of predicted on reference (ideal 1; descriptive)",
        rankable=False,
    ),
    Metric(
        "offset",
        "zero",
        "regression",
        "intercept of predicted on reference (ideal 0; descriptive)",
        rankable=False,
    ),
    Metric("rpd", "higher", "regression", "ratio of performance to deviation, SD(y) / SEP"),
    Metric(
        "rpiq", "higher", "regression", "ratio of performance to interquartile range, IQR / RMSE"
    ),
    Metric("accuracy", "higher", "classification", "fraction of samples predicted correctly"),
    Metric(
        "balanced_accuracy",
        "higher",
        "classification",
        "mean per-class recall over the reference classes",
    ),
    Metric("f1", "higher", "classification", "macro F1 over reference and predicted labels"),
)

METRICS: dict[str, Metric] = {metric.name: metric for metric in _METRIC_LIST}
"""Every known metric by name; `regression_scores`/`classification_scores` return these keys."""

_REGRESSION_NAMES = tuple(m.name for m in _METRIC_LIST if m.task == "regression")
_CLASSIFICATION_NAMES = tuple(m.name for m in _METRIC_LIST if m.task == "classification")


def get_metric(name: str) -> Metric:
    """Look a metric up by name, case-insensitively.

    An unknown name raises `MetricError` listing every known name, closest first, so a typo like
    "rsme" points straight at "rmse".
    """
    key = name.strip().lower()
    if key in METRICS:
        return METRICS[key]
    close = difflib.get_close_matches(key, METRICS, n=3, cutoff=0.5)
    ordered = close + [known for known in METRICS if known not in close]
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise MetricError(f"unknown metric {name!r}: {hint}known metrics: {', '.join(ordered)}")


def _as_vector(values: ArrayLike, role: str) -> np.ndarray:
    """Accept a 1-D array or an (n, 1) column (what sklearn's PLS predicts) as one target."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise N4AError(
            f"{role} has shape {array.shape}: expected a 1-D array or an (n, 1) column; "
            "score each target separately"
        )
    return array


def _paired(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    true, pred = _as_vector(y_true, "y_true"), _as_vector(y_pred, "y_pred")
    if true.size != pred.size:
        raise N4AError(
            f"y_true has {true.size} samples but y_pred has {pred.size}: "
            "score predictions for exactly the reference samples, in the same order"
        )
    return true, pred


def _as_float(array: np.ndarray, role: str) -> np.ndarray:
    try:
        return array.astype(float, copy=False)
    except (TypeError, ValueError) as exc:
        raise N4AError(
            f"{role} is not numeric (dtype {array.dtype}): regression scores need numbers; "
            "use classification_scores for class labels"
        ) from exc


def _require_finite_reference(true: np.ndarray) -> None:
    """A NaN reference is a dataset problem, not a model one: say so rather than hide it."""
    if true.dtype.kind not in "fc":
        return
    bad = np.flatnonzero(~np.isfinite(true))
    if bad.size:
        raise N4AError(
            f"y_true has {bad.size} non-finite reference value(s) (first at index {bad[0]}): "
            "references must be finite; drop those samples before scoring"
        )


def _has_non_finite(pred: np.ndarray) -> bool:
    return pred.dtype.kind in "fc" and not bool(np.isfinite(pred).all())


def _centered_sum_of_squares(values: np.ndarray, mean: float | None = None) -> float:
    """Σ(v − v̄)², exactly 0 for constant input so "constant" tests are exact, not ~1e-30.

    `mean`: v̄ when the caller has it already (the same value `values.mean()` gives).
    """
    if values.size == 0 or values.max() - values.min() == 0:  # np.ptp, without its wrapper
        return 0.0
    return float(((values - (values.mean() if mean is None else mean)) ** 2).sum())


def _mean(values: np.ndarray) -> np.float64:
    """`np.mean(values)` of a non-empty float64 array, the same float (numpy's mean is this
    sum over the count), without its wrappers: ~5 µs a call, and a sweep scores hundreds
    of tiny arrays, each with several means."""
    return values.sum() / values.size


def _positive_ratio(numerator: float, denominator: float) -> float:
    """RPD and RPIQ are only meaningful when both spreads are positive; otherwise NaN."""
    if numerator > 0 and denominator > 0:
        return numerator / denominator
    return math.nan


def _residual_scores(residual: np.ndarray, squared: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, bias and SEP from the residuals e = ŷ − y (and e², shared with R²).

    SEP = sqrt(Σ(e − bias)² / (n − 1)) is the standard deviation of the residuals after
    removing the bias (Næs et al. 2002), so RMSE² ≈ SEP² + bias². It divides by n − 1, as the
    chemometrics literature does; nirs4all 1.4 divides by n, so its SEP is smaller by
    sqrt((n − 1) / n). Needs n ≥ 2, else NaN.
    """
    n = residual.size
    bias = _mean(residual)
    sep = math.sqrt(_centered_sum_of_squares(residual, bias) / (n - 1)) if n >= 2 else math.nan
    return {
        "rmse": float(np.sqrt(_mean(squared))),
        "mae": float(_mean(np.abs(residual))),
        "bias": float(bias),
        "sep": sep,
    }


@dataclass(frozen=True, eq=False)
class RegressionReference:
    """The half of every regression score that depends on the reference values alone.

    A sweep scores hundreds of predictions against the same few reference vectors (each
    fold's train and validation rows, the pooled out-of-fold rows): their mean, spread and
    quartiles are computed once here and `scores` reuses them, with the same arithmetic as
    scoring from scratch (so the same floats).
    """

    true: np.ndarray
    mean: float  # ȳ (a numpy float64, as `true.mean()` gives it)
    centered: np.ndarray  # y − ȳ
    ss_tot: float  # Σ(y − ȳ)²
    sd: float  # SD(y), n − 1
    iqr: float  # Q3 − Q1, numpy's linear interpolation

    @classmethod
    def of(cls, y_true: ArrayLike) -> RegressionReference:
        """Check and summarize reference values: numeric, finite, one target."""
        true = _as_float(_as_vector(y_true, "y_true"), "y_true")
        _require_finite_reference(true)
        n = true.size
        if n == 0:
            return cls(true, math.nan, true, 0.0, math.nan, math.nan)
        with np.errstate(all="ignore"):
            ss_tot = _centered_sum_of_squares(true)
            sd = math.sqrt(ss_tot / (n - 1)) if n >= 2 else math.nan
            q1, q3 = np.percentile(true, [25, 75])
            return cls(true, true.mean(), true - true.mean(), ss_tot, sd, float(q3 - q1))

    def scores(self, y_pred: ArrayLike) -> dict[str, float]:
        """Every regression metric of `y_pred` against this reference (`regression_scores`)."""
        pred = _as_vector(y_pred, "y_pred")
        if pred.size != self.true.size:
            raise N4AError(
                f"y_true has {self.true.size} samples but y_pred has {pred.size}: "
                "score predictions for exactly the reference samples, in the same order"
            )
        pred = _as_float(pred, "y_pred")
        n = int(self.true.size)
        if n == 0 or _has_non_finite(pred):
            return {"n": n, **dict.fromkeys(_REGRESSION_NAMES, math.nan)}
        with np.errstate(all="ignore"):
            residual = pred - self.true
            squared = residual**2
            scores = {**_residual_scores(residual, squared), **self._line_scores(pred, squared)}
            scores["rpd"] = _positive_ratio(self.sd, scores["sep"])
            scores["rpiq"] = _positive_ratio(self.iqr, scores["rmse"])
        return {"n": n, **{name: scores[name] for name in _REGRESSION_NAMES}}

    def _line_scores(self, pred: np.ndarray, squared: np.ndarray) -> dict[str, float]:
        """R², squared correlation, and the least-squares line ŷ ≈ slope·y + offset.

        R² = 1 − Σe² / Σ(y − ȳ)² penalises bias and a wrong slope; r2_corr (squared Pearson
        r) does not, so a model that is perfectly correlated but offset has r2_corr 1 and
        R² < 1. The line is predicted on reference, as drawn on a predicted-vs-reference plot;
        slope-correction procedures that regress reference on predicted give a different
        slope. With n < 2 or a constant reference all four are NaN; constant predictions make
        r2_corr NaN (no correlation). `squared`: the residuals e², computed once for RMSE.
        """
        if self.ss_tot == 0:
            return dict.fromkeys(("r2", "r2_corr", "slope", "offset"), math.nan)
        pred_mean = _mean(pred)
        ss_pred = _centered_sum_of_squares(pred, pred_mean)
        cross = float((self.centered * (pred - pred_mean)).sum())
        slope = cross / self.ss_tot
        r2_corr = min(1.0, cross**2 / (self.ss_tot * ss_pred)) if ss_pred > 0 else math.nan
        return {
            "r2": 1.0 - float(squared.sum()) / self.ss_tot,
            "r2_corr": r2_corr,
            "slope": slope,
            "offset": float(pred_mean - slope * self.mean),
        }


def regression_scores(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Every regression metric for one target: keys ``n`` then `METRICS`' regression names.

    Non-finite predictions (NaN/inf from a diverged model) make every score NaN except ``n``:
    a model that cannot predict every sample is not rankable, and dropping those samples would
    flatter it. Non-finite references raise `N4AError` (a data problem). Empty input gives NaN.

    RPD = SD(y, ddof=1) / SEP (Williams 1987); RPIQ = (Q3 − Q1) / RMSE (Bellon-Maurel 2010).
    Quartiles use numpy's default linear interpolation. RPIQ exists because SD overstates the
    spread of skewed reference distributions (common for soil and feed constituents). Constant
    references, a zero IQR, or a zero SEP/RMSE give NaN rather than 0 or inf: such a ratio says
    nothing about the model.
    """
    true, pred = _paired(y_true, y_pred)
    return RegressionReference.of(true).scores(pred)


def _confusion_matrix(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Counts[i, j] of reference label i predicted as j, over the union of labels.

    Labels are coded through a dict so strings, ints and mixtures work without numpy's
    cross-type comparisons; label order does not matter for the macro averages below.
    """
    codes: dict[object, int] = {}
    true_codes = np.array([codes.setdefault(v, len(codes)) for v in true.tolist()], dtype=np.intp)
    pred_codes = np.array([codes.setdefault(v, len(codes)) for v in pred.tolist()], dtype=np.intp)
    k = len(codes)
    return np.bincount(true_codes * k + pred_codes, minlength=k * k).reshape(k, k)


def classification_scores(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 for class labels (strings or ints).

    balanced_accuracy is the mean recall over classes present in ``y_true`` (a class that is
    only predicted has no recall). f1 is the mean over the union of labels of 2·TP / (2·TP + FP
    + FN), 0 for a label never predicted correctly, matching sklearn's
    ``f1_score(average="macro", zero_division=0)``. Non-finite float predictions give NaN.
    """
    true, pred = _paired(y_true, y_pred)
    _require_finite_reference(true)
    n = int(true.size)
    if n == 0 or _has_non_finite(pred):
        return {"n": n, **dict.fromkeys(_CLASSIFICATION_NAMES, math.nan)}
    confusion = _confusion_matrix(true, pred)
    hits = np.diag(confusion).astype(float)
    actual, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = actual > 0
    return {
        "n": n,
        "accuracy": float(hits.sum() / n),
        "balanced_accuracy": float(np.mean(hits[present] / actual[present])),
        "f1": float(np.mean(2 * hits / (actual + predicted))),
    }


PER_CLASS_COLUMNS = ("class", "support", "predicted", "correct", "precision", "recall", "f1")


def per_class_scores(y_true: ArrayLike, y_pred: ArrayLike) -> list[tuple]:
    """One row per class (labels sorted as text): support (reference count), how often it
    was predicted, correct predictions, precision TP/(TP+FP), recall TP/(TP+FN) and F1
    (NaN where undefined: a class never predicted has no precision, one never present no
    recall)."""
    true, pred = _paired(y_true, y_pred)
    labels = sorted({str(v) for v in [*true.tolist(), *pred.tolist()]})
    true_s, pred_s = [str(v) for v in true.tolist()], [str(v) for v in pred.tolist()]
    rows = []
    for label in labels:
        support = sum(t == label for t in true_s)
        predicted = sum(p == label for p in pred_s)
        correct = sum(t == p == label for t, p in zip(true_s, pred_s, strict=True))
        precision = correct / predicted if predicted else math.nan
        recall = correct / support if support else math.nan
        both = precision + recall
        f1 = math.nan if not math.isfinite(both) else 2 * precision * recall / both if both else 0.0
        rows.append((label, support, predicted, correct, precision, recall, f1))
    return rows


_SCORERS: dict[str, Callable[[ArrayLike, ArrayLike], dict[str, float]]] = {
    "regression": regression_scores,
    "classification": classification_scores,
}


def scores_for(task: str, y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Dispatch on the task name so callers holding a run's task need no ``if``."""
    scorer = _SCORERS.get(task)
    if scorer is None:
        raise N4AError(f"unknown task {task!r}: expected one of {', '.join(_SCORERS)}")
    return scorer(y_true, y_pred)


def rankable_names(task: str) -> list[str]:
    """The metrics that may rank results of `task`, in `METRICS` order."""
    return [m.name for m in _METRIC_LIST if m.rankable and m.task == task]


def _rankable_metric(name: str) -> Metric:
    metric = get_metric(name)
    if not metric.rankable:
        raise MetricError(
            f"metric {metric.name!r} is descriptive and cannot rank models: rank by one of "
            f"{', '.join(rankable_names(metric.task))}"
        )
    return metric


def ranking_metric(name: str, task: str, subject: str) -> Metric:
    """`name` as the metric that ranks the results of `subject` (e.g. "dataset 'coffee'"),
    whose task is `task`: the one check every ranking asks, whoever asks it.

    A metric of the other task has no score on those results: ranking by it would order
    them by sequence number and call the first one best. So it is refused, naming the
    metrics that fit, like unknown and descriptive (slope, offset) metrics.
    """
    metric = _rankable_metric(name)
    if metric.task != task:
        raise MetricError(
            f"metric {metric.name!r} scores {metric.task}, but {subject} is {task}: "
            f"rank it by one of {', '.join(rankable_names(task))}"
        )
    return metric


def _is_missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


# Each direction's key, smaller is better, in Python (`sort_key`) and in SQL (`sort_key_sql`)
_DIRECTION_KEYS: dict[str, tuple[Callable[[float], float], str]] = {
    "lower": (float, "{}"),
    "higher": (lambda v: -float(v), "-{}"),
    "zero": (lambda v: abs(float(v)), "abs({})"),
}


def sort_key(metric: str, value: float | None) -> float:
    """Map a score to a key where smaller is better: sort ascending, best first.

    "lower" keeps the value, "higher" negates it, "zero" takes its absolute value. NaN and None
    map to +inf so a failed run sorts last. Non-rankable metrics (slope, offset) raise.
    """
    direction = _rankable_metric(metric).direction
    if _is_missing(value):
        return math.inf
    return _DIRECTION_KEYS[direction][0](value)


def sort_key_sql(metric: str, column: str) -> str:
    """`sort_key` as an SQL ORDER BY term over `column`: missing (NULL) last."""
    return _DIRECTION_KEYS[get_metric(metric).direction][1].format(column) + " ASC NULLS LAST"


def is_better(metric: str, candidate: float | None, incumbent: float | None) -> bool:
    """Whether ``candidate`` strictly beats ``incumbent``; ties keep the incumbent.

    A missing candidate never wins; any real candidate beats a missing incumbent.
    """
    candidate_key = sort_key(metric, candidate)
    if _is_missing(candidate):
        return False
    return _is_missing(incumbent) or candidate_key < sort_key(metric, incumbent)


def best_index(metric: str, values: Sequence[float | None]) -> int | None:
    """Index of the best score (first one on ties), or None if empty or all NaN/None."""
    _rankable_metric(metric)
    keyed = [
        (sort_key(metric, value), i) for i, value in enumerate(values) if not _is_missing(value)
    ]
    return min(keyed)[1] if keyed else None
