"""Background daemons of the serving surfaces (`n4afs mount`, `n4afs serve`).

Both start the same command with `--foreground` as a detached process (its own session, its
output in a log file under the workspace's `logs/`), and wait until it serves: the command
returns once the tree is reachable, or with the daemon's last log lines if it stopped.
Windows has no sessions (`start_new_session` is ignored there): the daemon gets no console
and a process group of its own instead, so closing the terminal or a Ctrl-C typed in it
later does not stop it.

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from n4afs_core.errors import N4AError

START_TIMEOUT_S = 30.0
DETACHED_PROCESS = 0x00000008  # Windows process creation flags (subprocess has them only
CREATE_NEW_PROCESS_GROUP = 0x00000200  # on Windows); values from the Win32 API


def detach_options(platform: str | None = None) -> dict:
    """How `subprocess.Popen` detaches a daemon from the terminal that started it."""
    if (platform or sys.platform) == "win32":
        return {"creationflags": DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def start_detached(
    arguments: list[str],
    log_path: Path,
    is_up: Callable[[subprocess.Popen], bool],
    error: type[N4AError],
    what: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Run `n4afs ARGUMENTS` detached, its output appended to `log_path`; return it once
    `is_up(process)` holds. `error` is raised, naming `what`, when the daemon stops first
    (with its log's last lines) or does not come up within `START_TIMEOUT_S`."""
    log_path.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "n4afs.cli", *arguments]
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            **detach_options(),
            env=None if env is None else {**os.environ, **env},
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not is_up(daemon):
        if daemon.poll() is not None:
            raise error(f"the {what} stopped: {tail(log_path)}")
        if time.monotonic() > deadline:
            daemon.terminate()
            raise error(
                f"the {what} did not come up within {START_TIMEOUT_S:.0f} s; see {log_path}"
            )
        time.sleep(0.05)
    return daemon


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a daemon's log, on one line."""
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:]) or "(no output)"


def state_dir() -> Path:
    """Where the serving daemons record themselves (`$N4AFS_STATE`, else `~/.n4afs`)."""
    return Path(os.environ.get("N4AFS_STATE", Path.home() / ".n4afs"))
