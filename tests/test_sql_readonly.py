"""`n4afs sql` is read-only for real: a query can neither change the index nor touch files.

Each attack runs through the CLI in a subprocess, as a user would type it; the index is then
counted row by row and `verify` must still pass.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from test_cli import run_cli

from n4afs.workspace import Workspace

TEMPLATE = ["snv", {"pls": {"n_components": {"_range_": [2, 4]}}}]


@pytest.fixture
def swept(tmp_path) -> Workspace:
    """A workspace with one dataset and a small completed run (3 results)."""
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3, name="small")
    return ws


def _counts(ws: Workspace) -> dict[str, int]:
    tables = ("runs", "results", "datasets", "models", "blobs")
    return {t: ws.index.fetchall(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def _index_digest(ws: Workspace) -> str:
    return hashlib.sha256(ws.index.db_path.read_bytes()).hexdigest()


def _assert_refused(out, what: str) -> None:
    assert out.returncode == 2, (what, out.stdout, out.stderr)
    assert out.stderr.startswith("error: "), (what, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_detach_attach_delete_attack_leaves_runs_and_results_untouched(swept):
    before = _counts(swept)
    db = str(swept.index.db_path)
    attack = f"USE memory; DETACH n4a; ATTACH '{db}' AS w; DELETE FROM w.runs"
    out = run_cli("-w", str(swept.path), "sql", attack)
    _assert_refused(out, attack)
    assert _counts(swept) == before
    verified = run_cli("-w", str(swept.path), "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "0 index problems" in verified.stdout


def test_copy_to_writes_no_file(swept, tmp_path):
    target = tmp_path / "leak.csv"
    out = run_cli("-w", str(swept.path), "sql", f"COPY (SELECT 1) TO '{target}'")
    _assert_refused(out, "COPY TO")
    assert not target.exists()


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM results",
        "INSERT INTO runs SELECT * FROM runs",
        "UPDATE results SET score = 0",
        "DROP TABLE results",
        "CREATE TABLE n4a.main.x (i INTEGER)",
        "DETACH n4a",
        "ATTACH ':memory:' AS scratch",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "PRAGMA enable_profiling",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "EXPORT DATABASE '{tmp}/dump'",
    ],
)
def test_writing_or_escaping_statements_are_refused_and_change_nothing(swept, tmp_path, statement):
    before, digest = _counts(swept), _index_digest(swept)
    out = run_cli("-w", str(swept.path), "sql", statement.format(tmp=tmp_path))
    _assert_refused(out, statement)
    assert _counts(swept) == before and _index_digest(swept) == digest
    assert not (tmp_path / "dump").exists()


def test_selects_still_work_and_see_committed_data(swept):
    out = run_cli("-w", str(swept.path), "sql", "select count(*) as n from n4a.results", "--csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["n", "3"]
    swept.add_dataset("chemotools:coffee")
    out = run_cli("-w", str(swept.path), "sql", "select name from datasets order by name")
    assert out.returncode == 0, out.stderr
    assert "coffee" in out.stdout and "fermentation" in out.stdout


def test_workspace_query_returns_header_and_rows(swept):
    header, rows = swept.query("select status, count(*) as n from results group by status")
    assert header == ["status", "n"]
    assert rows == [("completed", 3)]


def test_a_slow_query_does_not_hold_the_workspace_lock(swept):
    """A writer gets the exclusive lock while a long query is still running on its snapshot."""
    import threading

    from n4afs_core.index.lock import WorkspaceLock

    slow = "SELECT sum(hash(range)) FROM range(500000000)"  # a second or two of CPU
    started, finished = threading.Event(), threading.Event()

    def query() -> None:
        started.set()
        swept.query(slow)
        finished.set()

    thread = threading.Thread(target=query)
    thread.start()
    started.wait()
    time.sleep(0.2)  # past the snapshot copy, into the query
    with WorkspaceLock(swept.index.lock.path, timeout_s=30).exclusive():
        query_still_running = not finished.is_set()
    thread.join()
    assert finished.is_set() and query_still_running
