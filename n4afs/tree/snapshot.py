"""An in-memory copy of the index rows the tree needs, loaded in one read transaction.

Long-lived readers (the fsspec filesystem, the FUSE mount) must not open DuckDB per file:
they hold a `Snapshot` and load a new one when the index's change token moves. Loading is
a handful of bulk queries; everything after that is dictionary lookups.

Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import json
import socket
import threading
from collections import OrderedDict, defaultdict
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


CHUNK = 256  # results whose model and score rows load together (a page of a dataset)
ROWS_HELD = 20_000  # results whose model and score rows a snapshot keeps (~0.4 GiB)


@dataclass
class DatasetRows:
    """One dataset's visible results and their per-result rows, loaded on first use.

    `results`, `cv_json` and the imported files load together (what listing and ranking a
    dataset need); the final-model scores and predictions sizes each on their first use; model
    and score rows a page (`CHUNK` results, by position) at a time, so opening one result's
    `models/` reads 256 results' rows, not the workspace's (then the rest of the dataset:
    `Snapshot._rows`).
    """

    results: list[ResultRow]
    cv_json: dict[str, str]
    position: dict[str, int]  # result id -> index in `results`
    final_json: dict[tuple[str, str], str] | None = None
    imported: dict[str, dict[str, tuple[str, int]]] | None = None
    predictions_sizes: dict[str, int] | None = None
    pages_loaded: int = 0  # model/score row loads for this dataset (`Snapshot._rows`)


@dataclass
class Snapshot:
    """What the tree needs at once, eagerly; every dataset's results on first use.

    Eager: the datasets, runs, templates and, per (dataset, target), how many results it
    shows and the newest one's time: all a mount's first `ls` needs, whatever the size (at
    100,000 results, loading every result row took 1.6 s and its model rows 9.5 s and
    2.3 GiB). A dataset's results load the first time anything inside its folder is asked
    (`rows_of`), a page of their model and score rows the first time one of those results'
    `models/`, `predictions/` or scores are built.

    Lazily loaded rows come from later read transactions than the eager ones. That is safe:
    a visible result's rows never change (a result commits whole), and anything committed
    since moved the change token, so the next refresh replaces this snapshot. A new snapshot
    adopts the model and score rows its predecessor had loaded (`adopt_rows`).
    """

    token: tuple[int, int]
    datasets: list[DatasetInfo]
    runs: list[RunRow]
    run_datasets: dict[str, list[str]]  # run id -> dataset ids in order
    templates: dict[str, list[tuple[int, str, Any]]]  # run id -> (position, name, body)
    # (run id, dataset id) -> the targets the run models there (pending results included)
    run_targets: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # (dataset id, target) -> (visible results, the newest one's created_at)
    shown: dict[tuple[str, str | None], tuple[int, datetime]] = field(default_factory=dict)
    untrusted_runs: set[str] = field(default_factory=set)  # core.index.trust.UNTRUSTED_RUNS
    import_origins: dict[str, str] = field(default_factory=dict)  # run id -> origin label
    created: datetime | None = None  # when the workspace was made (its first migration)
    live_owners: list[Owner] = field(default_factory=list)  # of the runs shown `running`
    index: Any = None  # where the deferred rows come from
    _datasets: dict[str, DatasetRows] = field(default_factory=dict, repr=False)
    _best: dict[Any, ResultRow | None] = field(default_factory=dict, repr=False)  # `best_of`
    _dataset_of: dict[str, str] = field(default_factory=dict, repr=False)  # result -> dataset
    _cv: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _model_rows: dict[str, list[tuple]] = field(default_factory=dict, repr=False)
    _score_rows: dict[str, list[tuple]] = field(default_factory=dict, repr=False)
    _models: dict[str, dict[str, ModelInfo]] = field(default_factory=dict, repr=False)
    _final: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    _lock: Any = field(default_factory=threading.RLock, repr=False)
    # dataset id -> results whose model/score rows are held, oldest load first (`_hold`)
    _held: OrderedDict[str, list[str]] = field(default_factory=OrderedDict, repr=False)
    # dataset id -> the results the previous snapshot showed there (`adopt_rows`)
    _previous_ids: dict[str, set[str]] = field(default_factory=dict, repr=False)

    # -- a dataset's results ---------------------------------------------------------------
    def rows_of(self, dataset_id: str) -> DatasetRows:
        """The dataset's visible results (ordered by seq) and pooled scores, loaded once."""
        rows = self._datasets.get(dataset_id)
        if rows is None:
            with self._lock:
                rows = self._datasets.get(dataset_id)
                if rows is None:
                    rows = self._load_dataset(dataset_id)
        return rows

    def _load_dataset(self, dataset_id: str) -> DatasetRows:
        with self.index.read() as conn:
            results = [
                queries.result_from_row(r)
                for r in conn.execute(
                    f"{queries.RESULT_SELECT} WHERE r.dataset_id = ? "
                    f"AND r.status IN {queries.VISIBLE} ORDER BY r.seq",
                    [dataset_id],
                ).fetchall()
            ]
            cv_sql = (
                "SELECT p.result_id, p.scores FROM predictions p JOIN results r USING "
                f"(result_id) WHERE r.dataset_id = ? AND {ranking.out_of_fold_sql('p')}"
            )
            cv_json = dict(conn.execute(cv_sql, [dataset_id]).fetchall())
            # imported files only come with imported runs: none, no query (the best table's
            # listing asks; a read of its own was a sixth of a cold `ls -la`)
            imported = _imported(conn, dataset_id) if self.import_origins else {}
        position = {r.result_id: i for i, r in enumerate(results)}
        rows = DatasetRows(results, cv_json, position, imported=imported)
        for result in results:
            self._dataset_of[result.result_id] = dataset_id
        for gone in self._previous_ids.pop(dataset_id, set()) - position.keys():
            for adopted in (self._model_rows, self._score_rows, self._models):
                adopted.pop(gone, None)
        self._datasets[dataset_id] = rows
        return rows

    @property
    def results(self) -> list[ResultRow]:
        """Every visible result, ordered by dataset then seq: loads every dataset (what a
        whole-workspace reader such as a benchmark asks; the tree asks per dataset)."""
        ids = sorted(d.dataset_id for d in self.datasets)
        return [r for dataset_id in ids for r in self.rows_of(dataset_id).results]

    def _rows_of_result(self, result_id: str) -> DatasetRows | None:
        """The loaded rows of the result's dataset (loading it if a caller holds a result
        whose dataset was not asked yet); None for a result this index does not show."""
        dataset_id = self._dataset_of.get(result_id)
        if dataset_id is None:
            with self.index.read() as conn:
                found = conn.execute(
                    "SELECT dataset_id FROM results WHERE result_id = ?", [result_id]
                ).fetchone()
            if found is None:
                return None
            rows = self.rows_of(found[0])
            return rows if result_id in rows.position else None
        return self.rows_of(dataset_id)

    # -- per-result reads -------------------------------------------------------------------
    def origin(self, result: ResultRow) -> str:
        """`core.index.trust.origin_label` of the result: this workspace, or which bundle."""
        return self.import_origins.get(result.run_id, "workspace")

    def cv_scores(self, result_id: str) -> dict[str, Any]:
        """The pooled out-of-fold scores (the ranking ones), parsed on first use."""
        scores = self._cv.get(result_id)
        if scores is None:
            rows = self._rows_of_result(result_id)
            text = rows.cv_json.get(result_id) if rows is not None else None
            scores = self._cv[result_id] = json.loads(text) if text else {}
        return scores

    def final_scores(self, result_id: str, partition: str) -> dict[str, Any]:
        """The final model's scores on `partition` (`ranking.CALIBRATION`, `ranking.TEST`),
        {} when it has none. A dataset's rows load in one query on first use (what
        RESULTS.csv shows), without the bulk of the model rows."""
        scores = self._final.get((result_id, partition))
        if scores is None:
            rows = self._rows_of_result(result_id)
            if rows is None:
                return {}
            if rows.final_json is None:
                with self._lock, self.index.read() as conn:
                    rows.final_json = _final_json(conn, self._dataset_of[result_id])
            text = rows.final_json.get((result_id, partition))
            scores = self._final[result_id, partition] = json.loads(text) if text else {}
        return scores

    def imported_files(self, result_id: str) -> dict[str, tuple[str, int]] | None:
        """{path inside its folder: (blob id, size)} for an imported result, else None."""
        rows = self._rows_of_result(result_id)
        if rows is None:
            return None
        if rows.imported is None:
            with self._lock, self.index.read() as conn:
                rows.imported = _imported(conn, self._dataset_of[result_id])
        return rows.imported.get(result_id)

    def predictions_size(self, result: ResultRow) -> int | None:
        """The size of a result's predictions blob (`predictions/predictions.parquet`, the
        blob as stored); the sizes of the dataset's results load in one query on first use."""
        rows = self._rows_of_result(result.result_id)
        if rows is None or result.predictions_blob is None:
            return None
        if rows.predictions_sizes is None:
            with self._lock, self.index.read() as conn:
                rows.predictions_sizes = dict(
                    conn.execute(
                        "SELECT b.blob_id, b.size FROM blobs b "
                        "JOIN results r ON r.predictions_blob = b.blob_id WHERE r.dataset_id = ?",
                        [result.dataset_id],
                    ).fetchall()
                )
        return rows.predictions_sizes.get(result.predictions_blob)

    def models_of(self, result_id: str) -> dict[str, ModelInfo]:
        """A result's models by folder label (final first, then folds in order); the
        rows of its page of results load at once, objects are built per result."""
        models = self._models.get(result_id)
        if models is None:
            models = self._models[result_id] = _models(result_id, self._rows(result_id)[0])
        return models

    def scores_of(self, result_id: str) -> list[dict[str, Any]]:
        """Every score row of a result (model, partition, fold, n, metrics…)."""
        return [
            {"model": model, "partition": partition, "fold": fold, "n": n, **json.loads(text)}
            for _, model, partition, fold, n, text in self._rows(result_id)[1]
        ]

    def prediction_sets(self, result_id: str) -> set[tuple[str, str]]:
        """(model, partition) pairs a result has predictions for; no JSON parsed."""
        return {(row[1], row[2]) for row in self._rows(result_id)[1]}

    def _rows(self, result_id: str) -> tuple[list[tuple], list[tuple]]:
        """The result's model and score rows, loading them if missing: its page of results
        the first time, every missing result of its dataset from the second page on (a
        walker is at work: a page query scans the whole models table, so a walk of 100,000
        results page by page took 97 s against ~10 s a dataset at a time)."""
        if result_id not in self._model_rows:
            rows = self._rows_of_result(result_id)
            if rows is None:
                return [], []
            with self._lock:
                if result_id not in self._model_rows:
                    self._load_rows(rows, rows.position[result_id] // CHUNK)
        return self._model_rows.get(result_id, []), self._score_rows.get(result_id, [])

    def _load_rows(self, rows: DatasetRows, chunk: int) -> None:
        whole = rows.pages_loaded > 0
        page = rows.results if whole else rows.results[chunk * CHUNK : (chunk + 1) * CHUNK]
        missing = [r for r in page if r.result_id not in self._model_rows]
        if not missing:
            return
        first, last = missing[0], missing[-1]
        where = (first.dataset_id, first.seq, last.seq)
        with self.index.read() as conn:
            models, scores = _model_rows(conn, where), _score_rows(conn, where)
        for result in missing:  # failed results have none: not missing next time
            self._model_rows[result.result_id] = models.get(result.result_id, [])
            self._score_rows[result.result_id] = scores.get(result.result_id, [])
        rows.pages_loaded += 1
        self._hold(first.dataset_id, [r.result_id for r in missing])

    def _hold(self, dataset_id: str, result_ids: list[str]) -> None:
        """Note rows just loaded; past `ROWS_HELD` results, forget the rows of the datasets
        loaded longest ago (they load again when asked), so a walk over every result of a
        large workspace keeps a bounded part of them in memory."""
        held = self._held.setdefault(dataset_id, [])
        held += result_ids
        self._held.move_to_end(dataset_id)
        while sum(map(len, self._held.values())) > ROWS_HELD and len(self._held) > 1:
            oldest, ids = self._held.popitem(last=False)
            for result_id in ids:
                for loaded in (self._model_rows, self._score_rows, self._models):
                    loaded.pop(result_id, None)
            if oldest in self._datasets:
                self._datasets[oldest].pages_loaded = 0

    def preload(self) -> None:
        """Every visible result's model and score rows (a benchmark's or a whole-tree
        walker's choice: a mount never does this, it would hold them all)."""
        for result in self.results:
            self._rows(result.result_id)

    def best_of(self, group: Any) -> ResultRow | None:
        """The best result of a group (`core.metrics.ranking.GroupKey`) whose dataset is not
        loaded: the index ranks it (`queries.rank_results`, the SQL twin of
        `ranking.rank`), so `best/` lists every dataset's best without loading every
        dataset's results (~5 s in one callback at 100,000 results). Asked once per group."""
        if group not in self._best:
            with self.index.read() as conn:
                top = queries.rank_results(conn, group, None, limit=1, best_only=True).rows
            self._best[group] = top[0] if top else None
        return self._best[group]

    def is_loaded(self, dataset_id: str) -> bool:
        return dataset_id in self._datasets

    @property
    def loaded_datasets(self) -> list[str]:
        """The datasets whose results were asked for (or adopted) so far."""
        return list(self._datasets)

    def adopt_rows(self, previous: Snapshot) -> None:
        """Keep the model and score rows `previous` loaded (a result's never change). Those
        of results removed since are dropped when their dataset loads here; a dataset not
        loaded again keeps them until a later snapshot loads it (rows, not files: a removed
        result is never shown)."""
        self._model_rows = dict(previous._model_rows)
        self._score_rows = dict(previous._score_rows)
        self._models = dict(previous._models)
        self._held = OrderedDict((d, list(ids)) for d, ids in previous._held.items())
        self._previous_ids = {
            dataset_id: set(rows.position) for dataset_id, rows in previous._datasets.items()
        }
        for dataset_id, ids in previous._previous_ids.items():  # not loaded there either
            self._previous_ids.setdefault(dataset_id, ids)


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
            run_datasets=_run_datasets(conn),
            templates=_templates(conn),
            run_targets=_run_targets(conn),
            shown=_shown(conn),
            created=conn.execute("SELECT min(applied_at) FROM schema_version").fetchone()[0],
            live_owners=[owner for _, owner in live_owners(conn)],
            untrusted_runs=trust.untrusted_runs(conn),
            import_origins=trust.import_origins(conn),
            index=index,
        )
    if previous is not None:
        snapshot.adopt_rows(previous)
    return snapshot


