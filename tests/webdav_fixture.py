"""A real `n4afs serve` for tests: the CLI in its own process, a free port, bounded waits,
loud failures.

Started as `n4afs serve WS --foreground --port N` (more options as given); ready when the
port answers HTTP (any status: 401 is an answer). A timeout fails with the server's output
(never a skip). On teardown it sends SIGTERM, waits, and fails unless the server exited 0
with no traceback in its output.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class Server:
    def __init__(
        self, workspace: Path, state: Path, *options: str, host: str = "127.0.0.1", env=None
    ) -> None:
        """`state`: `$N4AFS_STATE` (where the server records itself); `options`: more
        `n4afs serve` options (`--token`, `--user`...); `env`: more variables."""
        self.workspace, self.state, self.options, self.host = workspace, state, options, host
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}/"
        self.log = state / f"serve-{self.port}.log"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "N4AFS_STATE": str(state)}
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Server:
        self.state.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "n4afs.cli", "serve", str(self.workspace)]
        command += ["--foreground", "--host", self.host, "--port", str(self.port)]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*command, *self.options], stdout=log, stderr=log, env=self.env
            )
        deadline = time.monotonic() + timeout
        while not answers(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"n4afs serve did not come up:\n{self.output()}")
            time.sleep(0.1)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                pytest.fail(f"n4afs serve did not stop on signal {sig}:\n{self.output()}")
        return self.proc.returncode

    @contextmanager
    def serving(self) -> Iterator[Server]:
        """The server for a fixture's lifetime: started, then stopped by SIGTERM, exit
        status 0, no traceback in its output, its port closed."""
        self.start()
        try:
            yield self
        finally:  # a failing test must not leave its server running
            status = self.stop()
        assert status == 0, self.output()
        assert "Traceback" not in self.output(), self.output()
        assert not answers(self.url)


def answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` (with any status)."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True
