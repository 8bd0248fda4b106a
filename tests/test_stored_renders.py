"""Renders are stored things: drawn once by any process, then sized and read by every other
process (fsspec, the mount, `serve`, export) without drawing again; kept across restarts; a
chart whose inputs are a dataset's is drawn once for the dataset; gc keeps the current
renderer's renders and drops an old one's; a crash between storing a render's bytes and
recording them never serves a wrong byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from n4afs import Workspace
from n4afs.tree.tree import Tree

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = [["snv", {"pls": {"_or_": [{"n_components": 2}, {"n_components": 3}]}}]]
SHARED_CHARTS = ("spectra.png", "y_distribution.png", "folds.png")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stored") / "ws"
    ws = Workspace(path)
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3, name="two")
    return path


def in_fresh_process(code: str, timeout: float = 300) -> dict:
    """Run `code` (which sets `out`, a JSON-able dict) in a new Python process."""
    script = "import json\n" + textwrap.dedent(code) + "\nprint('OUT=' + json.dumps(out))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stdout.splitlines() if x.startswith("OUT=")][-1]
    return json.loads(line[4:])


GLOB = """
import fsspec, hashlib
fs = fsspec.filesystem("n4a", skip_instance_cache=True)
root = "n4a://{ws}"
charts = sorted(fs.glob(root + "/runs/**/*.png"))
csvs = sorted(fs.glob(root + "/runs/**/predictions/cv.csv"))
sizes = {{p: fs.info(p)["size"] for p in charts + csvs}}
tree = next(iter(fs._trees.values()))
out = {{"renders_to_size": tree.memo.renders, "sizes": sizes}}
out["sha"] = {{p: hashlib.sha256(fs.cat_file(p)).hexdigest() for p in charts + csvs}}
out["renders"] = tree.memo.renders
"""


def fresh_renders(ws_path: Path) -> dict[str, tuple[int, str]]:
    """(size, sha256) of every chart and cv.csv as drawn now, in this process, with the
    store of renders out of the way."""
    import hashlib

    tree = Tree(Workspace(ws_path), stored_renders=False)
    found = {}
    for rel, node in tree.walk_files(("runs",)):
        name = "/".join(rel)
        if name.endswith(".png") or name.endswith("predictions/cv.csv"):
            data = bytes(tree.read(node, 0, node.size))
            found[f"{ws_path}/runs/{name}"] = (node.size, hashlib.sha256(data).hexdigest())
    return found


def test_a_fresh_process_globs_every_chart_and_csv_without_rendering(workspace):
    first = in_fresh_process(GLOB.format(ws=workspace))  # draws each once, and stores it
    seen = in_fresh_process(GLOB.format(ws=workspace))
    assert seen["renders_to_size"] == 0 and seen["renders"] == 0, seen
    assert first["sha"] == seen["sha"]
    expected = fresh_renders(workspace)
    # 2 PLS results x 7 charts (5 + coefficients, T2/Q), the dataset's RMSECV-vs-components
    # chart, 2 cv.csv
    assert len(seen["sizes"]) == 2 * 7 + 1 + 2 and set(seen["sizes"]) == set(expected)
    for path, (size, sha) in expected.items():
        assert (seen["sizes"][path], seen["sha"][path]) == (size, sha), path


def test_renders_survive_a_restart(workspace):
    chart = ("runs", "fermentation")
    first = Workspace(workspace).tree
    label = next(n for n in first.list_dir(chart) if n.startswith("0001_"))
    path = (*chart, label, "charts", "residuals.png")
    node = first.lookup(path)
    data = bytes(first.read(node, 0, node.size))
    again = Workspace(workspace).tree  # a new Workspace object: a restart
    node = again.lookup(path)
    assert node.size == len(data) and bytes(again.read(node, 0, node.size)) == data
    assert again.memo.renders == 0


def test_charts_of_a_dataset_are_drawn_once_for_all_its_results(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3, name="two")
    tree = ws.tree
    labels = [n for n in tree.list_dir(("runs", "fermentation")) if n[:4].isdigit()]
    assert len(labels) == 2
    drawn = {}
    for chart in SHARED_CHARTS:  # (times drawn, objects stored) for both results' charts
        before, objects = tree.memo.renders, len(list(ws.store.iter_ids()))
        for label in labels:
            assert tree.lookup(("runs", "fermentation", label, "charts", chart)).size > 0
        drawn[chart] = (tree.memo.renders - before, len(list(ws.store.iter_ids())) - objects)
    assert drawn == dict.fromkeys(SHARED_CHARTS, (1, 1)), drawn
    other = Workspace(ws.path).tree  # and the other result's chart is found stored
    for label in labels:
        for chart in SHARED_CHARTS:
            _ = other.lookup(("runs", "fermentation", label, "charts", chart)).size
    assert other.memo.renders == 0


def test_gc_keeps_current_renders_and_drops_an_old_renderer_s(tmp_path):
    from n4afs_core.store.renders import RenderCatalogue

    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3, name="two")
    ws.render()
    old = RenderCatalogue(ws.path, ws.store, "v0-oldrenderer")
    old_blob, _ = old.put(old.digest("an old chart"), b"an old renderer's chart bytes")
    report = ws.gc(grace_s=0)
    assert old_blob in report.removed and not ws.store.exists(old_blob)
    assert "v0-oldrenderer" not in RenderCatalogue(ws.path, ws.store).stamps()
    assert report.renders_dropped == ["v0-oldrenderer"]
    tree = Workspace(ws.path).tree  # every current render still stored
    assert tree.store_renders()["drawn"] == 0 and tree.memo.renders == 0
    verified = ws.verify()
    assert verified.ok and verified.orphans == [] and verified.renders > 0


def test_a_crash_between_storing_a_render_and_recording_it_never_serves_wrong_bytes(tmp_path):
    from n4afs_core.store.renders import RenderCatalogue

    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3, name="one")
    label = next(n for n in ws.tree.list_dir(("runs", "fermentation")) if n[:4].isdigit())
    path = ("runs", "fermentation", label, "charts", "predictions_scatter.png")
    expected = fresh_renders(ws.path)[f"{ws.path}/runs/{'/'.join(path[1:])}"]
    # the process dies right after the blob is stored, before its record is written
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import os
            from n4afs_core.store import renders
            renders.RenderCatalogue.record = lambda *a, **k: os._exit(9)
            from n4afs import Workspace
            tree = Workspace({str(ws.path)!r}).tree
            tree.lookup({path!r}).size
            """),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
    )
    assert crashed.returncode == 9, crashed.stderr
    assert read_in_a_new_tree(ws.path, path) == (*expected, 1)  # drawn again, right bytes
    catalogue = RenderCatalogue(ws.path, ws.store)
    (record, blob_id, _), *_ = [
        r for r in catalogue.records(catalogue.stamps()[0]) if r[2] == expected[0]
    ]
    # a torn record (a power cut after the rename, before its bytes reached the disk)
    record.write_bytes(b"")
    assert read_in_a_new_tree(ws.path, path) == (*expected, 1)
    # a record whose blob is gone, then one whose blob was damaged in place (same size)
    os.chmod(ws.store.path_of(blob_id), 0o644)
    os.unlink(ws.store.path_of(blob_id))
    assert read_in_a_new_tree(ws.path, path) == (*expected, 1)
    blob = ws.store.path_of(blob_id)
    os.chmod(blob, 0o644)
    damaged = bytearray(blob.read_bytes())
    damaged[100] ^= 0xFF
    blob.write_bytes(bytes(damaged))
    assert read_in_a_new_tree(ws.path, path) == (*expected, 1)
    # a record left half-written by a crash is a temporary, never read
    (record.parent / f".tmp-{record.name}.1.2").write_bytes(b"garbage")
    record.write_bytes(b"0" * 64 + b" 12\n")  # names no blob: a miss
    assert read_in_a_new_tree(ws.path, path) == (*expected, 1)


