"""An interrupted nirs4all import leaves nothing half: not while its blobs are stored, not
while its rows are written (every call of the workspace in one transaction), not while
spectra given later are attached. The same import afterwards brings everything in.

On the real nirs4all 1.4.10 workspaces of tests/fixtures/nirs4all-1.4.10/.
"""

from __future__ import annotations

import pytest
from n4afs_core.index import writes

from tests import nirs4all_fixture

FIXTURES = nirs4all_fixture.FIXTURES
source = nirs4all_fixture.source  # the fixture: a private copy of them

FACTS_PIPELINES = {"dagml": 13, "legacy": 8}


def _rows(ws) -> tuple:
    return tuple(
        ws.index.fetchall(f"SELECT count(*) FROM {t}")[0][0]
        for t in ("results", "runs", "imports", "datasets", "models", "predictions", "templates")
    )


EMPTY = (0, 0, 0, 0, 0, 0, 0)


class Interrupted(BaseException):
    """What a Ctrl-C or a killed writer looks like to the import (not an Exception)."""


def test_interrupted_while_storing_blobs_leaves_no_row_and_gc_clears_the_blobs(
    ws, source, monkeypatch
):
    put = ws.store.put
    calls = {"n": 0}

    def failing_put(data, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 60:  # mid-way through the files of the calls
            raise Interrupted()
        return put(data, *args, **kwargs)

    monkeypatch.setattr(ws.store, "put", failing_put)
    with pytest.raises(Interrupted):
        ws.import_bundle(source / "dagml")
    assert calls["n"] == 60
    assert _rows(ws) == EMPTY
    monkeypatch.setattr(ws.store, "put", put)
    report = ws.gc(grace_s=0)
    assert report is not None and ws.blob_stats().n_blobs == 0
    summary = ws.import_bundle(source / "dagml")
    assert len(summary.results) == FACTS_PIPELINES["dagml"]


def test_interrupted_while_writing_rows_leaves_no_row(ws, source, monkeypatch):
    insert = writes.insert_import
    calls = {"n": 0}

    def failing_insert(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the first call's rows are written, the second's half
            raise Interrupted()
        return insert(*args, **kwargs)

    monkeypatch.setattr(writes, "insert_import", failing_insert)
    with pytest.raises(Interrupted):
        ws.import_bundle(
            source / "legacy", data={"fermentation": str(FIXTURES / "data" / "fermentation.csv")}
        )
    assert calls["n"] == 2
    assert _rows(ws) == EMPTY
    monkeypatch.setattr(writes, "insert_import", insert)
    summary = ws.import_bundle(source / "legacy")
    assert len(summary.results) == FACTS_PIPELINES["legacy"]


def test_interrupted_while_attaching_later_data_changes_nothing(ws, source, monkeypatch):
    ws.import_bundle(source / "legacy")
    before = _rows(ws)

    def failing_attach(*args, **kwargs):
        raise Interrupted()

    monkeypatch.setattr(writes, "attach_imported_data", failing_attach)
    data = {"fermentation": str(FIXTURES / "data" / "fermentation.csv")}
    with pytest.raises(Interrupted):
        ws.import_bundle(source / "legacy", data=data)
    assert _rows(ws) == before and ws.dataset("fermentation").blob_id is None
    monkeypatch.undo()
    assert ws.import_bundle(source / "legacy", data=data).attached
    assert ws.dataset("fermentation").blob_id is not None
