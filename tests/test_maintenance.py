"""du, rm, gc, verify; crash points; a full disk; two runs, a mount and queries at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from n4afs_core import maintenance
from n4afs_core.errors import RunError

from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.cli_process import cli
from tests.mount_fixture import REPO, Mount, wait_for

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [2, 4]}}}]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def swept(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=4, name="first")
    ws.run(
        templates=[[{"_or_": ["snv", "msc"]}, "lda"]],
        datasets=["chemotools:coffee"],
        cv=3,
        name="coffee",
    )
    return ws


def test_du_reports_logical_against_stored(swept):
    out = cli("-w", str(swept.path), "du", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["logical_bytes"] > 2 * report["referenced_bytes"] > 0
    assert {d["dataset"] for d in report["datasets"]} == {"fermentation", "coffee"}
    assert sum(r["results"] for r in report["runs"]) == 8
    assert report["unreferenced_bytes"] == 0
    narrowed = json.loads(cli("-w", str(swept.path), "du", "runs/coffee", "--json").stdout)
    assert [d["dataset"] for d in narrowed["datasets"]] == ["coffee"]
    assert "largest results" in cli("-w", str(swept.path), "du").stdout


def test_rm_run_then_gc_reclaims_and_numbers_are_not_reused(swept):
    coffee_run = next(r.run_id for r in swept.runs() if r.name == "coffee")
    dry = cli("-w", str(swept.path), "rm", coffee_run, "--dry-run")
    assert "2 results would be removed" in dry.stdout and len(swept.runs()) == 2
    assert cli("-w", str(swept.path), "rm", coffee_run, "-y").returncode == 0
    assert [r.name for r in swept.runs()] == ["first"]
    assert "coffee" not in [n for n in Tree(swept).list_dir(("best",))]
    unreferenced = maintenance.usage(swept.index, swept.store)["unreferenced_bytes"]
    assert unreferenced > 0
    young = maintenance.gc(swept.index, swept.store)  # default grace: everything is young
    assert young.removed == [] and young.spared_young > 0
    done = maintenance.gc(swept.index, swept.store, grace_s=0)
    assert done.removed_bytes >= unreferenced > 0
    assert maintenance.verify(swept.index, swept.store).ok
    again = swept.run(templates=[[{"_or_": ["snv", "msc"]}, "lda"]], datasets=["coffee"], cv=3)
    assert min(r.seq for r in again.results) == 3  # 1 and 2 were used by the removed run


def test_rm_result_path_keep_best_and_older_than(swept):
    labels = [r.row.label for r in swept.results("fermentation")]
    assert cli("-w", str(swept.path), "rm", f"runs/fermentation/{labels[-1]}", "-y").returncode == 0
    assert len(swept.results("fermentation")) == 5
    assert cli("-w", str(swept.path), "rm", "--keep-best", "2", "-y").returncode == 0
    assert [r.row.label for r in swept.results("fermentation")] == labels[:2]
    assert len(swept.results("coffee")) == 2
    assert cli("-w", str(swept.path), "rm", "--older-than", "30d", "-y").stdout.startswith(
        "nothing to remove"
    )
    time.sleep(1.1)
    assert cli("-w", str(swept.path), "rm", "--older-than", "1m", "--dry-run").returncode == 0
    bad = cli("-w", str(swept.path), "rm", "--older-than", "soon")
    assert bad.returncode == 2 and "30d" in bad.stderr


def test_the_python_api_does_what_rm_gc_and_verify_do(swept):
    fermentation = [f"fermentation/{r.row.label}" for r in swept.results("fermentation")]
    declined = swept.remove(["coffee"], confirm=lambda removal: False)
    assert not declined.done and len(declined.labels) == 2 and len(swept.runs()) == 2
    dry = swept.remove(keep_best=4, dry_run=True)
    assert not dry.done and dry.labels == fermentation[4:]
    folder = ("runs", *fermentation[-1].split("/"))
    assert swept.remove([folder]).labels == fermentation[-1:]
    gone = swept.remove(["coffee"])
    assert gone.done and len(gone.labels) == 2 and len(gone.runs_removed) == 1
    assert [r.name for r in swept.runs()] == ["first"]
    assert swept.gc(grace_s=0).removed and swept.verify().ok


def test_a_planned_run_is_pending_until_finished(tmp_path):
    ws = Workspace(tmp_path / "ws")
    planned = ws.run([SWEEP], ["chemotools:fermentation"], cv=3, metric="r2", compute=False)
    assert planned.pending() == (6, "r2") and planned.datasets == ["fermentation"]
    assert planned.finish().status == "completed" and planned.pending() == (0, None)


def test_gc_spares_blobs_of_an_in_flight_run(swept):
    blob = swept.store.put(b"written by a worker, rows not committed yet")
    assert maintenance.gc(swept.index, swept.store).spared_young == 1
    assert swept.store.exists(blob)
    old = time.time() - 7200
    os.utime(swept.store.path_of(blob), (old, old))
    swept.store.put(b"written by a worker, rows not committed yet")  # a run re-uses it
    maintenance.gc(swept.index, swept.store)
    assert swept.store.exists(blob)
    os.utime(swept.store.path_of(blob), (old, old))
    report = maintenance.gc(swept.index, swept.store)
    assert report.removed == [blob] and not swept.store.exists(blob)


def test_verify_finds_corruption_and_repair_marks_results_broken(swept):
    best = swept.best("fermentation")
    final = best.load_model("final")
    assert final is not None
    (artifact,) = [
        b
        for (b,) in swept.index.fetchall(
            "SELECT a.blob_id FROM models m JOIN artifacts a USING (model_id) "
            "WHERE m.result_id = ? AND m.role = 'final' AND a.step_name = 'pls_model'",
            [best.row.result_id],
        )
    ]
    path = swept.store.path_of(artifact)
    os.chmod(path, 0o644)
    path.write_bytes(b"not a model")
    out = cli("-w", str(swept.path), "verify")
    assert out.returncode == 1 and "1 corrupt" in out.stdout
    assert cli("-w", str(swept.path), "verify", "--repair").returncode == 1
    report = maintenance.verify(swept.index, swept.store)
    assert report.missing == [artifact]  # quarantined: nothing serves it any more
    label = best.row.label
    tree = Tree(swept)
    assert set(tree.list_dir(("runs", "fermentation", label))) == {"pipeline.yaml", "logs"}
    log = tree.read(tree.lookup(("runs", "fermentation", label, "logs", "error.log")))
    assert b"broken" in log and artifact[:8].encode() in log
    assert swept.best("fermentation").row.label != label  # no longer ranked as best


def final_model_artifact(ws) -> str:
    (blob,) = ws.index.fetchall(
        "SELECT a.blob_id FROM models m JOIN artifacts a USING (model_id) "
        "WHERE m.result_id = ? AND m.role = 'final' AND a.step_name = 'pls_model'",
        [ws.best("fermentation").row.result_id],
    )[0]
    return blob


def broken_count(ws) -> int:
    return ws.index.fetchall("SELECT count(*) FROM results WHERE status = 'broken'")[0][0]


def test_a_corrupt_object_is_quarantined_recreated_and_its_results_complete_again(swept):
    ws, best = str(swept.path), swept.best("fermentation").row.result_id
    artifact = final_model_artifact(swept)
    path = swept.store.path_of(artifact)
    size = path.stat().st_size
    os.chmod(path, 0o644)
    path.write_bytes(b"x" * size)  # same size, read-only again: only a hash finds it
    os.chmod(path, 0o444)
    found = cli("-w", ws, "verify")
    assert found.returncode == 1 and f"corrupt: {artifact}" in found.stdout

    repaired = cli("-w", ws, "verify", "--repair")
    assert repaired.returncode == 1 and "results marked broken" in repaired.stdout
    assert (swept.path / "quarantine" / artifact).exists() and not swept.store.exists(artifact)
    assert broken_count(swept) > 0
    (command,) = [line.strip() for line in repaired.stdout.splitlines() if "--again" in line]
    assert command.startswith("n4afs run --again ")

    recreated = cli("-w", ws, *command.split()[1:])
    assert recreated.returncode == 0, recreated.stderr
    assert swept.store.verify(artifact)  # the new run put the very same bytes
    whole = cli("-w", ws, "verify")
    assert whole.returncode == 0 and "would be completed again (--repair)" in whole.stdout
    assert cli("-w", ws, "verify", "--repair").returncode == 0
    assert broken_count(swept) == 0 and cli("-w", ws, "verify").returncode == 0
    status = swept.index.fetchall("SELECT status FROM results WHERE result_id = ?", [best])
    assert status == [("completed",)]


def test_editing_a_hard_linked_export_is_caught_by_verify_and_healed_by_a_re_run(swept, tmp_path):
    ws = str(swept.path)
    label = swept.best("fermentation").row.label
    swept.export(f"runs/fermentation/{label}", tmp_path / "out", link=True)
    (pkl,) = (tmp_path / "out" / label / "models").glob("final_*/pls_model.pkl")
    artifact = final_model_artifact(swept)
    assert pkl.stat().st_ino == swept.store.path_of(artifact).stat().st_ino  # ext4: hard link
    os.chmod(pkl, 0o644)  # what a user editing an --link export does: the file IS the object
    pkl.write_bytes(b"edited")
    found = cli("-w", ws, "verify")
    assert found.returncode == 1 and f"corrupt: {artifact}" in found.stdout
    (run_id,) = swept.index.fetchall("SELECT run_id FROM runs WHERE name = 'first'")[0]
    assert cli("-w", ws, "run", "--again", run_id).returncode == 0  # its put replaces it
    assert cli("-w", ws, "verify").returncode == 0
    assert pkl.read_bytes() == b"edited"  # the user's file is now a file of its own


# -- crash points ------------------------------------------------------------------------------
KILL_BEFORE_COMMIT = r"""
import sys, time
import n4afs_core.pipelines.runner as runner
from n4afs.workspace import Workspace

