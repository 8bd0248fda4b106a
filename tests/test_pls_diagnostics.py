"""Inside a PLS model (#20): coefficients that reproduce its predictions, VIP scores, and per
sample leverage, Hotelling T² and Q residuals with their 95 % limits, checked against the
textbook formulas written out here from the model's scores and loadings."""

from __future__ import annotations

import numpy as np
import pytest
from chemotools.datasets import load_fermentation_train
from n4afs_core.metrics import pls_diagnostics
from n4afs_core.pipelines.operators import build, get_operator
from scipy.stats import f, norm
from sklearn.cross_decomposition import PLSRegression
from sklearn.pipeline import Pipeline


@pytest.fixture(scope="module")
def fermentation():
    X, y = load_fermentation_train()
    return X.to_numpy(dtype=float), y.to_numpy(dtype=float).ravel()


def fitted(X, y, k=4, preprocessing=("snv",)):
    steps = [(name, build(get_operator(name), {})) for name in preprocessing]
    return Pipeline([*steps, ("pls", PLSRegression(n_components=k))]).fit(X, y)


def test_coefficients_reproduce_the_pipelines_predictions(fermentation):
    X, y = fermentation
    pipeline = fitted(X, y)
    b, b0 = pls_diagnostics.coefficients(pipeline.steps[-1][1])
    X_pre = pls_diagnostics.preprocess(pipeline, X)
    assert np.allclose(X_pre @ b + b0, pipeline.predict(X).ravel(), rtol=0, atol=1e-9)
    assert b.shape == (X.shape[1],)


def test_vip_sums_of_squares_equal_the_number_of_variables(fermentation):
    X, y = fermentation
    vip = pls_diagnostics.vip_scores(fitted(X, y, k=5).steps[-1][1])
    assert vip.shape == (X.shape[1],)
    assert np.sum(vip**2) == pytest.approx(X.shape[1], rel=1e-12)
    assert (vip > 1).any() and (vip < 1).any()  # some variables matter more than others


def test_t2_q_and_leverage_equal_a_hand_computation_on_a_small_case():
    rng = np.random.default_rng(7)
    n, p, a = 14, 6, 2
    X = rng.normal(size=(n, p)) + np.linspace(0, 1, p)
    y = X @ rng.normal(size=p) + rng.normal(scale=0.1, size=n)
    pipeline = Pipeline([("pls", PLSRegression(n_components=a))]).fit(X, y)
    pls = pipeline.steps[-1][1]
    found = pls_diagnostics.diagnose(pipeline, X)

    # textbook: autoscaled X (the PLS step's own scaling), scores t, loadings p_, residuals e
    xs = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    t, p_ = pls.x_scores_, pls.x_loadings_
    t2 = np.array([sum(t[i, c] ** 2 / np.var(t[:, c], ddof=1) for c in range(a)) for i in range(n)])
    e = xs - t @ p_.T
    q = np.array([float(e[i] @ e[i]) for i in range(n)])
    leverage = np.array([1 / n + t[i] @ np.linalg.inv(t.T @ t) @ t[i] for i in range(n)])
    assert np.allclose(found.t2, t2, rtol=1e-10)
    assert np.allclose(found.q, q, rtol=1e-10)
    assert np.allclose(found.leverage, leverage, rtol=1e-10)
    # Σ T² = A (n - 1) on the calibration set: a check that does not use the code's formula
    assert found.t2.sum() == pytest.approx(a * (n - 1))

    t2_limit = a * (n - 1) / (n - a) * f.ppf(0.95, a, n - a)
    assert found.t2_limit == pytest.approx(t2_limit)
    lam = np.linalg.eigvalsh(e.T @ e / (n - 1))
    lam = lam[lam > 1e-12]
    th1, th2, th3 = lam.sum(), (lam**2).sum(), (lam**3).sum()
    h0 = 1 - 2 * th1 * th3 / (3 * th2**2)
    ca = norm.ppf(0.95)
    q_limit = th1 * (ca * np.sqrt(2 * th2 * h0**2) / th1 + 1 + th2 * h0 * (h0 - 1) / th1**2) ** (
        1 / h0
    )
    assert found.q_limit == pytest.approx(q_limit, rel=1e-9)
    assert list(found.outliers) == list((t2 > t2_limit) | (q > q_limit))


