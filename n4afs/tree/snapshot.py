"""An in-memory copy of the index rows the tree needs, loaded in one read transaction.

Long-lived readers (the fsspec filesystem, the FUSE mount) must not open DuckDB per file:
they hold a `Snapshot` and load a new one when the index's change token moves. Loading is
a handful of bulk queries; everything after that is dictionary lookups.

Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import json
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from n4afs_core.index import queries, trust
from n4afs_core.index.catalog import DatasetInfo, list_datasets
from n4afs_core.index.liveness import Owner, live_owners, owner_alive
from n4afs_core.index.queries import ResultRow, RunRow
from n4afs_core.metrics import ranking


@dataclass(frozen=True, slots=True)  # slots: a cold walk builds 120,000 of these
class ArtifactInfo:
    step_index: int
    step_name: str
    class_path: str
    blob_id: str
    size: int


@dataclass(frozen=True, slots=True)
class ModelInfo:
    model_id: str
    result_id: str
    role: str  # fold | final
    fold: int | None
    created_at: datetime
    artifacts: tuple[ArtifactInfo, ...]

    @property
    def label(self) -> str:
        """Folder name under models/: `final_<id>` or `fold0_<id>`, sorted sensibly."""
        return (
            f"final_{self.model_id}" if self.role == "final" else f"fold{self.fold}_{self.model_id}"
        )


@dataclass
class Snapshot:
    """What the tree needs at once, eagerly; per-model and per-score rows on first use.

    A freshly opened workspace must list a folder quickly (bench_tree: under 0.3 s at 10,000
    results), and listing needs the results and one ranking value each, not the 60,000
    model and 120,000 score rows behind them. Those load in bulk the first time any result
    folder's `models/` or `predictions/` is built (the mount loads them before mounting,
    `Tree.prepare`), from a later read transaction than the rest. That is safe because a visible
    result's rows never change (a result commits whole); if a result was removed in
    between, the change token has moved too and the next refresh replaces this snapshot.
    For the same reason a new snapshot adopts the rows its predecessor had loaded and
    reads only those of results that are new.
    """

    token: tuple[int, int]
    datasets: list[DatasetInfo]
    runs: list[RunRow]
    results: list[ResultRow]  # visible (completed/failed), ordered by dataset then seq
    run_datasets: dict[str, list[str]]  # run id -> dataset ids in order
    templates: dict[str, list[tuple[int, str, Any]]]  # run id -> (position, name, body)
    # (run id, dataset id) -> the targets the run models there (pending results included)
    run_targets: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    cv_json: dict[str, str] = field(default_factory=dict)  # result id -> pooled cv scores
    imported: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    untrusted_runs: set[str] = field(default_factory=set)  # core.index.trust.UNTRUSTED_RUNS
    import_origins: dict[str, str] = field(default_factory=dict)  # run id -> origin label
    created: datetime | None = None  # when the workspace was made (its first migration)
    live_owners: list[Owner] = field(default_factory=list)  # of the runs shown `running`
    index: Any = None  # where the deferred rows come from
    _cv: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _model_rows: dict[str, list[tuple]] | None = field(default=None, repr=False)
    _score_rows: dict[str, list[tuple]] | None = field(default=None, repr=False)
    _rows_complete: bool = field(default=False, repr=False)
    _models: dict[str, dict[str, ModelInfo]] = field(default_factory=dict, repr=False)
    _final_json: dict[tuple[str, str], str] | None = field(default=None, repr=False)
    _final: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    _predictions_sizes: dict[str, int] | None = field(default=None, repr=False)

    def origin(self, result: ResultRow) -> str:
        """`core.index.trust.origin_label` of the result: this workspace, or which bundle."""
        return self.import_origins.get(result.run_id, "workspace")

    def cv_scores(self, result_id: str) -> dict[str, Any]:
        """The pooled out-of-fold scores (the ranking ones), parsed on first use."""
        scores = self._cv.get(result_id)
        if scores is None:
            text = self.cv_json.get(result_id)
            scores = self._cv[result_id] = json.loads(text) if text else {}
        return scores

    def final_scores(self, result_id: str, partition: str) -> dict[str, Any]:
        """The final model's scores on `partition` (`ranking.CALIBRATION`, `ranking.TEST`),
        {} when it has none. Every result's rows load in one query on first use (what
        RESULTS.csv shows), without the bulk of `preload`."""
        if self._final_json is None:
            with self.index.read() as conn:
                self._final_json = _final_json(conn)
        scores = self._final.get((result_id, partition))
        if scores is None:
            text = self._final_json.get((result_id, partition))
            scores = self._final[result_id, partition] = json.loads(text) if text else {}
        return scores

    def predictions_size(self, blob_id: str) -> int | None:
        """The size of a result's predictions blob (`predictions/predictions.parquet`, the
        blob as stored); the sizes of all load in one query on first use."""
        if self._predictions_sizes is None:
            with self.index.read() as conn:
                self._predictions_sizes = dict(
                    conn.execute(
                        "SELECT b.blob_id, b.size FROM blobs b "
                        "JOIN results r ON r.predictions_blob = b.blob_id"
                    ).fetchall()
                )
        return self._predictions_sizes.get(blob_id)

    def models_of(self, result_id: str) -> dict[str, ModelInfo]:
        """A result's models by folder label (final first, then folds in order); the
        rows of every result load at once, objects are built per result on first use."""
        models = self._models.get(result_id)
        if models is None:
            rows = self.preload()[0].get(result_id, [])
            models = self._models[result_id] = _models(result_id, rows)
        return models

    def scores_of(self, result_id: str) -> list[dict[str, Any]]:
        """Every score row of a result (model, partition, fold, n, metrics…)."""
        return [
            {"model": model, "partition": partition, "fold": fold, "n": n, **json.loads(text)}
            for _, model, partition, fold, n, text in self._rows_of(result_id)
        ]

    def prediction_sets(self, result_id: str) -> set[tuple[str, str]]:
        """(model, partition) pairs a result has predictions for; no JSON parsed."""
        return {(row[1], row[2]) for row in self._rows_of(result_id)}

    def _rows_of(self, result_id: str) -> list[tuple]:
        return self.preload()[1].get(result_id, [])

    def preload(self) -> tuple[dict[str, list[tuple]], dict[str, list[tuple]]]:
        """The model and score rows of every visible result, loading what is missing:
        everything the first time, afterwards only results adopted snapshots lacked."""
        if not self._rows_complete:
            visible = [r.result_id for r in self.results]
            with self.index.read() as conn:
                if self._model_rows is None or self._score_rows is None:
                    models, scores = _model_rows(conn), _score_rows(conn)
                else:
                    missing = [i for i in visible if i not in self._model_rows]
                    models = {**self._model_rows, **_model_rows(conn, missing)}
                    scores = {**self._score_rows, **_score_rows(conn, missing)}
            for result_id in visible:  # failed results have none: not missing next time
                models.setdefault(result_id, [])
                scores.setdefault(result_id, [])
            self._model_rows, self._score_rows, self._rows_complete = models, scores, True
        return self._model_rows, self._score_rows

    @property
    def rows_loaded(self) -> bool:
        """Whether rows were loaded (or adopted from the previous snapshot) already."""
        return self._model_rows is not None

    def adopt_rows(self, previous: Snapshot) -> None:
        """Keep the rows `previous` loaded for results still visible (they never change)."""
        if previous._model_rows is None or previous._score_rows is None:
            return
        visible = {r.result_id for r in self.results}
        self._model_rows = {k: v for k, v in previous._model_rows.items() if k in visible}
        self._score_rows = {k: v for k, v in previous._score_rows.items() if k in visible}
        self._rows_complete = len(self._model_rows) == len(visible)


def an_owner_died(snapshot: Snapshot) -> bool:
    """Whether a run this snapshot shows `running` lost its process since: a killed run
    writes nothing, so the change token alone would keep it `running` (a `/proc` read per
    owner, cheap enough for every poll; on a shared index, one query for the connected
    sessions when an owner runs on another host: `core.index.liveness.owner_alive`)."""
    owners = snapshot.live_owners
    if not owners:
        return False
    sessions = None
    here = socket.gethostname()
    if any(o.host != here for o in owners) and getattr(snapshot.index, "engine", "") != "duckdb":
        with snapshot.index.read() as conn:
            sessions = conn.client_sessions()
    return any(not owner_alive(owner, sessions) for owner in owners)


def load_snapshot(index: Any, previous: Snapshot | None = None) -> Snapshot:
    """`previous`: the snapshot this one replaces, whose loaded rows it may adopt."""
    token = index.change_token()  # read before the rows: a commit in between reloads again
    with index.read() as conn:
        snapshot = Snapshot(
            token=token,
            datasets=list_datasets(conn),
            runs=queries.list_runs(conn),
            results=_all_results(conn),
            run_datasets=_run_datasets(conn),
            templates=_templates(conn),
            run_targets=_run_targets(conn),
            cv_json=_cv_json(conn),
            imported=_imported(conn),
            created=conn.execute("SELECT min(applied_at) FROM schema_version").fetchone()[0],
            live_owners=[owner for _, owner in live_owners(conn)],
            untrusted_runs=trust.untrusted_runs(conn),
            import_origins=trust.import_origins(conn),
            index=index,
        )
    if previous is not None:
        snapshot.adopt_rows(previous)
    return snapshot


def _cv_json(conn: Any) -> dict[str, str]:
    """result id -> the JSON of its pooled out-of-fold scores (`ranking.OUT_OF_FOLD`: one
    row per result at most, the key of `predictions` says)."""
    sql = f"SELECT result_id, scores FROM predictions p WHERE {ranking.out_of_fold_sql('p')}"
    return dict(conn.execute(sql).fetchall())


def _final_json(conn: Any) -> dict[tuple[str, str], str]:
    """(result id, partition) -> the JSON of the final model's scores there."""
    model = ranking.CALIBRATION[0]
    assert ranking.TEST[0] == model
    sql = "SELECT result_id, partition, scores FROM predictions WHERE model = ?"
    return {(r, p): text for r, p, text in conn.execute(sql, [model]).fetchall()}


