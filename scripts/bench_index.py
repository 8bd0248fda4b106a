"""Index engines: DuckDB (a workspace's own file) against PostgreSQL (a team's shared index).

Two measures, each on both engines, same rows:

1. Commit cost per result: the payloads of one REAL sweep (chemotools fermentation, SNV |
   MSC x PLS 1..25 = 50 configs, 3-fold CV: what the runner commits, 4 models and 9 score
   rows per result) are committed again with `writes.commit_payloads`, under new result
   and model ids, into pending rows that `Workspace.run(compute=False)` planned: one result
   per transaction (the runner's worst case: a slow sweep commits each result as it comes),
   and all 50 in one transaction (a fast sweep: the runner batches for `COMMIT_EVERY_S`).
   Fitting is not timed: only the index transaction (lock, rows, commit).
2. `best` latency at N results (default 10,000; `--quick` 1,000): the synthetic workspace
   of `scripts/_bench_workspace.py` (one real sweep, the rest CLONED rows over 10 datasets),
   its DuckDB index copied table by table into PostgreSQL. Timed: `Workspace.best()` in a
   workspace opened once (warm: the process's connection/engine exists), a new `Workspace`
   + `best()` (what one CLI command does after imports), and the tree's first snapshot
   (`load_snapshot`: every row the tree lists, what a mount or `serve` loads first).

PostgreSQL: the server `--index URL` names, else one started here like the tests start theirs
(tests/postgres_fixture.py: Debian's binaries, loopback TCP, fsync off: a throw-away server
whose commits cost less than a durable one's). Both engines on this machine's disk.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 25]}}}]
TABLES = (
    "blobs",
    "datasets",
    "dataset_aliases",
    "dataset_seq",
    "runs",
    "run_datasets",
    "run_owners",
    "templates",
    "results",
    "models",
    "artifacts",
    "predictions",
    "imports",
    "imported_files",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def captured_payloads(scratch: Path) -> tuple[list, dict[str, str]]:
    """The payloads a real sweep committed, and result id -> config hash."""
    from n4afs_core.pipelines import runner

    from n4afs.workspace import Workspace

    captured: list = []
    original = runner.commit_payloads

    def capture(conn, payloads):
        captured.extend(copy.deepcopy(payloads))
        return original(conn, payloads)

    runner.commit_payloads = capture
    try:
        ws = Workspace(scratch / "source")
        run = ws.run([SWEEP], ["chemotools:fermentation"], cv=3, name="source")
    finally:
        runner.commit_payloads = original
    hashes = dict(
        ws.index.fetchall(
            "SELECT result_id, config_hash FROM results WHERE run_id = ?", [run.run_id]
        )
    )
    return captured, hashes


def renamed(payload, result_id: str, tag: str):
    """The payload under another result id, its model ids made unique with `tag`."""
    models = [dataclasses.replace(m, model_id=f"{m.model_id}{tag}") for m in payload.models]
    rows = [
        dataclasses.replace(r, model_id=None if r.model_id is None else f"{r.model_id}{tag}")
        for r in payload.score_rows
    ]
    return dataclasses.replace(payload, result_id=result_id, models=models, score_rows=rows)


def commit_cost(ws, payloads, hashes, rounds: int) -> dict[str, float]:
    """ms per result, one result per transaction and all in one, median over `rounds`."""
    from n4afs_core.index.writes import commit_payloads

    by_hash = {hashes[p.result_id]: p for p in payloads}
    single, batch = [], []
    for i in range(rounds):
        for mode in ("single", "batch"):
            run = ws.run([SWEEP], ["fermentation"], cv=3, name=f"{mode}{i}", compute=False)
            planned = ws.index.fetchall(
                "SELECT result_id, config_hash FROM results WHERE run_id = ?", [run.run_id]
            )
            fresh = [renamed(by_hash[h], r, f"_{mode}{i}") for r, h in planned]
            started = time.perf_counter()
            if mode == "single":
                for payload in fresh:
                    with ws.index.write() as conn:
                        commit_payloads(conn, [payload])
            else:
                with ws.index.write() as conn:
                    commit_payloads(conn, fresh)
            per_result = (time.perf_counter() - started) * 1000 / len(fresh)
            (single if mode == "single" else batch).append(per_result)
            done = ws.index.fetchall(
                "SELECT count(*) FROM results WHERE run_id = ? AND status <> 'pending'",
                [run.run_id],
            )[0][0]
            assert done == len(fresh), (done, len(fresh))
    return {"single": statistics.median(single), "batch": statistics.median(batch)}


def copy_index(duck_ws, pg_ws) -> None:
    """Every row of the DuckDB index into the (freshly migrated, empty) PostgreSQL one."""
    with duck_ws.index.read() as src, pg_ws.index.write() as dst:
        for table in TABLES:
            cursor = src.execute(f"SELECT * FROM {table}")
            columns = ", ".join(d[0] for d in cursor.description)
            rows = cursor.fetchall()
            with dst.raw.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as out:
                for row in rows:
                    out.write_row(row)


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def read_latencies(path: Path, dataset: str, repeats: int) -> dict[str, float]:
    from n4afs.tree.snapshot import load_snapshot
    from n4afs.workspace import Workspace

    ws = Workspace(path, create=False)
    return {
        "best_warm": timed(lambda: ws.best(dataset), repeats),
        "open_best": timed(lambda: Workspace(path, create=False).best(dataset), repeats),
        "snapshot": timed(lambda: load_snapshot(ws.index), max(2, repeats // 2)),
        "token": timed(ws.index.change_token, repeats * 20),
    }


def start_postgres(index: str | None) -> tuple[Any, str]:
    """(the server started here or None, its URL): the server `index` names, else one
    started like the tests start theirs (stop it with `stop_postgres`)."""
    if index is not None:
        return None, index
    from tests.postgres_fixture import start_server

    log("starting a PostgreSQL server (initdb + pg_ctl) ...")
    server = start_server()
    return server, server.url()


def stop_postgres(server: Any) -> None:
    if server is not None:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def fresh_database(index: str, name: str) -> str:
    """A new, empty database `name` on the server of `index`, as an index URL."""
    import psycopg

    with psycopg.connect(index, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{index.rsplit('/', 1)[0]}/{name}"


def best_latencies(
    scratch: Path, n_results: int, repeats: int, index: str
) -> tuple[str, dict[str, dict[str, float]]]:
    """The synthetic workspace of `n_results` results on DuckDB, its rows copied into a
    fresh PostgreSQL database of `index`'s server; per engine, `read_latencies` (seconds).
    Returns (the workspace's summary, engine -> latencies); both engines' best must agree."""
    from _bench_workspace import build_workspace

    from n4afs.workspace import Workspace

    log(f"building a workspace of {n_results:,} results (DuckDB) ...")
    built = build_workspace(
        scratch / "big-duckdb", n_results, 1, scratch, dataset_tag="bench-index", log=log
    )
    url = fresh_database(index, "n4a_bench_best")
    # a store of its own: `best` and the snapshot read only the index (the DuckDB workspace's
    # folder, which keeps its blobs itself, is no store another workspace may join)
    store = f"file://{scratch / 'big-postgresql-store'}"
    pg = Workspace(scratch / "big-postgresql", store=store, index=url)
    log("copying its rows into PostgreSQL ...")
    copy_index(built.ws, pg)
    dataset = built.ws.datasets()[0].name
    reads = {}
    for engine, path in (
        ("duckdb", scratch / "big-duckdb"),
        ("postgresql", scratch / "big-postgresql"),
    ):
        log(f"{engine}: best and snapshot latencies ...")
        reads[engine] = read_latencies(path, dataset, repeats)
    duck_best = built.ws.best(dataset)
    pg_best = pg.best(dataset)
    assert (duck_best.label, duck_best.score) == (pg_best.label, pg_best.score)
    return built.summary(), reads


READ_LABELS = {
    "best_warm": "`best`, workspace open (ms)",
    "open_best": "open workspace + `best` (ms)",
    "snapshot": "tree's first snapshot, every row (ms)",
    "token": "change token (ms)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", help="a PostgreSQL server's URL (default: start one)")
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="commit measurements per mode")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 results, fewer repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.results, args.rounds, args.repeats = 1_000, 1, 3

    from n4afs.workspace import Workspace

    server, args.index = start_postgres(args.index)
    try:
        with tempfile.TemporaryDirectory(prefix="n4afs-bench-index-") as scratch_dir:
            scratch = Path(scratch_dir)
            log("a real sweep of 50 configs, its payloads captured ...")
            payloads, hashes = captured_payloads(scratch)
            commits = {}
            for engine in ("duckdb", "postgresql"):
                url = (
                    fresh_database(args.index, "n4a_bench_commit")
                    if engine == "postgresql"
                    else None
                )
                store = f"file://{scratch / 'commit-store'}" if url else None
                ws = Workspace(scratch / f"commit-{engine}", store=store, index=url)
                ws.add_dataset("chemotools:fermentation", name="fermentation")
                log(f"{engine}: commit cost ...")
                commits[engine] = commit_cost(ws, payloads, hashes, args.rounds)
            summary, reads = best_latencies(scratch, args.results, args.repeats, args.index)
    finally:
        stop_postgres(server)

    print(f"\nIndex engines ({summary}; PostgreSQL {args.index.split('@')[-1]})\n")
    print("| measure | DuckDB | PostgreSQL |")
    print("|---|---|---|")
    for mode, what in (("single", "one result per commit"), ("batch", "50 results per commit")):
        duck, pgc = commits["duckdb"][mode], commits["postgresql"][mode]
        print(f"| commit, {what} (ms per result) | {duck:.2f} | {pgc:.2f} |")
    for key, label in READ_LABELS.items():
        duck, pgr = reads["duckdb"][key] * 1000, reads["postgresql"][key] * 1000
        print(f"| {label} | {duck:.2f} | {pgr:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
