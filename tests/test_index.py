import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from n4afs_core.errors import SchemaError, WorkspaceLocked
from n4afs_core.index.database import SCHEMA_DIR, Index, migrations_in


def copy_schema(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    schema = tmp_path / "schema"
    schema.mkdir()
    for migration in migrations_in(SCHEMA_DIR):
        (schema / migration.path.name).write_text(migration.path.read_text())
    for name, sql in (extra or {}).items():
        (schema / name).write_text(sql)
    return schema


def test_fresh_index_gets_every_migration(tmp_path):
    index = Index(tmp_path / "ws")
    latest = migrations_in(SCHEMA_DIR)[-1].version
    assert index.migrate() == latest
    assert index.schema_version() == latest
    rows = index.fetchall("SELECT version, note FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, latest + 1))
    assert "initial schema" in rows[0][1]
    # idempotent: opening again adds nothing
    index.migrate()
    assert len(index.fetchall("SELECT * FROM schema_version")) == latest


def test_older_index_is_upgraded_and_keeps_its_rows(tmp_path):
    index = Index(tmp_path / "ws")
    index.migrate()
    with index.write() as conn:
        conn.execute("INSERT INTO blobs VALUES (?, 1, 'raw', current_timestamp)", ["a" * 64])
    upgrade = "-- 900 test upgrade (2026-11-25)\nALTER TABLE blobs ADD COLUMN note VARCHAR;\n"
    schema = copy_schema(tmp_path, {"900_test_upgrade.sql": upgrade})
    assert index.migrate(schema) == 900
    assert index.schema_version() == 900
    assert index.fetchall("SELECT blob_id, note FROM blobs") == [("a" * 64, None)]


def test_newer_index_is_refused_clearly(tmp_path):
    index = Index(tmp_path / "ws")
    index.migrate()
    with index.write() as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, current_timestamp, 'future')")
    with pytest.raises(SchemaError, match="schema version 999.*upgrade n4afs"):
        index.migrate()


def test_failed_transaction_leaves_nothing(tmp_path):
    index = Index(tmp_path / "ws")
    index.migrate()
    with pytest.raises(RuntimeError), index.write() as conn:
        conn.execute("INSERT INTO blobs VALUES (?, 1, 'raw', current_timestamp)", ["b" * 64])
        raise RuntimeError("crash between two inserts")
    assert index.fetchall("SELECT count(*) FROM blobs") == [(0,)]


def test_change_token_moves_on_every_commit(tmp_path):
    index = Index(tmp_path / "ws")
    index.migrate()
    before = index.change_token()
    with index.write() as conn:
        conn.execute("SELECT 1")
    assert index.change_token() != before


def test_lock_wait_is_bounded_and_names_the_holder(tmp_path):
    index = Index(tmp_path / "ws", timeout_s=0.3)
    index.migrate()
    with index.lock.exclusive():
        other = Index(tmp_path / "ws", timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(WorkspaceLocked, match=f"PID {os.getpid()}"):
            other.fetchall("SELECT 1")
        assert time.monotonic() - started < 5


KILLED_WRITER = r"""
import sys, time
from n4afs_core.index.database import Index
index = Index(sys.argv[1])
with index.write() as conn:
    conn.execute("INSERT INTO blobs VALUES (?, 1, 'raw', current_timestamp)", ["c" * 64])
    open(sys.argv[2], "w").write("inside")
    time.sleep(60)
"""


def test_writer_killed_inside_a_transaction_commits_nothing(tmp_path):
    index = Index(tmp_path / "ws")
    index.migrate()
    with index.write() as conn:
        conn.execute("INSERT INTO blobs VALUES (?, 1, 'raw', current_timestamp)", ["d" * 64])
    marker = tmp_path / "inside"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(index.dir), str(marker)], env=env
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert index.fetchall("SELECT blob_id FROM blobs") == [("d" * 64,)]
    with index.write() as conn:  # and writing works again: the dead writer's lock is gone
        conn.execute("INSERT INTO blobs VALUES (?, 1, 'raw', current_timestamp)", ["e" * 64])
    assert len(index.fetchall("SELECT * FROM blobs")) == 2


# -- several processes on one workspace ---------------------------------------------------
def _writer(ws_dir: str, tag: str, seconds: float, results: mp.Queue) -> None:
    index = Index(ws_dir)
    written, errors = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with index.write() as conn:
                blob_id = f"{tag}{written:063x}"[-64:]
                conn.execute(
                    "INSERT INTO blobs VALUES (?, ?, 'raw', current_timestamp)", [blob_id, written]
                )
            written += 1
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(repr(exc))
    results.put(("writer", tag, written, errors))


def _reader(ws_dir: str, seconds: float, results: mp.Queue) -> None:
    index = Index(ws_dir)
    reads, errors, last = 0, [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            count = index.fetchall("SELECT count(*) FROM blobs")[0][0]
            if count < last:
                errors.append(f"count went backwards: {last} -> {count}")
            last = count
            reads += 1
        except Exception as exc:
            errors.append(repr(exc))
    results.put(("reader", "r", reads, errors))


def test_two_writers_and_a_reader_at_once(tmp_path):
    ws_dir = str(tmp_path / "ws")
    Index(ws_dir).migrate()
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(ws_dir, "a", 4.0, results)),
        ctx.Process(target=_writer, args=(ws_dir, "b", 4.0, results)),
        ctx.Process(target=_reader, args=(ws_dir, 4.5, results)),
    ]
    for p in procs:
        p.start()
    reports = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    for kind, tag, count, errors in reports:
        assert errors == [], f"{kind} {tag} saw errors: {errors[:3]}"
        assert count > 0, f"{kind} {tag} did nothing"
    written = sum(count for kind, _, count, _ in reports if kind == "writer")
    assert Index(ws_dir).fetchall("SELECT count(*) FROM blobs")[0][0] == written


def test_a_version_1_workspace_with_data_upgrades_to_the_current_schema(tmp_path):
    from n4afs_core.data import datasets
    from n4afs_core.index import catalog, writes

    only_first = tmp_path / "schema-1"
    only_first.mkdir()
    first = migrations_in(SCHEMA_DIR)[0]
    (only_first / first.path.name).write_text(first.path.read_text())
    index = Index(tmp_path / "ws")
    assert index.migrate(only_first) == 1
    spectra = datasets.load_chemotools("chemotools:fermentation")
    with index.write() as conn:
        writes.add_dataset(conn, datasets.metadata(spectra), "f" * 64, "f" * 64)
    latest = migrations_in(SCHEMA_DIR)[-1].version
    assert index.migrate() == latest >= 2
    with index.read() as conn:
        (kept,) = catalog.list_datasets(conn)
    assert kept.name == "fermentation" and kept.n_features == 1047
    with index.write() as conn:  # 002: a dataset imported without its data has no blob
        meta = {**datasets.metadata(spectra), "name": "no-data"}
        writes.add_dataset(conn, meta, "e" * 64, None)
    with index.read() as conn:
        assert {d.name: d.blob_id for d in catalog.list_datasets(conn)}["no-data"] is None
