"""Runs on real chemotools data: scores, persistence, failures, memoization, crash + resume."""

import numpy as np
import pytest
from n4afs_core.pipelines.operators import register_operator
from sklearn.base import BaseEstimator, TransformerMixin

from tests.cli_process import kill_when_marked

SWEEP = [
    {"_or_": ["snv", "msc", {"savgol": {"deriv": 1, "window_length": 15, "polyorder": 2}}]},
    {"pls": {"n_components": {"_range_": [1, 10]}}},
]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One real sweep on fermentation, shared by the read-only tests below."""
    from n4afs.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("swept") / "ws")
    run = ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=5, name="sweep")
    return ws, run


def test_sweep_records_every_result_with_sequence_numbers(swept):
    ws, run = swept
    assert run.status == "completed"
    results = run.results
    assert len(results) == 30
    assert sorted(r.seq for r in results) == list(range(1, 31))
    assert {r.name for r in results} >= {"snv-pls1", "msc-pls10", "sg1-pls4"}
    assert all(len(r.hash6) == 6 for r in results)


def test_best_beats_predicting_the_mean(swept):
    ws, run = swept
    y = ws.load_dataset("fermentation").target()
    best = run.best("fermentation")
    # predicting the training mean in CV costs at least the population SD of y
    assert best.row.score < 0.7 * y.std()
    cv = best.cv_scores()
    assert cv["r2"] > 0.5 and cv["rpd"] > 1.5
    assert best.row.score == pytest.approx(cv["rmse"])


def test_ranking_follows_metric_direction(swept):
    ws, _ = swept
    by_rmse = [r.row.score for r in ws.results("fermentation")]
    assert by_rmse == sorted(by_rmse)
    by_r2 = [r.cv_scores()["r2"] for r in ws.results("fermentation", metric="r2")]
    assert by_r2 == sorted(by_r2, reverse=True)


def test_rmsecv_is_pooled_out_of_fold(swept):
    ws, run = swept
    best = run.best("fermentation")
    preds = best.predictions()
    val = preds.filter(preds["partition"] == "val")
    assert sorted(val["sample_id"].to_list()) == sorted(ws.load_dataset("fermentation").sample_ids)
    err = (val["y_pred"] - val["y_true"]).to_numpy()
    assert best.row.score == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-9)
    per_fold = [
        np.sqrt(np.mean(((g["y_pred"] - g["y_true"]) ** 2).to_numpy()))
        for _, g in val.group_by("fold")
    ]
    assert best.row.score != pytest.approx(np.mean(per_fold), rel=1e-6)


def test_loaded_models_predict_like_the_stored_predictions(swept):
    ws, run = swept
    best = run.best("fermentation")
    data = ws.load_dataset("fermentation")
    final = best.load_model("final")
    preds = best.predictions()
    stored = preds.filter((preds["model"] == "final") & (preds["partition"] == "train"))
    by_id = dict(zip(stored["sample_id"].to_list(), stored["y_pred"].to_list(), strict=True))
    expected = np.array([by_id[s] for s in data.sample_ids])
    np.testing.assert_allclose(final.predict(data.X).ravel(), expected, rtol=1e-10)
    assert final.steps[-1][0] == "pls_model"
    wanted = best.row.config[-1]["pls"]["n_components"]
    assert final.steps[-1][1].n_components == wanted
    assert best.load_model(0).steps[-1][1].n_components == wanted


def test_identical_rerun_adds_no_blob_bytes(swept):
    ws, _ = swept
    before = ws.blob_stats()
    again = ws.run(templates=[SWEEP], datasets=["fermentation"], cv=5, name="again")
    after = ws.blob_stats()
    assert after.stored_bytes == before.stored_bytes
    assert after.n_references > before.n_references
    # new numbers, never reused
    assert min(r.seq for r in again.results) == 31


def test_classification_on_coffee_beats_the_majority_class(ws):
    template = [{"_or_": ["snv", "msc"]}, {"_or_": ["plsda", "lda", "rf_clf"]}]
    run = ws.run(templates=[template], datasets=["chemotools:coffee"], cv=5, name="coffee")
    assert run.status == "completed", [r.row.error for r in run.results if r.row.error]
    best = run.best("coffee")
    assert best.row.metric == "accuracy"
    assert best.row.score > 0.6  # majority class: 1/3
    assert set(best.predictions()["y_pred"].unique().to_list()) <= {"Brasil", "Ethiopia", "Vietnam"}


def test_failing_config_is_recorded_and_the_run_goes_on(ws):
    # 21 samples, 5 folds: about 16 training rows, so 40 components cannot be fitted
    template = [{"pls": {"n_components": {"_or_": [3, 40]}}}]
    run = ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=5, name="fail")
    assert run.status == "partial"
    status = {r.name: r.row.status for r in run.results}
    assert status == {"pls3": "completed", "pls40": "failed"}
    failed = next(r for r in run.results if r.row.status == "failed")
    assert "Traceback" in failed.row.error and "n_components" in failed.row.error
    assert run.best("fermentation").name == "pls3"


class CountingScaler(BaseEstimator, TransformerMixin):
    """Counts its fits (class attribute: this test runs in-process with n_jobs=1)."""

    fits = 0

    def fit(self, X, y=None):
        CountingScaler.fits += 1
        self.mean_ = np.asarray(X).mean(axis=0)
        return self

    def transform(self, X):
        return np.asarray(X) - self.mean_


def test_shared_prefix_is_fitted_once_per_fold(ws):
    register_operator("counting", CountingScaler, kind="transform")
    CountingScaler.fits = 0
    template = [
        "counting",
        {"_or_": ["snv", "msc", None]},
        {"pls": {"n_components": {"_range_": [1, 3]}}},
    ]
    run = ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=5, name="memo")
    assert len(run.results) == 9 and run.status == "completed"
    # 9 configs share the prefix [counting]: once per fold (5) and once for the refit
    assert CountingScaler.fits == 6


def test_bad_options_are_refused_before_anything_is_written(ws):
    from n4afs_core.errors import RunError

    with pytest.raises(RunError, match="cv must be at least 2"):
        ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=1)
    assert ws.runs() == []


CRASHING_RUN = r"""
import sys, time
import n4afs_core.pipelines.runner
from n4afs.workspace import Workspace