def read_in_a_new_tree(ws_path: Path, path: tuple) -> tuple[int, str, int]:
    import hashlib

    tree = Workspace(ws_path).tree
    node = tree.lookup(path)
    size = node.size
    data = bytes(tree.read(node, 0, size))
    assert len(data) == size
    return size, hashlib.sha256(data).hexdigest(), tree.memo.renders


def test_the_mount_serves_the_stored_renders_bytes(workspace):
    from tests.mount_fixture import Mount

    seen = in_fresh_process(GLOB.format(ws=workspace))  # stored by now (the first test, or here)
    import hashlib

    with Mount(workspace, workspace.parent / "mnt").serving() as mount:
        for path, sha in seen["sha"].items():
            inside = mount.path / Path(path).relative_to(workspace)
            assert inside.stat().st_size == seen["sizes"][path], path
            assert hashlib.sha256(inside.read_bytes()).hexdigest() == sha, path


def test_a_store_that_refuses_writes_still_serves_every_render(workspace, tmp_path, monkeypatch):
    """A reader whose writes fail (a full disk; tests run as root, so a read-only folder
    cannot be made): renders are drawn and served from memory, nothing fails."""
    import errno
    import hashlib
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(workspace, copy, ignore=shutil.ignore_patterns("renders"))
    expected = {
        p.replace(str(workspace), str(copy)): v for p, v in fresh_renders(workspace).items()
    }
    tree = Workspace(copy).tree

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(tree.ws.store), "put", full)
    for path, (size, sha) in expected.items():
        node = tree.lookup(tuple(Path(path).relative_to(copy).parts))
        assert node.size == size
        assert hashlib.sha256(bytes(tree.read(node, 0, size))).hexdigest() == sha
    assert tree.memo.renders > 0 and not (copy / "renders").exists()


