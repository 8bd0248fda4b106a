"""The index attaches its file to a per-thread DuckDB instance: nesting, threads, other
processes. (Opening `duckdb.connect(path)` per transaction cost ~11 ms; ATTACH ~1.5 ms.)"""

import subprocess
import sys
import threading

import duckdb
from n4afs_core.index.database import Index


def make_index(path):
    index = Index(path)
    index.migrate()
    with index.write() as conn:
        conn.execute("INSERT INTO dataset_seq VALUES (?, 1)", [str(path)])
    return index


def test_a_read_nested_in_a_read_shares_the_attachment(tmp_path):
    index = make_index(tmp_path / "ws")
    with index.read() as outer:
        with index.read() as inner:
            assert inner.execute("SELECT count(*) FROM dataset_seq").fetchone() == (1,)
        assert outer.execute("SELECT count(*) FROM dataset_seq").fetchone() == (1,)
    with index.write() as conn:  # detached at the end: a writer can attach again
        conn.execute("UPDATE dataset_seq SET last_seq = 2")
    assert index.fetchall("SELECT last_seq FROM dataset_seq") == [(2,)]


def test_two_workspaces_nested_see_their_own_rows(tmp_path):
    a, b = make_index(tmp_path / "a"), make_index(tmp_path / "b")
    with a.read() as conn_a, b.write() as conn_b:
        conn_b.execute("UPDATE dataset_seq SET last_seq = 5")
        assert conn_a.execute("SELECT dataset_id FROM dataset_seq").fetchall() == [
            (str(tmp_path / "a"),)
        ]
        assert conn_b.execute("SELECT dataset_id FROM dataset_seq").fetchall() == [
            (str(tmp_path / "b"),)
        ]
    assert b.fetchall("SELECT last_seq FROM dataset_seq") == [(5,)]
    assert a.fetchall("SELECT last_seq FROM dataset_seq") == [(1,)]


def test_threads_read_while_another_writes(tmp_path):
    index = make_index(tmp_path / "ws")
    errors, counts = [], []

    def reader():
        try:
            for _ in range(20):
                counts.append(index.fetchall("SELECT count(*) FROM dataset_seq")[0][0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(20):
        with index.write() as conn:
            conn.execute("INSERT INTO dataset_seq VALUES (?, 1)", [f"extra-{i}"])
    for thread in threads:
        thread.join()
    assert errors == [] and len(counts) == 60
    assert index.fetchall("SELECT count(*) FROM dataset_seq") == [(21,)]


def test_after_a_transaction_another_process_can_open_the_file(tmp_path):
    index = make_index(tmp_path / "ws")
    with index.write() as conn:
        conn.execute("UPDATE dataset_seq SET last_seq = 3")
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
        "print(c.execute('SELECT last_seq FROM dataset_seq').fetchone()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(index.db_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"


def test_the_default_catalog_keeps_the_file_name(tmp_path):
    """SQL qualified as `n4a.main.table` works as with `duckdb.connect("n4a.duckdb")`."""
    index = make_index(tmp_path / "ws")
    assert index.fetchall("SELECT count(*) FROM n4a.main.dataset_seq") == [(1,)]
    direct = duckdb.connect(str(index.db_path), read_only=True)
    try:
        assert direct.execute("SELECT current_database()").fetchone() == ("n4a",)
    finally:
        direct.close()
