"""Several targets in a run (issue #18): real fermentation spectra with two references.

`glucose` is the fermentation set's own reference; `band_1700` is a second reference derived
from the real spectra (the mean absorbance between 1680 and 1720 nm, x1000), so both are
real values a PLS can model. Each requested target is modelled on its own (one result per
config x target), named in every view, and a one-target dataset keeps today's paths.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from n4afs_core.errors import RunError
from n4afs_core.pipelines.operators import register_operator
from sklearn.base import BaseEstimator, TransformerMixin

from tests.conftest import best_csvs
from tests.tree_reading import listing, read, rows

SWEEP = [{"_or_": ["snv", None]}, {"pls": {"n_components": {"_range_": [2, 3]}}}]
TARGETS = ["glucose", "band_1700"]


def two_targets():
    """(X, refs, wavelengths, sample ids): fermentation spectra, glucose and a band's mean."""
    from chemotools.datasets import load_fermentation_train

    X, y = load_fermentation_train()
    waves = np.asarray(X.columns, dtype=float)
    band = X.to_numpy()[:, (waves >= 1680) & (waves <= 1720)].mean(axis=1) * 1000
    refs = np.column_stack([y["glucose"].to_numpy(), band])
    ids = [f"s{i:02d}" for i in range(len(X))]
    return X.to_numpy(), refs, waves, ids


def add_two_target_dataset(ws, name="ferm2"):
    from n4afs_core.data import datasets

    X, refs, waves, ids = two_targets()
    spectra = datasets.from_arrays(
        X, refs, name, sample_ids=ids, feature_names=waves, target_names=TARGETS
    )
    return ws._store_dataset(spectra).info


BESIDE = ["REPORT.html", "charts"]  # beside a regression ranking: its report and charts/


def forms(*stems: str) -> list[str]:
    """The files of one table (RESULTS, best): CSV, spreadsheet and Parquet."""
    return [f"{stem}.{suffix}" for stem in stems for suffix in ("csv", "xlsx", "parquet")]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """One run modelling both targets of the two-target dataset."""
    from n4afs.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("targets") / "ws")
    add_two_target_dataset(ws)
    run = ws.run([SWEEP], ["ferm2"], cv=3, name="both", targets="all")
    return ws, run


def test_each_target_is_modelled_on_its_own_reference(both):
    ws, run = both
    results = run.results
    assert run.status == "completed"
    assert len(results) == 8  # 4 configs x 2 targets
    assert sorted({r.row.target for r in results}) == sorted(TARGETS)
    _, refs, _, ids = two_targets()
    for result in results:
        column = refs[:, TARGETS.index(result.row.target)]
        table = result.predictions()
        truth = dict(zip(ids, column, strict=True))
        for sample, y_true in zip(table["sample_id"], table["y_true"], strict=True):
            assert y_true == pytest.approx(truth[sample])
    # labels stay unique on the dataset: its sequence numbers are shared by its targets
    assert sorted(r.row.seq for r in results) == list(range(1, 9))


def test_several_targets_get_one_folder_each(both):
    ws, run = both
    assert listing(ws, "runs/ferm2") == ["DATASET.yaml", *sorted(TARGETS)]
    for target in TARGETS:
        inside = listing(ws, f"runs/ferm2/{target}")
        assert "RESULTS.csv" in inside
        assert len(best_csvs(inside)) == 1
        table = rows(read(ws, f"runs/ferm2/{target}/RESULTS.csv"))
        assert len(table) == 4 and {row["target"] for row in table} == {target}
        labels = [name for name in inside if name[:4].isdigit()]
        assert sorted(labels) == sorted(row["result"] for row in table)
        scores = yaml.safe_load(read(ws, f"runs/ferm2/{target}/{labels[0]}/scores.yaml"))
        assert scores["target"] == target
        pipeline = yaml.safe_load(read(ws, f"runs/ferm2/{target}/{labels[0]}/pipeline.yaml"))
        # pipeline.yaml stays a valid template (no `target:` key): its description names it
        assert f"modelling target {target}" in pipeline["description"]
        by_run = f"by-run/{run.run_id}/ferm2/{target}/{labels[0]}/scores.yaml"
        assert yaml.safe_load(read(ws, by_run))["target"] == target
    assert listing(ws, "best") == ["ferm2"]
    assert listing(ws, "best/ferm2") == sorted(forms(*TARGETS))
    assert listing(ws, f"by-run/{run.run_id}/ferm2") == sorted(TARGETS)
    run_yaml = yaml.safe_load(read(ws, f"by-run/{run.run_id}/RUN.yaml"))
    assert run_yaml["targets"] == {"ferm2": TARGETS}


