"""Fail well under concurrency: a stopped reader never makes a writer fail, a lock timeout
names the process really holding the lock, and readers never see a file torn between two
versions or a removed result that lingers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from n4afs_core.errors import WorkspaceLocked
from n4afs_core.index.database import Index
from n4afs_core.index.lock import WorkspaceLock

REPO = Path(__file__).resolve().parents[1]

# A reader that stops itself (as Ctrl-Z would) while it has the index open and the
# workspace's shared lock; once continued it prints what it still sees, then a fresh read.
STOPPED_READER = r"""
import os, signal, sys
from n4afs_core.index.database import Index
index = Index(sys.argv[1])
with index.read() as conn:
    before = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    os.kill(os.getpid(), signal.SIGSTOP)
    after = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
print(before, after, index.fetchall("SELECT count(*) FROM blobs")[0][0], flush=True)
"""

# A process that takes the shared lock only (as `n4afs sql` does while it copies the index)
# and stops there.
STOPPED_LOCK_HOLDER = r"""
import os, signal, sys
from n4afs_core.index.lock import WorkspaceLock
with WorkspaceLock(sys.argv[1]).shared():
    os.kill(os.getpid(), signal.SIGSTOP)
"""

STOPPED_WRITER = r"""
import os, signal, sys
from n4afs_core.index.database import Index
with Index(sys.argv[1]).write() as conn:
    os.kill(os.getpid(), signal.SIGSTOP)
"""


def _insert(index: Index, n: int) -> None:
    with index.write() as conn:
        conn.execute("INSERT INTO blobs VALUES (?, 1, 'raw', current_timestamp)", [f"{n:064x}"])


def _stopped(script: str, *args: str) -> subprocess.Popen:
    """Start `script` and return once it has stopped itself (state T in /proc)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while _state(proc.pid) != "T":
        assert proc.poll() is None, "the helper process ended before stopping"
        assert time.monotonic() < deadline, "the helper process never stopped"
        time.sleep(0.02)
    return proc


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def _resume(proc: subprocess.Popen) -> str:
    os.kill(proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    return out


@pytest.fixture
def index(tmp_path) -> Index:
    index = Index(tmp_path / "ws", timeout_s=5)
    index.migrate()
    _insert(index, 1)
    return index


# -- item 4: a stalled reader never kills a run ---------------------------------------------
def test_a_stopped_reader_does_not_make_writers_fail(index):
    reader = _stopped(STOPPED_READER, str(index.dir))
    try:
        started = time.monotonic()
        for n in range(2, 6):  # a run's several transactions, all while the reader is stopped
            _insert(index, n)
        took = time.monotonic() - started
        assert index.fetchall("SELECT count(*) FROM blobs") == [(5,)]
    finally:
        out = _resume(reader)
    assert took < 4 * 2.0  # each write waits at most the readers' grace, not the timeout
    # the stopped reader went on with the version it had opened, whole; its next read is new
    assert out.split() == ["1", "1", "5"]


def test_a_stopped_lock_holder_does_not_make_a_writer_fail(index):
    holder = _stopped(STOPPED_LOCK_HOLDER, str(index.lock.path))
    try:
        _insert(index, 2)
    finally:
        _resume(holder)
    assert index.fetchall("SELECT count(*) FROM blobs") == [(2,)]


def test_a_lock_timeout_names_the_process_holding_it_not_the_last_writer(index):
    """The last writer (this process) is not the holder: a stopped reader is."""
    holder = _stopped(STOPPED_LOCK_HOLDER, str(index.lock.path))
    try:
        with (
            pytest.raises(WorkspaceLocked) as caught,
            WorkspaceLock(index.lock.path, timeout_s=0.5).exclusive(),
        ):
            pass
    finally:
        _resume(holder)
    message = str(caught.value)
    assert f"PID {holder.pid} (" in message and "stopped" in message
    assert f"PID {os.getpid()}" not in message


def test_a_writer_waiting_on_a_stopped_writer_names_it(index):
    writer = _stopped(STOPPED_WRITER, str(index.dir))
    try:
        other = Index(index.dir, timeout_s=0.5)
        with pytest.raises(WorkspaceLocked, match=f"PID {writer.pid} .*stopped"):
            _insert(other, 7)
        with pytest.raises(WorkspaceLocked, match=f"PID {writer.pid} .*stopped"):
            other.fetchall("SELECT 1")  # a reader waits for a writer writing in place
    finally:
        _resume(writer)
    assert index.fetchall("SELECT count(*) FROM blobs") == [(1,)]


def test_a_killed_writer_of_a_copy_leaves_the_index_whole(index):
    """A writer killed while it writes a copy (a reader held on) commits nothing, and the
    next writer starts from the committed file, not from the dead writer's copy."""
    reader = _stopped(STOPPED_LOCK_HOLDER, str(index.lock.path))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        writer = subprocess.Popen([sys.executable, "-c", STOPPED_WRITER, str(index.dir)], env=env)
        deadline = time.monotonic() + 30
        while _state(writer.pid) != "T":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert (index.dir / "n4a.duckdb.next").exists()  # it writes a copy
        writer.kill()
        writer.wait(timeout=10)
        _insert(index, 3)
    finally:
        _resume(reader)
    assert index.fetchall("SELECT count(*) FROM blobs") == [(2,)]
    assert not (index.dir / "n4a.duckdb.next").exists()


# -- items 11 and 12: readers of a changing tree --------------------------------------------
SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [2, 4]}}}]


