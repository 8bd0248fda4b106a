"""Turn fitted configs into stored results: blobs first, then index rows in one transaction.

Workers call `store_outcome` (it writes joblib artifacts, pipelines and the predictions
Parquet into the content-addressed store, which needs no coordination) and hand back a
small `ResultPayload`. The coordinator calls `commit_payloads`, which writes every row of
those results in one transaction: a result is visible whole or not at all, and its blobs
are durable before its rows exist.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np
from n4afs_core.metrics.ranking import OUT_OF_FOLD, fold_model, is_out_of_fold_prediction
from n4afs_core.metrics.scores import RegressionReference, get_metric, scores_for
from n4afs_core.pipelines.cv import ConfigOutcome, FittedModel
from n4afs_core.store.storage import Store

SUMMARY_KEY = b"n4a_summary"


@dataclass
class ArtifactRow:
    step_index: int
    step_name: str
    class_path: str
    blob_id: str


@dataclass
class ModelRow:
    model_id: str
    role: str  # fold | final
    fold: int | None
    artifacts: list[ArtifactRow]


@dataclass
class ScoreRow:
    model: str  # fold_<k> | final | avg | w_avg | cv
    model_id: str | None
    partition: str
    fold: int
    n_samples: int
    scores: dict[str, float]


@dataclass
class ResultPayload:
    """Everything the coordinator needs to commit one result (no fitted objects)."""

    result_id: str
    status: str  # completed | failed
    score: float | None = None
    error: str | None = None
    predictions_blob: str | None = None
    duration_s: float = 0.0
    models: list[ModelRow] = field(default_factory=list)
    score_rows: list[ScoreRow] = field(default_factory=list)
    blobs: list[tuple[str, int, str]] = field(default_factory=list)  # id, size, media type


@dataclass
class Partitions:
    """The dataset facts a worker needs to label and score predictions."""

    sample_ids: list[str]
    y: np.ndarray
    task: str
    folds: list[tuple[np.ndarray, np.ndarray]]  # (train rows, val rows) per fold
    test_idx: np.ndarray
    train_idx: np.ndarray
    _references: dict[bytes, RegressionReference] = field(default_factory=dict, repr=False)
    _sample_id_array: Any = field(default=None, repr=False)
    _label_columns_by_layout: dict[tuple, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """The facts without the caches: a copy sent to a worker process (joblib, or dask
        moving a scattered copy between workers) rebuilds what it needs, rather than carrying
        the Arrow arrays and reference summaries another worker filled. The caches are the
        fields named with a leading underscore; each goes back to its default."""
        state = dict(self.__dict__)
        for cache in (f for f in fields(self) if f.name.startswith("_")):
            empty = cache.default_factory() if cache.default_factory is not MISSING else None
            state[cache.name] = empty
        return state

    def sample_id_array(self) -> Any:
        """The sample ids as one Arrow array (built once), to take each result's rows from."""
        if self._sample_id_array is None:
            import pyarrow as pa

            self._sample_id_array = pa.array(self.sample_ids, type=pa.string())
        return self._sample_id_array

    def label_columns(self, blocks: list[tuple]) -> dict[str, Any]:
        """The label columns of a predictions table (`_label_columns`), once per layout:
        every config of a sweep is fitted on the same folds, so only y_pred differs
        between their tables, and building the rest cost ~0.6 ms a result."""
        key = tuple((b[0], b[1], b[2], np.asarray(b[3], dtype=np.int64).tobytes()) for b in blocks)
        columns = self._label_columns_by_layout.get(key)
        if columns is None:
            columns = self._label_columns_by_layout[key] = _label_columns(self, blocks)
        return columns

    def scores(self, rows: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        """Every metric of the task for predictions of these rows.

        Regression references are summarized once per set of rows (`RegressionReference`):
        a group scores each fold's rows once per config, 540 times in the reference sweep.
        """
        if self.task != "regression":
            return scores_for(self.task, self.y[rows], y_pred)
        key = np.asarray(rows, dtype=np.int64).tobytes()
        if key not in self._references:
            self._references[key] = RegressionReference.of(self.y[rows])
        return self._references[key].scores(y_pred)


def short_id(*parts: Any, length: int = 10) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:length]


