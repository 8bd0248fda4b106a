"""The DuckDB index: every row the tree needs, in one file per workspace (`n4a.duckdb`).

Concurrency by design, not by retry. DuckDB admits one read-write process or many read-only
processes, never both, so the index never keeps a connection open (locks: `core.index.lock`):

* `write()` takes the writers' turn, attaches the file read-write, runs one transaction,
  commits, detaches (which checkpoints and releases DuckDB's file lock), bumps the change
  token, lets the next writer in. It writes the file in place when no reader has it open;
  when a reader held on past a short grace (a stopped `n4afs sql`, a slow script), it writes
  a copy instead and renames it over the file, so that reader keeps, as a snapshot, the
  version it opened, and no reader ever makes a writer wait long or fail.
* `read()` takes the shared lock and attaches the file read-only for one query batch.
  Readers proceed together; a writer in place waits for them briefly, and they for it.
* The file is attached to an in-memory DuckDB instance kept per thread, not opened with
  `duckdb.connect(path)`: creating an instance costs ~11 ms (its function catalog), ATTACH +
  DETACH ~1.5 ms, and a run makes about ten index transactions.
* Long-lived readers (the mount, the fsspec filesystem) must not open DuckDB inside a
  callback: they keep an in-memory snapshot and reload it when `change_token()` moves. The
  token is the inode of `n4a.changes`, a file replaced after every commit, so checking it is
  one `stat`, no database open.

No user ever sees "database is locked": at worst a bounded wait, then `WorkspaceLocked`
naming the process that holds the lock.

A full disk: a write that cannot commit raises `DiskFull` naming the index (nothing of it is
visible). A commit that reached the WAL but whose checkpoint (at DETACH) found no space is
kept: the WAL holds it, a read-only ATTACH replays it in memory, and the next writer with
space folds it in. So readers keep working while the disk stays full.

Schema changes are SQL files `core/index/schema/NNN_name.sql`, applied in order, each recorded in
`schema_version`. An older index is upgraded on open; a newer one is refused.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb
from n4afs_core.errors import DiskFull, SchemaError, WorkspaceError, full_path, is_disk_full
from n4afs_core.index.lock import DEFAULT_TIMEOUT_S, WorkspaceLock

SCHEMA_DIR = Path(__file__).with_name("schema")
DB_NAME = "n4a.duckdb"
CATALOG = "n4a"  # the name `duckdb.connect("n4a.duckdb")` would give it: same qualified SQL
_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
_ENGINES = threading.local()


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

    engine = "duckdb"
    errors = (duckdb.Error,)  # what a statement that fails raises (a refused constraint)

    def exists(self) -> bool:
        """Whether the index was created (its file is there)."""
        return self.db_path.exists()

    def size_bytes(self) -> int:
        return self.db_path.stat().st_size

    # -- transactions -----------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One read-write transaction: committed whole on success, rolled back on error
        (`DiskFull` when the index's disk has no space for it)."""
        with self.lock.writing() as in_place:
            with self._disk_full_named(), self._transaction(in_place) as conn:
                yield conn
            self._bump_change_token()

    @contextmanager
    def _transaction(self, in_place: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction on the file itself, or on a copy renamed over it on success
        (`in_place` False: a reader still has the file open and keeps that version)."""
        target = self.db_path if in_place else self.db_path.with_name(DB_NAME + ".next")
        try:
            if not in_place:
                self._copy_for_writing(target)
            with _attached(target, read_only=False) as conn:
                conn.begin()
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
        except BaseException:
            if not in_place:
                _remove_database(target)
            raise
        if not in_place:
            self._swap_in(target)

    def _copy_for_writing(self, copy: Path) -> None:
        """A private copy of the committed file (and of a WAL a killed writer left, which
        DuckDB replays into the copy); only the writer whose turn it is touches it. A copy
        that fails (a full disk) is removed by `_transaction`, never left to hold space."""
        _remove_database(copy)  # left by a writer killed in its copy: never committed
        if self.db_path.exists():
            shutil.copyfile(self.db_path, copy)
            if self._has_wal():
                shutil.copyfile(f"{self.db_path}.wal", f"{copy}.wal")

    def _swap_in(self, copy: Path) -> None:
        """Rename the committed copy over the file: readers attach one or the other, both
        whole. The file's old WAL (a killed writer's, already replayed into the copy) goes
        first, so no reader ever pairs it with the new file; the copy's own WAL exists only
        when a full disk deferred its checkpoint, and follows it."""
        _fsync(copy)
        Path(f"{self.db_path}.wal").unlink(missing_ok=True)  # folded into the copy
        os.replace(copy, self.db_path)
        if Path(f"{copy}.wal").exists():  # a checkpoint deferred by a full disk: keep it
            os.replace(f"{copy}.wal", f"{self.db_path}.wal")
        _fsync(self.dir)

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for one batch of queries."""
        if not self.db_path.exists():
            raise WorkspaceError(f"no index at {self.db_path}: create it with `n4afs init`")
        if self._has_wal():
            with suppress(DiskFull):  # the read-only ATTACH below replays the WAL in memory
                self._checkpoint()
        with self.lock.shared(), _attached(self.db_path, read_only=True) as conn:
            yield conn

    def snapshot(self, dest_dir: str | os.PathLike) -> Path:
        """Copy the committed index into `dest_dir` (as `n4a.duckdb`) and return its path.

        For queries we do not write ourselves (`n4afs sql`): they run on the copy, so they
        can neither change the index nor hold the workspace lock while they run; a slow
        query never starves a writer. The copy is taken under the shared lock, when no
        writer is mid-transaction. A WAL left by a killed writer is copied alongside, and
        DuckDB replays its committed part when it opens the copy.
        """
        if not self.db_path.exists():
            raise WorkspaceError(f"no index at {self.db_path}: create it with `n4afs init`")
        copy = Path(dest_dir) / DB_NAME
        with self.lock.shared():
            shutil.copyfile(self.db_path, copy)
            if self._has_wal():
                shutil.copyfile(f"{self.db_path}.wal", f"{copy}.wal")
        return copy

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
        try:
            tmp.write_text(f"{counter + 1}\n")
            os.replace(tmp, self.changes_path)
        except OSError:  # a full disk: the commit stands; a new mtime moves the token too
            tmp.unlink(missing_ok=True)
            if self.changes_path.exists():
                os.utime(self.changes_path)

    @contextmanager
    def _disk_full_named(self) -> Iterator[None]:
        """DuckDB's "No space left on device" as `DiskFull`: one line naming the index."""
        try:
            yield
        except (duckdb.Error, OSError) as exc:  # OSError: the copy of `_copy_for_writing`
            if not is_disk_full(exc):
                raise
            raise DiskFull(
                f"disk full under the index {self.db_path}: nothing was written; free some "
                "space, then retry",
                full_path(exc) or str(self.db_path),
            ) from exc

    # -- recovery ---------------------------------------------------------------------
    def _has_wal(self) -> bool:
        return os.path.exists(str(self.db_path) + ".wal")

    def _checkpoint(self) -> None:
        """Fold a WAL left by a killed writer into the file (only committed work survives):
        an empty transaction in the writers' turn, whose DETACH checkpoints."""
        with self.lock.writing() as in_place:
            if self._has_wal():
                with self._disk_full_named(), self._transaction(in_place):
                    pass

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


