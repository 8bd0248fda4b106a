"""A render memoized by content serves only files whose bytes it is: two results with the
same predictions (the same config run twice) share the predictions blob, but each result's
`.xlsx` names its own result in its about sheet, so the two workbooks are different files
and one must never be served for the other (which one a process rendered first would decide
the bytes a path gives: the mount, the server and an export would disagree)."""

from __future__ import annotations

import io

import openpyxl

from n4afs import Workspace

CONFIG = [["snv", {"pls": {"n_components": 2}}]]


def about_of(ws: Workspace, path: tuple[str, ...]) -> dict:
    tree = ws.tree
    book = openpyxl.load_workbook(io.BytesIO(bytes(tree.read(tree.open(tree.lookup(path))))))
    return {row[0]: row[1] for row in book.worksheets[-1].iter_rows(values_only=True)}


def test_each_result_s_predictions_workbook_names_its_own_result(tmp_path):
    ws = Workspace(tmp_path / "ws")
    for name in ("first", "again"):
        ws.run(templates=CONFIG, datasets=["chemotools:fermentation"], cv=3, name=name)
    rows = ws.tree.views.snapshot.results
    assert len(rows) == 2 and rows[0].predictions_blob == rows[1].predictions_blob
    for row in rows:  # read in turn by one tree: the first render must not answer the second
        about = about_of(ws, ("runs", "fermentation", row.label, "predictions", "cv.xlsx"))
        assert about["table"] == f"predictions of {row.label}: cv.csv", about
