"""Cross-validated fitting of many pipeline configs on one dataset, sharing work.

Configs arrive as lists of `(operator, params)` steps; the last step is the model. Two
kinds of work are shared:

* Preprocessing prefixes. In each fit context (one CV fold, or the final refit) a prefix
  such as `[snv]` or `[snv, savgol]` is fitted once on the training rows and its output kept
  (memoized by the canonical JSON of the steps: params + position). Every config starting
  with that prefix reuses the same fitted objects and the same transformed matrix.
* A prefix's output across contexts. A step whose fit learns nothing from its rows (SNV,
  Savitzky-Golay: only the number of features) ends in the same fitted state in every fold;
  applied to the same input, it gives the same output, so the next context takes that array
  instead of transforming every row again (`_SharedOutputs`; the step is still fitted per
  context, and "the same state" is read from its pickle, not from a list of operators).
* PLS component counts. Configs that differ only in `n_components` of a plain
  PLSRegression after the same prefix are fitted once with the largest count
  (`core.pipelines.nested_pls`).

The memo lives for one `fit_group` call; a group holds the configs whose first step is the
same, so every shared prefix falls inside one group and groups run in parallel.

Several targets: each config names the target column it models. A prefix whose steps never
read y (`y_free`, from `core.operators.fits_without_y`: SNV, SG, MSC...) is one memo entry for
every target, fitted once; from the first step that may read y on, the prefix is memoized
per target, and models are always fitted per target.

Design: docs/DESIGN.md, "Scale-out".
"""

from __future__ import annotations

import json
import pickle
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from n4afs_core.pipelines.nested_pls import CenteredRows, fit_nested, is_plain_pls
from n4afs_core.pipelines.step_fits import fit_step

Step = tuple[str, dict[str, Any]]


def step_key(steps: list[Step]) -> str:
    return json.dumps([[op, params] for op, params in steps], sort_keys=True, default=str)


@dataclass
class FitContext:
    """Rows to fit on and rows to predict, for one fold (or the final refit: fold -1)."""

    fold: int
    train_idx: np.ndarray
    predict_idx: dict[str, np.ndarray]  # partition -> rows


@dataclass
class FittedModel:
    fold: int
    steps: list[Any]  # fitted step objects, in order
    predictions: dict[str, np.ndarray]  # partition -> y_pred (aligned with context rows)
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ConfigOutcome:
    key: str
    models: list[FittedModel] = field(default_factory=list)
    error: str | None = None


@dataclass
class FitStats:
    """How much work was really done: what the memo tests and benchmarks count."""

    prefix_fits: int = 0
    prefix_hits: int = 0
    model_fits: int = 0
    nested_pls_fits: int = 0
    pls_row_centerings: int = 0  # rows copied and centered for PLS predictions
    prefix_outputs_shared: int = 0  # prefix outputs taken from another context's


class _PrefixMemo:
    """Fitted prefixes of one context: key -> (fitted steps, transformed X of all rows).

    A key is the prefix's steps, plus the target column once a step may read y: the output
    of a prefix that never reads y is the same for every target."""

    def __init__(
        self,
        X: np.ndarray,
        ys: Mapping[int, np.ndarray],
        train_idx: np.ndarray,
        stats: FitStats,
        y_free: Callable[[str], bool],
        shared: _SharedOutputs | None = None,
    ):
        self.X, self.ys, self.train_idx, self.stats = X, ys, train_idx, stats
        self.shared = shared or _SharedOutputs()
        self.y_free = y_free
        self.free: dict[str, bool] = {}  # op -> y_free(op), asked once per context
        self.memo: dict[str, tuple[list[Any], np.ndarray]] = {"[]": ([], X)}

    def key(self, steps: list[Step], column: int) -> str:
        key = step_key(steps)
        return key if all(self._free(op) for op, _ in steps) else f"{key}|y{column}"

    def _free(self, op: str) -> bool:
        free = self.free.get(op)
        if free is None:
            free = self.free[op] = self.y_free(op)
        return free

    def y(self, column: int) -> np.ndarray:
        """The training rows of one target column."""
        return self.ys[column][self.train_idx]

    def get(self, steps: list[Step], build: Any, column: int) -> tuple[list[Any], np.ndarray]:
        key = self.key(steps, column)
        if key in self.memo:
            self.stats.prefix_hits += 1
            return self.memo[key]
        fitted, X_prev = self.get(steps[:-1], build, column)
        step = build(*steps[-1])
        fit_step(step, X_prev[self.train_idx], self.y(column))
        self.stats.prefix_fits += 1
        result = ([*fitted, step], self.shared.transform(key, step, X_prev, self.stats))
        self.memo[key] = result
        return result

    def peek(self, steps: list[Step], column: int) -> tuple[list[Any], np.ndarray]:
        """A prefix already fitted for a model of this context (not counted as reuse)."""
        return self.memo[self.key(steps, column)]


