"""The `.xlsx` twins of the tables a spreadsheet user opens (#19): RESULTS, best and
predictions, with numbers as number cells, text as text, and the same bytes every time."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from chemotools.datasets import load_fermentation_train
from n4afs_core.data import datasets

from n4afs.tree.tree import Tree

TEXT_COLUMNS = ("sample_id", "result", "name", "run", "status", "partition")
TEXT_COLUMNS += ("preprocessing", "model", "metric", "direction")  # RESULTS' text columns
IDS = ["0001", "=1+2", "Blé_3", *[f"{i:04d}" for i in range(4, 22)]]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from n4afs.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("xlsx") / "ws")
    X, y = load_fermentation_train()
    ws.add_dataset(
        datasets.from_arrays(
            X.to_numpy(), y.to_numpy()[:, 0], "ferm", IDS, list(X.columns), ["glucose"]
        )
    )
    ws.run(
        templates=[[{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [2, 3]}}}]],
        datasets=["ferm"],
        cv=3,
        test_size=0.2,
        name="xlsx",
    )
    return ws


def sheet_rows(data: bytes, sheet: str = "data") -> list[tuple]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return [tuple(row) for row in book[sheet].iter_rows(values_only=True)]


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def read(tree: Tree, *path: str) -> bytes:
    return tree.read(tree.lookup(path))


def test_every_table_has_an_xlsx_twin_with_the_same_cells_typed(ws):
    tree = Tree(ws)
    label = ws.best("ferm").row.label
    folder = ("runs", "ferm", label, "predictions")
    pairs = [
        (("runs", "ferm", "RESULTS.csv"), ("runs", "ferm", "RESULTS.xlsx")),
        (("runs", "ferm", f"best_{label}.csv"), ("runs", "ferm", f"best_{label}.xlsx")),
        (("best", "ferm.csv"), ("best", "ferm.xlsx")),
        *[((*folder, f"{n}.csv"), (*folder, f"{n}.xlsx")) for n in ("cv", "train", "test")],
    ]
    for csv_path, xlsx_path in pairs:
        text, cells = csv_rows(read(tree, *csv_path)), sheet_rows(read(tree, *xlsx_path))
        assert list(cells[0]) == text[0], xlsx_path
        assert len(cells) == len(text), xlsx_path
        for row, cell_row in zip(text[1:], cells[1:], strict=True):
            for field, cell, column in zip(row, cell_row, text[0], strict=True):
                if field == "":
                    assert cell is None
                elif column in TEXT_COLUMNS:
                    assert cell == field and isinstance(cell, str), (xlsx_path, column)
                elif column not in ("origin", "target"):
                    assert isinstance(cell, int | float) and cell == pytest.approx(float(field))


def test_sample_ids_that_look_like_numbers_or_formulas_stay_text(ws):
    tree = Tree(ws)
    folder = ("runs", "ferm", ws.best("ferm").row.label, "predictions")
    ids = {
        row[0]
        for name in ("cv.xlsx", "test.xlsx")
        for row in sheet_rows(read(tree, *folder, name))[1:]
    }
    assert {"0001", "=1+2", "Blé_3"} <= ids  # not 1, not 3, not a formula


def test_results_values_are_the_index_scores_and_the_sheet_says_the_metric(ws):
    tree = Tree(ws)
    data = read(tree, "runs", "ferm", "RESULTS.xlsx")
    header, *rows = sheet_rows(data)
    column = header.index("score")
    assert {row[header.index("metric")] for row in rows} == {"rmse"}
    by_label = {r.row.label: r.cv_scores()["rmse"] for r in ws.results("ferm")}
    assert {row[1]: row[column] for row in rows} == pytest.approx(by_label, rel=1e-15)
    about = dict(sheet_rows(data, "about"))
    assert about["metric"] == "rmse" and about["direction"] == "lower is better"
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book["data"].freeze_panes == "A2" and book["data"]["A1"].font.b


def test_two_renders_are_byte_identical_and_sizes_are_exact(ws):
    label = ws.best("ferm").row.label
    paths = [
        ("runs", "ferm", "RESULTS.xlsx"),
        ("runs", "ferm", f"best_{label}.xlsx"),
        ("runs", "ferm", label, "predictions", "cv.xlsx"),
    ]
    first, second = Tree(ws), Tree(ws)  # two memos: each renders on its own
    for path in paths:
        node = first.lookup(path)
        data = first.read(node)
        assert data == second.read(second.lookup(path)) and len(data) == node.size
