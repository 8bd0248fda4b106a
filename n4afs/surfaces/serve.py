"""Serving the tree over WebDAV: the checks around the adapter, the server, the background
daemon, and the record that lets `n4afs serve --stop` find it.

`n4afs serve` listens on 127.0.0.1 unless told otherwise. Beyond loopback every request
authenticates: with the user and password given, else with a token generated here and shown
once (`Served.generated`); over plain HTTP the password crosses the network readable by
anyone on the path (Basic) or guessable offline (Digest), which `announce` says unless
`--certfile/--keyfile` make it HTTPS. Like `n4afs mount`, it starts `n4afs serve
--foreground` detached and returns once the daemon listens; the password goes to the daemon
in its environment (`PASSWORD_ENV`), never on a command line `ps` shows. The daemon records
itself (`<state>/servers/<workspace key>.json`: URL, PID, no password) once it listens, so one
workspace has one server and `n4afs serve --stop` stops it (SIGTERM: the server finishes the
responses in flight and exits 0; Ctrl-C in `--foreground` does the same).

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from n4afs_core.errors import ServeError

from n4afs.surfaces.daemon import START_TIMEOUT_S, start_detached, state_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4918  # RFC 4918 is WebDAV; unassigned by IANA, rarely taken
DEFAULT_USER = "n4afs"
PASSWORD_ENV = "N4AFS_SERVE_PASSWORD"
log = logging.getLogger("n4afs.serve")


@dataclass(frozen=True)
class Served:
    """A server as `announce` shows it; `password` is set only when generated here."""

    workspace: Path
    url: str
    host: str
    port: int
    user: str | None
    password: str | None
    tls: bool
    pid: int
    log_path: Path | None = None

    @property
    def generated(self) -> bool:
        return self.password is not None

    @property
    def in_clear(self) -> bool:
        """Credentials cross a network unencrypted."""
        return self.user is not None and not self.tls and not is_loopback(self.host)


# -- the checks ----------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """Every address `host` names is a loopback address ("" and 0.0.0.0 are every address)."""
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise ServeError(f"cannot resolve --host {host!r}: {exc}") from exc
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in found)


def credentials(
    host: str, user: str | None, password: str | None, token: bool
) -> tuple[str | None, str | None, bool]:
    """(user, password, generated): anonymous on loopback unless asked; beyond loopback a
    token is generated when no password is given."""
    if token and password:
        raise ServeError("give either --token (a generated password) or --password, not both")
    if user is not None and not password and not token:
        raise ServeError(
            f"--user needs --password (or ${PASSWORD_ENV}), or --token to generate one"
        )
    if password or token or user is not None or not is_loopback(host):
        if password:
            return user or DEFAULT_USER, password, False
        return user or DEFAULT_USER, secrets.token_urlsafe(18), True
    return None, None, False


def check_tls(certfile: str | None, keyfile: str | None) -> bool:
    if (certfile is None) != (keyfile is None):
        raise ServeError("HTTPS needs both --certfile and --keyfile")
    if certfile is None:
        return False
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot use {certfile} / {keyfile} for HTTPS: {exc}") from exc
    return True


def url_of(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/"


# -- the server ------------------------------------------------------------------------------
def serve_foreground(
    ws: Any,
    host: str,
    port: int,
    user: str | None,
    password: str | None,
    generated: bool,
    certfile: str | None,
    keyfile: str | None,
    announce: Callable[[Served], None] | None = None,
) -> Served:
    """Serve until SIGTERM or Ctrl-C; then finish the responses in flight and return.

    The server keeps a tree of its own that checks the change token on every call (as
    fsspec does), so a result that lands while serving is in the next listing; it is
    prepared before listening (`Tree.prepare`: the chart libraries), so no first request
    waits for an import past a client's timeout."""
    from cheroot import wsgi

    from n4afs.surfaces.webdav import make_app
    from n4afs.tree.tree import Tree

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("wsgidav").setLevel(logging.WARNING)
    tls = check_tls(certfile, keyfile)
    claim_record(ws.path.absolute())
    tree = Tree(ws)
    tree.refresh()
    tree.prepare()
    server = wsgi.Server((host, port), make_app(tree, user, password), server_name="n4afs")
    if tls:
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        server.ssl_adapter = BuiltinSSLAdapter(certfile, keyfile)
    try:
        server.prepare()  # binds
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound_port = server.bind_addr[1]
    served = Served(
        workspace=ws.path.absolute(),
        url=url_of(host, bound_port, tls),
        host=host,
        port=bound_port,
        user=user,
        password=password if generated else None,
        tls=tls,
        pid=os.getpid(),
    )
    record = write_record(served)
    previous = _stop_on_sigterm()
    try:
        log.info("serving %s at %s (read-only WebDAV)", served.workspace, served.url)
        if announce is not None:
            announce(served)
        server.serve()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.stop()
        record.unlink(missing_ok=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return served


def _stop_on_sigterm() -> Any:
    """SIGTERM stops the server as Ctrl-C does (cheroot's serve loop lets it through)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def start_background(
    workspace: Path,
    host: str,
    port: int,
    user: str | None,
    password: str | None,
    certfile: str | None,
    keyfile: str | None,
) -> Served:
    """`n4afs serve --foreground` detached; returns once it listens (its record is written)."""
    claim_record(workspace)
    log_path = workspace / "logs" / "serve.log"
    arguments = ["serve", str(workspace), "--foreground", "--host", host, "--port", str(port)]
    if user is not None:
        arguments += ["--user", user]
    if certfile is not None:
        arguments += ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    daemon = start_detached(
        arguments,
        log_path,
        is_up=lambda daemon: (read_record(workspace) or {}).get("pid") == daemon.pid,
        error=ServeError,
        what="WebDAV server",
        env={PASSWORD_ENV: password} if password else {},
    )
    found = read_record(workspace)
    return Served(
        workspace=workspace,
        url=found["url"],
        host=host,
        port=found["port"],
        user=user,
        password=None,
        tls=certfile is not None,
        pid=daemon.pid,
        log_path=log_path,
    )


def stop(workspace: Path) -> Served:
    """Stop the server of `workspace` (SIGTERM) and wait until it has exited. On Windows
    `os.kill` with SIGTERM is TerminateProcess: the server ends at once (a response in
    flight is cut; nothing is written, so nothing is left half-done)."""
    found = read_record(workspace)
    if found is None or not _alive(found["pid"]):
        record_path(workspace).unlink(missing_ok=True)
        raise ServeError(f"no n4afs serve is running for {workspace}")
    os.kill(found["pid"], signal.SIGTERM)
    deadline = time.monotonic() + START_TIMEOUT_S
    while record_path(workspace).exists() and _alive(found["pid"]):
        if time.monotonic() > deadline:
            raise ServeError(
                f"the WebDAV server (PID {found['pid']}) did not stop within "
                f"{START_TIMEOUT_S:.0f} s; see {workspace / 'logs' / 'serve.log'}"
            )
        time.sleep(0.05)
    record_path(workspace).unlink(missing_ok=True)  # where SIGTERM ends it at once (Windows)
    return Served(
        workspace=workspace,
        url=found["url"],
        host=found["host"],
        port=found["port"],
        user=None,
        password=None,
        tls=found["url"].startswith("https"),
        pid=found["pid"],
    )


# -- which workspace is served where --------------------------------------------------------
def record_path(workspace: Path) -> Path:
    key = hashlib.sha256(str(workspace).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return state_dir() / "servers" / f"{key}.json"


def read_record(workspace: Path) -> dict | None:
    try:
        return json.loads(record_path(workspace).read_text())
    except (OSError, ValueError):
        return None


def write_record(served: Served) -> Path:
    record = record_path(served.workspace)
    record.parent.mkdir(parents=True, exist_ok=True)
    fields = {
        "workspace": str(served.workspace),
        "url": served.url,
        "host": served.host,
        "port": served.port,
        "pid": served.pid,
    }
    temporary = record.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(fields))
    temporary.replace(record)  # a reader sees the whole record or none
    return record


def claim_record(workspace: Path) -> None:
    """Refuse a second server for a workspace; clear the record of one that died."""
    found = read_record(workspace)
    if found is None:
        return
    if _alive(found["pid"]) and found["pid"] != os.getpid():
        raise ServeError(
            f"{workspace} is already served at {found['url']} (PID {found['pid']}); "
            f"stop it with `n4afs serve --stop {workspace}`"
        )
    record_path(workspace).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """The PID exists (asked the way run liveness asks: `core/index/liveness.py` knows the
    platforms where `os.kill(pid, 0)` is no question) and is not a zombie (a child not yet
    reaped is not serving)."""
    from n4afs_core.index.liveness import _pid_exists

    if not _pid_exists(pid):
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True