class _SharedOutputs:
    """Each prefix's last output over all rows, for the next context to take when its own
    fitted step is in the same state and sees the same input (see the module).

    The state is the step's pickle (its whole fitted state: what the store keeps); the input
    the very array the previous context's step transformed (the raw X, or a parent prefix's
    shared output). One output is held per prefix, the latest: at most one context's worth
    beyond the memo's, and only until that prefix is reached again.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[np.ndarray, bytes, Any]] = {}

    def transform(self, key: str, step: Any, X_prev: np.ndarray, stats: FitStats) -> Any:
        try:
            state = pickle.dumps(step, protocol=5)
        except Exception:  # noqa: BLE001 - not picklable here: the store will say so
            return step.transform(X_prev)
        held = self._last.get(key)
        if held is not None and held[0] is X_prev and held[1] == state:
            stats.prefix_outputs_shared += 1
            return held[2]
        output = step.transform(X_prev)
        self._last[key] = (X_prev, state, output)
        return output


def _may_read_y(op: str) -> bool:
    """Without `y_free`, every step may read y: nothing is shared across targets."""
    return True


def fit_group(
    X: np.ndarray,
    ys: Mapping[int, np.ndarray],
    contexts: list[FitContext],
    configs: list[tuple[str, list[Step], int]],
    build: Any,
    stats: FitStats | None = None,
    y_free: Callable[[str], bool] | None = None,
    on_fitted: Callable[[list[FittedModel]], None] | None = None,
) -> list[ConfigOutcome]:
    """Fit every config in every context; a config that raises is recorded, not fatal.

    `ys`: target column -> y (all rows); each config is (key, steps, the column it models).
    `y_free(op)`: whether that step's fit never reads y (default: every step may).
    `on_fitted(models)`: called after each context with the models it fitted for configs
    that have not failed so far (the runner stores them while the next context fits)."""
    stats = stats or FitStats()
    y_free = y_free or (lambda op: not _may_read_y(op))
    outcomes = {key: ConfigOutcome(key) for key, _, _ in configs}
    shared = _SharedOutputs()
    for context in contexts:
        memo = _PrefixMemo(X, ys, context.train_idx, stats, y_free, shared)
        pending = [c for c in configs if outcomes[c[0]].error is None]
        of = {key: (steps, column) for key, steps, column in pending}
        fitted: list[tuple[str, FittedModel]] = []
        centered = CenteredRows()  # PLS models of one nested fit share their centered rows
        for key, model in _fit_models(pending, memo, build, stats, outcomes):
            try:
                steps, column = of[key]
                prefix, X_pre = memo.peek(steps[:-1], column)
                fitted.append((key, _predict([*prefix, model], X_pre, context, centered)))
                outcomes[key].models.append(fitted[-1][1])
            except Exception:
                outcomes[key].error = traceback.format_exc()
        stats.pls_row_centerings += centered.centerings
        if on_fitted is not None:
            on_fitted([model for key, model in fitted if outcomes[key].error is None])
    return [outcomes[key] for key, _, _ in configs]


def _fit_models(pending, memo, build, stats, outcomes):
    """Yield (key, fitted model) per config, batching nested PLS fits (per target)."""
    batches: dict[str, list[tuple[str, list[Step], int]]] = {}
    for key, steps, column in pending:
        model_op, params = steps[-1]
        try:
            template = build(model_op, params)
            if is_plain_pls(template):
                other = {k: v for k, v in params.items() if k != "n_components"}
                batch_key = f"{step_key([*steps[:-1], (model_op, other)])}|y{column}"
                batches.setdefault(batch_key, []).append((key, steps, column))
                continue
            _, X_pre = memo.get(steps[:-1], build, column)
            stats.model_fits += 1
            yield key, template.fit(X_pre[memo.train_idx], memo.y(column))
        except Exception:
            outcomes[key].error = traceback.format_exc()
    for members in batches.values():
        yield from _fit_pls_batch(members, memo, build, stats, outcomes)


def _fit_pls_batch(members, memo, build, stats, outcomes):
    _, steps, column = members[0]
    try:
        _, X_pre = memo.get(steps[:-1], build, column)
        ks = {key: int(build(*s[-1]).n_components) for key, s, _ in members}
        fitted = fit_nested(build(*steps[-1]), X_pre[memo.train_idx], memo.y(column), ks.values())
        stats.nested_pls_fits += 1
    except Exception:
        if len(members) == 1:
            outcomes[members[0][0]].error = traceback.format_exc()
            return
        # one count may be impossible (more components than samples): fit each on its own
        for member in members:
            yield from _fit_pls_batch([member], memo, build, stats, outcomes)
        return
    for key, _, _ in members:
        yield key, fitted[ks[key]]


def _predict(
    chain: list[Any], X_pre: np.ndarray, context: FitContext, centered: CenteredRows
) -> FittedModel:
    """Predictions of the fitted chain for every partition of the context."""
    from sklearn.base import is_classifier

    model = chain[-1]
    result = FittedModel(context.fold, chain, {})
    plain_pls = is_plain_pls(model)
    for partition, rows in context.predict_idx.items():
        if len(rows) == 0:
            continue
        if plain_pls:
            y_pred = np.asarray(centered.predict(model, X_pre, rows, partition))
        else:
            y_pred = np.asarray(model.predict(X_pre[rows]))
        if is_classifier(model):
            result.predictions[partition] = y_pred
            if hasattr(model, "predict_proba"):
                result.probabilities[partition] = np.asarray(model.predict_proba(X_pre[rows]))
        else:
            result.predictions[partition] = y_pred.reshape(len(rows), -1)[:, 0]
    return result