def _shown(conn: Any) -> dict[tuple[str, str | None], tuple[int, datetime]]:
    """(dataset id, target) -> how many visible results, the newest one's created_at."""
    rows = conn.execute(
        "SELECT dataset_id, target, count(*), max(created_at) FROM results "
        f"WHERE status IN {queries.VISIBLE} GROUP BY dataset_id, target"
    ).fetchall()
    return {(dataset_id, target): (n, latest) for dataset_id, target, n, latest in rows}


def _final_json(conn: Any, dataset_id: str) -> dict[tuple[str, str], str]:
    """(result id, partition) -> the JSON of the final model's scores there, for the
    dataset's results."""
    model = ranking.CALIBRATION[0]
    assert ranking.TEST[0] == model
    sql = (
        "SELECT p.result_id, p.partition, p.scores FROM predictions p JOIN results r "
        "USING (result_id) WHERE r.dataset_id = ? AND p.model = ?"
    )
    return {(r, p): text for r, p, text in conn.execute(sql, [dataset_id, model]).fetchall()}


def _imported(conn: Any, dataset_id: str) -> dict[str, dict[str, tuple[str, int]]]:
    """result id -> {path inside its folder: (blob id, size)} for the dataset's imported
    results."""
    grouped: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    for result_id, path, blob_id, size in conn.execute(
        "SELECT i.result_id, i.path, i.blob_id, i.size FROM imported_files i "
        "JOIN results r USING (result_id) WHERE r.dataset_id = ? ORDER BY i.result_id, i.path",
        [dataset_id],
    ).fetchall():
        grouped[result_id][path] = (blob_id, size)
    return dict(grouped)


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


