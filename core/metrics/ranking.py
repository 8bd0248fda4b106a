"""What "best" means, once: which scores rank, in which order, and which results may be best.

Every ranking reads this module, in SQL (`core.index.queries.rank_results`: the API, the CLI,
`rm --keep-best`) or in Python (the tree's `RESULTS.csv`, `best_*.csv` and `best/`, which
rank an in-memory snapshot): each rule below is written once and both forms come from it.

- The out-of-fold score row (`OUT_OF_FOLD`): the pooled `cv`/`val` scores of a
  cross-validated result, what ranking reads; the per-sample out-of-fold predictions are the
  fold models' `val` rows (`is_out_of_fold_prediction`, `out_of_fold_predictions`).
- The ranked value (`ranked_value`, `ranked_value_sql`): a result's out-of-fold score of the
  metric, else its stored score when that is of the same metric.
- The order (`RankKey`, `order_by`): completed results first, then those that may be best
  (`core.index.trust`), then the metric's direction with missing scores last, then the sequence
  number (stable ties).
- The metric "best" follows on a dataset (`NewestKey`, `NEWEST_METRIC`): that of the newest
  result that may be best, else of the newest result.
- What is ranked together (`GroupKey`, `GROUP_SQL`): the results of one dataset on one
  target. Each reference value is its own calibration with its own units: a ranking, a
  metric of "best" and a best result are per (dataset, target), never across targets.

Design: docs/DESIGN.md, "Rules every view obeys" (Best and ranking).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, NamedTuple

from n4afs_core.index.trust import UNTRUSTED_RUNS
from n4afs_core.metrics.scores import get_metric, sort_key, sort_key_sql

COMPLETED = "completed"

# -- out of fold ----------------------------------------------------------------------------
OUT_OF_FOLD = ("cv", "val")  # (model, partition) of the pooled out-of-fold score row
FOLD_PREFIX = "fold_"  # fold models are `fold_<k>`; their `val` rows are out of fold
# the other score rows a report shows beside the out-of-fold one (never ranked): the final
# model on its own training rows (RMSEC) and on the test set (RMSEP)
CALIBRATION = ("final", "train")
TEST = ("final", "test")


def is_out_of_fold(model: str, partition: str) -> bool:
    """Whether a score row is the pooled out-of-fold one (`OUT_OF_FOLD`)."""
    return (model, partition) == OUT_OF_FOLD


def out_of_fold_sql(alias: str) -> str:
    """`is_out_of_fold` over the `predictions` rows named `alias`, for a WHERE or ON."""
    model, partition = OUT_OF_FOLD
    return f"{alias}.model = '{model}' AND {alias}.partition = '{partition}'"


def fold_model(fold: int) -> str:
    """The model name of fold `fold`'s model (`fold_2`); the final refit is `final`."""
    return f"{FOLD_PREFIX}{fold}"


def is_fold_model(model: str) -> bool:
    return model.startswith(FOLD_PREFIX)


def is_out_of_fold_prediction(model: str, partition: str) -> bool:
    """Whether a per-sample prediction (or its score row) is out of fold: a fold model
    predicting its validation rows. Pooled, they make the `OUT_OF_FOLD` row."""
    return is_fold_model(model) and partition == OUT_OF_FOLD[1]


def out_of_fold_mask(table: Any) -> Any:
    """`is_out_of_fold_prediction` over a predictions table (a polars DataFrame): a mask."""
    return table["model"].str.starts_with(FOLD_PREFIX) & (table["partition"] == OUT_OF_FOLD[1])


def out_of_fold_predictions(table: Any) -> Any:
    """`is_out_of_fold_prediction`'s rows of a predictions table, in their order."""
    return table.filter(out_of_fold_mask(table))


# -- what is ranked together ---------------------------------------------------------------
class GroupKey(NamedTuple):
    """The results ranked together: one dataset, one target. `GROUP_SQL` (a WHERE over the
    result `r`, one parameter per field, in this order) is generated from these fields."""

    dataset_id: str
    target: str | None  # None only for a dataset with no target names (nothing to model)


_GROUP_SQL = {"dataset_id": "r.dataset_id = ?", "target": "r.target IS NOT DISTINCT FROM ?"}

# the results of one `GroupKey` (its fields as parameters, in order: `list(key)`)
GROUP_SQL = " AND ".join(_GROUP_SQL[f] for f in GroupKey._fields)
# the columns of `results r` that make a `GroupKey`, for a SELECT DISTINCT or GROUP BY
GROUP_COLUMNS = ", ".join(f"r.{f}" for f in GroupKey._fields)


def group_of(result: Any) -> GroupKey:
    """The group a result (a `core.index.queries.ResultRow` or any row with these fields) is
    ranked in."""
    return GroupKey(result.dataset_id, result.target)


