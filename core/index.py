"""The DuckDB index: every row the tree needs, in one file per workspace (`n4a.duckdb`).

Concurrency by design, not by retry. DuckDB admits one read-write process or many read-only
processes, never both, so the index never keeps a connection open:

* `write()` takes the exclusive workspace lock, opens a read-write connection, runs one
  transaction, commits, closes (which checkpoints), bumps the change token, unlocks.
* `read()` takes the shared lock and opens a read-only connection for one query batch.
  Readers proceed together; a writer waits for them and they for it, briefly.
* Long-lived readers (the mount, the fsspec filesystem) must not open DuckDB inside a
  callback: they keep an in-memory snapshot and reload it when `change_token()` moves. The
  token is the inode of `n4a.changes`, a file replaced after every commit, so checking it is
  one `stat`, no database open.

Because every holder of the lock is a short transaction, no user ever sees "database is
locked": at worst a bounded wait, then `WorkspaceLocked` naming the holder.

Schema changes are SQL files `core/schema/NNN_name.sql`, applied in order, each recorded in
`schema_version`. An older index is upgraded on open; a newer one is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.errors import SchemaError, WorkspaceError
from core.lock import DEFAULT_TIMEOUT_S, WorkspaceLock

SCHEMA_DIR = Path(__file__).with_name("schema")
DB_NAME = "n4a.duckdb"
_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    path: Path

    @property
    def note(self) -> str:
        first = self.path.read_text().splitlines()[0]
        return first.removeprefix("--").strip()


def migrations_in(schema_dir: Path) -> list[Migration]:
    found = []
    for path in sorted(schema_dir.glob("*.sql")):
        match = _MIGRATION_NAME.fullmatch(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path))
    return found


class Index:
    """Short-transaction access to one workspace's DuckDB file."""

    def __init__(self, workspace_dir: str | os.PathLike, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.dir = Path(workspace_dir)
        self.db_path = self.dir / DB_NAME
        self.changes_path = self.dir / "n4a.changes"
        self.lock = WorkspaceLock(self.dir / "n4a.lock", timeout_s=timeout_s)

    # -- transactions -----------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One read-write transaction: committed whole on success, rolled back on error."""
        with self.lock.exclusive():
            conn = duckdb.connect(str(self.db_path))
            try:
                conn.begin()
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            finally:
                conn.close()
            self._bump_change_token()

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for one batch of queries."""
        if not self.db_path.exists():
            raise WorkspaceError(f"no index at {self.db_path}: create it with `n4afs init`")
        if self._has_wal():
            self._checkpoint()
        with self.lock.shared():
            conn = duckdb.connect(str(self.db_path), read_only=True)
            try:
                yield conn
            finally:
                conn.close()

    def fetchall(self, sql: str, params: list | tuple = ()) -> list[tuple]:
        with self.read() as conn:
            return conn.execute(sql, params).fetchall()

    def change_token(self) -> tuple[int, int]:
        """Moves after every commit; one stat, so long-lived readers may poll it often."""
        try:
            st = os.stat(self.changes_path)
        except FileNotFoundError:
            return (0, 0)
        return (st.st_ino, st.st_mtime_ns)

    def _bump_change_token(self) -> None:
        """Replace the file (new inode) so a reader's cached token can never match again."""
        try:
            counter = int(self.changes_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            counter = 0
        tmp = self.changes_path.with_suffix(".tmp")
        tmp.write_text(f"{counter + 1}\n")
        os.replace(tmp, self.changes_path)

    # -- recovery ---------------------------------------------------------------------
    def _has_wal(self) -> bool:
        return os.path.exists(str(self.db_path) + ".wal")

    def _checkpoint(self) -> None:
        """Fold a WAL left by a killed writer into the file (only committed work survives)."""
        with self.lock.exclusive():
            if self._has_wal():
                conn = duckdb.connect(str(self.db_path))
                try:
                    conn.execute("CHECKPOINT")
                finally:
                    conn.close()

    # -- schema -----------------------------------------------------------------------
    def schema_version(self) -> int:
        with self.read() as conn:
            return _current_version(conn)

    def migrate(self, schema_dir: Path = SCHEMA_DIR) -> int:
        """Create or upgrade the schema; refuse an index written by a newer n4afs."""
        self.dir.mkdir(parents=True, exist_ok=True)
        known = migrations_in(schema_dir)
        latest = known[-1].version if known else 0
        with self.write() as conn:
            current = _current_version(conn)
            if current > latest:
                raise SchemaError(
                    f"index {self.db_path} has schema version {current}, this n4afs knows up "
                    f"to {latest}: upgrade n4afs to open this workspace"
                )
            for migration in known:
                if migration.version > current:
                    _apply(conn, migration)
        return max(current, latest)


def _current_version(conn: duckdb.DuckDBPyConnection) -> int:
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()[0]
    if not exists:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def _apply(conn: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    try:
        conn.execute(migration.path.read_text())
    except duckdb.Error as exc:
        raise SchemaError(f"migration {migration.path.name} failed: {exc}") from exc
    conn.execute(
        "INSERT INTO schema_version VALUES (?, current_timestamp, ?)",
        [migration.version, migration.note],
    )