# -- scores -----------------------------------------------------------------------------
def clean_scores(scores: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: undefined scores become null."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in scores.items()
    }


def score_rows(outcome: ConfigOutcome, parts: Partitions, metric: str) -> list[ScoreRow]:
    rows: list[ScoreRow] = []
    oof = {}
    for model in outcome.models:
        name = "final" if model.fold < 0 else fold_model(model.fold)
        for partition, y_pred in model.predictions.items():
            idx = _rows_of(parts, model.fold, partition)
            scores = parts.scores(idx, y_pred)
            rows.append(ScoreRow(name, None, partition, model.fold, len(idx), clean_scores(scores)))
            if is_out_of_fold_prediction(name, partition):
                oof.update(zip(idx.tolist(), y_pred.tolist(), strict=True))
    if oof:
        idx = np.array(sorted(oof))
        y_pred = np.array([oof[i] for i in idx])
        rows.append(
            ScoreRow(
                OUT_OF_FOLD[0],
                None,
                OUT_OF_FOLD[1],
                -1,
                len(idx),
                clean_scores(parts.scores(idx, y_pred)),
            )
        )
    for name, y_pred in ensemble_predictions(outcome, parts, metric).items():
        scores = clean_scores(parts.scores(parts.test_idx, y_pred))
        rows.append(ScoreRow(name, None, "test", -1, len(parts.test_idx), scores))
    return rows


def _rows_of(parts: Partitions, fold: int, partition: str) -> np.ndarray:
    if partition == "test":
        return parts.test_idx
    if fold < 0:
        return parts.train_idx
    train, val = parts.folds[fold]
    return train if partition == "train" else val


def ensemble_predictions(
    outcome: ConfigOutcome, parts: Partitions, metric: str
) -> dict[str, np.ndarray]:
    """avg / w_avg: the fold models' test predictions, averaged (weighted by val score).

    Regression only: averaging class labels is not defined without probabilities.
    """
    folds = [m for m in outcome.models if m.fold >= 0 and "test" in m.predictions]
    if not folds or parts.task != "regression":
        return {}
    preds = np.vstack([m.predictions["test"] for m in folds])
    return {"avg": preds.mean(axis=0), "w_avg": fold_weights(outcome, parts, metric) @ preds}


def fold_weights(outcome: ConfigOutcome, parts: Partitions, metric: str) -> np.ndarray:
    """Better validation score, larger weight; direction-aware; equal when undefined."""
    direction = get_metric(metric).direction
    values = []
    for model in (m for m in outcome.models if m.fold >= 0):
        _, val = parts.folds[model.fold]
        s = parts.scores(val, model.predictions["val"])[metric]
        if direction == "higher":
            values.append(max(s, 0.0))
        else:
            values.append(1.0 / max(abs(s), 1e-12))
    weights = np.nan_to_num(np.array(values, dtype=float))
    total = weights.sum()
    return weights / total if total > 0 else np.full(len(values), 1.0 / len(values))


def headline_score(rows: list[ScoreRow], metric: str) -> float | None:
    """The run's metric on pooled out-of-fold predictions, else on the final model's test."""
    for model, partition in (OUT_OF_FOLD, ("final", "test")):
        for row in rows:
            if row.model == model and row.partition == partition:
                return row.scores.get(metric)
    return None


