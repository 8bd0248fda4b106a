"""A preprocessing prefix whose fit learns nothing from its rows (SNV, Savitzky-Golay) gives
every fold the same output: it is transformed once per sweep group, not once per fold; a
step that learns from its rows (MSC: their mean spectrum) is transformed in each fold."""

import numpy as np
import pytest
from n4afs_core.data.datasets import load_chemotools
from n4afs_core.pipelines.cv import FitContext, FitStats, fit_group
from n4afs_core.pipelines.nested_pls import predict_plain_pls
from n4afs_core.pipelines.runner import build_step
from sklearn.model_selection import KFold

SG = ("savgol", {"window_length": 15, "polyorder": 2, "deriv": 1})


@pytest.fixture(scope="module")
def fermentation():
    s = load_chemotools("chemotools:fermentation")
    return s.X, s.target()


def _contexts(n):
    folds = KFold(5, shuffle=True, random_state=42).split(np.zeros((n, 1)))
    contexts = [FitContext(k, tr, {"train": tr, "val": va}) for k, (tr, va) in enumerate(folds)]
    rows = np.arange(n)
    return [*contexts, FitContext(-1, rows, {"train": rows})]


def _fit(X, y, prefix):
    contexts = _contexts(len(y))
    configs = [(f"pls{k}", [*prefix, ("pls", {"n_components": k})], 0) for k in (2, 5)]
    stats = FitStats()
    outcomes = fit_group(X, {0: y}, contexts, configs, build_step, stats)
    return outcomes, contexts, stats


def _each_fold_recomputed(X, outcomes, contexts):
    """Every fold's predictions are what its own fitted steps give on all rows."""
    for outcome in outcomes:
        assert outcome.error is None
        for model, context in zip(outcome.models, contexts, strict=True):
            X_pre = X
            for step in model.steps[:-1]:
                X_pre = step.transform(X_pre)
            for partition, rows in context.predict_idx.items():
                mine = predict_plain_pls(model.steps[-1], X_pre[rows])
                np.testing.assert_array_equal(model.predictions[partition], mine)


def test_a_row_wise_prefix_is_transformed_once_for_every_fold(fermentation):
    X, y = fermentation
    outcomes, contexts, stats = _fit(X, y, [("snv", {}), SG])
    assert stats.prefix_fits == 2 * len(contexts)  # still fitted (and stored) per fold
    assert stats.prefix_outputs_shared == 2 * (len(contexts) - 1)
    _each_fold_recomputed(X, outcomes, contexts)


def test_a_prefix_that_learns_from_its_rows_is_transformed_in_each_fold(fermentation):
    X, y = fermentation
    outcomes, contexts, stats = _fit(X, y, [("msc", {}), SG])
    assert stats.prefix_fits == 2 * len(contexts)
    assert stats.prefix_outputs_shared == 0  # MSC differs per fold, so SG's input does too
    _each_fold_recomputed(X, outcomes, contexts)
    msc_means = {m.steps[0].reference_.tobytes() for m in outcomes[0].models}
    assert len(msc_means) == len(contexts)
