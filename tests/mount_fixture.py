"""A real FUSE mount for tests: foreground daemon, bounded waits, loud failures.

Started as `n4afs mount WS MNT --foreground` in a subprocess; ready when the kernel lists the
mount. A timeout fails with the daemon's output and the mount table (never a skip). On
teardown it unmounts, waits for the daemon, and fails if the daemon logged a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


class Mount:
    def __init__(
        self, workspace: Path, mountpoint: Path, *options: str, cwd: Path | None = None
    ) -> None:
        """`options`: more `n4afs mount` options (`--allow-other`); `cwd`: where the command
        is typed (relative `workspace` and `mountpoint` are relative to it)."""
        self.workspace, self.path, self.options = workspace, mountpoint, options
        self.cwd = cwd
        where = cwd / mountpoint if cwd is not None else mountpoint  # never the test's cwd
        self.log = where.parent / f"{where.name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Mount:
        if self.cwd is not None:
            self.path = self.cwd / self.path  # the test's own view; the command gets it as given
        self.path.mkdir(exist_ok=True)
        given = self.path.relative_to(self.cwd) if self.cwd is not None else self.path
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "n4afs.cli",
                    "mount",
                    str(self.workspace),
                    str(given),
                    "--foreground",
                    *self.options,
                ],
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                table = Path("/proc/mounts").read_text()
                pytest.fail(f"mount did not come up:\n{self.output()}\nmounts:\n{table}")
            time.sleep(0.05)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if os.path.ismount(self.path) or _stale(self.path):
            subprocess.run(["fusermount3", "-uz", str(self.path)], check=False)

    @contextmanager
    def serving(self) -> Iterator[Mount]:
        """The mount for a fixture's lifetime: started, then stopped, gone from the mount
        table and its daemon's log free of tracebacks."""
        self.start()
        try:
            yield self
        finally:  # a failing test must not leave its daemon mounted
            self.stop()
        assert not os.path.ismount(self.path)
        self.assert_clean_log()

    def assert_clean_log(self) -> None:
        assert "Traceback" not in self.output(), self.output()


def _stale(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError:
        return True
    return False


def wait_for(condition, timeout: float = 5.0, interval: float = 0.05):
    """Poll until `condition()` is truthy; return its value or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)