def test_best_is_ranked_per_target(both):
    ws, _ = both
    for target in TARGETS:
        ranked = ws.results("ferm2", target=target)
        assert len(ranked) == 4 and {r.row.target for r in ranked} == {target}
        best = ws.best("ferm2", target=target)
        assert best.row.target == target and best.row.result_id == ranked[0].row.result_id
        best_csv = rows(read(ws, f"best/ferm2/{target}.csv"))
        assert best_csv == rows(read(ws, f"runs/ferm2/{target}/best_{best.row.label}.csv"))
    with pytest.raises(RunError, match="glucose, band_1700"):
        ws.best("ferm2")  # which target? ranking across targets means nothing


def test_chart_titles_name_the_target(both):
    from n4afs.tree import charts

    ws, run = both
    result = run.results[0]
    views = ws.tree.views
    dataset = views.datasets_by_id[result.row.dataset_id]
    names = [name for name, *_ in charts.result_charts(ws.tree.files, result.row, dataset, {})]
    assert "predictions_scatter.png" in names
    assert result.row.target in charts.chart_title(result.row, dataset)


def test_default_is_the_first_target_and_run_yaml_says_so(ws):
    add_two_target_dataset(ws)
    run = ws.run([SWEEP], ["ferm2"], cv=3, name="default")
    assert {r.row.target for r in run.results} == {"glucose"}
    run_yaml = yaml.safe_load(read(ws, f"by-run/{run.run_id}/RUN.yaml"))
    assert run_yaml["targets"] == {"ferm2": ["glucose"]}
    assert "first target" in run_yaml["targets_chosen"]
    # the dataset has two targets: a folder per target, even one not modelled yet (empty)
    assert listing(ws, "runs/ferm2") == ["DATASET.yaml", "band_1700", "glucose"]
    assert listing(ws, "runs/ferm2/band_1700") == []
    assert listing(ws, f"by-run/{run.run_id}/ferm2") == ["glucose"]


def test_an_unknown_target_is_one_line_and_leaves_no_run(ws):
    add_two_target_dataset(ws)
    with pytest.raises(RunError) as raised:
        ws.run([SWEEP], ["ferm2"], cv=3, targets=["glucose", "protein"])
    message = str(raised.value)
    assert "\n" not in message and "protein" in message and "glucose, band_1700" in message
    assert ws.runs() == []


def test_cli_target_options(ws, tmp_path):
    from cli_process import cli

    add_two_target_dataset(ws)
    template = tmp_path / "sweep.yaml"
    template.write_text(yaml.safe_dump(SWEEP))
    base = ["-w", str(ws.path), "run", str(template), "-d", "ferm2", "--cv", "3"]
    done = cli(*base, "--target", "band_1700", "--target", "glucose")
    assert done.returncode == 0, done.stderr
    assert "ferm2 / band_1700" in done.stdout and "ferm2 / glucose" in done.stdout
    bad = cli(*base, "--target", "protein")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "glucose, band_1700" in bad.stderr
    assert len(ws.runs()) == 1  # the refused run left nothing behind
    listed = cli("-w", str(ws.path), "results", "ferm2", "--target", "band_1700", "--csv")
    assert listed.returncode == 0, listed.stderr
    assert {row["target"] for row in rows(listed.stdout.encode())} == {"band_1700"}
    both = cli("-w", str(ws.path), "results", "ferm2", "--csv")
    assert [row["target"] for row in rows(both.stdout.encode())] == ["glucose"] * 4 + [
        "band_1700"
    ] * 4
    best = cli("-w", str(ws.path), "best", "ferm2", "--target", "glucose", "--table")
    assert best.returncode == 0 and best.stdout.startswith("ferm2/glucose/")
    unnamed = cli("-w", str(ws.path), "best", "ferm2")
    assert unnamed.returncode == 2 and "--target" in unnamed.stderr


class YFreeCounter(BaseEstimator, TransformerMixin):
    """Centres X; counts its fits (in-process run, n_jobs=1)."""

    fits = 0

    def fit(self, X, y=None):
        type(self).fits += 1
        self.mean_ = np.asarray(X).mean(axis=0)
        return self

    def transform(self, X):
        return np.asarray(X) - self.mean_


