"""A shared index on PostgreSQL (#22, item 1): `n4afs init WS --index postgresql://...`.

A real server (tests/postgres_fixture.py: Debian's binaries, initdb + pg_ctl in a
temporary folder, loopback and a Unix socket). What a team needs from it: the same answers
as the DuckDB index for the same sweep; several coordinators, in several processes and
workspace folders, writing into one index at once, every result landing exactly once;
everyone's listings and trees seeing everyone's results.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from n4afs.workspace import Workspace
from tests.cli_process import ENV, cli

SWEEP = {
    "name": "sweep",
    "steps": [{"_or_": ["snv", "msc", None]}, {"pls": {"n_components": {"_range_": [2, 6]}}}],
}  # 3 x 5 = 15 configurations


def _without_run_ids(text: str, run_ids: list[str]) -> str:
    for i, run_id in enumerate(run_ids):
        text = text.replace(run_id, f"RUN{i}")
    return text


def _store(tmp_path) -> str:
    """The one store every workspace on a test's shared index uses."""
    return f"file://{tmp_path / 'shared-store'}"


def _tree_text(ws: Workspace, path: tuple[str, ...]) -> str:
    tree = ws.tree
    return tree.read(tree.lookup(path)).decode()


def test_init_records_the_shared_index_and_reopening_uses_it(tmp_path, pg_index_url):
    ws = Workspace(tmp_path / "ws", store=_store(tmp_path), index=pg_index_url)
    assert ws.index.engine == "postgresql"
    assert not (tmp_path / "ws" / "n4a.duckdb").exists()
    assert yaml.safe_load((tmp_path / "ws" / "n4a.yaml").read_text())["index"] == pg_index_url
    again = Workspace(tmp_path / "ws", create=False)
    assert again.index.engine == "postgresql"
    assert again.index.schema_version() == ws.index.schema_version() >= 8


def test_the_environment_variable_chooses_the_index_of_a_new_workspace(
    tmp_path, pg_index_url, monkeypatch
):
    monkeypatch.setenv("N4AFS_INDEX", pg_index_url)
    assert Workspace(tmp_path / "new", store=_store(tmp_path)).index.engine == "postgresql"
    monkeypatch.setenv("N4AFS_INDEX", "")
    assert Workspace(tmp_path / "new").index.engine == "postgresql"  # recorded
    assert Workspace(tmp_path / "other").index.engine == "duckdb"


def test_bad_index_urls_are_one_line_refusals(tmp_path, postgres_server):
    for url, words in [
        ("mysql://x/y", "PostgreSQL URL"),
        (f"postgresql://n4a:secret@127.0.0.1:{postgres_server.port}/x", "PGPASSWORD"),
    ]:
        done = cli("init", str(tmp_path / "w"), "--index", url)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "w" / "n4a.yaml").exists()
    Workspace(tmp_path / "local")  # a DuckDB workspace cannot move to a shared index
    done = cli("init", str(tmp_path / "local"), "--index", postgres_server.url())
    assert done.returncode == 2 and "has its own index" in done.stderr


def test_everyone_on_a_shared_index_uses_its_store(tmp_path, pg_index_url):
    """A shared index lists results whose bytes must be reachable from every workspace:
    the first names the store, later ones adopt it, another store or none is refused
    before anything is written."""
    done = cli("init", str(tmp_path / "nostore"), "--index", pg_index_url)
    assert done.returncode == 2 and "needs a store" in done.stderr, done.stderr
    assert not (tmp_path / "nostore").exists() or not any((tmp_path / "nostore").iterdir())
    first = Workspace(tmp_path / "first", store=_store(tmp_path), index=pg_index_url)
    joiner = Workspace(tmp_path / "joiner", index=pg_index_url)  # no --store: the team's
    assert joiner.store.root == first.store.root == tmp_path / "shared-store"
    assert yaml.safe_load((tmp_path / "joiner" / "n4a.yaml").read_text())["store"] == (
        _store(tmp_path)
    )
    other = f"file://{tmp_path / 'elsewhere'}"
    done = cli("init", str(tmp_path / "stray"), "--store", other, "--index", pg_index_url)
    assert done.returncode == 2 and f"--store {_store(tmp_path)}" in done.stderr, done.stderr
    assert not (tmp_path / "stray").exists() or not any((tmp_path / "stray").iterdir())


