"""Integrity after the first read: a blob changed on disk after
it was verified is never served, a missing blob is EIO everywhere, and gc never collects
the blobs of a run whose owner is alive."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
from n4afs_core.errors import BlobCorrupt

from n4afs.surfaces.fs import N4AFileSystem
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.mount_fixture import Mount


@pytest.fixture
def ws(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[["snv", "pls"]], datasets=["chemotools:fermentation"], name="integrity")
    return ws


def model_paths(ws) -> tuple[tuple[str, ...], Path]:
    """The tree path of the final model's `pls_model.pkl`, and its object file."""
    label = ws.best("fermentation").row.label
    folder = ("runs", "fermentation", label, "models")
    final = next(n for n in Tree(ws).list_dir(folder) if n.startswith("final_"))
    path = (*folder, final, "pls_model.pkl")
    fs = N4AFileSystem(workspace=ws.path, skip_instance_cache=True)
    return path, Path(fs.real_path("/" + "/".join(path)))


def flip_one_byte(blob: Path) -> None:
    """What a disk error or a stray write does: one byte changed in place."""
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.seek(os.path.getsize(blob) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_tree_rehashes_a_blob_changed_after_it_was_verified(ws):
    path, blob = model_paths(ws)
    tree = Tree(ws)
    node = tree.lookup(path)
    assert hashlib.sha256(tree.read(node)).hexdigest() == blob.name
    flip_one_byte(blob)
    with pytest.raises(BlobCorrupt):
        tree.read(node)
    with pytest.raises(BlobCorrupt):  # and again: a failure is not remembered as verified
        tree.read(node, 0, 16)


def test_tree_does_not_rehash_an_unchanged_blob_but_does_after_a_chmod(ws, monkeypatch):
    path, blob = model_paths(ws)
    tree = Tree(ws)
    node = tree.lookup(path)
    tree.read(node)
    hashed: list[str] = []
    real = hashlib.file_digest
    monkeypatch.setattr(
        hashlib, "file_digest", lambda f, name: hashed.append(f.name) or real(f, name)
    )
    for _ in range(3):
        tree.read(node, 0, 64)
    assert hashed == []
    os.chmod(blob, 0o400)  # moves ctime only: the bytes may have changed with it
    tree.read(node)
    assert len(hashed) == 1


def test_mount_reads_eio_after_a_byte_flips_under_a_verified_blob(ws, tmp_path):
    path, blob = model_paths(ws)
    mount = Mount(ws.path, tmp_path / "mnt").start()
    try:
        mounted = mount.path.joinpath(*path)
        pipeline = mounted.parent / "pipeline.pkl"  # composed of the same blob
        first = mounted.read_bytes()
        assert hashlib.sha256(first).hexdigest() == blob.name
        whole = pipeline.read_bytes()
        flip_one_byte(blob)
        for file in (mounted, pipeline):
            with pytest.raises(OSError) as info:
                file.read_bytes()
            assert info.value.errno == errno.EIO, file
        # still EIO on the next try, and the rest of the mount is served
        with pytest.raises(OSError) as info:
            mounted.read_bytes()
        assert info.value.errno == errno.EIO
        assert (mount.path / "README.txt").read_bytes().startswith(b"n4afs workspace")
        # put the right bytes back: served again, without a new mount
        flip_one_byte(blob)
        assert mounted.read_bytes() == first and pipeline.read_bytes() == whole
    finally:
        mount.stop()
    assert "does not match its sha256" in mount.output()


@pytest.fixture
def remote(tmp_path):
    """A remote store (any fsspec URL; fsspec's in-memory one here) and its local cache."""
    from n4afs_core.store.remote_store import RemoteBlobStore

    store = RemoteBlobStore(f"memory://{tmp_path.name}", tmp_path / "cache")
    store.create()
    return store


def test_remote_cache_copy_changed_after_fetch_is_never_read(remote):
    blob_id = remote.put(b"fitted model bytes" * 100)
    cached = remote.path_of(blob_id)  # fetched and hash-checked once
    assert remote.read(blob_id) == b"fitted model bytes" * 100
    flip_one_byte(cached)
    with pytest.raises(BlobCorrupt):
        remote.read(blob_id)


def test_reading_a_remote_blob_does_not_make_its_verified_copy_look_changed(remote):
    from n4afs_core.store.verified import VerifiedBlobs

    blob_id = remote.put(b"x" * 5000)
    verified = VerifiedBlobs(remote.path_of)
    for _ in range(5):
        verified.check(blob_id)
        remote.read(blob_id)
    assert verified.hashes == 1
    flip_one_byte(remote.path_of(blob_id))
    with pytest.raises(BlobCorrupt):
        verified.check(blob_id)


def remove_predictions_blob(ws) -> str:
    """Delete the best result's predictions object (as gc did before it spared the blobs of
    runs in flight)."""
    best = ws.best("fermentation").row
    os.remove(ws.store.path_of(best.predictions_blob))
    return best.label


def test_a_missing_blob_is_eio_through_the_mount_for_csvs_and_charts(ws, tmp_path):
    label = remove_predictions_blob(ws)
    mount = Mount(ws.path, tmp_path / "mnt").start()
    try:
        folder = mount.path / "runs" / "fermentation" / label
        files = [folder / "predictions" / "cv.csv", folder / "charts" / "residuals.png"]
        files.append(mount.path / "best" / "fermentation.csv")
        for file in files:
            for attempt in (os.stat, Path.read_bytes):
                with pytest.raises(OSError) as info:
                    attempt(file)
                assert info.value.errno == errno.EIO, (file, attempt)
        assert (folder / "scores.yaml").read_bytes()  # the rest of the result is served
    finally:
        mount.stop()
    mount.assert_clean_log()
    assert "missing from the store" in mount.output()


def test_a_missing_blob_is_eio_through_fsspec(ws):
    label = remove_predictions_blob(ws)
    fs = N4AFileSystem(workspace=ws.path, skip_instance_cache=True)
    folder = f"/runs/fermentation/{label}"
    for path in (f"{folder}/predictions/cv.csv", f"{folder}/charts/residuals.png"):
        for attempt in (fs.info, fs.cat_file, fs.open, fs.size):
            with pytest.raises(OSError) as info:
                attempt(path)
            assert info.value.errno == errno.EIO, (path, attempt)
            assert not isinstance(info.value, FileNotFoundError)
    with pytest.raises(OSError) as info:
        fs.ls(f"{folder}/predictions", detail=True)  # sizes need the blob
    assert info.value.errno == errno.EIO
    assert fs.ls(f"{folder}/predictions", detail=False)  # names do not


def planned_run(ws) -> str:
    """A run recorded as running by this (live) process, as a sweep is before its first
    commit: nothing of it is referenced yet."""
    from n4afs_core.pipelines.runner import RunOptions, plan_run
    from n4afs_core.pipelines.templates import load_template

    ws.add_dataset("chemotools:coffee")
    info = ws.index.fetchall("SELECT dataset_id FROM datasets WHERE name = 'coffee'")[0][0]
    dataset = next(d for d in ws.datasets() if d.dataset_id == info)
    return plan_run(ws.index, [load_template(["snv", "lda"])], [dataset], RunOptions(), "live")


def dead_owner() -> tuple[int, int]:
    """The PID and start time of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    from n4afs_core.index.liveness import process_start

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = process_start(child.pid)
    child.kill()
    child.wait()
    return child.pid, start


def test_gc_spares_blobs_of_a_run_whose_owner_is_alive_whatever_the_grace(ws):
    from n4afs_core import maintenance

    run_id = planned_run(ws)
    in_flight = [ws.store.put(os.urandom(100)) for _ in range(3)]  # written, not yet committed
    report = maintenance.gc(ws.index, ws.store, grace_s=0)
    assert report.removed == [] and all(ws.store.exists(b) for b in in_flight)
    assert run_id in report.live_runs
    pid, start = dead_owner()
    with ws.index.write() as conn:
        conn.execute("UPDATE run_owners SET pid = ?, pid_start = ?", [pid, start])
    report = maintenance.gc(ws.index, ws.store, grace_s=0)
    assert sorted(report.removed) == sorted(in_flight) and report.live_runs == []


def test_a_reused_pid_is_not_the_owner():
    from n4afs_core.index.liveness import Owner, current_owner, owner_alive

    me = current_owner()
    assert owner_alive(me)
    assert not owner_alive(Owner(me.host, me.boot_id, me.pid, me.pid_start - 1, me.started))
    assert not owner_alive(Owner(me.host, "another boot", me.pid, me.pid_start, me.started))
    assert owner_alive(Owner("another-host", None, 1, 1, me.started))  # cannot prove it gone
    pid, start = dead_owner()
    assert not owner_alive(Owner(me.host, me.boot_id, pid, start, me.started))


SLOW_SWEEP = """\
- _or_: [snv, msc, detrend, standard]
- _or_: [null, {savgol: {window_length: 11, polyorder: 2, deriv: 1}}]
- pls: {n_components: {_range_: [1, 15]}}
"""


def test_gc_grace_0_in_a_loop_during_a_real_sweep_breaks_no_result(tmp_path):
    """The scenario that lost blobs: `gc --grace 0m` while a run writes; afterwards every result is
    whole (verify passes, every result's files read)."""
    import subprocess
    import sys

    from n4afs_core import maintenance

    from tests.mount_fixture import REPO

    ws = Workspace(tmp_path / "ws")
    ws.add_dataset("chemotools:fermentation")
    (tmp_path / "sweep.yaml").write_text(SLOW_SWEEP)
    run = subprocess.Popen(
        [sys.executable, "-m", "n4afs.cli", "-w", str(ws.path), "run", str(tmp_path / "sweep.yaml")]
        + ["-d", "fermentation", "--cv", "5", "--name", "in-flight"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    passes, spared = 0, 0
    while run.poll() is None:
        report = maintenance.gc(ws.index, ws.store, grace_s=0)
        passes, spared = passes + 1, spared + report.spared_young
    output = run.stdout.read()
    assert run.returncode == 0 and "completed, 120 results (0 failed)" in output, output
    assert passes >= 3 and spared > 0  # gc really ran while blobs were in flight
    check = maintenance.verify(ws.index, ws.store)
    assert check.ok and check.broken_results == [], (check.missing, check.problems)
    tree = Tree(ws)
    for result in ws.results("fermentation"):
        folder = ("runs", "fermentation", result.row.label)
        for rel, node in tree.walk_files(folder):
            if rel[0] != "charts":  # charts render slowly; their inputs are read by the CSVs
                tree.read(node)


def test_fsspec_and_export_refuse_a_corrupt_blob(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[["snv", "pls"]], datasets=["chemotools:fermentation"], name="c")
    label = ws.best("fermentation").row.label
    fs = N4AFileSystem(workspace=ws.path)
    final = next(
        p for p in fs.ls(f"/runs/fermentation/{label}/models", detail=False) if "final_" in p
    )
    blob = Path(fs.real_path(f"{final}/pls_model.pkl"))
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(OSError) as info:  # the path exists: EIO, as through the mount
        N4AFileSystem(workspace=ws.path, skip_instance_cache=True).cat_file(
            f"{final}/pls_model.pkl"
        )
    assert info.value.errno == errno.EIO and isinstance(info.value.__cause__, BlobCorrupt)
    with pytest.raises(BlobCorrupt):
        Workspace(ws.path).export(f"runs/fermentation/{label}", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