def _engine() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB instance, created on first use.

    One per thread so two threads never attach the same file to one instance (DuckDB refuses
    that); a forked child makes its own rather than use its parent's.
    """
    if getattr(_ENGINES, "pid", None) != os.getpid():
        _ENGINES.engine, _ENGINES.pid = duckdb.connect(), os.getpid()
        _ENGINES.attached = {}  # db path -> [catalog name, users]
    return _ENGINES.engine


@contextmanager
def _attached(db_path: Path, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default catalog is the workspace file, for one transaction.

    DETACH checkpoints and releases DuckDB's own file lock, as closing a connection did, so
    other processes may open the file as soon as the workspace lock is released. A read
    nested in another read of the same file in this thread shares its attachment (two
    read-only connections used to coexist the same way); another workspace's file nested
    inside gets a catalog name of its own.
    """
    engine, key = _engine(), str(db_path)
    entry = _ENGINES.attached.get(key)
    if entry is None:
        name = _free_catalog_name({name for name, _ in _ENGINES.attached.values()})
        quoted = key.replace("'", "''")
        engine.execute(f"DETACH DATABASE IF EXISTS {name}")  # left by an interrupted DETACH
        engine.execute(f"ATTACH '{quoted}' AS {name}{' (READ_ONLY)' if read_only else ''}")
        entry = _ENGINES.attached[key] = [name, 0]
    entry[1] += 1
    try:
        conn = engine.cursor()
        try:
            conn.execute(f"USE {entry[0]}")
            yield conn
        finally:
            conn.close()
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del _ENGINES.attached[key]
            try:
                engine.execute(f"DETACH {entry[0]}")
            except duckdb.Error as exc:
                if not _checkpoint_deferred(exc):
                    raise


def _checkpoint_deferred(exc: duckdb.Error) -> bool:
    """DETACH detached but could not checkpoint for lack of space: what was committed is in
    the WAL (DuckDB syncs it at commit), so the transaction stands."""
    return "Detached database" in str(exc) and is_disk_full(exc)


def _remove_database(path: Path) -> None:
    for leftover in (path, Path(f"{path}.wal")):
        leftover.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Make a rename durable: the file's bytes, then the directory entry."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free_catalog_name(taken: set[str]) -> str:
    candidates = (CATALOG if i == 1 else f"{CATALOG}_{i}" for i in range(1, len(taken) + 2))
    return next(name for name in candidates if name not in taken)


def _current_version(conn: duckdb.DuckDBPyConnection) -> int:
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version' "
        "AND table_catalog = current_database()"
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