class YCounter(YFreeCounter):
    """The same, registered as a step that may learn from y: fitted per target."""

    fits = 0


def _fit_stats(ws, template, targets):
    from n4afs_core.pipelines.runner import RunOptions, execute_run, plan_run
    from n4afs_core.pipelines.templates import load_templates

    info = ws.dataset("ferm2")
    options = RunOptions(cv=3, targets=targets)
    run_id = plan_run(ws.index, load_templates([template]), [info], options, "count")
    return execute_run(ws.index, ws.store, run_id)


def test_y_free_preprocessing_is_fitted_once_for_every_target(ws):
    register_operator("yfree_counter", YFreeCounter, kind="transform", uses_y=False)
    register_operator("y_counter", YCounter, kind="transform")
    add_two_target_dataset(ws)
    one = _fit_stats(ws, SWEEP, ["glucose"])
    two = _fit_stats(ws, SWEEP, TARGETS)
    assert two.prefix_fits == one.prefix_fits > 0  # snv: once per fold and refit, any targets
    assert two.nested_pls_fits == 2 * one.nested_pls_fits  # the model: once per target

    YFreeCounter.fits = YCounter.fits = 0
    _fit_stats(ws, ["yfree_counter", {"pls": {"n_components": 2}}], TARGETS)
    assert YFreeCounter.fits == 4  # 3 folds + the refit, shared by both targets
    _fit_stats(ws, ["y_counter", {"pls": {"n_components": 2}}], TARGETS)
    assert YCounter.fits == 8  # a step that may learn from y: per target


def test_a_one_target_dataset_keeps_todays_paths(ws):
    run = ws.run([SWEEP], ["chemotools:fermentation"], cv=3, name="one")
    labels = sorted(r.row.label for r in run.results)
    assert all(r.row.target == "glucose" for r in run.results)
    inside = listing(ws, "runs/fermentation")
    assert set(labels) <= set(inside) and "RESULTS.csv" in inside
    assert listing(ws, "best") == sorted(forms("fermentation"))
    assert listing(ws, f"by-run/{run.run_id}/fermentation") == sorted(
        [*labels, *forms("RESULTS"), "charts"]  # the run's own ranking and charts beside
    )
    assert rows(read(ws, "runs/fermentation/RESULTS.csv"))[0]["target"] == "glucose"


def test_classification_models_each_class_column_with_its_own_folds(ws):
    from chemotools.datasets import load_coffee

    X, y = load_coffee()
    labels = y.iloc[:, 0].astype(str).to_numpy()
    # a second class column from the real one: espresso blends or not
    blend = np.where(labels == labels[0], "first", "other")
    ws.add_arrays(
        X.to_numpy(),
        np.column_stack([labels, blend]),
        "coffee2",
        target_names=["origin", "blend"],
        task="classification",
    )
    run = ws.run([[{"plsda": {"n_components": 2}}]], ["coffee2"], cv=3, targets="all")
    assert run.status == "completed"
    assert sorted(r.row.target for r in run.results) == ["blend", "origin"]
    for result in run.results:
        table = result.predictions()
        assert set(table["y_true"].to_list()) <= set(
            (blend if result.row.target == "blend" else labels).tolist()
        )


def test_export_names_the_target_and_import_keeps_it(both, tmp_path):
    from n4afs.workspace import Workspace

    ws, run = both
    best = ws.best("ferm2", target="band_1700")
    folder = f"runs/ferm2/band_1700/{best.row.label}"
    out = tmp_path / "bundle.zip"
    ws.export(folder, out, level="with-data")
    import zipfile

    with zipfile.ZipFile(out) as bundle:
        export = yaml.safe_load(
            bundle.read(next(n for n in bundle.namelist() if n.endswith("EXPORT.yaml")))
        )
    assert [e["target"] for e in export["results"]] == ["band_1700"]
    other = Workspace(tmp_path / "other")
    other.import_bundle(out, trust=True)
    (imported,) = other.results("ferm2", target="band_1700")
    assert imported.row.target == "band_1700"
    assert imported.ranked_value == pytest.approx(best.ranked_value)
    assert listing(other, "runs/ferm2/band_1700") == sorted(
        [*forms("RESULTS", f"best_{imported.row.label}"), *BESIDE, imported.row.label]
    )
    assert other.results("ferm2", target="glucose") == []


