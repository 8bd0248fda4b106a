"""Windows has no `fcntl`: everything that needs no FUSE works without it (#19).

The workspace lock runs on `LockFileEx` there (`core/index/file_locks.py`). Windows is not
available to the tests, so its backend runs here with its two system calls played by the
kernel's `flock`, whose semantics are LockFileEx's (shared or exclusive, per open handle,
released when the holder dies); everything above those two calls is the real code."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from n4afs_core.errors import WorkspaceLocked
from n4afs_core.index import file_locks
from n4afs_core.index.database import Index
from n4afs_core.index.lock import WorkspaceLock

REPO = Path(__file__).resolve().parents[1]


class FlockPlaysLockFileEx(file_locks.WindowsLocks):
    """`LockFileEx`/`UnlockFileEx` answered by `flock`, with Windows' error codes."""

    def _lock_file_ex(self, fd: int, flags: int) -> int:
        mode = fcntl.LOCK_EX if flags & self.EXCLUSIVE else fcntl.LOCK_SH
        assert flags & self.FAIL_IMMEDIATELY  # the protocol polls; it never blocks
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return 33  # ERROR_LOCK_VIOLATION
        return 0

    def _unlock_file_ex(self, fd: int) -> int:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return 0


@pytest.fixture
def windows_locks(monkeypatch):
    monkeypatch.setattr(file_locks, "LOCKS", FlockPlaysLockFileEx())


def test_readers_share_and_a_writer_waits_for_them_then_writes_a_copy(tmp_path, windows_locks):
    lock = WorkspaceLock(tmp_path / "n4a.lock", timeout_s=5)
    with lock.shared(), lock.shared():  # two readers at once
        started = time.monotonic()
        with lock.writing() as in_place:
            assert in_place is False  # a reader held on past the grace: copy path
        assert time.monotonic() - started >= 0.9
    with lock.writing() as in_place:
        assert in_place is True


def test_two_threads_exclude_each_other_and_the_wait_is_bounded(tmp_path, windows_locks):
    lock = WorkspaceLock(tmp_path / "n4a.lock", timeout_s=0.3)
    inside, release = threading.Event(), threading.Event()

    def hold():
        with lock.exclusive():
            inside.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(5)
    try:
        with pytest.raises(WorkspaceLocked, match="stayed locked"), lock.shared():
            pass
    finally:
        release.set()
        holder.join()
    with lock.shared():
        pass


def test_an_index_commits_and_reads_through_the_windows_backend(tmp_path, windows_locks):
    index = Index(tmp_path / "ws")
    index.migrate()
    with index.write() as conn:
        conn.execute("INSERT INTO blobs VALUES (?, 1, 'raw', current_timestamp)", ["d" * 64])
    assert index.fetchall("SELECT count(*) FROM blobs") == [(1,)]


def test_a_platform_without_either_lock_refuses_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(file_locks, "LOCKS", file_locks.NoLocks())
    with pytest.raises(file_locks.N4AError, match="no whole-file locks"):
        Index(tmp_path / "ws").migrate()


WITHOUT_FCNTL = r"""
import sys
sys.path.insert(0, sys.argv[2])
from tests.test_without_fcntl import FlockPlaysLockFileEx  # takes the real fcntl first
for name in [m for m in sys.modules if m == "fcntl"]:
    del sys.modules[name]
sys.modules["fcntl"] = None  # `import fcntl` now raises ImportError, as on Windows
for name in [m for m in sys.modules if m.startswith(("n4afs", "n4afs_core"))]:
    del sys.modules[name]

from n4afs_core.index import file_locks
assert file_locks.fcntl is None and isinstance(file_locks.LOCKS, file_locks.NoLocks)
file_locks.LOCKS = FlockPlaysLockFileEx()

import fsspec
from n4afs import Workspace
from n4afs.cli import main

ws = Workspace(sys.argv[1] + "/ws")
ws.add_dataset("chemotools:fermentation")
run = ws.run(templates=[["snv", {"pls": {"n_components": {"_or_": [2, 3]}}}]],
             datasets=["fermentation"], cv=3, name="nofcntl")
assert run.status == "completed", run.status
label = ws.best("fermentation").row.label
fs = fsspec.filesystem("n4a", workspace=ws.path)
assert b"rmse" in fs.cat_file(f"/runs/fermentation/{label}/scores.yaml")
ws.export(f"runs/fermentation/{label}", sys.argv[1] + "/r.zip")
ws.export(f"runs/fermentation/{label}", sys.argv[1] + "/r", link=True)
main(["-w", str(ws.path), "results", "fermentation"])
main(["-w", str(ws.path), "cat", f"runs/fermentation/{label}/scores.yaml"])
assert sys.modules.get("fcntl") is None
print("ok")
"""


def test_api_cli_fsspec_and_export_work_without_fcntl(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_FCNTL, str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "ok"
    assert (tmp_path / "r.zip").stat().st_size > 0