def test_an_unreachable_server_is_one_line_not_a_traceback(tmp_path, postgres_server):
    url = postgres_server.url("n4a_nowhere").replace(str(postgres_server.port), "1")
    done = cli("init", str(tmp_path / "w"), "--index", url)
    assert done.returncode == 2
    assert "cannot reach the index" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "w").exists() or list((tmp_path / "w").iterdir()) == []


def _answers(ws: Workspace, dataset: str) -> dict:
    """What a user reads of a finished sweep: listings, ranking, best, rendered files."""
    [run] = ws.runs()
    ranked = ws.results(dataset)
    completed = [r for r in ranked if r.status == "completed"]
    folder = ("runs", dataset)
    answers = {
        "run": [run.name, run.status, run.n_results, run.n_pending, run.n_failed],
        "ranked": [(r.label, r.status, r.score) for r in ranked],
        "listing": sorted(ws.tree.list_dir(folder)),
        "by_run": sorted(ws.tree.list_dir(("by-run",))),
        "results_csv": _tree_text(ws, (*folder, "RESULTS.csv")),
    }
    if completed:
        best = ws.best(dataset)
        answers["best"] = (best.label, best.score)
        answers["scores"] = _tree_text(ws, (*folder, best.label, "scores.yaml"))
        answers["cv"] = _tree_text(ws, (*folder, best.label, "predictions", "cv.csv"))
    return json.loads(_without_run_ids(json.dumps(answers), [run.run_id]))


def _both_engines(tmp_path, url: str, templates, dataset: str, **options) -> tuple[dict, dict]:
    shared = Workspace(tmp_path / "pg", store=_store(tmp_path), index=url)
    local = Workspace(tmp_path / "duck")
    assert shared.index.engine == "postgresql" and local.index.engine == "duckdb"
    for ws in (shared, local):
        ws.run(templates, [dataset], name="same", **options)
    name = dataset.removeprefix("chemotools:")
    return _answers(shared, name), _answers(local, name)


def test_a_sweep_gives_the_same_answers_as_on_duckdb(tmp_path, pg_index_url):
    pg, duck = _both_engines(tmp_path, pg_index_url, [SWEEP], "chemotools:fermentation", cv=3)
    assert pg["run"] == duck["run"] == ["same", "completed", 15, 0, 0]
    for key in duck:
        assert pg[key] == duck[key], key


def test_classification_and_failed_configs_give_the_same_answers_as_on_duckdb(
    tmp_path, pg_index_url
):
    """Accuracy ranks the other way, some scores are NaN (PostgreSQL's json type refuses
    them: the engine keeps JSON as text) and a commit may hold only failed results (no
    blob rows: an empty relation must still be typed)."""
    sweep = [{"_or_": ["snv", "msc"]}, {"plsda": {"n_components": {"_or_": [2, 4, 60]}}}]
    pg, duck = _both_engines(tmp_path, pg_index_url, [sweep], "chemotools:coffee", cv=3)
    assert pg["run"][1] == "partial" and pg["run"][4] == 2  # n_components 60: failed
    for key in duck:
        assert pg[key] == duck[key], key


def test_a_run_whose_every_config_fails_is_recorded(tmp_path, pg_index_url):
    pg, duck = _both_engines(
        tmp_path, pg_index_url, [[{"pls": {"n_components": 60}}]], "chemotools:fermentation"
    )
    assert pg == duck and pg["run"] == ["same", "failed", 1, 0, 1]


def test_user_sql_on_a_shared_index_is_one_read_only_statement(tmp_path, pg_index_url):
    from n4afs_core.errors import QueryError

    ws = Workspace(tmp_path / "ws", store=_store(tmp_path), index=pg_index_url)
    ws.run([SWEEP], ["chemotools:fermentation"], cv=3, name="q")
    header, rows = ws.query("SELECT count(*) AS n FROM results WHERE status = 'completed'")
    assert header == ["n"] and rows == [(15,)]
    for sql in ("DELETE FROM results", "SELECT 1; DELETE FROM results", "DROP TABLE runs"):
        with pytest.raises(QueryError):
            ws.query(sql)
    assert ws.query("SELECT count(*) FROM results")[1] == [(15,)]


