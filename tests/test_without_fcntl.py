"""Windows has no `fcntl`: everything that needs no FUSE works without it (#19).

The workspace lock runs on `LockFileEx` there (`core/index/file_locks.py`). Windows is not
available to the tests, so its backend runs here with its two system calls played by the
kernel's `flock`, whose semantics are LockFileEx's (shared or exclusive, per open handle,
released when the holder dies); everything above those two calls is the real code. The
API, CLI, fsspec, export and `serve` then run in a process where `import fcntl` fails; the
serving daemons' Windows-only paths (detaching, unmounting) are checked by their choices."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from n4afs_core.errors import N4AError, WorkspaceLocked
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

# serve: `n4afs serve --foreground` in this process's main thread, browsed over HTTP from
# another thread, then stopped by SIGTERM as `n4afs serve --stop` stops it
import http.client
import os
import signal
import threading
import time
from urllib.parse import unquote
from xml.etree import ElementTree

from n4afs.surfaces.serve import read_record

os.environ["N4AFS_STATE"] = sys.argv[1] + "/state"
result = f"runs/fermentation/{label}"
tree = ws.tree
names = {name for name, _ in tree.list_kinds(tuple(result.split("/")))}


def files_below(path):
    for name, is_dir in tree.list_kinds(path):
        yield from files_below((*path, name)) if is_dir else [(*path, name)]


files = sorted(files_below(tuple(result.split("/"))))
browsed = {}


def browse():
    try:
        deadline = time.monotonic() + 60
        while (record := read_record(ws.path.absolute())) is None:
            assert time.monotonic() < deadline, "the server never recorded itself"
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", record["port"], timeout=60)
        conn.request("PROPFIND", f"/{result}/", headers={"Depth": "1"})
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == 207, answer.status
        hrefs = [unquote(e.text) for e in ElementTree.fromstring(body).iter("{DAV:}href")]
        browsed["listed"] = {h.rstrip("/").rsplit("/", 1)[-1] for h in hrefs[1:]}
        for path in files:  # every file of the result, its bytes as the tree's
            conn.request("GET", "/" + "/".join(path))
            answer = conn.getresponse()
            got = answer.read()
            want = bytes(tree.read(tree.open(tree.lookup(path))))
            assert answer.status == 200 and got == want, (path, answer.status)
        browsed["read"] = len(files)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=browse).start()
main(["-w", str(ws.path), "serve", "--foreground", "--port", "0"])
assert browsed.get("listed") == names, (browsed, names)
assert browsed["read"] == len(files) >= 5, browsed
assert read_record(ws.path.absolute()) is None  # stopped cleanly: its record is gone
assert sys.modules.get("fcntl") is None
print("ok")
"""


def test_api_cli_fsspec_export_and_serve_work_without_fcntl(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_FCNTL, str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "ok"
    assert (tmp_path / "r.zip").stat().st_size > 0


class Started:
    pid = 4242

    def poll(self):
        return None


def test_a_windows_daemon_gets_no_console_and_a_process_group_of_its_own(tmp_path, monkeypatch):
    """`start_new_session` means nothing on Windows (subprocess ignores it there): the
    daemon would stay attached to the terminal, and closing it would stop the server."""
    from n4afs.surfaces import daemon

    asked = {}

    def popen(command, **options):
        asked.update(options)
        return Started()

    monkeypatch.setattr(daemon.subprocess, "Popen", popen)
    monkeypatch.setattr(sys, "platform", "win32")
    daemon.start_detached(["serve"], tmp_path / "serve.log", lambda d: True, N4AError, "x")
    assert "start_new_session" not in asked
    assert asked["creationflags"] == 0x00000008 | 0x00000200  # DETACHED, NEW_PROCESS_GROUP
    monkeypatch.setattr(sys, "platform", "linux")
    daemon.start_detached(["serve"], tmp_path / "serve.log", lambda d: True, N4AError, "x")
    assert asked["start_new_session"] is True


def test_umount_points_windows_to_serve_and_uses_umount_on_macos(tmp_path):
    from n4afs.surfaces import mount

    with pytest.raises(N4AError, match="n4afs serve --stop"):
        mount._unmount_command(tmp_path, lazy=False, platform="win32")
    assert mount._unmount_command(tmp_path, lazy=False, platform="darwin") == [
        "umount",
        str(tmp_path),
    ]
    assert mount._unmount_command(tmp_path, lazy=True, platform="darwin")[:2] == ["umount", "-f"]
