"""core.metrics.ranking: one definition of "best", whose SQL and Python forms order alike."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import NamedTuple

import duckdb
import pytest
from n4afs_core import maintenance
from n4afs_core.index import trust
from n4afs_core.index.names import result_label
from n4afs_core.metrics import ranking

from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.conftest import best_csvs


class Row(NamedTuple):  # the fields of a ResultRow that ranking reads
    result_id: str
    run_id: str
    seq: int
    status: str
    metric: str
    score: float | None
    created_at: datetime
    dataset_id: str = "d1"
    target: str | None = "protein"


def _index(seed: int) -> tuple[duckdb.DuckDBPyConnection, list[Row]]:
    """A minimal index of 200 results: every status, trusted and untrusted imports, scores
    missing, tied, of other metrics, with and without an out-of-fold row."""
    rng = random.Random(seed)
    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE results (result_id VARCHAR, run_id VARCHAR, seq INTEGER, status VARCHAR, "
        "metric VARCHAR, score DOUBLE, created_at TIMESTAMP, dataset_id VARCHAR, target VARCHAR)"
    )
    conn.execute(
        "CREATE TABLE imports (run_id VARCHAR, bundle_sha256 VARCHAR, trusted BOOLEAN, "
        "scores_recomputed BOOLEAN)"
    )
    conn.execute(
        "CREATE TABLE predictions (result_id VARCHAR, model VARCHAR, partition VARCHAR, "
        "scores JSON)"
    )
    imports = [("imp-a", True, True), ("imp-b", True, False), ("imp-c", False, True)]
    conn.executemany("INSERT INTO imports VALUES (?, 'f00d', ?, ?)", [list(i) for i in imports])
    runs = ["own-1", "own-2", *(run for run, _, _ in imports)]
    start = datetime(2026, 1, 1)
    rows = []
    for seq in range(1, 201):
        metric = rng.choice(["rmse", "rmse", "r2"])
        value = rng.choice([None, 0.5, 0.5, 1.0, round(rng.uniform(-1, 2), 2)])
        row = Row(
            f"r{seq:03d}",
            rng.choice(runs),
            seq,
            rng.choice(["completed", "completed", "failed", "broken"]),
            metric,
            value,
            start + timedelta(minutes=rng.choice([1, 2, 3, seq])),
            rng.choice(["d1", "d2"]),
            rng.choice(["protein", "moisture", None]),
        )
        rows.append(row)
        conn.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", list(row))
        if rng.random() < 0.7:  # cross-validated: its out-of-fold row has scores
            scores = {"rmse": rng.choice([None, 0.3, abs(value or 0)]), "r2": rng.uniform(0, 1)}
            model, partition = ranking.OUT_OF_FOLD
            conn.execute(
                "INSERT INTO predictions VALUES (?, ?, ?, ?)",
                [row.result_id, model, partition, json.dumps(scores)],
            )
        conn.execute(  # a fold's row, which ranking never reads
            "INSERT INTO predictions VALUES (?, 'fold_0', 'val', '{\"rmse\": -9, \"r2\": 9}')",
            [row.result_id],
        )
    return conn, rows


def _out_of_fold(conn: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    sql = f"SELECT result_id, scores FROM predictions p WHERE {ranking.out_of_fold_sql('p')}"
    return {rid: json.loads(text) for rid, text in conn.execute(sql).fetchall()}


def test_every_key_field_has_its_sql_term():
    assert list(ranking._RANK_SQL) == list(ranking.RankKey._fields)
    assert list(ranking._NEWEST_SQL) == list(ranking.NewestKey._fields)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("metric", ["rmse", "r2", "bias"])
def test_sql_and_python_rank_alike(seed, metric):
    conn, rows = _index(seed)
    cv = _out_of_fold(conn)
    value = ranking.ranked_value_sql(metric, "p")
    sql = (
        f"SELECT r.result_id FROM results r LEFT JOIN predictions p ON p.result_id = "
        f"r.result_id AND {ranking.out_of_fold_sql('p')} {ranking.order_by(metric, value)}"
    )
    in_sql = [rid for (rid,) in conn.execute(sql).fetchall()]
    untrusted = trust.untrusted_runs(conn)
    in_python = [
        r.result_id for r in ranking.rank(rows, metric, untrusted, lambda i: cv.get(i, {}))
    ]
    assert in_python == in_sql


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sql_and_python_choose_the_same_metric_and_best(seed):
    conn, rows = _index(seed)
    untrusted = trust.untrusted_runs(conn)
    assert untrusted == {"imp-b", "imp-c"}  # not trusted, or scores not recomputed
    (newest,) = conn.execute(
        f"SELECT r.metric FROM results r ORDER BY {ranking.NEWEST_METRIC} LIMIT 1"
    ).fetchone()
    assert ranking.metric_of(rows, untrusted) == newest
    may = {
        rid
        for (rid,) in conn.execute(
            f"SELECT r.result_id FROM results r WHERE {ranking.MAY_BE_BEST_SQL}"
        ).fetchall()
    }
    assert may == {
        r.result_id for r in rows if ranking.may_be_best(r.status, r.run_id in untrusted)
    }


def test_every_group_field_has_its_sql_term():
    assert list(ranking._GROUP_SQL) == list(ranking.GroupKey._fields)


@pytest.mark.parametrize("seed", [1, 2])
def test_sql_and_python_group_alike_and_rank_each_group_alike(seed):
    """Results are ranked per (dataset, target): the groups, each group's metric of best and
    its order are the same in SQL (`GROUP_SQL`, `GROUP_COLUMNS`) and in Python (`groups`)."""
    conn, rows = _index(seed)
    cv = _out_of_fold(conn)
    untrusted = trust.untrusted_runs(conn)
    in_python = ranking.groups(rows)
    found = conn.execute(f"SELECT DISTINCT {ranking.GROUP_COLUMNS} FROM results r").fetchall()
    assert {ranking.GroupKey(*g) for g in found} == set(in_python)
    assert len(in_python) == 6  # two datasets x (two targets and a NULL one)
    for group, members in in_python.items():
        (metric,) = conn.execute(
            f"SELECT r.metric FROM results r WHERE {ranking.GROUP_SQL} "
            f"ORDER BY {ranking.NEWEST_METRIC} LIMIT 1",
            list(group),
        ).fetchone()
        assert ranking.metric_of(members, untrusted) == metric
        value = ranking.ranked_value_sql(metric, "p")
        sql = (
            f"SELECT r.result_id FROM results r LEFT JOIN predictions p ON p.result_id = "
            f"r.result_id AND {ranking.out_of_fold_sql('p')} WHERE {ranking.GROUP_SQL} "
            f"{ranking.order_by(metric, value)}"
        )
        in_sql = [rid for (rid,) in conn.execute(sql, list(group)).fetchall()]
        ranked = ranking.rank(members, metric, untrusted, lambda i: cv.get(i, {}))
        assert [r.result_id for r in ranked] == in_sql


def test_pickles_trust_is_the_trusted_flag_alone():
    conn, _ = _index(1)
    assert [trust.pickles_untrusted(conn, run) for run in ("own-1", "imp-a", "imp-b", "imp-c")] == [
        False,
        False,
        False,
        True,
    ]


def test_out_of_fold_names():
    assert ranking.is_out_of_fold("cv", "val") and not ranking.is_out_of_fold("cv", "test")
    assert ranking.is_out_of_fold_prediction(ranking.fold_model(3), "val")
    assert not ranking.is_out_of_fold_prediction("final", "val")
    assert not ranking.is_out_of_fold_prediction("fold_3", "train")


def test_result_label_is_one_safe_component():
    assert result_label(42, "snv-pls15", "x9y8z7abc") == "0042_snv-pls15_x9y8z7"
    assert result_label(7, "../Evil Name", "abcdef0123") == "0007_evilname_abcdef"


def test_best_follows_the_newest_metric_everywhere(tmp_path):
    ws = Workspace(tmp_path / "ws")
    template = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [1, 4]}}}]
    ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=4, metric="rmse")
    ws.run(templates=[template], datasets=["fermentation"], cv=4, metric="r2")
    best = ws.best("fermentation")
    r2 = [r.cv_scores()["r2"] for r in ws.results("fermentation")]
    assert r2 == sorted(r2, reverse=True) and best.cv_scores()["r2"] == max(r2)
    listing = Tree(ws).list_dir(("runs", "fermentation"))
    tree_best = best_csvs(listing)
    assert tree_best == [f"best_{best.row.label}.csv"]
    doomed = maintenance.results_beyond_best(ws.index, 1, None)
    assert best.row.result_id not in doomed and len(doomed) == 7
