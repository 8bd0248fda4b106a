"""The workspace locks: how several processes share one DuckDB file safely.

DuckDB lets one process open a database read-write, or several open it read-only, never
both at once (a reader that meets a writer gets "database is locked"). So nobody keeps a
connection open: every index access is a short transaction that opens its own connection
behind whole-file locks (`flock` on POSIX, `LockFileEx` on Windows: `core.index.file_locks`)
on two files of the workspace:

* `n4a.lock` — shared by readers while they have the file attached, exclusive for a writer
  that writes the file in place;
* `n4a.writer.lock` — exclusive, held by every writer: writers take turns.

A reader holds its lock for the few milliseconds a query batch takes, but a reader can be
stopped (Ctrl-Z, SIGSTOP, a debugger) or slow while it holds it, and nothing may make a
writer wait for that. So a writer waits for readers only `READERS_GRACE_S`; past that it
writes a copy of the file and renames it over the original (`core.index.database`): the readers
still attached keep the version they opened, as a snapshot, and the next ones open the new
one. Readers never starve writers; only another writer can, and a writer's wait is bounded:
past the timeout, `WorkspaceLocked` names the processes that hold the lock, read from
`/proc/locks` (the kernel's list of who holds which lock) where there is one, not from a
note the last writer left.

Both kinds of lock belong to an open file (description or handle), so two threads of one
process opening the lock file separately exclude each other exactly as two processes do.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from n4afs_core.errors import WorkspaceLocked
from n4afs_core.index import file_locks

DEFAULT_TIMEOUT_S = 120.0
READERS_GRACE_S = 1.0  # a query batch takes milliseconds; past this, write a copy instead
WRITER_LOCK_NAME = "n4a.writer.lock"


class WorkspaceLock:
    """Readers' and writers' locks over one workspace, with bounded waits."""

    def __init__(self, path: str | os.PathLike, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.writer_path = self.path.with_name(WRITER_LOCK_NAME)
        self.timeout_s = timeout_s

    @contextmanager
    def shared(self) -> Iterator[None]:
        """A reader's lock: no writer writes the file in place while it is held."""
        with self._held(self.path, False, "a writer"):
            yield

    @contextmanager
    def writing(self) -> Iterator[bool]:
        """A writer's turn. Yields True when readers are shut out too (write the file in
        place), False when some reader held on past `READERS_GRACE_S` (write a copy and
        rename it over the file: that reader keeps the version it opened)."""
        with self._held(self.writer_path, True, "another writer"):
            fd = _open(self.path)
            try:
                in_place = _acquire(fd, True, min(READERS_GRACE_S, self.timeout_s))
                try:
                    yield in_place
                finally:
                    if in_place:
                        file_locks.LOCKS.unlock(fd)
            finally:
                os.close(fd)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Writers and readers both shut out, waiting up to the timeout for each."""
        with (
            self._held(self.writer_path, True, "another writer"),
            self._held(self.path, True, "a reader or writer"),
        ):
            yield

    @contextmanager
    def _held(self, path: Path, exclusive: bool, whom: str) -> Iterator[None]:
        fd = _open(path)
        try:
            if not _acquire(fd, exclusive, self.timeout_s):
                raise WorkspaceLocked(self._locked_message(path, whom))
            try:
                yield
            finally:
                file_locks.LOCKS.unlock(fd)
        finally:
            os.close(fd)

    def _locked_message(self, path: Path, whom: str) -> str:
        holders = ", ".join(describe_process(pid) for pid in lock_holders(path)) or "unknown"
        return (
            f"workspace index {path.parent} stayed locked for {self.timeout_s:g} s by "
            f"{whom}: {holders}; if that process is stuck, stop it (or resume a stopped one: "
            "`kill -CONT PID`, `fg`) and retry"
        )


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _acquire(fd: int, exclusive: bool, timeout_s: float) -> bool:
    """Poll with a growing sleep: fair enough for transactions of tens of ms. False when
    the lock was not had within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while not file_locks.LOCKS.try_lock(fd, exclusive):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def lock_holders(path: str | os.PathLike) -> list[int]:
    """PIDs holding a flock on `path`, from `/proc/locks` ([] where there is none).

    A line reads `1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF` (device numbers in hex,
    inode in decimal); lines of waiters carry a `->` and are skipped: only holders block."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids: list[int] = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            pid = int(fields[4])
            if pid not in pids:
                pids.append(pid)
    return pids


def describe_process(pid: int) -> str:
    """`PID 1234 (n4afs sql ..., stopped)`: what a user needs to find and unstick it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return f"PID {pid}"
    command = " ".join(" ".join(argv).split())  # one line, whatever the arguments hold
    if len(command) > 80:
        command = command[:77] + "..."
    state = stat[stat.rindex(b")") + 2 :].split()[0]  # after "pid (comm) "
    stopped = ", stopped" if state in (b"T", b"t") else ""
    return f"PID {pid} ({command}{stopped})"
