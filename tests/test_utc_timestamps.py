"""Times in the index are instants (#22, teams): writers in several time zones, one index.

A team writes into one index from machines in several zones (France, Germany, servers in
UTC). Every stored time must name one instant whoever wrote it, so runs order by when they
happened, tree mtimes are true epoch seconds, and each reader sees times in its own zone.
Each writer below is its own process with its own `TZ`, as on separate machines.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.cli_process import cli

ONE_CONFIG = {"name": "one", "steps": [{"pls": {"n_components": 3}}]}
# winter: Paris is UTC+1, New York UTC-5, Tokyo UTC+9: a naive local time is 6 h off
PARIS, NEW_YORK, TOKYO = "Europe/Paris", "America/New_York", "Asia/Tokyo"


def _run_in_zone(workspace: Path, template: Path, name: str, zone: str) -> tuple[float, float]:
    """`n4afs run` in a process whose local time zone is `zone`; the epoch seconds before
    and after it."""
    before = time.time()
    done = cli(
        "-w", str(workspace), "run", str(template), "-d", "fermentation", "--cv", "3",
        "--name", name, env={"TZ": zone},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return before, time.time()


def _runs_csv(workspace: Path, zone: str) -> list[dict]:
    done = cli("-w", str(workspace), "runs", "--csv", env={"TZ": zone})
    assert done.returncode == 0, done.stderr
    return list(csv.DictReader(io.StringIO(done.stdout)))


def _check_two_zones(tmp_path: Path, reader: Workspace, paris: Path, new_york: Path) -> None:
    template = tmp_path / "one.yaml"
    template.write_text(yaml.safe_dump(ONE_CONFIG))
    first = _run_in_zone(paris, template, "paris", PARIS)
    time.sleep(1.1)  # whole seconds apart, as the tree shows them
    second = _run_in_zone(new_york, template, "newyork", NEW_YORK)

    # the order of runs is the order they ran in, whoever wrote them
    assert [r.name for r in reader.runs()] == ["paris", "newyork"]
    listed = _runs_csv(paris, TOKYO)
    assert [r["name"] for r in listed] == ["paris", "newyork"]

    tree = Tree(reader)
    for row, (before, after) in zip(reader.runs(), (first, second), strict=True):
        # the index hands back instants, and the tree's mtimes are true epoch seconds
        assert row.created_at.tzinfo is not None and row.finished_at.tzinfo is not None
        assert before - 1 <= row.created_at.timestamp() <= row.finished_at.timestamp() <= after + 1
        for path in (("by-run", row.run_id), ("by-run", row.run_id, "RUN.yaml")):
            assert before - 1 <= tree.lookup(path).mtime <= after + 1, path
        (result,) = [r for r in reader.results("fermentation") if r.run_id == row.run_id]
        folder = ("runs", "fermentation", result.label)
        assert before - 1 <= tree.lookup(folder).mtime <= after + 1
        # RUN.yaml says when, with its offset: one instant, shown in the reader's zone
        started = datetime.fromisoformat(
            yaml.safe_load(tree.read(tree.lookup(("by-run", row.run_id, "RUN.yaml"))))["started"]
        )
        assert started.utcoffset() == datetime.fromtimestamp(before).astimezone().utcoffset()
        assert abs(started.timestamp() - row.created_at.timestamp()) < 1

    # a reader in Tokyo sees Tokyo times: the CSV's ISO text carries Tokyo's offset
    for shown, row in zip(listed, reader.runs(), strict=True):
        when = datetime.fromisoformat(shown["started"])
        assert when.utcoffset().total_seconds() == 9 * 3600
        assert abs(when.timestamp() - row.created_at.timestamp()) < 1
    table = cli("-w", str(paris), "runs", "--table", env={"TZ": TOKYO, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    for row in reader.runs():
        tokyo = _in_zone(row.created_at.timestamp(), TOKYO)
        assert tokyo in table.stdout, (tokyo, table.stdout)


def _in_zone(epoch: float, zone: str) -> str:
    """`epoch` as `YYYY-MM-DD HH:MM` on a clock in `zone`."""
    code = f"import time; print(time.strftime('%Y-%m-%d %H:%M', time.localtime({epoch!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"TZ": zone}, check=True
    )
    return done.stdout.strip()


def test_runs_written_from_two_time_zones_order_and_date_right(tmp_path):
    """Two writers (Paris, then New York) on one DuckDB workspace, read from here and from
    Tokyo."""
    ws = Workspace(tmp_path / "ws")
    ws.add_dataset("chemotools:fermentation", name="fermentation")
    _check_two_zones(tmp_path, ws, ws.path, ws.path)


def test_runs_written_from_two_time_zones_into_a_shared_index(tmp_path, pg_index_url):
    """Two workspace folders (two machines, two zones) on one PostgreSQL index."""
    store = f"file://{tmp_path / 'shared-store'}"
    alice = Workspace(tmp_path / "alice", store=store, index=pg_index_url)
    bob = Workspace(tmp_path / "bob", store=store, index=pg_index_url)
    alice.add_dataset("chemotools:fermentation", name="fermentation")
    _check_two_zones(tmp_path, bob, alice.path, bob.path)


# --- an index written before times were instants ------------------------------------------

# (table, column) of every time the index stores, and the indexes DuckDB must drop to alter them
TIME_COLUMNS = [
    ("schema_version", "applied_at"),
    ("blobs", "created_at"),
    ("datasets", "created_at"),
    ("dataset_aliases", "created_at"),
    ("runs", "created_at"),
    ("runs", "finished_at"),
    ("runs", "noted_at"),
    ("results", "created_at"),
    ("models", "created_at"),
    ("imports", "created_at"),
]
INDEXES = {
    "datasets": "datasets_name ON datasets(name)",
    "results": "results_run ON results(run_id)",
    "models": "models_result ON models(result_id)",
}

AS_BEFORE = """
import sys
from n4afs.workspace import Workspace
from tests.test_utc_timestamps import INDEXES, TIME_COLUMNS
ws = Workspace(sys.argv[1], create=False)
with ws.index.write() as conn:  # as schema 008 stored them: this zone's wall-clock times
    for table, column in TIME_COLUMNS:
        if table in INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {INDEXES[table].split()[0]}")
        conn.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE TIMESTAMP")
        if table in INDEXES:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {INDEXES[table]}")
    conn.execute("DELETE FROM schema_version WHERE version >= 9")