original = runner.commit_payloads
def stall(conn, payloads):  # the group's blobs are durable; its rows are not committed
    open(sys.argv[2], "w").write("blobs written")
    time.sleep(120)
runner.commit_payloads = stall
Workspace(sys.argv[1]).run(templates=[SWEEP], datasets=["fermentation"], cv=4, name="crash")
"""


def _kill_when(script: str, args: list[str], marker: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", script, *args], env=ENV)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, "the process ended before the kill point"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def test_kill_between_blobs_and_rows_then_verify_and_resume(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.add_dataset("chemotools:fermentation")
    marker = tmp_path / "marker"
    _kill_when(f"SWEEP = {SWEEP!r}\n" + KILL_BEFORE_COMMIT, [str(ws.path), str(marker)], marker)
    report = maintenance.verify(ws.index, ws.store)
    assert report.ok and report.orphans  # blobs without rows: garbage, not damage
    (run,) = ws.runs()
    assert run.n_results == 0 and run.n_pending == 6
    resumed = ws.resume(run.run_id)
    assert resumed.status == "completed" and len(resumed.results) == 6
    after = maintenance.verify(ws.index, ws.store)
    assert after.ok and after.orphans == []  # the resumed run re-used the orphaned blobs


KILL_DURING_GC = r"""
import sys, time
from n4afs_core import maintenance
from n4afs.workspace import Workspace

