"""A result's REPORT.html is a stored render, keyed by everything it shows: a fresh process
sizes it (`stat`, `ls -l`, `du`) and reads it without drawing its charts, unpickling its
model or importing the chart libraries; a run note set later is a new key, never a stale
page."""

from __future__ import annotations

from n4afs import Workspace
from tests import test_stored_renders

# a two-result fermentation run (module scope: this module's own)
workspace = test_stored_renders.workspace


def report_path(tree) -> tuple[str, ...]:
    label = next(n for n in tree.list_dir(("runs", "fermentation")) if n.startswith("0001_"))
    return ("runs", "fermentation", label, "REPORT.html")


def read(tree, path) -> tuple[int, bytes]:
    node = tree.lookup(path)
    return node.size, bytes(tree.read(node, 0, node.size))


def test_a_fresh_tree_sizes_and_reads_a_result_report_without_rendering(workspace):
    first = Workspace(workspace).tree
    size, data = read(first, report_path(first))
    assert size == len(data) and data.startswith(b"<!DOCTYPE html")
    fresh = Workspace(workspace).tree  # another process's tree: nothing in its memory
    path = report_path(fresh)
    assert fresh.lookup(path).size == size
    assert fresh.memo.renders == 0  # sized from its record
    assert read(fresh, path) == (size, data)
    assert fresh.memo.renders == 0  # read from its blob


def test_a_run_note_set_later_shows_in_a_fresh_tree_s_report(workspace):
    ws = Workspace(workspace)
    tree = ws.tree
    size, data = read(tree, report_path(tree))
    run = next(iter(tree.views.runs_by_id))
    ws.note(run, "PLS on fermentation, a note set after the run")
    fresh = Workspace(workspace).tree
    noted_size, noted = read(fresh, report_path(fresh))
    assert b"a note set after the run" in noted and b"a note set after the run" not in data
    assert noted_size == len(noted) != size