def _coordinator(workspace, name: str, template) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "n4afs.cli", "-w", str(workspace), "run", str(template)]
        + ["-d", "fermentation", "--cv", "3", "--name", name],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_coordinators_write_into_one_index_at_once_and_every_result_lands_once(
    tmp_path, pg_index_url
):
    """Two workspace folders (two people, or two machines) on one store and one index run
    sweeps at the same time, while a third process queries; each sees the other's."""
    store = _store(tmp_path)
    alice = Workspace(tmp_path / "alice", store=store, index=pg_index_url)
    bob = Workspace(tmp_path / "bob", store=store, index=pg_index_url)
    alice.add_dataset("chemotools:fermentation", name="fermentation")
    assert [d.name for d in bob.datasets()] == ["fermentation"]  # one index: bob sees it
    template = tmp_path / "sweep.yaml"
    template.write_text(yaml.safe_dump(SWEEP))
    # a tree opened before the runs, to see it follow them
    before = sorted(bob.tree.list_dir(("by-run",)))

    procs = [_coordinator(alice.path, "alice", template), _coordinator(bob.path, "bob", template)]
    queries = 0
    while any(p.poll() is None for p in procs):
        done = cli("-w", str(alice.path), "runs")
        assert done.returncode == 0, done.stderr
        queries += 1
        time.sleep(0.2)
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
    assert queries >= 1

    for ws in (alice, bob):
        runs = {r.name: r for r in ws.runs()}
        assert sorted(runs) == ["alice", "bob"]
        assert all(r.status == "completed" and r.n_results == 15 for r in runs.values())
    rows = alice.query(
        "SELECT count(*), count(DISTINCT seq), count(DISTINCT result_id), "
        "count(*) FILTER (WHERE status = 'completed') FROM results"
    )[1]
    assert rows == [(30, 30, 30, 30)]  # every result once, numbered once
    seqs = [r[0] for r in alice.query("SELECT seq FROM results ORDER BY seq")[1]]
    assert seqs == list(range(1, 31))

    after = sorted(bob.tree.list_dir(("by-run",)))
    assert after != before and len([n for n in after if re.search(r"_(alice|bob)_", n)]) == 2
    listing = bob.tree.list_dir(("runs", "fermentation"))
    assert len([n for n in listing if re.fullmatch(r"\d{4}_.*", n)]) == 30
    best = cli("-w", str(bob.path), "best", "fermentation")
    assert (
        best.returncode == 0
        and best.stdout == cli("-w", str(alice.path), "best", "fermentation").stdout
    )
    # the other's result is readable from here: its bytes are in the shared store
    result = [n for n in listing if re.fullmatch(r"\d{4}_.*", n)][0]
    assert _tree_text(bob, ("runs", "fermentation", result, "predictions", "cv.csv"))


def test_a_tree_open_in_one_workspace_sees_the_others_commits(tmp_path, pg_index_url):
    store = _store(tmp_path)
    alice = Workspace(tmp_path / "alice", store=store, index=pg_index_url)
    bob = Workspace(tmp_path / "bob", store=store, index=pg_index_url)
    token = bob.index.change_token()
    assert bob.tree.list_dir(("by-run",)) is not None
    alice.run([[{"pls": {"n_components": 3}}]], ["chemotools:fermentation"], cv=3, name="first")
    assert bob.index.change_token() != token
    assert any("_first_" in n for n in bob.tree.list_dir(("by-run",)))


