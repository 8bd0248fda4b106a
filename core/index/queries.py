"""Read-side SQL for runs and results: what the API, the CLI and (later) the tree ask.

Rankings follow `core.metrics.ranking` (the one definition of "best", which the tree applies to its
snapshot too) and the trust rule of `core.index.trust`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import duckdb
from n4afs_core.index.catalog import SEVERAL_TARGETS_SQL
from n4afs_core.index.liveness import live_runs
from n4afs_core.index.names import result_label
from n4afs_core.metrics import ranking
from n4afs_core.metrics.scores import get_metric, ranking_metric

VISIBLE = "('completed', 'failed', 'broken')"  # pending rows are plans, not results yet


@dataclass(frozen=True)
class RunRow:
    run_id: str
    name: str
    status: str
    metric: str
    options: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    n_results: int
    n_pending: int
    n_failed: int
    note: str | None = None  # the user's note (`run --note`, `n4afs note`)
    noted_at: datetime | None = None


@dataclass(frozen=True)
class ResultRow:
    result_id: str
    run_id: str
    dataset_id: str
    dataset: str
    seq: int
    name: str
    config_hash: str
    config_json: str  # parsed on first use: a snapshot holds 10,000s of rows, few are read
    choices_json: str
    status: str
    metric: str
    score: float | None
    predictions_blob: str | None
    error: str | None
    created_at: datetime
    duration_s: float | None = None
    target: str | None = None  # the target modelled: one of the dataset's target names

    @cached_property
    def config(self) -> list[dict[str, Any]]:
        return json.loads(self.config_json)

    @cached_property
    def choices(self) -> dict[str, Any]:
        return json.loads(self.choices_json)

    @property
    def hash6(self) -> str:
        return self.config_hash[:6]

    @cached_property
    def label(self) -> str:
        """`0042_snv-pls15_x9y8z7`: what the tree calls the result's folder
        (`core.index.names.result_label`)."""
        return result_label(self.seq, self.name, self.config_hash)


RESULT_COLUMNS = (  # `ResultRow`'s fields, in order
    "r.result_id, r.run_id, r.dataset_id, d.name, r.seq, r.name, r.config_hash, "
    "r.config, r.choices, r.status, r.metric, r.score, r.predictions_blob, r.error, "
    "r.created_at, r.duration_s, r.target"
)
RESULT_FROM = "FROM results r JOIN datasets d USING (dataset_id)"
RESULT_SELECT = f"SELECT {RESULT_COLUMNS} {RESULT_FROM}"


def result_from_row(row: tuple) -> ResultRow:
    return ResultRow(*row)


def list_runs(conn: duckdb.DuckDBPyConnection) -> list[RunRow]:
    """Every run, oldest first. A `running` run whose owners are all gone (killed, crashed,
    stopped by an error or Ctrl-C: `core.index.liveness`) is shown `interrupted`: the index keeps
    `running`, since only a process taking the run (`--resume`) may change it."""
    live = live_runs(conn)
    rows = conn.execute(
        "SELECT u.run_id, u.name, u.status, u.metric, u.options, u.created_at, u.finished_at, "
        "count(r.result_id) FILTER (WHERE r.status IN " + VISIBLE + "), "
        "count(r.result_id) FILTER (WHERE r.status = 'pending'), "
        "count(r.result_id) FILTER (WHERE r.status = 'failed'), u.note, u.noted_at "
        "FROM runs u LEFT JOIN results r USING (run_id) GROUP BY u.run_id, u.name, u.status, "
        "u.metric, u.options, u.created_at, u.finished_at, u.note, u.noted_at "
        "ORDER BY u.created_at"
    ).fetchall()
    return [
        RunRow(r[0], r[1], shown_status(r[0], r[2], live), r[3], json.loads(r[4]), *r[5:])
        for r in rows
    ]


def shown_status(run_id: str, status: str, live: dict[str, float]) -> str:
    """The status a listing shows: `running` only while an owner is alive (`live`, from
    `core.index.liveness.live_runs`), else `interrupted`."""
    return "interrupted" if status == "running" and run_id not in live else status


def run_results(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[ResultRow]:
    rows = conn.execute(
        f"{RESULT_SELECT} WHERE r.run_id = ? AND r.status IN {VISIBLE} ORDER BY d.name, r.seq",
        [run_id],
    ).fetchall()
    return [result_from_row(r) for r in rows]


def results_by_id(conn: duckdb.DuckDBPyConnection, result_ids: list[str]) -> list[ResultRow]:
    """The rows of these results (any status), in no particular order."""
    rows = conn.execute(
        f"{RESULT_SELECT} WHERE r.result_id IN (SELECT unnest(?))", [result_ids]
    ).fetchall()
    return [result_from_row(r) for r in rows]


def run_dataset_names(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """The names of a run's datasets, in the order the run was given them."""
    rows = conn.execute(
        "SELECT d.name FROM run_datasets r JOIN datasets d USING (dataset_id) "
        "WHERE run_id = ? ORDER BY position",
        [run_id],
    ).fetchall()
    return [name for (name,) in rows]


