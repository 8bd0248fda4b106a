"""RESULTS.csv a user can pivot (#20): the metric and its direction in their own columns, one
column per generator choice, RMSEC / RMSECV / RMSEP (accuracy for classes), and one header
for every dataset, so a DuckDB glob over a regression and a classification dataset reads
them without `union_by_name`."""

from __future__ import annotations

import csv
import io

import duckdb
import fsspec
import pytest
from n4afs_core.metrics.scores import METRICS

from n4afs.surfaces.fs import N4AFileSystem
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace

REGRESSION = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [2, 3]}}}]
CLASSIFICATION = [{"_or_": ["snv", "msc"]}, {"plsda": {"n_components": {"_or_": [2, 3]}}}]
WINDOWS = [
    {"savgol": {"deriv": 1, "polyorder": 2, "window_length": {"_or_": [7, 11]}}},
    {"pls": {"n_components": 2}},
]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("results") / "ws")
    ws.run([REGRESSION], ["chemotools:fermentation"], cv=3, test_size=0.2, name="glucose")
    ws.run([CLASSIFICATION], ["chemotools:coffee"], cv=3, metric="accuracy", name="origin")
    return ws


def rows(tree: Tree, *path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(tree.read(tree.lookup(path)).decode("utf-8"))))


def header(tree: Tree, *path: str) -> list[str]:
    return tree.read(tree.lookup(path)).decode("utf-8").split("\r\n")[0].split(",")


def test_one_header_for_every_dataset_task_and_metric(ws):
    tree = Tree(ws)
    regression = header(tree, "runs", "fermentation", "RESULTS.csv")
    classification = header(tree, "runs", "coffee", "RESULTS.csv")
    assert regression == classification
    assert not [c for c in regression if "better" in c or " " in c]
    for column in ("metric", "direction", "score", "preprocessing", "model", "n_components"):
        assert column in regression
    for column in ("rmsec", "rmsecv", "rmsep", "accuracy_c", "accuracy_cv", "accuracy_p"):
        assert column in regression
    ferm, coffee = (
        rows(tree, "runs", "fermentation", "RESULTS.csv"),
        rows(tree, "runs", "coffee", "RESULTS.csv"),
    )
    assert {(r["metric"], r["direction"]) for r in ferm} == {("rmse", "lower")}
    assert {(r["metric"], r["direction"]) for r in coffee} == {("accuracy", "higher")}


def test_a_duckdb_glob_over_a_regression_and_a_classification_dataset_needs_no_union(ws):
    fs = N4AFileSystem()
    con = duckdb.connect()
    con.register_filesystem(fs)
    table = con.sql(f"SELECT * FROM read_csv('n4a://{ws.path}/runs/*/RESULTS.csv')")
    found = table.fetchall()
    columns = table.columns
    assert len(found) == len(ws.results("fermentation")) + len(ws.results("coffee"))
    by_metric = {}
    for row in found:
        record = dict(zip(columns, row, strict=True))
        by_metric.setdefault(record["metric"], []).append(record)
    assert set(by_metric) == {"rmse", "accuracy"}
    assert all(r["rmsecv"] == r["score"] for r in by_metric["rmse"])
    assert all(r["accuracy_cv"] == r["score"] for r in by_metric["accuracy"])
    assert all(r["accuracy_cv"] is None for r in by_metric["rmse"])
    # typed, not text: the empty columns of the other task do not turn numbers into strings
    types = dict(zip(columns, table.types, strict=True))
    assert str(types["score"]) == "DOUBLE" and str(types["rmsep"]) == "DOUBLE"
    assert str(types["n_components"]) == "BIGINT"


def test_rmsec_rmsecv_rmsep_are_the_final_train_pooled_cv_and_test_scores(ws):
    tree = Tree(ws)
    by_label = {r["result"]: r for r in rows(tree, "runs", "fermentation", "RESULTS.csv")}
    for result in ws.results("fermentation"):
        row = by_label[result.row.label]
        scores = {(s["model"], s["partition"]): s for s in result.scores}
        assert float(row["rmsec"]) == scores[("final", "train")]["rmse"]
        assert float(row["rmsecv"]) == scores[("cv", "val")]["rmse"]
        assert float(row["rmsep"]) == scores[("final", "test")]["rmse"]
        assert float(row["cv_r2"]) == scores[("cv", "val")]["r2"]
        assert row["accuracy_c"] == row["accuracy_cv"] == row["accuracy_p"] == ""
    for result in ws.results("coffee"):  # no test set: no accuracy_p, an empty rmsep
        row = {r["result"]: r for r in rows(tree, "runs", "coffee", "RESULTS.csv")}[
            result.row.label
        ]
        scores = {(s["model"], s["partition"]): s for s in result.scores}
        assert float(row["accuracy_c"]) == scores[("final", "train")]["accuracy"]
        assert float(row["accuracy_cv"]) == scores[("cv", "val")]["accuracy"]
        assert row["accuracy_p"] == "" and row["rmsec"] == ""


def test_choice_columns_pivot_rmsecv_by_preprocessing_and_components(ws):
    tree = Tree(ws)
    data = tree.read(tree.lookup(("runs", "fermentation", "RESULTS.csv")))
    table = list(csv.DictReader(io.StringIO(data.decode())))
    assert {(r["preprocessing"], r["model"], r["n_components"]) for r in table} == {
        (p, "pls", k) for p in ("snv", "msc") for k in ("2", "3")
    }
    with fsspec.open(f"n4a://{ws.path}/runs/fermentation/RESULTS.csv", "rb") as f:
        assert f.read() == data
    con = duckdb.connect()
    con.register_filesystem(N4AFileSystem())
    pivot = con.sql(
        f"PIVOT read_csv('n4a://{ws.path}/runs/fermentation/RESULTS.csv') "
        "ON preprocessing USING first(rmsecv) GROUP BY n_components ORDER BY n_components"
    )
    assert pivot.columns == ["n_components", "msc", "snv"]
    expected = {(r["n_components"], r["preprocessing"]): float(r["rmsecv"]) for r in table}
    for k, msc, snv in pivot.fetchall():
        assert (msc, snv) == (expected[(str(k), "msc")], expected[(str(k), "snv")])


def test_other_generator_choices_get_one_column_each_named_by_operator_and_parameter(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run([WINDOWS], ["chemotools:fermentation"], cv=3, name="windows")
    tree = Tree(ws)
    columns = header(tree, "runs", "fermentation", "RESULTS.csv")
    assert columns[-1] == "savgol.window_length"
    table = rows(tree, "runs", "fermentation", "RESULTS.csv")
    assert sorted(r["savgol.window_length"] for r in table) == ["11", "7"]
    assert {r["preprocessing"] for r in table} == {"sg1"}
    assert {r["n_components"] for r in table} == {"2"}


def test_the_spreadsheet_twin_has_the_same_columns(ws):
    import openpyxl

    tree = Tree(ws)
    data = tree.read(tree.lookup(("runs", "coffee", "RESULTS.xlsx")))
    book = openpyxl.load_workbook(io.BytesIO(data))
    first = next(book["data"].iter_rows(values_only=True))
    assert list(first) == header(tree, "runs", "coffee", "RESULTS.csv")
    assert set(METRICS) >= {c.removeprefix("cv_") for c in first if c.startswith("cv_")}
