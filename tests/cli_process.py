"""The CLI as a user runs it: in its own process, its output captured (not a terminal)."""

from __future__ import annotations

import os
import subprocess
import sys
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
