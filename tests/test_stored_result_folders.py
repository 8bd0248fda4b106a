"""A complete result's folder is stored whole (`n4afs.tree.stored_folders`) by the first
process that looks a file up in it: every later process lists, sizes and reads it without
loading its dataset's model and score rows and without rendering; what it serves is what
the tree builds, byte for byte, for every kind of result; gc drops it with its result; a
render it names that is gone is drawn again; a reader in another time zone gets its own."""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from pathlib import Path

import pytest
from n4afs_core import maintenance
from n4afs_core.store.renders import RenderCatalogue

from n4afs import Workspace
from n4afs.tree.tree import Tree

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = [["snv", {"pls": {"_or_": [{"n_components": 2}, {"n_components": 3}]}}]]
DATASET = ("runs", "fermentation")


def result_folders(tree: Tree, top: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The result folders below `top` (a dataset's folder or one of its target folders)."""
    found = []
    for name, is_dir in tree.list_kinds(top) or ():
        if is_dir and name[:4].isdigit():
            found.append((*top, name))
        elif is_dir:
            found += result_folders(tree, (*top, name))
    return found


def seen(tree: Tree, folder: tuple[str, ...]) -> dict[str, tuple]:
    """What `ls -la` and reading every file shows below a result folder (but its charts,
    drawn by matplotlib and stored as before): kind, mtime, size and sha256 per path."""
    shown: dict[str, tuple] = {}
    stack = [folder]
    while stack:
        path = stack.pop()
        for name, node in tree.list_dir(path).items():
            rel = "/".join((*path, name)[len(folder) :])
            if node.is_dir:
                shown[rel] = ("dir", node.mtime)
                if name != "charts":
                    stack.append((*path, name))
                continue
            found = tree.lookup((*path, name))  # a `stat`, as the surfaces ask it
            data = bytes(tree.read(found, 0, found.size))
            shown[rel] = ("file", found.mtime, found.size, hashlib.sha256(data).hexdigest())
    return shown


def rows_loaded(tree: Tree) -> int:
    return len(tree._current().views.snapshot._model_rows)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("folders") / "ws"
    Workspace(path).run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    return path


def test_a_fresh_tree_lists_sizes_and_reads_a_stored_result_folder_without_rows_or_renders(
    workspace,
):
    first = Tree(Workspace(workspace))
    folders = result_folders(first, DATASET)
    drawn = {f: seen(first, f) for f in folders}  # the first lookup in each stores it
    assert len(folders) == 2 and all(len(shown) > 20 for shown in drawn.values())
    fresh = Tree(Workspace(workspace))  # another process: nothing in its memory
    sizes = {f: {r: s for r, s in seen(fresh, f).items()} for f in folders}
    assert sizes == drawn
    assert fresh.memo.renders == 0 and rows_loaded(fresh) == 0


def test_the_first_lookup_of_a_file_stores_its_folder_and_a_listing_does_not(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    first = Tree(Workspace(ws.path))
    one, two = result_folders(first, DATASET)
    for folder in (one, two):  # what a `find` does: listings only
        for name, is_dir in list(first.list_kinds(folder)):
            if is_dir:
                list(first.list_kinds((*folder, name)))
    assert first.lookup((*one, "pipeline.yaml")) is not None  # a `stat`
    fresh = Tree(Workspace(ws.path))
    views = fresh._current().views
    stored = {
        r.label: fresh.files.stored_folder(views, r) is not None
        for r in views.results_by_dataset[views.datasets["fermentation"].dataset_id]
    }
    assert stored == {one[-1]: True, two[-1]: False}


def test_n4afs_render_stores_every_result_folder(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    assert ws.render()["folders"] == 2
    fresh = Tree(Workspace(ws.path))
    for folder in result_folders(fresh, DATASET):
        sizes = {n: node.size for n, node in fresh.list_dir((*folder, "predictions")).items()}
        assert all(sizes.values())
    assert fresh.memo.renders == 0 and rows_loaded(fresh) == 0


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory) -> Path:
    """Regression with PLS diagnostics, classification with a test split (per_class,
    ROC), replicate scans kept together (cv_by_group), several targets (target folders)."""
    path = tmp_path_factory.mktemp("kinds") / "ws"
    ws = Workspace(path)
    ws.run([TEMPLATE], ["chemotools:fermentation"], cv=3, name="pls")
    ws.run([["snv", "lda"]], ["chemotools:coffee"], cv=3, test_size=0.25, name="coffee")
    ws.add_dataset(str(REPO / "examples" / "fermentation_multi.csv"), name="ferm3")
    ws.run([[{"snv": {}}, {"pls": {"n_components": 3}}]], ["ferm3"], cv=5, name="grouped")
    return path


def test_a_stored_folder_serves_what_the_tree_builds_for_every_kind_of_result(every_kind):
    built = Tree(Workspace(every_kind), stored_renders=False)  # always built, never stored
    storing = Tree(Workspace(every_kind))
    fresh = Tree(Workspace(every_kind))
    folders = [
        f for d in built.list_kinds(("runs",)) for f in result_folders(built, ("runs", d[0]))
    ]
    assert len(folders) == 4
    expected = {f: seen(built, f) for f in folders}
    assert {f: seen(storing, f) for f in folders} == expected  # storing as it goes
    assert {f: seen(fresh, f) for f in folders} == expected  # all from stored folders
    assert rows_loaded(fresh) == 0
    assert any("cv_by_group.csv" in p for shown in expected.values() for p in shown)
    assert any("per_class.csv" in p for shown in expected.values() for p in shown)


def test_gc_drops_a_stored_folder_with_its_result_and_keeps_the_others(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    ws.render()
    catalogue = RenderCatalogue(ws.path, ws.store)
    (stamp,) = catalogue.stamps()
    before = {b for _, b, _ in catalogue.records(stamp)}
    tree = Tree(Workspace(ws.path))
    views = tree._current().views
    gone, kept = views.results_by_dataset[views.datasets["fermentation"].dataset_id]
    gone_folder = tree.files.memo.known(tree.files.folder_key(views, gone))[0]
    kept_folder = tree.files.memo.known(tree.files.folder_key(views, kept))[0]
    maintenance.remove_results(ws.index, [gone.result_id])
    ws.gc(grace_s=0)
    after = {b for _, b, _ in catalogue.records(stamp)}
    assert gone_folder in before - after and not ws.store.exists(gone_folder)
    assert kept_folder in after and ws.store.exists(kept_folder)
    fresh = Tree(Workspace(ws.path))
    (folder,) = result_folders(fresh, DATASET)
    seen(fresh, folder)
    assert fresh.memo.renders == 0 and rows_loaded(fresh) == 0
    assert ws.verify().ok


def test_a_render_named_by_a_stored_folder_whose_blob_is_gone_is_drawn_again(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    ws.render()
    built = Tree(Workspace(ws.path), stored_renders=False)
    folder = result_folders(built, DATASET)[0]
    path = (*folder, "predictions", "cv.csv")
    expected = bytes(built.read(built.lookup(path)))
    tree = Tree(Workspace(ws.path))
    node = tree.lookup(path)
    blob_id, size = tree.memo.known(node.content.key)
    os.chmod(ws.store.path_of(blob_id), 0o644)
    os.unlink(ws.store.path_of(blob_id))
    fresh = Tree(Workspace(ws.path))
    node = fresh.lookup(path)
    assert node.size == size == len(expected)  # as the stored folder says
    assert bytes(fresh.read(node)) == expected and fresh.memo.renders == 1


def test_a_reader_in_another_time_zone_gets_its_own_times(workspace, monkeypatch):
    def timing(tree: Tree) -> bytes:
        folder = result_folders(tree, DATASET)[0]
        return bytes(tree.read(tree.lookup((*folder, "logs", "timing.yaml"))))

    Tree(Workspace(workspace)).store_renders()  # stored in this process's zone
    try:
        for zone in ("UTC", "Asia/Tokyo"):
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            expected = timing(Tree(Workspace(workspace), stored_renders=False))
            assert timing(Tree(Workspace(workspace))) == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_stat_never_fails_because_its_folder_could_not_be_stored(tmp_path, monkeypatch):
    from n4afs_core.errors import BlobCorrupt

    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    tried = []

    def fails(views, result):
        tried.append(result.label)
        raise BlobCorrupt("a blob a YAML file needs is damaged")

    tree = Tree(Workspace(ws.path))
    monkeypatch.setattr(tree.files, "store_folder", fails)
    folder = result_folders(tree, DATASET)[0]
    node = tree.lookup((*folder, "pipeline.yaml"))
    assert tried == [folder[-1]] and node is not None and node.size > 0


@pytest.mark.parametrize(
    "stored",
    [b"not zlib", zlib.compress(b"[1, 2]"), zlib.compress(b'{"": [["x", 0, "r"]]}')],
    ids=["not-zlib", "not-a-mapping", "short-entry"],
)
def test_a_stored_folder_not_in_this_format_is_built_instead(tmp_path, stored):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    built = Tree(Workspace(ws.path), stored_renders=False)
    folder = result_folders(built, DATASET)[0]
    expected = seen(built, folder)
    tree = Tree(Workspace(ws.path))
    views = tree._current().views
    result = views.result(views.datasets["fermentation"].dataset_id, folder[-1])
    assert tree.memo.store(tree.files.folder_key(views, result), stored)
    assert tree.files.stored_folder(views, result) is None
    assert seen(Tree(Workspace(ws.path)), folder) == expected


def test_a_render_drawn_again_under_another_key_is_refused(workspace):
    from n4afs_core.errors import BlobCorrupt

    tree = Tree(Workspace(workspace))
    views = tree._current().views
    result = views.results_by_dataset[views.datasets["fermentation"].dataset_id][0]
    with pytest.raises(BlobCorrupt, match="differs from what the index shows"):
        tree.files._drawn(views, result, ("predictions",), "cv.csv", ("csv", "another key"))


def test_a_tree_storing_folders_later_queues_them_and_stores_them_when_asked(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    tree = Tree(Workspace(ws.path), auto_refresh=False, store_folders_later=True)
    one, two = result_folders(tree, DATASET)
    assert tree.lookup((*one, "pipeline.yaml")) is not None  # a `stat`: queued, not stored
    fresh = Tree(Workspace(ws.path))
    views = fresh._current().views
    by_label = {
        r.label: r for r in views.results_by_dataset[views.datasets["fermentation"].dataset_id]
    }
    assert fresh.files.stored_folder(views, by_label[one[-1]]) is None
    assert tree.store_looked_at(10.0) == 1 and tree.store_looked_at(10.0) == 0
    assert fresh.files.stored_folder(views, by_label[one[-1]]) is not None
    assert fresh.files.stored_folder(views, by_label[two[-1]]) is None


def test_the_mount_stores_the_folders_looked_into_once_idle(tmp_path):
    from tests.mount_fixture import Mount

    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    folder = result_folders(Tree(Workspace(ws.path)), DATASET)[0]
    mount = Mount(ws.path, tmp_path / "mnt")
    with mount.serving():
        for path in (mount.path.joinpath(*folder)).rglob("*"):
            path.stat()  # a `du`: every file stat'ed, nothing stored inside the callbacks
        fresh = Tree(Workspace(ws.path))
        views = fresh._current().views
        result = views.result(views.datasets["fermentation"].dataset_id, folder[-1])
        deadline = time.monotonic() + 60  # after the chart imports, once callbacks pause
        while fresh.files.stored_folder(views, result) is None:
            assert time.monotonic() < deadline, "the mount never stored the folder"
            time.sleep(0.2)
