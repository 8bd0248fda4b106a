"""A sweep's fold predictions: what each PLS model itself predicts, at the cost of one
centering of a fold's rows per nested PLS fit (not one per component count)."""

import numpy as np
import pytest
from n4afs_core.data.datasets import load_chemotools
from n4afs_core.pipelines.cv import FitContext, FitStats, fit_group
from n4afs_core.pipelines.nested_pls import predict_plain_pls
from n4afs_core.pipelines.runner import build_step


@pytest.fixture(scope="module")
def fermentation():
    s = load_chemotools("chemotools:fermentation")
    return s.X, s.target()


def _sweep(X, y, ks, preprocessings=("snv",)):
    rows = np.arange(len(y))
    train, val = rows[rows % 4 != 0], rows[rows % 4 == 0]
    contexts = [FitContext(0, train, {"train": train, "val": val})]
    configs = [
        (f"{pre}|pls{k}", [(pre, {}), ("pls", {"n_components": k})], 0)
        for pre in preprocessings
        for k in ks
    ]
    stats = FitStats()
    outcomes = fit_group(X, {0: y}, contexts, configs, build_step, stats)
    return outcomes, contexts[0], stats


def test_fold_predictions_are_each_models_own_bit_for_bit(fermentation):
    X, y = fermentation
    outcomes, context, _ = _sweep(X, y, range(1, 16))
    for outcome in outcomes:
        assert outcome.error is None
        (model,) = outcome.models
        snv, pls = model.steps
        X_pre = snv.transform(X)
        for partition, rows in context.predict_idx.items():
            alone = predict_plain_pls(pls, X_pre[rows]).reshape(len(rows), -1)[:, 0]
            np.testing.assert_array_equal(model.predictions[partition], alone)
            np.testing.assert_allclose(
                model.predictions[partition], pls.predict(X_pre[rows]), rtol=0, atol=1e-12
            )


def test_a_folds_rows_are_centered_once_per_nested_pls_fit(fermentation):
    X, y = fermentation
    _, _, fifteen = _sweep(X, y, range(1, 16))
    assert fifteen.nested_pls_fits == 1
    assert fifteen.pls_row_centerings == 2  # train and val, shared by the 15 models
    _, _, two_prefixes = _sweep(X, y, range(1, 16), ("snv", "msc"))
    assert two_prefixes.nested_pls_fits == 2
    assert two_prefixes.pls_row_centerings == 4  # another prefix: other rows, other means