def run_targets(conn: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, list[str]]:
    """dataset name -> the targets the run models on it (planned ones too), in the run's
    dataset order and each dataset's target order."""
    rows = conn.execute(
        "SELECT d.name, list_sort(list(DISTINCT r.target), 'ASC'), any_value(d.target_names) "
        "FROM results r JOIN datasets d USING (dataset_id) JOIN run_datasets u "
        "USING (run_id, dataset_id) WHERE r.run_id = ? GROUP BY d.name, u.position "
        "ORDER BY u.position",
        [run_id],
    ).fetchall()
    return {name: [t for t in known if t in set(found)] for name, found, known in rows}


def pending_results(conn: duckdb.DuckDBPyConnection, run_id: str) -> tuple[int, str | None]:
    """(how many of a run's results are still to compute, the metric they are scored by)."""
    count, metric = conn.execute(
        "SELECT count(*), any_value(metric) FROM results WHERE run_id = ? AND status = 'pending'",
        [run_id],
    ).fetchone()
    return count, metric


@dataclass(frozen=True)
class Ranking:
    """Results best first, the metric that ranked them, and each one's value of it: what a
    ranked table shows, so its score column is the one the order follows."""

    metric: str | None  # None only when there is nothing to rank
    rows: list[ResultRow]
    values: list[float | None]  # pooled out-of-fold score (or the stored one), per row


def rank_results(
    conn: duckdb.DuckDBPyConnection,
    group: ranking.GroupKey,
    metric: str | None = None,
    run_id: str | None = None,
    limit: int | None = None,
    best_only: bool = False,
) -> Ranking:
    """The results of a dataset on one target (`core.metrics.ranking.GroupKey`: what is ranked
    together), best first, by the stored metric or by another one.

    Another metric must fit the dataset's task (`core.metrics.scores.ranking_metric`).
    `best_only`: only results that may be `best` (completed, and not an untrusted import).
    """
    dataset_id = group.dataset_id
    params: list[Any] = list(group)
    where = f"{ranking.GROUP_SQL} AND r.status IN {VISIBLE}"
    if best_only:
        where = f"{ranking.GROUP_SQL} AND {ranking.MAY_BE_BEST_SQL}"
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    if run_id:
        where += " AND r.run_id = ?"
        params.append(run_id)
    name = _ranking_metric_name(conn, dataset_id, metric, where, params)
    if name is None:
        return Ranking(None, [], [])
    value = ranking.ranked_value_sql(name, "p")
    sql = (
        f"SELECT {RESULT_COLUMNS}, {value} {RESULT_FROM} LEFT JOIN predictions p "
        f"ON p.result_id = r.result_id AND {ranking.out_of_fold_sql('p')} "
        f"WHERE {where} {ranking.order_by(name, value)}{tail}"
    )
    rows = conn.execute(sql, params).fetchall()
    return Ranking(name, [result_from_row(r[:-1]) for r in rows], [r[-1] for r in rows])


