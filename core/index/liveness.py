"""Who runs a run, and whether that process is still alive.

A run's owner is the process that started or resumed it: its host, PID, the PID's start
time and the host's boot id. A PID alone is not an identity: PIDs are reused, so the start
time (field 22 of `/proc/<pid>/stat`, clock ticks after boot) must match too, and a reboot
restarts both, so the boot id must match as well. No psutil: Linux's `/proc` is enough; where
there is no `/proc`, a PID that exists is taken as the owner.

`owner_alive` answers "may this run still write blobs?", so it errs towards alive: an owner
on another host cannot be proven gone (gc then spares that run's blobs; a stale row costs
disk, never results), except on a shared index (PostgreSQL), where every n4afs process keeps
a session named after its host and PID: no such session connected, the owner is gone.
`gc` (core/maintenance.py) reads it, and so does every listing of runs
(`core.index.queries.list_runs`): a `running` run with no owner alive is shown `interrupted`.
An owner that stops executing a run but lives on (an exception or Ctrl-C in a notebook)
releases it (`core.index.writes.release_owner`; owners are recorded by `record_owner` there),
so its run reads `interrupted` at once, not when it exits.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

OWNER_COLUMNS = "host, boot_id, pid, pid_start, started"


@dataclass(frozen=True)
class Owner:
    host: str
    boot_id: str | None
    pid: int
    pid_start: int | None
    started: float  # epoch seconds when the process took the run


def current_owner() -> Owner:
    """This process, as it will be recorded for a run it starts or resumes now."""
    pid = os.getpid()
    return Owner(socket.gethostname(), boot_id(), pid, process_start(pid), time.time())


def boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """The PID's start time in clock ticks after boot, or None (no such process, a zombie
    that has exited, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) ": comm may hold spaces
    if fields[0] == b"Z":  # exited, not yet reaped: it writes nothing more
        return None
    return int(fields[19])  # field 22 of stat(5); fields[0] is field 3


def owner_alive(owner: Owner, sessions: list[str] | None = None) -> bool:
    """False only when the owner is provably gone: same host, and a reboot since, or no
    process with its PID, or one with another start time (a reused PID). On another host:
    alive, unless `sessions` (a shared index's connected clients, by `application_name`:
    `core.index.postgres.session_name`) are known and none is the owner's: its process
    keeps its session while it lives, and the server drops it when the process dies."""
    if owner.host != socket.gethostname():
        if sessions is None:
            return True
        from n4afs_core.index.postgres import session_name

        name = (session_name(owner.host, owner.pid) + " ")[:63]
        return any((s + " ")[: len(name)] == name for s in sessions)
    current_boot = boot_id()
    if owner.boot_id and current_boot and owner.boot_id != current_boot:
        return False
    if not _pid_exists(owner.pid):
        return False
    if owner.pid_start is None or not os.path.isdir("/proc/self"):
        return True
    return process_start(owner.pid) == owner.pid_start


def _pid_exists(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return _windows_pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _windows_pid_exists(pid: int) -> bool:
    """OpenProcess + GetExitCodeProcess: a process that exists and has not exited."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists
    try:
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def live_owners(conn: Any) -> list[tuple[str, Owner]]:
    """(run id, owner) of every run in flight: status 'running' with that owner alive."""
    rows = conn.execute(
        f"SELECT o.run_id, {OWNER_COLUMNS} FROM run_owners o JOIN runs r USING (run_id) "
        "WHERE r.status = 'running'"
    ).fetchall()
    owners = [(run_id, Owner(*fields)) for run_id, *fields in rows]
    here = socket.gethostname()
    sessions = None
    if any(owner.host != here for _, owner in owners) and hasattr(conn, "client_sessions"):
        sessions = conn.client_sessions()  # a shared index: who is connected now
    return [(run_id, owner) for run_id, owner in owners if owner_alive(owner, sessions)]


def live_runs(conn: Any) -> dict[str, float]:
    """Runs in flight -> when their owner took them (the earliest, if several are alive)."""
    live: dict[str, float] = {}
    for run_id, owner in live_owners(conn):
        live[run_id] = min(live.get(run_id, owner.started), owner.started)
    return live