def test_writers_wait_their_turn_and_a_stuck_one_is_named(tmp_path, pg_index_url):
    from n4afs_core.errors import WorkspaceLocked
    from n4afs_core.index.postgres import PostgresIndex

    Workspace(tmp_path / "ws", store=_store(tmp_path), index=pg_index_url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE, pg_index_url, str(tmp_path / "ws")],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        impatient = PostgresIndex(pg_index_url, tmp_path / "ws", timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(WorkspaceLocked, match="n4afs"), impatient.write():
            pass
        assert time.monotonic() - started < 5
        with impatient.read() as conn:  # readers are not blocked by the writer
            assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    finally:
        holder.kill()
        holder.wait()
    with PostgresIndex(pg_index_url, tmp_path / "ws", timeout_s=5).write():
        pass  # the server released the dead client's lock


HOLD_WRITE = """
import sys, time
from n4afs_core.index.postgres import PostgresIndex
with PostgresIndex(sys.argv[1], sys.argv[2]).write():
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_mount_of_a_shared_index_serves_everyones_results(tmp_path, pg_index_url):
    from tests.mount_fixture import Mount, wait_for

    store = _store(tmp_path)
    alice = Workspace(tmp_path / "alice", store=store, index=pg_index_url)
    bob = Workspace(tmp_path / "bob", store=store, index=pg_index_url)
    alice.run([SWEEP], ["chemotools:fermentation"], cv=3, name="alice")
    mount = Mount(alice.path, tmp_path / "mnt").start()
    try:  # stopped even when an assertion fails: no mount outlives its test
        results = mount.path / "runs" / "fermentation" / "RESULTS.csv"
        assert results.read_bytes() == alice.tree.read(
            alice.tree.lookup(("runs", "fermentation", "RESULTS.csv"))
        )
        bob.run([[{"pls": {"n_components": 3}}]], ["fermentation"], cv=3, name="bob")
        by_run = mount.path / "by-run"
        wait_for(lambda: any("_bob_" in n for n in os.listdir(by_run)), timeout=10)
        # RESULTS.csv is a mutable file: the watcher invalidates it after its refresh
        wait_for(lambda: len(results.read_text().splitlines()) == 1 + 16, timeout=10)
    finally:
        mount.stop()
    assert not os.path.ismount(mount.path)
    mount.assert_clean_log()


def test_gc_on_a_shared_index_spares_every_workspaces_results_and_export_works(
    tmp_path, pg_index_url
):
    """The index knows every workspace's references: gc in one folder, with no grace,
    removes nothing another folder's results need; that folder exports them whole."""
    import zipfile

    store = _store(tmp_path)
    alice = Workspace(tmp_path / "alice", store=store, index=pg_index_url)
    bob = Workspace(tmp_path / "bob", store=store, index=pg_index_url)
    alice.run([SWEEP], ["chemotools:fermentation"], cv=3, name="alice")
    swept = cli("-w", str(bob.path), "gc", "--grace", "0m")
    assert swept.returncode == 0, swept.stderr
    assert bob.gc(grace_s=0).removed == []
    assert alice.verify().ok
    usage = cli("-w", str(bob.path), "du", "--json")  # sums: int, as from DuckDB
    assert usage.returncode == 0, usage.stderr
    shown = json.loads(usage.stdout)
    assert shown["referenced_bytes"] == alice.usage()["referenced_bytes"] > 0
    assert all(isinstance(row["logical"], int) for row in shown["largest"])
    best = alice.best("fermentation")
    out = tmp_path / "best.zip"
    done = cli("-w", str(bob.path), "export", f"runs/fermentation/{best.label}", "-o", str(out))
    assert done.returncode == 0, done.stderr
    names = zipfile.ZipFile(out).namelist()
    assert any(n.endswith("scores.yaml") for n in names)
    assert any("models/final_" in n for n in names)


def test_serve_of_a_shared_index_serves_everyones_results(tmp_path, pg_index_url):
    """`n4afs serve` (threads: one connection each) on one workspace folder; a result
    another folder commits meanwhile is listed and read over WebDAV."""
    import urllib.request

    from tests.webdav_fixture import Server

    alice = Workspace(tmp_path / "alice", store=_store(tmp_path), index=pg_index_url)
    bob = Workspace(tmp_path / "bob", index=pg_index_url)
    alice.run([SWEEP], ["chemotools:fermentation"], cv=3, name="alice")
    with Server(alice.path, tmp_path / "state").serving() as server:
        url = server.url + "runs/fermentation/RESULTS.csv"
        first = urllib.request.urlopen(url, timeout=30).read()
        assert first == alice.tree.read(alice.tree.lookup(("runs", "fermentation", "RESULTS.csv")))
        bob.run([[{"pls": {"n_components": 3}}]], ["fermentation"], cv=3, name="bob")
        after = urllib.request.urlopen(url, timeout=30).read()
        assert len(after.decode().splitlines()) == len(first.decode().splitlines()) + 1
        [label] = [r.label for r in bob.results("fermentation") if "bob" in r.run_id]
        scores = urllib.request.urlopen(
            f"{server.url}runs/fermentation/{label}/scores.yaml", timeout=30
        ).read()
        assert scores == bob.tree.read(
            bob.tree.lookup(("runs", "fermentation", label, "scores.yaml"))
        )


def test_a_bundle_imports_into_a_shared_index(tmp_path, pg_index_url):
    """A colleague's export (from a DuckDB workspace) imported into the team's index is seen
    by every workspace on it, ranked as an untrusted import until trusted."""
    local = Workspace(tmp_path / "duck")
    local.run([SWEEP], ["chemotools:fermentation"], cv=3, name="elsewhere")
    best = local.best("fermentation")
    bundle = tmp_path / "best.zip"
    done = cli(
        "-w", str(local.path), "export", f"runs/fermentation/{best.label}", "-o", str(bundle)
    )
    assert done.returncode == 0, done.stderr
    alice = Workspace(tmp_path / "alice", store=_store(tmp_path), index=pg_index_url)
    bob = Workspace(tmp_path / "bob", index=pg_index_url)
    done = cli("-w", str(alice.path), "import", str(bundle), "--trust")
    assert done.returncode == 0, done.stderr
    [run] = bob.runs()
    assert run.n_results == 1 and run.status == "completed"
    [imported] = bob.results("fermentation")
    assert imported.score == pytest.approx(best.score)
    again = cli("-w", str(bob.path), "import", str(bundle))  # the same bundle: once
    assert again.returncode in (0, 2) and "Traceback" not in again.stderr
    assert len(bob.runs()) == 1


def test_a_restarted_server_is_reconnected_without_an_error(
    tmp_path, pg_index_url, postgres_server
):
    """Long-lived readers (a mount, `serve`, a notebook) keep their connections: when the
    server restarts, the next transaction opens a new session instead of failing."""
    ws = Workspace(tmp_path / "ws", store=_store(tmp_path), index=pg_index_url)
    ws.run([[{"pls": {"n_components": 3}}]], ["chemotools:fermentation"], cv=3, name="before")
    token = ws.index.change_token()
    postgres_server.restart()
    assert ws.index.change_token() == token
    postgres_server.restart()
    assert [r.name for r in ws.runs()] == ["before"]
    postgres_server.restart()
    ws.run([[{"pls": {"n_components": 4}}]], ["fermentation"], cv=3, name="after")
    assert ws.index.change_token() != token


def test_a_run_owned_on_another_machine_is_running_while_its_process_is_connected(
    tmp_path, pg_index_url
):
    """On a shared index an owner on another host is alive while its process's session
    (named `n4afs PID@HOST`) is connected: a crashed colleague's run reads `interrupted`
    and stops holding gc back; a live one reads `running` and keeps its blobs spared."""
    import psycopg
    from n4afs_core.index import writes
    from n4afs_core.index.liveness import Owner

    ws = Workspace(tmp_path / "ws", store=_store(tmp_path), index=pg_index_url)
    run = ws.run([[{"pls": {"n_components": 3}}]], ["chemotools:fermentation"], compute=False)
    remote = Owner("elsewhere.example", None, 4242, None, time.time())
    with ws.index.write() as conn:
        writes.release_owner(conn, run.run_id)  # this process: not its owner any more
        writes.record_owner(conn, run.run_id, remote)

    def shown() -> str:
        return {r.run_id: r.status for r in ws.runs()}[run.run_id]

    assert shown() == "interrupted"
    assert ws.gc(dry_run=True).live_runs == []
    session = psycopg.connect(pg_index_url, application_name="n4afs 4242@elsewhere.example run")
    with session:
        assert shown() == "running"
        assert ws.gc(dry_run=True).live_runs == [run.run_id]
        run_yaml = ("by-run", run.run_id, "RUN.yaml")
        assert "running" in _tree_text(ws, run_yaml)  # a tree open now
    # the server ends a closed session's backend a moment after the client leaves
    deadline = time.monotonic() + 10
    while shown() != "interrupted" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shown() == "interrupted"
    assert "interrupted" in _tree_text(ws, run_yaml)  # the same tree, nothing committed


def test_a_sweep_whose_last_commit_holds_no_result_settles(tmp_path, pg_index_url, monkeypatch):
    """A slow sweep commits each task's results as they come: the run's last transaction
    then only settles its status, with an empty list of results (`unnest` of no ids)."""
    from n4afs_core.pipelines import runner

    monkeypatch.setattr(runner, "COMMIT_EVERY_S", 0.0)
    ws = Workspace(tmp_path / "ws", store=_store(tmp_path), index=pg_index_url)
    run = ws.run([SWEEP], ["chemotools:fermentation"], cv=3, name="slow")
    assert run.status == "completed" and len(run.results) == 15