# one transaction per group, so the kill lands between them
n4afs_core.pipelines.runner.COMMIT_EVERY_S = 0
ws = Workspace(sys.argv[1])
done = []

def on_result(payload):  # called after each group's transaction has committed
    done.append(payload)
    if len(done) == 20:
        open(sys.argv[2], "w").write("two groups committed")
        time.sleep(120)  # killed here, with the third group still pending

ws.run(templates=[SWEEP], datasets=["fermentation"], cv=5, name="crash", on_result=on_result)
"""


def test_kill_during_a_run_then_resume_gives_the_same_ranking(tmp_path):
    from n4afs.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ws.add_dataset("chemotools:fermentation")
    marker = tmp_path / "marker"
    script = f"SWEEP = {SWEEP!r}\n" + CRASHING_RUN
    kill_when_marked(script, [str(ws.path), str(marker)], marker)

    (run_row,) = ws.runs()
    assert run_row.status == "interrupted" and run_row.n_pending == 10 and run_row.n_results == 20
    for result in ws.get_run(run_row.run_id).results:  # only whole results are visible
        assert result.row.status == "completed" and result.row.predictions_blob
        assert len(result.scores) > 0

    resumed = ws.resume(run_row.run_id)
    assert resumed.status == "completed"
    assert len(resumed.results) == 30

    reference = Workspace(tmp_path / "ref").run(
        templates=[SWEEP], datasets=["chemotools:fermentation"], cv=5, name="reference"
    )
    ranking = [(r.name, r.row.score) for r in resumed.ranked("fermentation")]
    expected = [(r.name, r.row.score) for r in reference.ranked("fermentation")]
    assert [n for n, _ in ranking] == [n for n, _ in expected]
    np.testing.assert_allclose([s for _, s in ranking], [s for _, s in expected], rtol=1e-12)


def _csv_from(spectra, rows, path):
    header = ["sample_id", "glucose", *spectra.feature_names]
    lines = [",".join(header)]
    for i in rows:
        values = [spectra.sample_ids[i], repr(float(spectra.y[i, 0]))]
        lines.append(",".join(values + [repr(float(v)) for v in spectra.X[i]]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_held_out_test_set_gives_rmsep_and_fold_ensembles(ws):
    from sklearn.cross_decomposition import PLSRegression

    run = ws.run(
        templates=[["snv", PLSRegression(n_components=3)]],
        datasets=["chemotools:fermentation"],
        cv=4,
        test_size=0.25,
        name="holdout",
    )
    (result,) = run.results
    rows = {(s["model"], s["partition"]): s for s in result.scores}
    assert {("final", "test"), ("avg", "test"), ("w_avg", "test"), ("cv", "val")} <= set(rows)
    n_test = rows[("final", "test")]["n"]
    assert n_test == 6 and rows[("cv", "val")]["n"] == 15
    preds = result.predictions()
    fold_test = preds.filter(
        (preds["partition"] == "test") & preds["model"].str.starts_with("fold_")
    )
    import polars as pl

    joined = fold_test.group_by("sample_id").agg(
        pl.col("y_pred").mean().alias("m"), pl.col("y_true").first().alias("t")
    )
    assert joined.height == 6
    rmse = float(np.sqrt(((joined["m"] - joined["t"]) ** 2).mean()))
    assert rows[("avg", "test")]["rmse"] == pytest.approx(rmse, rel=1e-9)
    stored_avg = preds.filter(preds["model"] == "avg").sort("sample_id")
    np.testing.assert_allclose(stored_avg["y_pred"], joined.sort("sample_id")["m"], rtol=1e-12)
    assert preds.filter(preds["model"] == "w_avg").height == 6
    assert result.name == "snv-pls3"


def test_separate_test_dataset_and_custom_splitter(ws, tmp_path):
    from n4afs_core.data.datasets import load_chemotools
    from sklearn.model_selection import KFold

    spectra = load_chemotools("chemotools:fermentation")
    train = _csv_from(spectra, range(15), tmp_path / "train.csv")
    test = _csv_from(spectra, range(15, 21), tmp_path / "test.csv")
    run = ws.run(
        templates=[["msc", "pls"]],
        datasets=[train],
        test_dataset=test,
        splitter=KFold(3, shuffle=True, random_state=1),
        name="split",
    )
    (result,) = run.results
    folds = {s["fold"] for s in result.scores if s["model"].startswith("fold_")}
    assert folds == {0, 1, 2}
    test_rows = [s for s in result.scores if s["model"] == "final" and s["partition"] == "test"]
    assert test_rows[0]["n"] == 6
    preds = result.predictions()
    assert set(preds.filter(preds["partition"] == "test")["sample_id"]) == set(
        spectra.sample_ids[15:]
    )


def test_test_dataset_with_other_wavelengths_is_refused(ws, tmp_path):
    from n4afs_core.data.datasets import load_chemotools
    from n4afs_core.errors import RunError

    spectra = load_chemotools("chemotools:fermentation")
    train = _csv_from(spectra, range(15), tmp_path / "train.csv")
    other = tmp_path / "other.csv"
    other.write_text("sample_id,glucose,1100,1102\nA,1.0,0.1,0.2\n")
    with pytest.raises(RunError, match="other wavelength columns"):
        ws.run(templates=[["pls"]], datasets=[train], test_dataset=other, name="bad")


def test_committing_a_result_twice_is_a_no_op(ws):
    """Two processes resuming one run: the second commit of a result changes nothing."""
    from n4afs_core.index.writes import commit_payloads

    payloads = []
    ws.run(
        templates=[["snv", "pls"]],
        datasets=["chemotools:fermentation"],
        name="twice",
        on_result=payloads.append,
    )
    before = ws.index.fetchall("SELECT count(*) FROM models")
    with ws.index.write() as conn:
        commit_payloads(conn, payloads)
    assert ws.index.fetchall("SELECT count(*) FROM models") == before


@pytest.mark.parametrize(("interval", "first_visible"), [(0, 10), (3600, 30)])
def test_groups_finishing_together_commit_together(ws, monkeypatch, interval, first_visible):
    """Three groups of 10 configs: committed one by one, or in one transaction when they
    finish within COMMIT_EVERY_S of each other; results are whole either way."""
    import n4afs_core.pipelines.runner

    monkeypatch.setattr(n4afs_core.pipelines.runner, "COMMIT_EVERY_S", interval)
    seen: list[int] = []

    def on_result(payload):
        if not seen:
            (count,) = ws.index.fetchall("SELECT count(*) FROM results WHERE status='completed'")
            seen.append(count[0])

    run = ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=3, on_result=on_result)
    assert seen == [first_visible]
    assert run.status == "completed" and len(run.results) == 30


def test_a_random_forest_rerun_stores_nothing_new(tmp_path):
    """Estimators that draw random numbers are seeded (random_state=0 unless the template
    says otherwise), so the identical re-run deduplicates, as a PLS sweep does."""
    from n4afs.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    template = [{"_or_": ["snv", "msc"]}, {"rf": {"n_estimators": 5}}]
    first = ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=3, name="rf")
    before = ws.blob_stats().stored_bytes
    again = ws.run(templates=[template], datasets=["fermentation"], cv=3, name="rf")
    assert ws.blob_stats().stored_bytes == before
    scores = {r.row.name: r.row.score for r in first.results}
    assert {r.row.name: r.row.score for r in again.results} == scores
    model = first.results[0].load_model("final").steps[-1][1]
    assert model.random_state == 0
