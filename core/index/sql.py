"""User SQL on the index (`n4afs sql`, `Workspace.query`): read-only by construction.

A query string typed by a user is not one of our short transactions: it may be slow, and it
may try to write (`DELETE`), to detach the index and attach it again read-write, to write
files (`COPY ... TO`, `EXPORT DATABASE`) or to read them (`read_csv('/etc/passwd')`). So it
never runs on the per-thread engine of `core.index.database` (an in-memory, read-write
instance, which `USE memory; DETACH n4a; ATTACH ...` escaped). Instead:

1. `Index.snapshot` copies the committed index into a private temporary directory under the
   shared lock, which is released as soon as the copy is made;
2. the query runs on a fresh DuckDB instance opened on that copy with DuckDB's own guards:
   `access_mode=READ_ONLY` (no write to any attached database, no in-memory ATTACH),
   `enable_external_access=false` (no ATTACH of other files, COPY TO, EXPORT, read_* of
   files, INSTALL/LOAD), and `lock_configuration=true` (no SET/RESET/PRAGMA can lift them);
3. the copy is deleted. Even a statement DuckDB let through could only touch the copy.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import tempfile
from typing import Any

import duckdb
from n4afs_core.errors import QueryError
from n4afs_core.index.database import Index

LOCKED_DOWN: dict[str, Any] = {
    "access_mode": "READ_ONLY",
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,  # last: the settings above can no longer be changed
}


def run_query(index: Index, sql: str) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of `sql` run on a locked-down snapshot of the index.

    Raises `QueryError` with DuckDB's first message line when the query fails or is refused.
    A shared index (PostgreSQL) runs it itself (`PostgresIndex.run_query`: one statement in
    a READ ONLY transaction).
    """
    if index.engine != "duckdb":
        return index.run_query(sql)
    with tempfile.TemporaryDirectory(prefix="n4afs-sql-") as scratch:
        snapshot = index.snapshot(scratch)
        try:
            conn = duckdb.connect(str(snapshot), config=LOCKED_DOWN)
        except duckdb.Error as exc:
            raise QueryError(f"cannot open the index snapshot: {_first_line(exc)}") from exc
        try:
            cursor = conn.execute(sql)
            header = [d[0] for d in cursor.description or []]
            return header, cursor.fetchall()
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {_first_line(exc)}") from exc
        finally:
            conn.close()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
