"""A dataset folder's changing files (RESULTS.csv/.xlsx/.parquet, best_*, its ranking's
REPORT.html) are stored renders once its results are settled: a fresh process lists the
folder with every size (`ls -la`) and reads them without rendering anything; while a run adds
results, no state is stored; gc keeps the newest state of each and drops the earlier ones;
a run note set later is a new state, never a stale page."""

from __future__ import annotations

import hashlib

from n4afs_core.index import writes

from n4afs import Workspace
from n4afs.tree.tree import Tree

TEMPLATE = [["snv", {"pls": {"_or_": [{"n_components": 2}, {"n_components": 3}]}}]]
MORE = [["msc", {"pls": {"n_components": 2}}]]
FOLDER = ("runs", "fermentation")


def folder_files(tree: Tree) -> dict[str, tuple[int, str]]:
    """(size, sha256) of the dataset folder's changing files: `ls -la`, then each read
    (DATASET.yaml, tiny, is rendered in memory by every process: `IN_MEMORY_KINDS`)."""
    sizes = ls_la(tree)
    files = {}
    for name, size in sizes.items():
        data = bytes(tree.read(tree.lookup((*FOLDER, name)), 0, size))
        files[name] = (size, hashlib.sha256(data).hexdigest())
    return files


def ls_la(tree: Tree) -> dict[str, int]:
    listing = tree.list_dir(FOLDER).items()
    return {n: node.size for n, node in listing if n.startswith(("RESULTS.", "best_", "REPORT"))}


def test_a_fresh_tree_lists_and_reads_a_settled_dataset_folder_without_rendering(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    first = Tree(ws)
    drawn = folder_files(first)
    assert len(drawn) == 7  # RESULTS x3, best_* x3, REPORT.html
    assert first.memo.renders >= 7
    fresh = Tree(Workspace(ws.path))  # another process: nothing in its memory
    sizes = ls_la(fresh)
    assert fresh.memo.renders == 0  # `ls -la`: every size from its record
    assert folder_files(fresh) == drawn and {n: s for n, (s, _) in drawn.items()} == sizes
    assert fresh.memo.renders == 0  # and every byte from its blob


def test_rankings_of_a_run_still_adding_results_are_not_stored(tmp_path):
    ws = Workspace(tmp_path / "ws")
    run = ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    with ws.index.write() as conn:  # as seen while its process adds results
        writes.set_run_status(conn, run.run_id, "running")
        writes.record_owner(conn, run.run_id)
    first = Tree(Workspace(ws.path))
    drawn = folder_files(first)
    fresh = Tree(Workspace(ws.path))
    assert folder_files(fresh) == drawn
    redrawn = fresh.memo.renders  # RESULTS x3 and REPORT.html drawn again; best_* stored
    assert redrawn == 4


def test_gc_keeps_the_newest_state_of_a_ranking_and_drops_the_earlier(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    earlier = folder_files(Tree(Workspace(ws.path)))  # stored: the first state
    ws.run(templates=[MORE], datasets=["chemotools:fermentation"], cv=3)
    newest = folder_files(Tree(Workspace(ws.path)))  # stored: the second state
    assert earlier["RESULTS.csv"] != newest["RESULTS.csv"]
    report = ws.gc(grace_s=0)
    assert len(report.removed) >= 4  # the first state's RESULTS x3 and REPORT.html
    fresh = Tree(Workspace(ws.path))
    assert folder_files(fresh) == newest and fresh.memo.renders == 0
    assert ws.verify().ok


def test_a_run_note_set_later_is_a_new_ranking_report(tmp_path):
    ws = Workspace(tmp_path / "ws")
    run = ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=3)
    before = folder_files(Tree(Workspace(ws.path)))
    ws.note(run.run_id, "a note set after the run")
    fresh = Tree(Workspace(ws.path))
    report = fresh.lookup((*FOLDER, "REPORT.html"))
    assert b"a note set after the run" in bytes(fresh.read(report, 0, report.size))
    assert folder_files(fresh)["REPORT.html"] != before["REPORT.html"]
