"""The workspace lock: how several processes share one DuckDB file safely.

DuckDB lets one process open a database read-write, or several open it read-only, never
both at once (a reader that meets a writer gets "database is locked"). So nobody keeps a
connection open: every index access is a short transaction that opens its own connection
behind an `fcntl.flock` on `<workspace>/n4a.lock` — shared for readers, exclusive for
writers. Readers run side by side; a writer waits for them to finish and they wait for it,
each holding the lock only for the few tens of milliseconds a transaction takes. Waiting is
bounded: past the timeout a `WorkspaceLocked` error names the PID that holds the lock.

flock locks belong to an open file description, so two threads of one process opening the
lock file separately exclude each other exactly as two processes do.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from core.errors import WorkspaceLocked

DEFAULT_TIMEOUT_S = 120.0


class WorkspaceLock:
    """Shared/exclusive lock over one workspace, with a bounded wait."""

    def __init__(self, path: str | os.PathLike, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.owner_path = self.path.with_name(self.path.name + ".owner")
        self.timeout_s = timeout_s

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._held(fcntl.LOCK_SH):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._held(fcntl.LOCK_EX):
            with suppress(OSError):  # a full disk: the PID only helps a lock-timeout message
                self.owner_path.write_text(f"{os.getpid()}\n")
            yield

    @contextmanager
    def _held(self, mode: int) -> Iterator[None]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._acquire(fd, mode)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self, fd: int, mode: int) -> None:
        """Poll with a growing sleep: fair enough for transactions of tens of ms."""
        deadline = time.monotonic() + self.timeout_s
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceLocked(self._locked_message()) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _locked_message(self) -> str:
        try:
            holder = self.owner_path.read_text().strip() or "unknown"
        except OSError:
            holder = "unknown"
        return (
            f"workspace index {self.path.parent} stayed locked for {self.timeout_s:.0f} s "
            f"(last writer: PID {holder}); if that process is stuck, stop it and retry"
        )