# -- blobs ------------------------------------------------------------------------------
class PickleParts:
    """A pickle as the C pickler hands it to a file: its framed opcodes as `bytes`, and the
    memory of each large array (`pickle.PickleBuffer`, protocol 5) as a view, not a copy.

    Their concatenation is exactly `pickle.dumps(obj, protocol=5)` (the pickler writes a
    buffer of 64 KiB or more straight to its file, outside any frame, whether that file is
    this or dumps' in-memory one), so `joblib.load` and `pickle.load` read the same object
    from the same bytes. Measured on the 1,000-config sweep of a 1000 x 1000 set (4.1 GB of
    models): joining them first cost a copy of every model's arrays into fresh memory.
    """

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[memoryview] = []
        self.size = 0

    def write(self, data: Any) -> int:
        view = data.raw() if isinstance(data, pickle.PickleBuffer) else memoryview(data)
        view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        self.parts.append(view)
        self.size += view.nbytes
        return view.nbytes


def _joblib_bytes(obj: Any) -> PickleParts:
    """A pickle `joblib.load` reads, written by the C pickler (protocol 5), in parts.

    `joblib.dump` pickles through a pure-Python pickler: measured on the reference sweep,
    1.5 s for 810 artifacts, against a few tens of ms here. Same bytes for the same object,
    so identical fits deduplicate.
    """
    sink = PickleParts()
    pickle.Pickler(sink, protocol=5).dump(obj)
    return sink


def _put(store: Store, payload: ResultPayload, data: bytes, media_type: str) -> str:
    blob_id = store.put(data)
    payload.blobs.append((blob_id, len(data), media_type))
    return blob_id


StoredSteps = dict[int, tuple[str, int]]
"""id(fitted step) -> (blob id, size) of the steps already stored by one worker."""


def _store_model(
    store: Store,
    payload: ResultPayload,
    model: FittedModel,
    step_names: list[str],
    stored: StoredSteps,
) -> ModelRow:
    role = "final" if model.fold < 0 else "fold"
    model_id = short_id(payload.result_id, role, model.fold)
    artifacts = []
    for index, (name, step) in enumerate(zip(step_names, model.steps, strict=True)):
        blob_id = _store_step(store, payload, step, stored)
        class_path = f"{type(step).__module__}.{type(step).__qualname__}"
        artifacts.append(ArtifactRow(index, name, class_path, blob_id))
    # no pipeline blob: the whole chain is assembled from these artifacts when asked for,
    # so a model's bytes are stored once
    return ModelRow(model_id, role, None if model.fold < 0 else model.fold, artifacts)


def _store_step(store: Store, payload: ResultPayload, step: Any, stored: StoredSteps) -> str:
    """Pickle and store a fitted step once per object.

    A fitted prefix is one object shared by every config of its fold (`core.pipelines.cv`'s memo),
    so the reference sweep pickled and hashed 270 preprocessing steps to store 8 blobs.
    Keying by `id()` is safe while the caller holds the fitted models (no id is reused).
    """
    blob_id, size = stored_step(store, step, stored)
    payload.blobs.append((blob_id, size, "joblib"))
    return blob_id


def stored_step(store: Store, step: Any, stored: StoredSteps) -> tuple[str, int]:
    """The blob id and size of a fitted step, pickled and stored on its first call.

    The pickle's parts go to the store as they are (`Store.put_parts`): the arrays' memory
    is hashed and written without a copy; the step must not change afterwards (a fitted
    step does not)."""
    key = id(step)
    if key not in stored:
        pickled = _joblib_bytes(step)
        stored[key] = (store.put_parts(pickled.parts), pickled.size)
    return stored[key]


def store_fitted(store: Store, models: list[FittedModel], stored: StoredSteps) -> None:
    """Store the steps of models as soon as they are fitted (a fold of a group), so the
    disk writes them while the next fold fits; `store_outcome` then finds them in `stored`.
    """
    for model in models:
        for step in model.steps:
            stored_step(store, step, stored)