@pytest.fixture(scope="module")
def mounted(tmp_path_factory):
    """Six results on a real FUSE mount; each test removes results of its own."""
    from n4afs.workspace import Workspace
    from tests.mount_fixture import Mount

    ws = Workspace(tmp_path_factory.mktemp("changing") / "ws")
    ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=2, test_size=0.2)
    with Mount(ws.path, tmp_path_factory.mktemp("m") / "nirs").serving() as mount:
        yield ws, mount


def _remove(ws, rank: int) -> str:
    """Remove the result at `rank` (0 = best) as `n4afs rm` does; return its label."""
    from n4afs_core import maintenance

    result = ws.results("fermentation")[rank]
    maintenance.remove_results(ws.index, [result.result_id])
    return result.label


def _read_to_end(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 1 << 16):
        out += chunk
    return out


def test_a_reader_of_a_changing_file_on_the_mount_reads_one_version(mounted):
    from tests.mount_fixture import wait_for

    ws, mnt = mounted
    path = mnt.path / "runs" / "fermentation" / "RESULTS.csv"
    whole = path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.read(fd, len(whole) // 2)
        _remove(ws, 0)  # the best goes: every row after it shifts
        wait_for(lambda: path.read_bytes() != whole, timeout=5)  # the mount has the new one
        rest = _read_to_end(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    assert head + rest == whole
    assert size == len(whole)  # fstat answers for the version opened, too
    assert path.read_bytes().count(b"\n") == whole.count(b"\n") - 1  # a new open: new version


def test_a_reader_of_a_changing_file_through_fsspec_reads_one_version(mounted):
    from n4afs.surfaces.fs import N4AFileSystem

    ws, _ = mounted
    fs = N4AFileSystem(workspace=ws.path)
    whole = fs.cat_file("/runs/fermentation/RESULTS.csv")
    with fs.open("/runs/fermentation/RESULTS.csv", "rb") as handle:
        head = handle.read(len(whole) // 2)
        _remove(ws, 0)
        assert fs.cat_file("/runs/fermentation/RESULTS.csv") != whole
        rest = handle.read()
    assert head + rest == whole


def test_a_removed_result_disappears_from_the_mount_within_two_seconds(mounted):
    from tests.mount_fixture import wait_for

    ws, mnt = mounted
    label = ws.results("fermentation")[-1].label
    (run,) = os.listdir(mnt.path / "by-run")
    tops = [mnt.path / "runs" / "fermentation" / label]
    tops.append(mnt.path / "by-run" / run / "fermentation" / label)
    paths = list(tops)
    for top in tops:  # the kernel now caches every entry, attribute and page of the folder
        for folder, dirs, files in os.walk(top):
            paths += [Path(folder) / name for name in dirs + files]
            for name in files:
                (Path(folder) / name).read_bytes()
    assert len(paths) > 20
    assert _remove(ws, -1) == label
    started = time.monotonic()

    def lingering() -> list[Path]:
        return [p for p in paths if os.path.lexists(p)]

    wait_for(lambda: not lingering(), timeout=2.5)
    assert time.monotonic() - started < 2.5
    assert label not in os.listdir(mnt.path / "runs" / "fermentation")
