"""The CLI as a user runs it: in its own process, its output captured (not a terminal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def cli(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """`n4afs ARGS...`; `env` adds variables to the test process's own."""
    return subprocess.run(
        [sys.executable, "-m", "n4afs.cli", *args],
        capture_output=True,
        text=True,
        env={**ENV, **(env or {})},
        timeout=timeout,
    )


def kill_when_marked(script: str, args: list[str], marker: Path, timeout: float = 120) -> None:
    """`python -c SCRIPT ARGS...`, killed (SIGKILL: no cleanup, no `finally`) as soon as it
    creates `marker`: a crash at the point the script chooses."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], env=ENV)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