def predictions_table_bytes(
    outcome: ConfigOutcome, parts: Partitions, rows: list[ScoreRow], metric: str
) -> bytes:
    """One row per sample x model x partition; scores summarized in the footer."""
    import pyarrow.parquet as pq

    blocks: list[tuple[str, str, int, np.ndarray, np.ndarray]] = []  # model, partition, fold
    for model in outcome.models:
        name = "final" if model.fold < 0 else fold_model(model.fold)
        for partition, y_pred in model.predictions.items():
            idx = _rows_of(parts, model.fold, partition)
            blocks.append((name, partition, model.fold, idx, np.asarray(y_pred)))
    for name, y_pred in ensemble_predictions(outcome, parts, metric).items():
        blocks.append((name, "test", -1, parts.test_idx, y_pred))
    table = _predictions_table(parts, blocks)
    summary = {
        "metric": metric,
        "direction": get_metric(metric).direction,
        "n_rows": table.num_rows,
        "score": headline_score(rows, metric),
        "scores": [
            {"model": r.model, "partition": r.partition, "fold": r.fold, **r.scores} for r in rows
        ],
    }
    table = table.replace_schema_metadata({SUMMARY_KEY: json.dumps(summary, sort_keys=True)})
    sink = io.BytesIO()
    # snappy without column statistics: half the time of zstd on these small tables, the
    # same size within 2 %; nobody filters inside one result's table
    pq.write_table(table, sink, compression="snappy", write_statistics=False)
    return sink.getvalue()


def _predictions_table(parts: Partitions, blocks: list[tuple]) -> Any:
    """The table of `predictions_table_bytes`, built from whole arrays: one Python list
    per cell cost ~1 ms a result, as much as scoring it. Column types are those the
    per-cell lists gave (strings, int64 folds, the targets' own type)."""
    import pyarrow as pa

    columns = parts.label_columns(blocks)
    y_pred = _values_array(np.concatenate([b[4] for b in blocks]))
    return pa.table({**columns, "y_pred": y_pred})


def _label_columns(parts: Partitions, blocks: list[tuple]) -> dict[str, Any]:
    """Every column but y_pred: the same for every config fitted on the same folds."""
    import pyarrow as pa

    counts = [len(idx) for *_, idx, _ in blocks]
    rows = np.concatenate([idx for *_, idx, _ in blocks]).astype(np.int64, copy=False)
    block_of_row = pa.array(np.repeat(np.arange(len(blocks)), counts))

    def repeated(values: list) -> Any:
        return pa.array(values).take(block_of_row)

    return {
        "sample_id": parts.sample_id_array().take(pa.array(rows)),
        "model": repeated([b[0] for b in blocks]),
        "partition": repeated([b[1] for b in blocks]),
        "fold": repeated([b[2] for b in blocks]),
        "y_true": _values_array(parts.y[rows]),
    }


def _values_array(values: np.ndarray) -> Any:
    """Targets or predictions as Arrow: float64 directly; anything else (class labels) via
    Python values, so its type is inferred as it always was."""
    import pyarrow as pa

    return pa.array(values if values.dtype == np.float64 else values.tolist())


def store_outcome(
    store: Store,
    result_id: str,
    outcome: ConfigOutcome,
    parts: Partitions,
    step_names: list[str],
    metric: str,
    stored: StoredSteps | None = None,
) -> ResultPayload:
    """Write a config's blobs; the returned payload is what the index will record.

    `stored`: steps already stored by this worker (pass the same dict for every outcome of
    a group, so shared fitted prefixes are pickled once).
    """
    if outcome.error is not None:
        return ResultPayload(result_id, "failed", error=outcome.error)
    stored = {} if stored is None else stored
    payload = ResultPayload(result_id, "completed")
    payload.models = [_store_model(store, payload, m, step_names, stored) for m in outcome.models]
    rows = score_rows(outcome, parts, metric)
    ids = {
        ("final" if m.role == "final" else fold_model(m.fold)): m.model_id for m in payload.models
    }
    for row in rows:
        row.model_id = ids.get(row.model)
    payload.score_rows = rows
    payload.score = headline_score(rows, metric)
    data = predictions_table_bytes(outcome, parts, rows, metric)
    payload.predictions_blob = _put(store, payload, data, "parquet")
    return payload