def test_a_sample_far_from_the_calibration_is_flagged(fermentation):
    X, y = fermentation
    pipeline = fitted(X, y, k=3)
    odd = X[:2].copy()
    odd[1] = odd[1] + np.linspace(0, 5, X.shape[1]) ** 2  # a spectrum of something else
    found = pls_diagnostics.diagnose(pipeline, X, odd)
    assert not found.outliers[0]
    assert found.outliers[1]
    assert found.q[1] > found.q_limit


def test_diagnostics_refuse_a_model_that_is_not_pls(fermentation):
    from sklearn.linear_model import Ridge

    X, y = fermentation
    pipeline = Pipeline([("ridge", Ridge())]).fit(X, y)
    assert not pls_diagnostics.is_pls_pipeline(pipeline)
    with pytest.raises(ValueError):
        pls_diagnostics.diagnose(pipeline, X)


# -- in the tree: what a result folder shows -------------------------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from n4afs.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("diagnostics") / "ws")
    ws.run(
        [["snv", {"pls": {"n_components": 3}}]],
        ["chemotools:fermentation"],
        cv=3,
        test_size=0.2,
        name="pls",
    )
    ws.run([["snv", "ridge"]], ["fermentation"], cv=3, test_size=0.2, name="ridge")
    return ws


def result_path(ws, name: str) -> str:
    found = next(r for r in ws.results("fermentation") if r.row.name.startswith(name))
    return f"runs/fermentation/{found.row.label}", found


def test_coefficients_csv_reproduces_the_final_models_predictions(ws):
    from tests.tree_reading import read, rows

    path, result = result_path(ws, "snv-pls")
    table = rows(read(ws, f"{path}/diagnostics/coefficients.csv"))
    assert table[0]["variable"] == "intercept"
    b0 = float(table[0]["coefficient"])
    b = np.array([float(r["coefficient"]) for r in table[1:]])
    vip = np.array([float(r["vip"]) for r in table[1:]])
    spectra = ws.load_dataset("fermentation")
    assert [r["variable"] for r in table[1:]] == list(spectra.feature_names)
    assert [float(r["wavelength"]) for r in table[1:]] == [float(f) for f in spectra.feature_names]
    pipeline = result.load_model()
    X_pre = pls_diagnostics.preprocess(pipeline, spectra.X)
    assert np.allclose(X_pre @ b + b0, pipeline.predict(spectra.X).ravel(), rtol=0, atol=1e-9)
    assert np.sum(vip**2) == pytest.approx(len(vip))


def test_diagnostics_csv_holds_every_train_and_test_sample_with_limits(ws):
    from tests.tree_reading import read, rows

    path, result = result_path(ws, "snv-pls")
    table = rows(read(ws, f"{path}/diagnostics/diagnostics.csv"))
    predictions = result.predictions()
    final = predictions.filter(predictions["model"] == "final")
    for part in ("train", "test"):
        expected = final.filter(final["partition"] == part)["sample_id"].to_list()
        assert [r["sample_id"] for r in table if r["partition"] == part] == expected
    train = [r for r in table if r["partition"] == "train"]
    # Σ T² over the calibration samples = A (n - 1)
    assert sum(float(r["hotelling_t2"]) for r in train) == pytest.approx(3 * (len(train) - 1))
    for r in table:
        over = float(r["hotelling_t2"]) > float(r["t2_limit_95"]) or float(r["q_residual"]) > float(
            r["q_limit_95"]
        )
        assert r["outlier"] == str(over)


def test_a_pls_result_has_coefficient_and_t2_q_charts_and_others_do_not(ws, tmp_path):
    from PIL import Image

    from tests.tree_reading import listing, read

    path, _ = result_path(ws, "snv-pls")
    charts = listing(ws, f"{path}/charts")
    assert {"coefficients.png", "t2_q.png"} <= set(charts)
    for name in ("coefficients.png", "t2_q.png"):
        (tmp_path / name).write_bytes(read(ws, f"{path}/charts/{name}"))
        assert Image.open(tmp_path / name).convert("L").getextrema()[0] < 100
    other, _ = result_path(ws, "snv-ridge")
    assert "diagnostics" not in listing(ws, other)
    assert "coefficients.png" not in listing(ws, f"{other}/charts")