ws = Workspace(sys.argv[1])
removed = []
original = ws.store.remove
def slow_remove(blob_id):
    original(blob_id)
    removed.append(blob_id)
    if len(removed) == 3:
        open(sys.argv[2], "w").write("3 removed")
        time.sleep(120)
ws.store.remove = slow_remove
maintenance.gc(ws.index, ws.store, grace_s=0)
"""


def test_kill_during_gc_leaves_the_workspace_consistent(swept, tmp_path):
    coffee_run = next(r.run_id for r in swept.runs() if r.name == "coffee")
    maintenance.remove_results(swept.index, maintenance.results_of_runs(swept.index, [coffee_run]))
    marker = tmp_path / "marker"
    _kill_when(KILL_DURING_GC, [str(swept.path), str(marker)], marker)
    report = maintenance.verify(swept.index, swept.store)
    assert report.ok and report.orphans  # half-swept garbage, nothing referenced lost
    assert maintenance.gc(swept.index, swept.store, grace_s=0).removed
    assert maintenance.verify(swept.index, swept.store).orphans == []


def test_a_full_disk_fails_the_run_clearly_and_half_writes_nothing(small_tmpfs):
    small = small_tmpfs("10m")
    ws = Workspace(small / "ws")
    ws.add_dataset("chemotools:fermentation")
    big = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 15]}}}]
    with pytest.raises(RunError, match="disk full.*n4afs run --resume"):
        ws.run(templates=[big], datasets=["fermentation"], cv=5, name="full")
    report = maintenance.verify(ws.index, ws.store)
    assert report.ok, report
    (run,) = ws.runs()
    assert run.status == "interrupted" and run.n_pending > 0  # resumable once space is freed
    for result in ws.get_run(run.run_id).results:
        assert result.row.status == "completed" and result.row.predictions_blob


# -- everything at once ---------------------------------------------------------------------------
CONCURRENT_RUN = r"""
import sys
from n4afs.workspace import Workspace
template = [{"_or_": ["snv", "msc", "detrend"]}, {"pls": {"n_components": {"_range_": [1, 6]}}}]
run = Workspace(sys.argv[1]).run(templates=[template], datasets=["fermentation"], cv=4,
                                 name=sys.argv[2])
