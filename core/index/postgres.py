"""The index on PostgreSQL: one index shared by a team, several machines writing at once.

The same interface as `core.index.database.Index` (`read`, `write`, `fetchall`,
`change_token`, `schema_version`, `migrate`), the same schema files, the same queries. What
differs, and only here:

* Connections stay open, one per thread (PostgreSQL is a server: readers and writers of
  many processes share it; DuckDB's reason to hold none does not apply).
* `write()`: one transaction (READ COMMITTED) that first takes a transaction-scoped advisory
  lock, so writers go one at a time as they do on DuckDB's file lock (`writes.py`'s
  read-then-write steps, sequence numbers, "still pending" checks rely on it), whichever
  machine they run on. The lock is released by the commit or rollback, or by the server
  when a client dies. A writer waits at most the timeout (`lock_timeout`), then
  `WorkspaceLocked` names the sessions holding it.
* `read()`: one REPEATABLE READ, READ ONLY transaction: a consistent snapshot of the batch's
  queries. Readers never block writers, nor writers readers (MVCC).
* The change token is a counter row (`n4a_changes`) bumped inside every committing write:
  one cheap query on the thread's open connection, where DuckDB's is one `stat`.
* DuckDB's functions and `DOUBLE` the queries use are defined in the database
  (`postgres_compat.sql`); the migrations are rewritten at two words: `JSON` columns are
  TEXT (scores hold NaN, which PostgreSQL's json refuses), and `VARCHAR` sorts bytewise
  (COLLATE "C") as DuckDB's does, whatever the database's locale. `?` parameters become
  psycopg's `%s`; `conn.register(name, arrow_table)` becomes a temporary table filled by COPY.

The URL is a libpq one (`postgresql://user@host:port/db`); passwords come from libpq's own
places (`PGPASSWORD`, `~/.pgpass`), never from n4a.yaml.

Design: docs/DESIGN.md, "Index engines".
"""

from __future__ import annotations

import functools
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from n4afs_core.errors import (
    IndexUnavailable,
    QueryError,
    SchemaError,
    WorkspaceError,
    WorkspaceLocked,
)
from n4afs_core.index.lock import DEFAULT_TIMEOUT_S

COMPAT_SQL = Path(__file__).with_name("postgres_compat.sql")
URL_SCHEMES = ("postgresql://", "postgres://")
_LOCAL = threading.local()
_INHERITED: list[dict] = []  # connections a forked child inherited: kept, never closed
_PLACEHOLDER = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*)|(\?)|(%)""")
_TRANSLATED: dict[str, str] = {}


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and url.startswith(URL_SCHEMES)


def translate(sql: str) -> str:
    """DuckDB's `?` parameters as psycopg's `%s` (a literal `%` doubled), outside quotes
    and comments. Cached: n4afs's statements are a few dozen constant strings."""
    done = _TRANSLATED.get(sql)
    if done is None:

        def repl(m: re.Match) -> str:
            if m.group(1):
                return m.group(1).replace("%", "%%")
            return "%s" if m.group(2) else "%%"

        if len(_TRANSLATED) > 4096:  # a caller formatting values into SQL: stay bounded
            _TRANSLATED.clear()
        done = _TRANSLATED[sql] = _PLACEHOLDER.sub(repl, sql)
    return done


class _NoIds(list):
    """An empty list of ids: `unnest(?)` of `[]` is ambiguous to PostgreSQL (no element
    says its type); this one is dumped as an empty text[] (`PgConnection.execute`)."""


_NO_IDS = _NoIds()


def _no_ids_dumper(raw: Any) -> type:
    from psycopg.types.array import ListDumper

    class NoIdsDumper(ListDumper):
        oid = raw.adapters.types["text"].array_oid

        def get_key(self, obj: Any, format: Any) -> Any:
            return (_NoIds,)

        def upgrade(self, obj: Any, format: Any) -> Any:
            return self

        def dump(self, obj: Any) -> bytes:
            return b"{}"

    return NoIdsDumper


def ddl(sql: str) -> str:
    """A migration as PostgreSQL runs it: JSON columns as TEXT, text sorted bytewise."""
    sql = re.sub(r"\bJSON\b", "TEXT", sql)
    return re.sub(r"\bVARCHAR\b(?!\s*\[)", 'VARCHAR COLLATE "C"', sql)