def _old_workspace(path, add):
    """A workspace as the code before several targets left it: schema 005, results without
    a target column. Datasets go in through today's writer (their rows did not change);
    results rows as that code wrote them (failed ones: no blobs needed to show them)."""
    import hashlib
    import shutil

    from n4afs_core.data import datasets
    from n4afs_core.index import writes
    from n4afs_core.index.database import SCHEMA_DIR, Index, migrations_in

    schema = path.parent / "schema-005"
    schema.mkdir()
    for migration in migrations_in(SCHEMA_DIR):
        if migration.version <= 5:
            shutil.copy(migration.path, schema / migration.path.name)
    index = Index(path)
    assert index.migrate(schema) == 5
    with index.write() as conn:
        for name, spectra in add:
            data = datasets.to_parquet_bytes(spectra)
            blob = hashlib.sha256(data).hexdigest()
            writes.add_dataset(conn, datasets.metadata(spectra), blob, None)
            conn.execute(
                "INSERT INTO runs VALUES ('2026-01-01_old_abcdef', 'old', 'failed', 'rmse', "
                "'{}', TIMESTAMP '2026-01-01 10:00', TIMESTAMP '2026-01-01 10:01') "
                "ON CONFLICT DO NOTHING"
            )
            conn.execute("INSERT INTO run_datasets VALUES ('2026-01-01_old_abcdef', ?, 0)", [blob])
            for seq in (1, 2):
                conn.execute(
                    "INSERT INTO results VALUES (?, '2026-01-01_old_abcdef', ?, ?, ?, ?, "
                    "'[{\"pls\": {\"n_components\": 2}}]', '{}', 0, 'failed', 'rmse', NULL, "
                    "NULL, 'boom', NULL, TIMESTAMP '2026-01-01 10:01')",
                    [f"{name}{seq}", blob, seq, f"pls{seq}", f"{seq:064x}"],
                )
            conn.execute("INSERT INTO dataset_seq VALUES (?, 2)", [blob])
    return index


def test_a_workspace_from_before_opens_with_the_same_tree(tmp_path):
    from n4afs_core.data import datasets
    from n4afs_core.index.database import SCHEMA_DIR, migrations_in

    from n4afs.workspace import Workspace

    X, refs, waves, ids = two_targets()
    one = datasets.from_arrays(X, refs[:, 0], "ferm", ids, waves, ["glucose"])
    two = datasets.from_arrays(X, refs, "ferm2", ids, waves, TARGETS)
    path = tmp_path / "ws"
    _old_workspace(path, [("a", one), ("b", two)])
    ws = Workspace(path)  # migrates past 007 (results' targets), to the latest
    assert ws.index.schema_version() == max(m.version for m in migrations_in(SCHEMA_DIR)) >= 7
    targets = dict(ws.query("SELECT result_id, target FROM results ORDER BY 1")[1])
    assert targets == {"a1": "glucose", "a2": "glucose", "b1": "glucose", "b2": "glucose"}
    labels = ["0001_pls1_000000", "0002_pls2_000000"]
    # the one-target dataset: today's paths exactly
    assert listing(ws, "runs/ferm") == sorted(["DATASET.yaml", *forms("RESULTS"), *BESIDE, *labels])
    assert listing(ws, "by-run/2026-01-01_old_abcdef/ferm") == sorted(
        [*labels, *forms("RESULTS"), "charts"]
    )
    assert listing(ws, "by-run/2026-01-01_old_abcdef/ferm2") == ["glucose"]
    assert listing(ws, "runs/ferm/0001_pls1_000000") == ["logs", "pipeline.yaml"]
    # the two-target dataset: its old results modelled its first target, and say so
    assert listing(ws, "runs/ferm2") == ["DATASET.yaml", "band_1700", "glucose"]
    assert listing(ws, "runs/ferm2/glucose") == sorted([*forms("RESULTS"), *BESIDE, *labels])
    assert listing(ws, "runs/ferm2/band_1700") == []
    assert ws.results("ferm2", target="glucose")[0].row.target == "glucose"
    run_yaml = yaml.safe_load(read(ws, "by-run/2026-01-01_old_abcdef/RUN.yaml"))
    assert run_yaml["targets"] == {"ferm": ["glucose"], "ferm2": ["glucose"]}