def _imported(conn: Any) -> dict[str, dict[str, tuple[str, int]]]:
    """result id -> {path inside its folder: (blob id, size)} for imported results."""
    grouped: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    for result_id, path, blob_id, size in conn.execute(
        "SELECT result_id, path, blob_id, size FROM imported_files ORDER BY result_id, path"
    ).fetchall():
        grouped[result_id][path] = (blob_id, size)
    return dict(grouped)


def _all_results(conn: Any) -> list[ResultRow]:
    rows = conn.execute(
        f"{queries.RESULT_SELECT} WHERE r.status IN {queries.VISIBLE} ORDER BY r.dataset_id, r.seq"
    ).fetchall()
    return [queries.result_from_row(r) for r in rows]


def _run_datasets(conn: Any) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for run_id, dataset_id in conn.execute(
        "SELECT run_id, dataset_id FROM run_datasets ORDER BY run_id, position"
    ).fetchall():
        grouped[run_id].append(dataset_id)
    return dict(grouped)


def _run_targets(conn: Any) -> dict[tuple[str, str], set[str]]:
    grouped: dict[tuple[str, str], set[str]] = defaultdict(set)
    for run_id, dataset_id, target in conn.execute(
        "SELECT DISTINCT run_id, dataset_id, target FROM results"
    ).fetchall():
        grouped[(run_id, dataset_id)].add(target)
    return dict(grouped)