def groups(results: Iterable[Any]) -> dict[GroupKey, list[Any]]:
    """`results` by the group each is ranked in, each group in the given order."""
    grouped: dict[GroupKey, list[Any]] = {}
    for result in results:
        grouped.setdefault(group_of(result), []).append(result)
    return grouped


# -- the ranked value -----------------------------------------------------------------------
def ranked_value(
    metric: str, out_of_fold: dict[str, Any], result_metric: str, score: float | None
) -> float | None:
    """The value of `metric` a result ranks by: its out-of-fold score, else its stored score
    when the result was scored by that metric (a result without cross-validation)."""
    value = out_of_fold.get(metric)
    if value is None and result_metric == metric:
        value = score
    return value


def ranked_value_sql(metric: str, out_of_fold: str = "p") -> str:
    """`ranked_value` in SQL over the result `r` and its `OUT_OF_FOLD` row `out_of_fold`
    (NULL when absent). `metric` must be a registered metric name (checked here): it goes
    into the SQL text."""
    name = get_metric(metric).name
    return (
        f"coalesce(CAST({out_of_fold}.scores ->> '$.{name}' AS DOUBLE), "
        f"CASE WHEN r.metric = '{name}' THEN r.score END)"
    )


# -- the order ------------------------------------------------------------------------------
class RankKey(NamedTuple):
    """A result's place in a ranking: sorting these ascending puts the best first. The SQL
    `ORDER BY` (`order_by`) is generated from these fields, in this order (`_RANK_SQL`)."""

    failed: bool  # not completed (failed, broken): after every completed result
    untrusted: bool  # an import that may not be best (`core.index.trust`): after the others
    score: float  # `metrics.sort_key` of the ranked value: smaller is better, missing last
    seq: int  # ties: the earlier result first


_RANK_SQL = {  # each RankKey field over the result `r`; {score} is the ranked value
    "failed": f"(r.status <> '{COMPLETED}')",
    "untrusted": f"(r.run_id IN {UNTRUSTED_RUNS})",
    "score": "{score}",
    "seq": "r.seq",
}


def order_by(metric: str, value: str) -> str:
    """`RankKey`'s order as SQL over the result `r`, `value` being the ranked value's
    expression (`ranked_value_sql`)."""
    score = sort_key_sql(metric, value)
    return "ORDER BY " + ", ".join(_RANK_SQL[f].format(score=score) for f in RankKey._fields)


def may_be_best(status: str, untrusted: bool) -> bool:
    """Whether a ranked result may be `best`: completed, and not an import that may not be
    (`core.index.trust`). The top of a ranking is best only if it may be."""
    return status == COMPLETED and not untrusted


# `may_be_best` over the result `r`: RankKey's `failed` and `untrusted` both false
MAY_BE_BEST_SQL = " AND ".join(f"NOT {_RANK_SQL[f]}" for f in ("failed", "untrusted"))


def rank(
    results: Iterable[Any],
    metric: str,
    untrusted: set[str],
    out_of_fold: Callable[[str], dict[str, Any]],
) -> list[Any]:
    """`results` (`core.index.queries.ResultRow`s) best first by `metric`: the order `order_by`
    gives in SQL. `untrusted`: the run ids of the imports that may not be best
    (`core.index.trust.untrusted_runs`); `out_of_fold`: a result id's `OUT_OF_FOLD` scores."""

    def key(r: Any) -> RankKey:
        value = ranked_value(metric, out_of_fold(r.result_id), r.metric, r.score)
        return RankKey(r.status != COMPLETED, r.run_id in untrusted, sort_key(metric, value), r.seq)

    return sorted(results, key=key)


# -- the metric of "best" -------------------------------------------------------------------
class NewestKey(NamedTuple):
    """The result whose metric says what "best" means on a dataset has the greatest key:
    the newest of those that may be best, else the newest of all. `NEWEST_METRIC` (SQL) is
    generated from these fields, in this order."""

    completed: bool
    trusted: bool  # not an import that may not be best
    created_at: datetime
    seq: int


_NEWEST_SQL = {
    "completed": f"(r.status = '{COMPLETED}')",
    "trusted": f"(r.run_id NOT IN {UNTRUSTED_RUNS})",
    "created_at": "r.created_at",
    "seq": "r.seq",
}

# ORDER BY this (then LIMIT 1): the greatest `NewestKey` first
NEWEST_METRIC = ", ".join(f"{_NEWEST_SQL[f]} DESC" for f in NewestKey._fields)


def metric_of(results: Iterable[Any], untrusted: set[str]) -> str:
    """What "best" means among `results` (rows with status, run_id, created_at, seq,
    metric; at least one): the metric of the greatest `NewestKey`."""

    def key(r: Any) -> NewestKey:
        return NewestKey(r.status == COMPLETED, r.run_id not in untrusted, r.created_at, r.seq)

    return max(results, key=key).metric
