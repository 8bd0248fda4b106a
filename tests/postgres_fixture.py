"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries (installed by
`scripts/setup.sh --test-tools`), `initdb` + `pg_ctl` in a temporary folder, listening on
127.0.0.1 at a free port and on a Unix socket in that folder, stopped at teardown.

PostgreSQL refuses to run as root, and the tests run as root on the test machines: the
server then runs as the `postgres` system user the Debian package creates (`runuser`), in
a folder made for it outside pytest's private (0700) temporary tree. Authentication is
`trust` on loopback and the socket only: a throw-away server of one test session.

`postgres_server` (session): the running server; `pg_index_url` (per test): the URL of a
fresh, empty database on it, as `n4afs init --index` takes it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"  # the system user Debian's postgresql package creates
DB_USER = "n4a"


def pg_bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    return Path(max(found, key=lambda p: int(Path(p).parts[-3]))).parent


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin_dir: Path
    as_user: list[str]  # the command prefix running a binary as the server's user

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        return f"postgresql://{DB_USER}@/{database}?host={self.socket_dir}&port={self.port}"

    def admin(self, sql: str) -> None:
        """Run a statement outside a transaction (CREATE/DROP DATABASE) as the superuser."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        """Stop and start again (same port, same data): every client's session is cut."""
        subprocess.run(
            [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data")]
            + ["-l", str(self.root / "server.log"), "-m", "fast", "-w", "-t", "60", "restart"],
            capture_output=True,
            check=True,
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data")]
            + ["-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> PostgresServer:
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/setup.sh --test-tools (Debian's "
            "`postgresql` package)"
        )
    root = Path(tempfile.mkdtemp(prefix="n4afs-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses root: run it as the package's system user
        user = pwd.getpwnam(SERVER_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", SERVER_USER, "--"]
    server = PostgresServer(root, _free_port(), bin_dir, as_user)
    run = [*as_user]
    subprocess.run(
        [*run, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", DB_USER]
        + ["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
        capture_output=True,
        check=True,
    )
    subprocess.run([*run, "mkdir", str(server.socket_dir)], check=True)
    options = (
        f"-p {server.port} -k {server.socket_dir} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    started = subprocess.run(
        [*run, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-o", options]
        + ["-l", str(root / "server.log"), "-w", "-t", "60", "start"],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{log}")
    deadline = time.monotonic() + 30
    while True:  # -w waited for the socket; make sure TCP answers too
        try:
            server.admin("SELECT 1")
            break
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.1)
    return server


@pytest.fixture(scope="session")
def postgres_server():
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def pg_index_url(postgres_server, request):
    """A fresh database for one test (dropped after it), as an index URL."""
    name = "n4a_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    postgres_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    url = postgres_server.new_database(name)
    yield url
    postgres_server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
