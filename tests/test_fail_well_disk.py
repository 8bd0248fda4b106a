"""A full disk, wherever it fills (under the index, the blobs, an S3 store's local cache),
stops a run with one line and the command that finishes it, and reading commands keep
working while it stays full. Needs root to mount a small tmpfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from n4afs_core import maintenance
from n4afs_core.errors import RunError
from n4afs_core.pipelines.runner import RunOptions, execute_run, plan_run
from n4afs_core.pipelines.templates import load_templates

from n4afs.workspace import Workspace
from tests.cli_process import cli
from tests.test_scaleout import s3  # noqa: F401 - the moto S3 server fixture

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
SWEEP = "- {_or_: [snv, msc, detrend]}\n- pls: {n_components: {_range_: [1, 5]}}\n"


@pytest.fixture
def small(small_tmpfs):
    """A 40 MiB tmpfs: small enough to fill in a moment."""
    return small_tmpfs("40m")


def fill(where: Path, keep: int) -> Path:
    """Fill `where`'s file system, leaving `keep` bytes free; the filler's path."""
    filler = where / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    os.truncate(filler, os.path.getsize(filler) - keep)
    return filler


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("keep", [0, 128 * 1024, 512 * 1024])
def test_a_full_disk_under_the_index_is_one_line_and_reads_keep_working(small, keep):
    ws = Workspace(small / "ws")
    ws.add_dataset("chemotools:fermentation")
    ws.run(templates=[["snv", "pls"]], datasets=["fermentation"], cv=3, name="before")
    template = small / "sweep.yaml"
    template.write_text(SWEEP)
    filler = fill(small, keep)

    done = cli("-w", str(ws.path), "run", str(template), "-d", "fermentation", "--cv", "3")
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith("error: disk full"), line
    planned = [r for r in ws.runs() if r.name == "run"]
    assert bool(planned) == (keep > 0)  # 0: the plan's commit failed; else its checkpoint
    if planned:  # the plan reached the index: the message says how to finish it
        assert f"n4afs run --resume {planned[0].run_id}" in line
    else:
        assert "nothing was written" in line
    for command in (["runs"], ["best", "fermentation"], ["ls", "runs/fermentation"]):
        answer = cli("-w", str(ws.path), *command)
        assert answer.returncode == 0 and "Traceback" not in answer.stderr, answer.stderr

    filler.unlink()
    if planned:
        assert ws.get_run(planned[0].run_id).status == "interrupted"
        assert ws.resume(planned[0].run_id).status == "completed"
    assert maintenance.verify(ws.index, ws.store).ok


def test_a_full_disk_on_an_s3_workspace_gives_the_disk_full_message(small, s3):  # noqa: F811
    ws = Workspace(small / "ws", store="s3://n4a-bucket/full-disk")
    ws.add_dataset("chemotools:fermentation")
    templates = load_templates([[{"_or_": ["snv", "msc"]}, "pls"]])
    run_id = plan_run(ws.index, templates, [ws.dataset("fermentation")], RunOptions(cv=3), "s3")
    filler = fill(small, 0)
    with pytest.raises(RunError, match=f"disk full.*n4afs run --resume {run_id}"):
        execute_run(ws.index, ws.store, run_id)
    filler.unlink()
    assert ws.resume(run_id).status == "completed"


def test_a_copy_of_the_index_that_fills_the_disk_is_removed(small):
    """A writer that must write a copy (a reader holds on) and finds no room for it says
    so and leaves no partial copy to hold the last free space (found in review)."""
    from n4afs_core.errors import DiskFull

    ws = Workspace(small / "ws")
    ws.add_dataset("chemotools:fermentation")
    filler = fill(small, 4096)
    refused = pytest.raises(DiskFull, match="disk full under the index")
    with ws.index.lock.shared(), refused, ws.index.write() as conn:
        conn.execute("UPDATE datasets SET name = name")
    assert not (ws.path / "n4a.duckdb.next").exists()
    filler.unlink()
    assert [d.name for d in ws.datasets()] == ["fermentation"]