Page = tuple[str, int, int]  # (dataset id, first seq, last seq): a page of results


def _model_rows(conn: Any, page: Page) -> dict[str, list[tuple]]:
    """result id -> (model id, role, fold, created, artifact rows) per model, in folder order,
    for the results of `page`.

    Two queries, heads and artifacts, grouped with `groupby` on their sort order: one joined
    row per artifact repeated each model's columns and cost ~25 % more (10,000 results).
    """
    where = "JOIN results r USING (result_id) WHERE r.dataset_id = ? AND r.seq BETWEEN ? AND ?"
    artifacts = conn.execute(
        "SELECT a.model_id, a.step_index, a.step_name, a.class_path, a.blob_id, b.size "
        "FROM models m JOIN artifacts a USING (model_id) JOIN blobs b ON b.blob_id = a.blob_id "
        f"{where} ORDER BY a.model_id, a.step_index",
        list(page),
    ).fetchall()
    by_model = {model_id: tuple(rows) for model_id, rows in groupby(artifacts, key=_first)}
    heads = conn.execute(
        f"SELECT m.result_id, m.model_id, m.role, m.fold, m.created_at FROM models m {where} "
        "ORDER BY m.result_id, m.role DESC, m.fold",
        list(page),
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


def _score_rows(conn: Any, page: Page) -> dict[str, list[tuple]]:
    """result id -> (result id, model, partition, fold, n, scores JSON) for the results of
    `page`: JSON parsed per result on use."""
    rows = conn.execute(
        "SELECT p.result_id, p.model, p.partition, p.fold, p.n_samples, p.scores "
        "FROM predictions p JOIN results r USING (result_id) "
        "WHERE r.dataset_id = ? AND r.seq BETWEEN ? AND ? "
        "ORDER BY p.result_id, p.fold, p.model, p.partition",
        list(page),
    ).fetchall()
    return {result_id: list(group) for result_id, group in groupby(rows, key=_first)}


_first = itemgetter(0)
