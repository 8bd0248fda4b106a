"""Parquet beside CSV for the data stack (#20): each result's predictions blob shown as it is
stored (`predictions/predictions.parquet`), and typed `RESULTS.parquet` and best tables that
polars (`scan_parquet` over a glob), DuckDB, pandas and PyArrow read without CSV sniffing."""

from __future__ import annotations

import io
import json

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from n4afs.surfaces.fs import N4AFileSystem
from n4afs.tree.content import BlobContent
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace

REGRESSION = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [2, 3]}}}]
CLASSIFICATION = [{"_or_": ["snv", "msc"]}, {"plsda": {"n_components": {"_or_": [2, 3]}}}]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("parquet") / "ws")
    ws.run([REGRESSION], ["chemotools:fermentation"], cv=3, test_size=0.2, name="glucose")
    ws.run([CLASSIFICATION], ["chemotools:coffee"], cv=3, name="origin")
    return ws


def read(tree: Tree, *path: str) -> bytes:
    return bytes(tree.read(tree.lookup(path)))


def test_the_predictions_blob_is_shown_as_stored(ws):
    tree = Tree(ws)
    best = ws.best("fermentation").row
    folder = ("runs", "fermentation", best.label, "predictions")
    assert "predictions.parquet" in tree.list_dir(folder)
    node = tree.lookup((*folder, "predictions.parquet"))
    assert isinstance(node.content, BlobContent) and node.content.blob_id == best.predictions_blob
    data = read(tree, *folder, "predictions.parquet")
    assert data == ws.store.read(best.predictions_blob) and node.size == len(data)
    assert tree.real_path(node) == str(ws.store.path_of(best.predictions_blob))
    footer = pq.ParquetFile(io.BytesIO(data)).metadata.metadata
    assert b"n4a_summary" in footer
    table = pl.read_parquet(io.BytesIO(data))
    assert table.schema["y_pred"] == pl.Float64
    oof = table.filter(pl.col("model").str.starts_with("fold_") & (pl.col("partition") == "val"))
    assert oof.height == len(read(tree, *folder, "cv.csv").split(b"\r\n")) - 2


def test_results_parquet_is_typed_and_polars_scans_a_glob_of_them(ws):
    tree = Tree(ws)
    assert "RESULTS.parquet" in tree.list_dir(("runs", "fermentation"))
    fs = N4AFileSystem()
    url = f"n4a://{ws.path}/runs/*/RESULTS.parquet"
    files = fs.glob(url)
    assert len(files) == 2
    frames = [pl.read_parquet(fs.cat_file(f)) for f in files]
    assert frames[0].schema == frames[1].schema  # one schema for every dataset and task
    schema = frames[0].schema
    assert schema["score"] == pl.Float64 and schema["rmsep"] == pl.Float64
    assert schema["rank"] == pl.Int64 and schema["n_components"] == pl.Int64
    assert schema["metric"] == pl.String
    both = pl.concat(frames)
    assert both.height == len(ws.results("fermentation")) + len(ws.results("coffee"))
    csv_table = pl.read_csv(read(tree, "runs", "fermentation", "RESULTS.csv"))
    parquet_table = pl.read_parquet(read(tree, "runs", "fermentation", "RESULTS.parquet"))
    assert parquet_table.columns == csv_table.columns
    assert parquet_table["rmsecv"].to_list() == csv_table["rmsecv"].to_list()
    assert parquet_table["result"].to_list() == csv_table["result"].to_list()


def test_polars_scan_parquet_over_a_glob_of_the_exported_tree(ws, tmp_path):
    """What a notebook does on a mount or an export: `scan_parquet` over a glob."""
    tree = Tree(ws)
    for dataset in ("fermentation", "coffee"):
        (tmp_path / dataset).mkdir()
        (tmp_path / dataset / "RESULTS.parquet").write_bytes(
            read(tree, "runs", dataset, "RESULTS.parquet")
        )
    lazy = pl.scan_parquet(str(tmp_path / "*" / "RESULTS.parquet"))
    best = lazy.filter(pl.col("rank") == 1).select("metric", "score").collect()
    assert sorted(best["metric"].to_list()) == ["accuracy", "rmse"]


def test_duckdb_reads_results_and_best_parquet_through_n4a(ws):
    con = duckdb.connect()
    con.register_filesystem(N4AFileSystem())
    results = con.sql(f"SELECT * FROM read_parquet('n4a://{ws.path}/runs/*/RESULTS.parquet')")
    types = dict(zip(results.columns, map(str, results.types), strict=True))
    assert types["score"] == "DOUBLE" and types["seq"] == "BIGINT"
    assert types["direction"] == "VARCHAR"
    best = con.sql(f"SELECT * FROM read_parquet('n4a://{ws.path}/best/fermentation.parquet')")
    types = dict(zip(best.columns, map(str, best.types), strict=True))
    assert types["sample_id"] == "VARCHAR" and types["y_true"] == "DOUBLE"
    assert types["fold"] == "BIGINT"
    rows = best.fetchall()
    assert len(rows) == 21  # one per sample: out-of-fold, then test (fold NULL)
    fold = best.columns.index("fold")
    partition = best.columns.index("partition")
    assert {r[fold] is None for r in rows if r[partition] == "test"} == {True}


def test_best_parquet_has_the_rows_of_best_csv_and_says_what_it_is(ws):
    tree = Tree(ws)
    label = ws.best("fermentation").row.label
    listed = set(tree.list_dir(("runs", "fermentation")))
    assert {f"best_{label}.parquet", "RESULTS.parquet"} <= listed
    data = read(tree, "best", "fermentation.parquet")
    assert data == read(tree, "runs", "fermentation", f"best_{label}.parquet")
    table = pq.read_table(io.BytesIO(data))
    text = {"sample_id": pl.String}
    as_csv = pl.read_csv(read(tree, "best", "fermentation.csv"), schema_overrides=text)
    assert table.column_names == as_csv.columns
    assert table.column("y_pred").to_pylist() == as_csv["y_pred"].to_list()
    about = json.loads(table.schema.metadata[b"n4a_about"])
    assert about["result"] == label and about["metric"] == "rmse"
    frame = table.to_pandas()
    assert str(frame["y_true"].dtype) == "float64"


def test_two_renders_are_byte_identical_and_sizes_exact(ws):
    label = ws.best("coffee").row.label
    paths = [
        ("runs", "coffee", "RESULTS.parquet"),
        ("runs", "coffee", f"best_{label}.parquet"),
        ("best", "coffee.parquet"),
    ]
    first, second = Tree(ws), Tree(ws)  # two memos: each renders on its own
    for path in paths:
        a, b = first.lookup(path), second.lookup(path)
        data = bytes(first.read(a))
        assert a.size == b.size == len(data) and bytes(second.read(b)) == data, path