class PgConnection:
    """What `core.index.writes`/`queries` call on a DuckDB connection, on a psycopg one:
    `execute(sql, params)` (returning a cursor with `fetchone`/`fetchall`/`description`),
    `register`/`unregister` of an Arrow table as a relation."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = None) -> Any:
        if params is None or len(params) == 0:  # psycopg reads no placeholder then
            return self.raw.execute(sql)
        # an empty list has no element to type it: n4afs's lists are of ids, text[]
        values = [_NO_IDS if isinstance(v, list) and not v else v for v in params]
        return self.raw.execute(translate(sql), values)

    def register(self, name: str, table: Any) -> None:
        """A temporary table `name` holding the Arrow `table`'s rows, dropped at commit."""
        import pyarrow as pa

        columns = []
        for field in table.schema:
            kind = field.type
            if pa.types.is_integer(kind):
                sql_type = "INTEGER" if kind.bit_width <= 32 else "BIGINT"
            elif pa.types.is_floating(kind):
                sql_type = "double precision"
            elif pa.types.is_boolean(kind):
                sql_type = "BOOLEAN"
            else:
                sql_type = 'TEXT COLLATE "C"'
            columns.append(f'"{field.name}" {sql_type}')
        self.raw.execute(f'CREATE TEMP TABLE "{name}" ({", ".join(columns)}) ON COMMIT DROP')
        if table.num_rows:
            names = ", ".join(f'"{n}"' for n in table.column_names)
            with self.raw.cursor().copy(f'COPY "{name}" ({names}) FROM STDIN') as copy:
                for row in zip(*(c.to_pylist() for c in table.columns), strict=True):
                    copy.write_row(row)

    def unregister(self, name: str) -> None:
        self.raw.execute(f'DROP TABLE IF EXISTS "{name}"')

    def client_sessions(self) -> list[str]:
        """The `application_name` of every session on this database (visible to any role):
        which n4afs processes, on which hosts, are connected now (`session_name`)."""
        rows = self.raw.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
        return [name for (name,) in rows if name]


def session_name(host: str, pid: int) -> str:
    """How an n4afs process names its sessions (`application_name`, which PostgreSQL cuts
    at 63 bytes): a run's owner on another host is alive while a session of that name is
    connected (`core.index.liveness.owner_alive`). The command follows it."""
    return f"n4afs {pid}@{host}"


@functools.cache
def _numeric_loader_class() -> Any:
    from psycopg.adapt import Loader

    class NumericLoader(Loader):
        def load(self, data: Any) -> int | float:
            text = bytes(data).decode()
            return int(text) if text.lstrip("-").isdigit() else float(text)

    return NumericLoader


