"""The tree's CSVs are for machines: RFC 4180, UTF-8 without a byte-order mark (#19).

Measured decision: a BOM would make Excel on Windows read non-ASCII sample ids right, but
Python's `csv` module (opened as UTF-8, the usual way), `cut`, `awk` and `cat a.csv b.csv`
then see a first header that is not `sample_id`. pandas, polars, DuckDB and PyArrow read
both alike. The files meant for Excel are the `.xlsx` renders; the CSVs carry no BOM."""

from __future__ import annotations

import csv
import io

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.csv as pacsv
from chemotools.datasets import load_fermentation_train
from n4afs_core.data import datasets

from n4afs.tree.tree import Tree

BOM = b"\xef\xbb\xbf"
IDS = [f"Blé_{i:04d}" for i in range(1, 12)] + [f"Größe_{i:04d}" for i in range(1, 11)]


def first_headers(path) -> dict[str, str]:
    """The first column name as each reader sees it."""
    with open(path, encoding="utf-8", newline="") as handle:
        stdlib = next(csv.reader(handle))[0]
    return {
        "pandas": str(pd.read_csv(path).columns[0]),
        "polars": pl.read_csv(path).columns[0],
        "duckdb": duckdb.sql(f"SELECT * FROM read_csv('{path}')").columns[0],
        "pyarrow": pacsv.read_csv(path).column_names[0],
        "csv": stdlib,
    }


def test_tree_csvs_have_no_bom_and_every_reader_gets_their_header_and_ids(ws, tmp_path):
    X, y = load_fermentation_train()
    spectra = datasets.from_arrays(
        X.to_numpy(), y.to_numpy()[:, 0], "blé", IDS, list(X.columns), ["glucose"]
    )
    ws.add_dataset(spectra)
    ws.run(templates=[["snv", "pls"]], datasets=["blé"], cv=3, name="bom")
    tree = Tree(ws)
    label = ws.best("blé").row.label
    for path in (
        ("datasets", "blé", "targets.csv"),
        ("runs", "blé", "RESULTS.csv"),
        ("runs", "blé", label, "predictions", "cv.csv"),
    ):
        data = tree.read(tree.lookup(path))
        assert not data.startswith(BOM), path
        file = tmp_path / path[-1]
        file.write_bytes(data)
        headers = first_headers(file)
        assert set(headers.values()) == {headers["pandas"]} and "\ufeff" not in headers["csv"]
    ids = pd.read_csv(io.BytesIO(tree.read(tree.lookup(("datasets", "blé", "targets.csv")))))
    assert list(ids.iloc[:, 0]) == IDS


def test_a_bom_would_change_the_header_the_stdlib_csv_reader_sees(tmp_path):
    """Why the decision: the same bytes with a BOM read differently by `csv` alone."""
    body = "sample_id,y_true\nBlé_0001,13.014\n".encode()
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_bytes(body)
    marked.write_bytes(BOM + body)
    without, with_bom = first_headers(plain), first_headers(marked)
    assert set(without.values()) == {"sample_id"}
    assert with_bom["csv"] == "\ufeffsample_id"
    assert {k: v for k, v in with_bom.items() if k != "csv"} == dict.fromkeys(
        ["pandas", "polars", "duckdb", "pyarrow"], "sample_id"
    )
    assert np.isclose(pd.read_csv(marked)["y_true"][0], 13.014)
