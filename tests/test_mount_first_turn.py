"""The mount's watcher imports in turns (`Tree.prepare`): the first holds every module that a
fresh daemon's first listings, sizes and reads need (a dataset folder's `ls -la`: RESULTS.*,
best_*, its REPORT.html; a result folder's files; charts and reports stored by an earlier
process), so a callback arriving while the second turn (scikit-learn, ~2 s) runs never
waits for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from n4afs import Workspace

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = [[{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 3]}}}]]

FIRST_LOOKS = """
import json, sys, threading
from n4afs import Workspace
from n4afs.tree.library_imports import importing_in_turns
from n4afs.tree.tree import Tree
import n4afs.surfaces.fuse_ops  # the daemon's modules before mounting
ws = Workspace(sys.argv[1])
tree = Tree(ws, auto_refresh=False)
tree.refresh()
Tree.prepare_turns()[0]()  # the first turn done
second, inside = threading.Event(), threading.Event()
def hold():  # the second turn (scikit-learn) still importing
    inside.set()
    second.wait()
watcher = threading.Thread(target=importing_in_turns, args=([hold],))
watcher.start()
inside.wait()
timer = threading.Timer(20, second.set)  # a look waiting for the second turn ends at 20 s
timer.start()
folder = ("runs", "fermentation")
sizes = {}
for name, node in tree.list_dir(folder).items():  # `ls -la`
    if not node.is_dir:
        sizes[name] = node.size
label = min(n for n in tree.list_dir(folder) if n[:4].isdigit())
for path, node in tree.walk_files((*folder, label)):  # `du`, `find`, small reads
    if path[0] != "charts":
        sizes["/".join(path)] = node.size
        data = tree.read(tree.open(node), 0, node.size)
        assert len(data) == node.size
waited = second.is_set()
second.set()
timer.cancel()
watcher.join()
print("OUT=" + json.dumps({"waited": waited, "files": len(sizes)}))
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("first-turn") / "ws"
    ws = Workspace(path)
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3, name="six")
    ws.render()  # what any process stores (charts, reports): the daemon reads them
    return path


def test_first_listings_sizes_and_reads_never_wait_for_the_second_turn(workspace):
    done = subprocess.run(
        [sys.executable, "-c", FIRST_LOOKS, str(workspace)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.split("OUT=")[-1])
    assert out["files"] > 10
    assert not out["waited"]


def test_the_watcher_imports_once_the_callbacks_pause(tmp_path):
    """`TreeOperations.until_idle`: a fresh mount's first listings are answered before the
    chart libraries are imported beside them, never while a callback is in progress, and
    not at all when the mount goes away first."""
    import threading
    import time

    from n4afs.surfaces import fuse_ops
    from n4afs.tree.tree import Tree

    ops = fuse_ops.TreeOperations(Tree(Workspace(tmp_path / "ws")))
    busy = threading.Event()

    def callbacks(until: float) -> None:
        while time.monotonic() < until:
            ops.calls += 1
            time.sleep(fuse_ops.IDLE_SECONDS / 5)
        busy.set()

    start = time.monotonic()
    threading.Thread(target=callbacks, args=(start + 0.5,)).start()
    assert ops.until_idle() is True
    assert busy.is_set() and time.monotonic() - start >= 0.5  # waited for the burst to end
    ops.in_flight = 1  # a callback in progress (importing, maybe): never beside it
    ended = threading.Timer(0.5, lambda: setattr(ops, "in_flight", 0))
    start = time.monotonic()
    ended.start()
    assert ops.until_idle() is True
    assert time.monotonic() - start >= 0.5
    ops.calls += 1
    ops._stop.set()  # unmounted while busy
    assert ops.until_idle() is False