"""


def _in_process(code: str, *args: str, zone: str) -> str:
    from tests.cli_process import ENV

    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**ENV, "TZ": zone},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


READ_TIMES = """
import json, sys
from n4afs.workspace import Workspace
ws = Workspace(sys.argv[1], create=False)
(run,) = ws.runs()
print(json.dumps([ws.index.schema_version(), run.created_at.timestamp(),
                  run.finished_at.timestamp(), run.created_at.isoformat()]))
"""


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_an_index_from_before_keeps_its_instants_when_upgraded_in_its_zone(
    tmp_path, engine, request
):
    """Schema 009 reads an older index's wall-clock times in the zone of the machine that
    upgrades it, the zone they were written in (a workspace used from one place)."""
    options = {}
    if engine == "postgresql":
        options = {"index": request.getfixturevalue("pg_index_url")}
        options["store"] = f"file://{tmp_path / 'shared-store'}"
    ws = Workspace(tmp_path / "ws", **options)
    before = time.time()
    ws.run([ONE_CONFIG], ["chemotools:fermentation"], cv=3, name="old")
    after = time.time()
    _in_process(AS_BEFORE, str(ws.path), zone=PARIS)

    version, created, finished, shown = json.loads(
        _in_process(READ_TIMES, str(ws.path), zone=PARIS)
    )
    assert version >= 9
    assert before - 1 <= created <= finished <= after + 1
    assert datetime.fromisoformat(shown).utcoffset().total_seconds() == 3600  # shown in Paris