def _templates(conn: Any) -> dict[str, list[tuple[int, str, Any]]]:
    grouped: dict[str, list[tuple[int, str, Any]]] = defaultdict(list)
    for run_id, position, name, body in conn.execute(
        "SELECT run_id, position, name, body FROM templates ORDER BY run_id, position"
    ).fetchall():
        grouped[run_id].append((position, name, json.loads(body)))
    return dict(grouped)


def _only(results: list[str] | None, column: str) -> tuple[str, list]:
    """A WHERE clause (and its parameters) limiting rows to `results`; all when None."""
    return ("", []) if results is None else (f"WHERE list_contains(?, {column})", [results])


def _model_rows(conn: Any, results: list[str] | None = None) -> dict[str, list[tuple]]:
    """result id -> (model id, role, fold, created, artifact rows) per model, in folder order.

    Two queries, heads and artifacts, grouped with `groupby` on their sort order: one joined
    row per artifact repeated each model's columns and cost ~25 % more (10,000 results).
    """
    where, params = _only(results, "m.result_id")
    artifacts = conn.execute(
        "SELECT a.model_id, a.step_index, a.step_name, a.class_path, a.blob_id, b.size "
        "FROM models m JOIN artifacts a USING (model_id) JOIN blobs b ON b.blob_id = a.blob_id "
        f"{where} ORDER BY a.model_id, a.step_index",
        params,
    ).fetchall()
    by_model = {model_id: tuple(rows) for model_id, rows in groupby(artifacts, key=_first)}
    heads = conn.execute(
        f"SELECT m.result_id, m.model_id, m.role, m.fold, m.created_at FROM models m {where} "
        "ORDER BY m.result_id, m.role DESC, m.fold",
        params,
    ).fetchall()
    return {
        result_id: [(*head[1:], by_model.get(head[1], ())) for head in group]
        for result_id, group in groupby(heads, key=_first)
    }


def _models(result_id: str, rows: list[tuple]) -> dict[str, ModelInfo]:
    """One result's rows (from `_model_rows`) -> its models by folder label."""
    models: dict[str, ModelInfo] = {}
    for model_id, role, fold, created, artifacts in rows:
        infos = tuple(ArtifactInfo(*artifact[1:]) for artifact in artifacts)
        model = ModelInfo(model_id, result_id, role, fold, created, infos)
        models[model.label] = model
    return models


def _score_rows(conn: Any, results: list[str] | None = None) -> dict[str, list[tuple]]:
    """result id -> (result id, model, partition, fold, n, scores JSON): JSON parsed per
    result on use."""
    where, params = _only(results, "result_id")
    rows = conn.execute(
        "SELECT result_id, model, partition, fold, n_samples, scores FROM predictions "
        f"{where} ORDER BY result_id, fold, model, partition",
        params,
    ).fetchall()
    return {result_id: list(group) for result_id, group in groupby(rows, key=_first)}


_first = itemgetter(0)