def _ranking_metric_name(
    conn: duckdb.DuckDBPyConnection,
    dataset_id: str,
    metric: str | None,
    where: str,
    params: list[Any],
) -> str | None:
    """The metric asked for, checked against the dataset's task; else what "best" means
    there now (the newest run's metric), or None when no result matches."""
    if metric is not None:
        found = conn.execute(
            "SELECT name, task FROM datasets WHERE dataset_id = ?", [dataset_id]
        ).fetchone()
        if found is None:
            return get_metric(metric).name
        return ranking_metric(metric, found[1], f"dataset {found[0]!r}").name
    newest = conn.execute(
        f"SELECT r.metric FROM results r WHERE {where} ORDER BY {ranking.NEWEST_METRIC} LIMIT 1",
        params,
    ).fetchone()
    return None if newest is None else newest[0]


def final_scores(
    conn: Any, group: ranking.GroupKey, metrics: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """What a ranked table (RESULTS.csv) or a chart of a ranking shows of the final models of
    every result of one `GroupKey`, in one query: (result id, then for each of `metrics` its
    final model's value on the calibration rows (`ranking.CALIBRATION`) and on the test rows
    (`ranking.TEST`), each as the text of its JSON number (NaN, Infinity as Python writes
    them), None where the result has none). Only these values are read out of the score
    documents: parsing two whole documents per result was most of a table's cost."""
    names = [get_metric(m).name for m in metrics]  # checked: they go into the SQL text
    values = ", ".join(f"{alias}.scores ->> '$.{name}'" for name in names for alias in "ct")
    joins = " ".join(
        f"LEFT JOIN predictions {alias} ON {alias}.result_id = r.result_id "
        f"AND {alias}.model = ? AND {alias}.partition = ?"
        for alias in "ct"
    )
    return conn.execute(
        f"SELECT r.result_id, {values} FROM results r {joins} WHERE {ranking.GROUP_SQL}",
        [*ranking.CALIBRATION, *ranking.TEST, *group],
    ).fetchall()


def result_paths(conn: duckdb.DuckDBPyConnection, result_ids: list[str]) -> dict[str, str]:
    """result id -> `<dataset>/<label>` (`wheat/0042_snv-pls15_x9y8z7`, as under runs/), or
    `<dataset>/<target>/<label>` on a dataset with several targets, of those of
    `result_ids` the index holds."""
    rows = conn.execute(
        f"SELECT r.result_id, d.name, {SEVERAL_TARGETS_SQL}, r.target, r.seq, r.name, "
        f"r.config_hash {RESULT_FROM} WHERE r.result_id IN (SELECT unnest(?))",
        [list(result_ids)],
    ).fetchall()
    return {
        rid: "/".join([dataset, *([target] if several else []), result_label(seq, name, h)])
        for rid, dataset, several, target, seq, name, h in rows
    }


def score_rows(conn: duckdb.DuckDBPyConnection, result_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT model, model_id, partition, fold, n_samples, scores FROM predictions "
        "WHERE result_id = ? ORDER BY fold, model, partition",
        [result_id],
    ).fetchall()
    return [
        {"model": m, "model_id": mid, "partition": part, "fold": f, "n": n, **json.loads(s)}
        for m, mid, part, f, n, s in rows
    ]


def model_artifacts(
    conn: duckdb.DuckDBPyConnection, result_id: str, role: str, fold: int | None
) -> list[tuple[str, str, str]]:
    """(step name, class path, blob id) of one model, in pipeline order."""
    return conn.execute(
        "SELECT a.step_name, a.class_path, a.blob_id FROM models m JOIN artifacts a "
        "USING (model_id) WHERE m.result_id = ? AND m.role = ? AND m.fold IS NOT DISTINCT "
        "FROM ? ORDER BY a.step_index",
        [result_id, role, fold],
    ).fetchall()
