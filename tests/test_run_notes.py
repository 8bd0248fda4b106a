"""Run notes (#20): `run --note "…"` and `n4afs note RUN "…"`, kept in the index and shown
in RUN.yaml, which a tree already open sees change (a mutable file)."""

from __future__ import annotations

import duckdb
import pytest
import yaml
from n4afs_core.index.database import SCHEMA_DIR, migrations_in
from n4afs_core.index.names import InvalidName

from n4afs.surfaces.fs import N4AFileSystem
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.cli_process import cli

SWEEP = [{"pls": {"n_components": 2}}]


def run_yaml(tree: Tree, run_id: str) -> dict:
    return yaml.safe_load(tree.read(tree.lookup(("by-run", run_id, "RUN.yaml"))))


def test_a_note_given_with_the_run_is_in_run_yaml(tmp_path):
    ws = Workspace(tmp_path / "ws")
    run = ws.run([SWEEP], ["chemotools:fermentation"], cv=3, name="lamp", note="new lamp, day 2")
    assert run_yaml(Tree(ws), run.run_id)["note"] == "new lamp, day 2"
    (row,) = [r for r in ws.runs() if r.run_id == run.run_id]
    assert row.note == "new lamp, day 2"


def test_a_note_added_later_shows_in_an_open_tree_and_through_fsspec(tmp_path):
    ws = Workspace(tmp_path / "ws")
    run = ws.run([SWEEP], ["chemotools:fermentation"], cv=3, name="plain")
    tree = Tree(ws)
    before = run_yaml(tree, run.run_id)
    assert "note" not in before
    fs = N4AFileSystem()
    url = f"n4a://{ws.path}/by-run/{run.run_id}/RUN.yaml"
    assert b"note:" not in fs.cat_file(url)
    node = tree.lookup(("by-run", run.run_id, "RUN.yaml"))
    assert node.mutable
    ws.note(run.run_id, "outlier 17 is a mislabelled sample")
    after = run_yaml(tree, run.run_id)  # the same tree: the change token moved
    assert after["note"] == "outlier 17 is a mislabelled sample"
    assert {k: v for k, v in after.items() if k != "note"} == before
    assert yaml.safe_load(fs.cat_file(url))["note"] == "outlier 17 is a mislabelled sample"
    ws.note("plain", "replaced")  # a run named as anywhere else: its name, a prefix
    assert run_yaml(tree, run.run_id)["note"] == "replaced"


def test_a_bad_note_is_one_clear_error_and_writes_nothing(tmp_path):
    ws = Workspace(tmp_path / "ws")
    run = ws.run([SWEEP], ["chemotools:fermentation"], cv=3, name="plain", note="kept")
    with pytest.raises(InvalidName, match="run note"):
        ws.note(run.run_id, "bad\x07bell")
    with pytest.raises(InvalidName, match="run note"):
        ws.run([SWEEP], ["fermentation"], cv=3, name="refused", note="   ")
    assert [r.name for r in ws.runs()] == ["plain"]  # nothing planned
    assert run_yaml(Tree(ws), run.run_id)["note"] == "kept"


def test_the_cli_sets_notes_on_run_and_later(tmp_path):
    ws_path = tmp_path / "ws"
    template = tmp_path / "pls.yaml"
    template.write_text("name: pls\nsteps:\n  - pls: {n_components: 2}\n", encoding="utf-8")
    done = cli(
        "-w", str(ws_path), "run", str(template), "-d", "chemotools:fermentation",
        "--cv", "3", "--name", "cli", "--note", "from the CLI",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ws = Workspace(ws_path, create=False)
    (run,) = ws.runs()
    assert run_yaml(Tree(ws), run.run_id)["note"] == "from the CLI"
    done = cli("-w", str(ws_path), "note", "cli", "Lot B. Réglage du détecteur")
    assert done.returncode == 0, done.stderr
    assert run.run_id in done.stdout
    assert run_yaml(Tree(ws), run.run_id)["note"] == "Lot B. Réglage du détecteur"
    bad = cli("-w", str(ws_path), "note", "nosuchrun", "text")
    assert bad.returncode == 2 and "no run 'nosuchrun'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_an_index_from_before_notes_is_upgraded_and_its_runs_have_none(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run([SWEEP], ["chemotools:fermentation"], cv=3, name="old")
    with ws.index.write() as conn:  # as the index was before schema 008
        conn.execute("ALTER TABLE runs DROP COLUMN note")
        conn.execute("ALTER TABLE runs DROP COLUMN noted_at")
        conn.execute("DELETE FROM schema_version WHERE version >= 8")
    again = Workspace(tmp_path / "ws", create=False)
    (run,) = again.runs()
    assert run.note is None and "note" not in run_yaml(Tree(again), run.run_id)
    versions = duckdb.connect(str(tmp_path / "ws" / "n4a.duckdb"), read_only=True).execute(
        "SELECT max(version) FROM schema_version"
    )
    assert versions.fetchone()[0] == max(m.version for m in migrations_in(SCHEMA_DIR)) >= 8