class PostgresIndex:
    """A workspace's index in a PostgreSQL database (see the module's docstring)."""

    engine = "postgresql"

    def __init__(
        self, url: str, workspace_dir: str | os.PathLike, timeout_s: float = DEFAULT_TIMEOUT_S
    ):
        self.url = url
        self.dir = Path(workspace_dir)
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"PostgresIndex({self.url!r})"

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """What a statement that fails raises (a refused constraint), as `Index.errors`."""
        import psycopg

        return (psycopg.Error,)

    # -- connections ------------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            import psycopg
            from psycopg.types.string import StrDumper
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise IndexUnavailable(
                "this workspace's index is on PostgreSQL: install its client with "
                "`pip install 'n4afs[postgres]'` (psycopg)"
            ) from exc
        app = f"{session_name(socket.gethostname(), os.getpid())} {' '.join(sys.argv[:3])}"
        # the server probes an idle client every 30 s, 4 times 10 s apart: a machine that
        # died (no FIN) loses its sessions, its advisory lock, its runs' liveness in ~70 s
        options = _KEEPALIVES + (f" -c TimeZone={_local_timezone()}" if _local_timezone() else "")
        try:
            raw = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=10,
                application_name=app[:63],
                options=options,
            )
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["cannot connect"])[0]
            raise IndexUnavailable(f"cannot reach the index {_shown(self.url)}: {first}") from exc
        # a Python str is text (not "unknown"): lists of them become text[] for unnest(?)
        raw.adapters.register_dumper(str, StrDumper)
        raw.adapters.register_dumper(_NoIds, _no_ids_dumper(raw))
        # sum() of BIGINT is NUMERIC here (Decimal), HUGEINT in DuckDB (int): read it as int
        raw.adapters.register_loader("numeric", _numeric_loader_class())
        return raw

    def _connection(self) -> Any:
        """This thread's open connection to this index (a forked child makes its own)."""
        conns = getattr(_LOCAL, "conns", None)
        if conns is None or getattr(_LOCAL, "pid", None) != os.getpid():
            if conns:  # a forked child: its parent's sessions must not be closed from here
                _INHERITED.append(conns)  # (closing sends the server a Terminate)
            conns = _LOCAL.conns = {}
            _LOCAL.pid = os.getpid()
            _LOCAL.depth = {}
        raw = conns.get(self.url)
        if raw is None or raw.closed or raw.broken:
            raw = conns[self.url] = self._connect()
        return raw

    def _first(self, sql: str) -> Any:
        """Run the first statement of a transaction (or a lone query) on this thread's
        connection, once more on a new one if the kept one was cut (a server restarted, a
        network blip): nothing was done on it yet, so retrying is safe. Returns
        (connection, cursor)."""
        import psycopg

        raw = self._connection()
        try:
            return raw, raw.execute(sql)
        except psycopg.OperationalError:
            if not (raw.closed or raw.broken):
                raise
        raw = self._connection()  # a new session
        return raw, raw.execute(sql)

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[PgConnection]:
        """One transaction on this thread's connection; nested calls share the outer one."""
        import psycopg

        depth = getattr(_LOCAL, "depth", None)
        if depth and depth.get(self.url) and getattr(_LOCAL, "pid", None) == os.getpid():
            raw = self._connection()  # inside an outer transaction: its connection
        else:
            try:
                raw, _ = self._first(begin)
            except psycopg.OperationalError as exc:
                first = (str(exc).strip().splitlines() or ["connection lost"])[0]
                raise IndexUnavailable(f"the index {_shown(self.url)}: {first}") from exc
        depth = getattr(_LOCAL, "depth", None)
        if depth is None:
            depth = _LOCAL.depth = {}
        if depth.get(self.url):  # a read inside a read (or a write) of this thread
            depth[self.url] += 1
            try:
                yield PgConnection(raw)
            finally:
                depth[self.url] -= 1
            return
        depth[self.url] = 1
        try:
            try:  # `begin` ran (`_first`)
                yield PgConnection(raw)
            except BaseException:
                if not raw.closed and not raw.broken:
                    raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
        except psycopg.OperationalError as exc:
            if not (raw.closed or raw.broken):  # a statement's error, not a lost server
                raise
            first = (str(exc).strip().splitlines() or ["connection lost"])[0]
            raise IndexUnavailable(f"the index {_shown(self.url)}: {first}") from exc
        finally:
            depth[self.url] = 0

    # -- transactions -----------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[PgConnection]:
        """A consistent, read-only snapshot for one batch of queries."""
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[PgConnection]:
        """One read-write transaction, writers one at a time (an advisory lock held until
        its commit), the change token bumped in it."""
        import psycopg

        waited_for_writer = None
        try:
            with self._transaction("BEGIN ISOLATION LEVEL READ COMMITTED") as conn:
                # every lock wait of the transaction is bounded: the writers' turn, and a
                # migration's table lock, which a stopped reader's snapshot could hold
                conn.execute(f"SET LOCAL lock_timeout = '{int(self.timeout_s * 1000)}ms'")
                try:
                    conn.execute(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
                except psycopg.errors.LockNotAvailable as exc:
                    waited_for_writer = exc
                    raise
                yield conn
                conn.execute("UPDATE n4a_changes SET counter = counter + 1")  # made by migrate
        except psycopg.errors.LockNotAvailable as exc:
            if exc is waited_for_writer:
                raise WorkspaceLocked(self._locked_message()) from exc  # rolled back: ask now
            raise WorkspaceLocked(
                f"index {_shown(self.url)}: a table stayed locked for {self.timeout_s:g} s "
                "(a stopped or slow reader, e.g. `n4afs sql`); stop it and retry"
            ) from exc

    def _locked_message(self) -> str:
        try:
            with self.read() as conn:
                rows = conn.execute(
                    "SELECT a.pid, a.application_name, a.client_addr::text, a.state "
                    "FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    f"WHERE l.locktype = 'advisory' AND l.granted AND l.objid = ({_LOCK_KEY} "
                    "& 4294967295::bigint)::oid"
                ).fetchall()
        except Exception:  # naming the holder is a courtesy; the refusal stands
            rows = []
        holders = ", ".join(
            f"{app or 'a client'} (server pid {pid}{', from ' + addr if addr else ''}, {state})"
            for pid, app, addr, state in rows
        )
        return (
            f"index {_shown(self.url)} stayed locked for {self.timeout_s:g} s by another "
            f"writer: {holders or 'unknown'}; if it is stuck, stop it and retry"
        )

    def fetchall(self, sql: str, params: list | tuple = ()) -> list[tuple]:
        with self.read() as conn:
            return conn.execute(sql, params).fetchall()

    def change_token(self) -> tuple[int, int]:
        """Moves after every commit (a counter bumped by each write): one query."""
        import psycopg

        try:
            row = self._first("SELECT counter FROM n4a_changes")[1].fetchone()
        except psycopg.errors.UndefinedTable:  # not created yet: before `init`
            return (0, 0)
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or ["connection lost"])[0]
            raise IndexUnavailable(f"the index {_shown(self.url)}: {first}") from exc
        return (int(row[0]), 0) if row else (0, 0)

    # -- what the DuckDB engine keeps in files -----------------------------------------
    def exists(self) -> bool:
        """Whether the index was created (its schema is there)."""
        return self.schema_version() > 0

    def size_bytes(self) -> int:
        with self.read() as conn:
            return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def run_query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """A user's query (`n4afs sql`): one statement (prepared: no `;`-chained second
        one), in a READ ONLY transaction on a connection of its own, closed after. What it
        may read beyond the index is what the database role may."""
        import psycopg

        raw = self._connect()
        try:
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor = raw.execute(sql, prepare=True)
            header = [d.name for d in cursor.description or []]
            return header, cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise QueryError(f"query failed: {first}") from exc
        finally:
            raw.close()

    def shared_store(self, url: str | None) -> str:
        """The blob store of every workspace on this index: the first to name one records
        it; a workspace naming none adopts it; one naming another is refused. A shared
        index without a shared store would list results whose bytes are elsewhere."""
        url = url.rstrip("/") if url else None
        rows = self.fetchall("SELECT value FROM n4a_settings WHERE key = 'store'")
        if not rows and url is not None:
            with self.write() as conn:
                conn.execute(
                    "INSERT INTO n4a_settings VALUES ('store', ?) ON CONFLICT DO NOTHING", [url]
                )
                rows = conn.execute("SELECT value FROM n4a_settings WHERE key = 'store'")
                rows = rows.fetchall()
        if not rows:
            raise WorkspaceError(
                f"the shared index {_shown(self.url)} needs a store every workspace on it "
                "reaches: give --store s3://bucket/prefix (or file:///a/folder/they/all/mount)"
            )
        (recorded,) = rows[0]
        if url is not None and url != recorded:
            raise WorkspaceError(
                f"the shared index {_shown(self.url)} keeps its blobs in {recorded}, not {url}: "
                f"give --store {recorded} (or leave --store out)"
            )
        return recorded

    # -- schema -----------------------------------------------------------------------
    def schema_version(self) -> int:
        with self.read() as conn:
            return _current_version(conn)

    def migrate(self, schema_dir: Path | None = None) -> int:
        """Create or upgrade the schema (and the DuckDB functions the queries use) in one
        locked transaction; refuse an index written by a newer n4afs."""
        from n4afs_core.index.database import SCHEMA_DIR, migrations_in

        known = migrations_in(schema_dir or SCHEMA_DIR)
        latest = known[-1].version if known else 0
        with self.write() as conn:
            current = _current_version(conn)
            if current > latest:
                raise SchemaError(
                    f"index {_shown(self.url)} has schema version {current}, this n4afs knows "
                    f"up to {latest}: upgrade n4afs to open this workspace"
                )
            conn.execute(COMPAT_SQL.read_text())
            for migration in known:
                if migration.version > current:
                    try:
                        conn.execute(ddl(migration.path.read_text()))
                    except Exception as exc:
                        raise SchemaError(f"migration {migration.path.name} failed: {exc}") from exc
                    conn.execute(
                        "INSERT INTO schema_version VALUES (?, current_timestamp, ?)",
                        [migration.version, migration.note],
                    )
        return max(current, latest)


_KEEPALIVES = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=4"
# writers of one index (database and schema) take turns on this advisory lock key
_LOCK_KEY = "hashtext('n4afs index ' || current_schema())::bigint"


def _has_table(conn: PgConnection, name: str) -> bool:
    return conn.execute("SELECT to_regclass(?) IS NOT NULL", [name]).fetchone()[0]


def _current_version(conn: PgConnection) -> int:
    if not _has_table(conn, "schema_version"):
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def _shown(url: str) -> str:
    """The URL without a password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1@", url)


def has_password(url: str) -> bool:
    return _shown(url) != url


def _local_timezone() -> str | None:
    """This machine's time zone name ($TZ first), the session's TimeZone: the zone the
    index's instants (TIMESTAMPTZ) are handed back in, as DuckDB hands them back, and the
    one schema 009 reads an older index's wall-clock times in."""
    cached = getattr(_local_timezone, "cached", False)
    if cached is not False:
        return cached
    name = os.environ.get("TZ", "").lstrip(":") or None
    if name is None:
        try:
            target = os.path.realpath("/etc/localtime")
            if "zoneinfo/" in target:
                name = target.split("zoneinfo/", 1)[1]
        except OSError:
            name = None
    if name and not re.fullmatch(r"[A-Za-z0-9_+\-/]+", name):
        name = None
    _local_timezone.cached = name  # type: ignore[attr-defined]
    return name
