"""Answers at a size CI can afford: 2,000 results (10 real, the rest cloned index rows).

scripts/bench_scale.py times the same questions up to 100,000 results; this checks that the
answers stay right when there are many rows: counts, the best result, the listing of a
dataset folder of 1,000 results and its RESULTS.csv, `runs`, `verify` and `gc --dry-run`.
The workspace is scripts/_bench_workspace.py's (the one the benchmarks use): one real sweep,
its rows cloned with SQL over two datasets, the same blobs.
"""

from __future__ import annotations

import csv
import io

import pytest

N_RESULTS = 2_000
N_DATASETS = 2


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    from scripts._bench_workspace import build_workspace

    where = tmp_path_factory.mktemp("scale")
    return build_workspace(
        where / "ws",
        N_RESULTS,
        1,
        where,
        dataset_tag="test-scale",
        log=lambda _: None,
        n_datasets=N_DATASETS,
    )


def _index(ws, sql: str, *params):
    with ws.index.read() as conn:
        return conn.execute(sql, list(params)).fetchall()


def _datasets(ws) -> dict[str, int]:
    rows = _index(
        ws,
        "SELECT d.name, count(*) FROM results r JOIN datasets d USING (dataset_id) GROUP BY d.name",
    )
    return dict(rows)


def test_every_result_is_counted_once_per_dataset(big):
    per_dataset = _datasets(big.ws)
    assert sum(per_dataset.values()) == N_RESULTS
    assert sorted(per_dataset.values()) == [N_RESULTS // N_DATASETS] * N_DATASETS
    runs = big.ws.runs()
    assert sum(r.n_results for r in runs) == N_RESULTS


def test_best_is_the_lowest_score_in_the_index(big):
    for name in _datasets(big.ws):
        ((lowest,),) = _index(
            big.ws,
            "SELECT min(r.score) FROM results r JOIN datasets d USING (dataset_id) "
            "WHERE d.name = ? AND r.status = 'completed'",
            name,
        )
        best = big.ws.best(name).row
        assert best.score == lowest
        assert best.dataset == name


def test_a_dataset_folder_lists_each_result_once_and_results_csv_ranks_them(big):
    ws = big.ws
    name = min(_datasets(ws))
    listing = ws.tree.list_dir(("runs", name))
    folders = [entry for entry, node in listing.items() if node.is_dir and entry != "charts"]
    assert "charts" in listing  # the dataset's own charts beside its results
    assert len(folders) == len(set(folders)) == N_RESULTS // N_DATASETS
    text = ws.tree.read(listing["RESULTS.csv"]).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == N_RESULTS // N_DATASETS
    assert {r["result"] for r in rows} == set(folders)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)  # rmse: best (lowest) first
    assert float(rows[0]["score"]) == ws.best(name).row.score
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))


def test_verify_and_gc_see_every_object_and_nothing_to_delete(big):
    report = big.ws.verify()
    assert report.ok
    gc = big.ws.gc(dry_run=True, grace_s=0)
    ((referenced,),) = _index(big.ws, "SELECT count(DISTINCT blob_id) FROM referenced_blobs")
    assert gc.referenced == referenced
    assert gc.removed == []


def test_results_rows_are_built_once_for_csv_xlsx_and_parquet(big, monkeypatch):
    """`ls -la` sizes RESULTS.csv, .xlsx and .parquet and the ranking's REPORT.html: one
    build of the table for the four."""
    from n4afs.tree import result_files
    from n4afs.workspace import Workspace

    built = []
    real = result_files.results_columns

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(result_files, "results_columns", counting)
    ws = Workspace(big.ws.path)  # a fresh tree: nothing rendered yet
    name = max(_datasets(ws))
    listing = ws.tree.list_dir(("runs", name))
    names = [f"RESULTS.{ext}" for ext in ("csv", "xlsx", "parquet")] + ["REPORT.html"]
    sizes = [listing[name].content.size for name in names]
    assert all(size > 0 for size in sizes)
    assert len(built) == 1