print(run.status, len(run.results))
"""


def test_two_runs_a_mount_and_queries_at_once(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.add_dataset("chemotools:fermentation")
    mount = Mount(ws.path, tmp_path / "mnt").start()
    try:
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", CONCURRENT_RUN, str(ws.path), name],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("alpha", "beta")
        ]
        errors, reads = [], 0
        while any(p.poll() is None for p in runs):
            for args in (["runs"], ["best", "fermentation"], ["ls", "runs/fermentation"]):
                out = cli("-w", str(ws.path), *args)
                if "locked" in out.stderr or "Traceback" in out.stderr:
                    errors.append(out.stderr)
            listing = list((mount.path / "runs").iterdir())
            for folder in (mount.path / "runs" / "fermentation").glob("0*"):
                (folder / "pipeline.yaml").read_bytes()
                reads += 1
            assert listing is not None
        outputs = [p.communicate(timeout=60) for p in runs]
        assert [p.returncode for p in runs] == [0, 0], outputs
        assert all(o[0].strip() == "completed 18" for o in outputs), outputs
        assert errors == []
        wait_for(lambda: len(list((mount.path / "runs" / "fermentation").glob("0*"))) == 36, 30)
        assert reads > 0
    finally:
        mount.stop()
    mount.assert_clean_log()
    assert maintenance.verify(ws.index, ws.store).ok


def test_gc_keeps_rows_of_an_object_re_used_during_the_sweep(ws, monkeypatch):
    blob = ws.store.put(b"old garbage about to be re-used")
    old = 1_000_000.0
    os.utime(ws.store.path_of(blob), (old, old))
    seen = []
    real_mtime = ws.store.mtime

    def mtime(blob_id):
        seen.append(blob_id)
        if blob_id == blob and seen.count(blob) == 2:  # re-used between the two looks
            ws.store.touch(blob)
        return real_mtime(blob_id)

    monkeypatch.setattr(ws.store, "mtime", mtime)
    report = maintenance.gc(ws.index, ws.store)
    assert blob not in report.removed and ws.store.exists(blob)