@pytest.mark.parametrize(
    "pattern",
    [
        "/runs/*/*/predictions/cv.csv",
        "/runs/fermentation/0*/charts/*.png",
        "/runs/*/*/charts/[sy]*.png",
        "/runs/*/RESULTS.*",
        "/runs/*/*/nothing/*",
        "/by-run/*/*/*/predictions/c?.csv",
    ],
)
def test_glob_by_components_finds_what_fsspec_s_walk_finds(workspace, pattern):
    import fsspec
    from fsspec import AbstractFileSystem

    fs = fsspec.filesystem("n4a", skip_instance_cache=True)
    walked = AbstractFileSystem.glob(
        fsspec.filesystem("n4a", skip_instance_cache=True), f"{workspace}{pattern}"
    )
    assert fs.glob(f"n4a://{workspace}{pattern}") == walked
    assert walked or "nothing" in pattern


def test_du_counts_stored_renders_apart_from_what_gc_may_reclaim(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3, name="two")
    before = ws.usage()
    ws.render()
    after = ws.usage()
    assert before["rendered_bytes"] == 0 and after["rendered_bytes"] > 0
    assert after["unreferenced_bytes"] == before["unreferenced_bytes"]
    assert after["stored_bytes"] == before["stored_bytes"] + after["rendered_bytes"]


def test_gc_drops_the_renders_of_removed_results(tmp_path):
    from n4afs_core import maintenance
    from n4afs_core.store.renders import RenderCatalogue

    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3, name="two")
    ws.render()
    catalogue = RenderCatalogue(ws.path, ws.store)
    stamp = catalogue.stamps()[0]
    before = {b for _, b, _ in catalogue.records(stamp)}
    label = next(n for n in ws.tree.list_dir(("runs", "fermentation")) if n[:4].isdigit())
    spectra = ws.tree.lookup(("runs", "fermentation", label, "charts", "spectra.png"))
    spectra_blob = ws.tree.memo._found[spectra.content.key][0]
    maintenance.remove_results(ws.index, [r.result_id for r in ws.results("fermentation")])
    report = ws.gc(grace_s=0)
    after = {b for _, b, _ in catalogue.records(stamp)}
    assert spectra_blob in after and after < before  # the dataset's renders stay
    assert set(report.removed) >= before - after
    assert all(ws.store.exists(b) for b in after)
    assert not any(ws.store.exists(b) for b in before - after - {spectra_blob})


def test_render_keys_differing_past_a_blob_id_s_abbreviation_are_two_renders(tmp_path):
    """A `BlobId`'s repr shows 8 hex digits: keys were recorded under their repr, so a key
    differing from a stored one only past them was served the stored one's bytes."""
    from n4afs_core.store.ids import BlobId

    from n4afs.tree.content import RenderMemo
    from n4afs.tree.tree import render_catalogue

    ws = Workspace(tmp_path / "ws")
    a, b = BlobId("ab" * 4 + "0" * 56), BlobId("ab" * 4 + "1" * 56)
    RenderMemo(stored=render_catalogue(ws)).get(("csv", a), lambda: b"drawn from a")
    fresh = RenderMemo(stored=render_catalogue(ws))  # another process
    assert fresh.get(("csv", b), lambda: b"drawn from b") == b"drawn from b"
    assert fresh.get(("csv", str(a)), lambda: b"?") == b"drawn from a"  # its text, one key
