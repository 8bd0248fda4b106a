"""What an import would write, read and checked in full before anything is written.

`plan_import` parses every piece of a bundle the index will hold: EXPORT.yaml's entries,
each result's `pipeline.yaml`, its prediction tables and its models' MANIFEST.yaml, and the
dataset CSVs under `data/`. Any value of the wrong kind, any unsafe name, any model file
that is missing or whose sha256 differs from the bundle's manifest refuses the bundle here,
with nothing stored (`n4afs.share.importer` writes only a complete plan).

Scores are never taken from a bundle's `scores.yaml` or EXPORT.yaml: they are recomputed
from its prediction tables with n4afs's own metrics. A bundle without prediction tables
(an old `--minimal` export) imports unscored: it ranks last and is never `best`.

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import numpy as np
from n4afs_core.data import datasets
from n4afs_core.errors import BundleError, N4AError
from n4afs_core.index.names import checked_result_name, checked_text
from n4afs_core.metrics.ranking import FOLD_PREFIX, OUT_OF_FOLD, is_fold_model, is_out_of_fold
from n4afs_core.metrics.scores import ranking_metric, scores_for
from n4afs_core.pipelines.persist import ScoreRow, clean_scores, headline_score
from n4afs_core.store.ids import BlobId

from n4afs.share.bundle import Bundle

_STEP_FILE = re.compile(r"[a-z0-9][a-z0-9_]{0,99}\.pkl")
_CLASS_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_MODEL_DIR = re.compile(r"(final|fold[0-9]+)_[0-9a-z]{1,64}|[a-z0-9_]{1,100}")
# prediction file -> the model its rows belong to, as the runner names it
_PREDICTION_MODELS = {"cv": "cv", "train": "final", "test": "final", "avg": "avg", "w_avg": "w_avg"}


@dataclass
class PlannedModel:
    folder: str  # '<result folder>/models/<model dir>' inside the bundle
    role: str  # fold | final
    fold: int | None
    steps: list[tuple[str, str, str]]  # (step name, class path, blob id)


@dataclass
class PlannedResult:
    entry: dict[str, Any]
    folder: str  # the result's folder inside the bundle
    name: str
    pipeline: dict[str, Any]
    score_rows: list[ScoreRow]
    score: float | None
    models: list[PlannedModel] = field(default_factory=list)


@dataclass
class PlannedDataset:
    """The dataset row results hang under; `parquet` is None when the bundle has no data,
    or when the workspace holds the same content already (`n4afs.share.importer`), which then
    gives `dataset_id`, and the bundle's name for it becomes an `alias`."""

    dataset_id: str
    meta: dict[str, Any]
    parquet: bytes | None = None
    spectra: datasets.Spectra | None = None
    alias: str | None = None

    @property
    def blob_id(self) -> str | None:
        return sha256(self.parquet).hexdigest() if self.parquet is not None else None


@dataclass
class ImportPlan:
    metric: str
    results: list[PlannedResult]
    datasets: dict[str, PlannedDataset]  # by the dataset id the bundle names


def plan_import(bundle: Bundle, name: str | None) -> ImportPlan:
    """Everything the import will write, validated; raises BundleError before any write."""
    try:
        entries = _result_entries(bundle)
        planned = {
            e["dataset_id"]: _plan_dataset(bundle, e, name)
            for e in {e["dataset_id"]: e for e in entries}.values()
        }
        results = [_plan_result(bundle, e) for e in entries]
    except BundleError:
        raise
    except (N4AError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise BundleError(f"the bundle's metadata is malformed ({_one_line(exc)})") from exc
    return ImportPlan(entries[0]["metric"], results, planned)


def runs_of(plan: ImportPlan) -> list[tuple[str | None, ImportPlan]]:
    """The plan as the index can hold it: one import run, or, when the bundle holds several
    runs of the same config on a dataset's target (a whole dataset's export after two
    sweeps), one import run per original run (`None` when the plan is one run). Every part
    shares the plan's datasets."""
    keys = [
        (r.entry["dataset_id"], r.entry.get("target"), r.entry["config_hash"]) for r in plan.results
    ]
    if len(set(keys)) == len(keys):
        return [(None, plan)]
    parts: dict[str, list[PlannedResult]] = {}
    for result in plan.results:
        parts.setdefault(str(result.entry.get("run")), []).append(result)
    return [
        (run, ImportPlan(plan.metric, results, plan.datasets)) for run, results in parts.items()
    ]


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


# -- EXPORT.yaml ----------------------------------------------------------------------------
def _result_entries(bundle: Bundle) -> list[dict[str, Any]]:
    info = bundle.export_info
    if not isinstance(info, dict) or not str(info.get("format", "")).startswith("n4afs-export/"):
        raise BundleError("EXPORT.yaml does not describe an n4afs export (no format line)")
    entries = info.get("results") or []
    if not isinstance(entries, list) or not entries:
        raise BundleError("the bundle holds no result to import (EXPORT.yaml lists none)")
    for entry in entries:
        _check_entry(entry)
        if f"{entry['path']}/pipeline.yaml" not in bundle.sizes:
            raise BundleError(f"{entry['path']}/pipeline.yaml is missing from the bundle")
    for key in ("path", "result_id"):
        if len({e[key] for e in entries}) != len(entries):
            raise BundleError(f"EXPORT.yaml lists one result {key} twice: refusing the bundle")
    keys = {(e.get("run"), e["dataset_id"], e.get("target"), e["config_hash"]) for e in entries}
    if len(keys) != len(entries):
        raise BundleError(
            "EXPORT.yaml lists one config twice on a dataset's target in one run: refusing "
            "the bundle"
        )
    return entries


def _check_entry(entry: Any) -> None:
    """Values that end up in the index must be of the kind the index expects."""
    try:
        BlobId(entry["dataset_id"])
        BlobId(entry["config_hash"])
        score = entry.get("score")  # never believed (scores are recomputed), but typed
        if isinstance(score, bool) or not (score is None or isinstance(score, (int, float))):
            raise ValueError(f"score {score!r} is not a number")
        for key in ("path", "result", "result_id", "dataset", "task"):
            if not isinstance(entry[key], str):
                raise ValueError(f"{key} is not text")
        checked_text("dataset name", entry["dataset"])
        checked_text("result label", entry["result"])
        if entry["task"] not in ("regression", "classification"):
            raise ValueError(f"task {entry['task']!r}")
        target = entry.get("target")  # absent from bundles made before several targets
        if target is not None:
            checked_text("target name", target)
            if target not in (entry.get("targets") or [target]):
                raise ValueError(f"target {target!r} is not one of the dataset's")
        ranking_metric(entry["metric"], entry["task"], f"result {entry['path']!r}")
    except (KeyError, TypeError, ValueError, N4AError) as exc:
        raise BundleError(
            f"EXPORT.yaml describes a result badly ({_one_line(exc)}): refusing the bundle"
        ) from exc


# -- datasets -------------------------------------------------------------------------------
def _plan_dataset(bundle: Bundle, entry: dict[str, Any], name: str | None) -> PlannedDataset:
    """Rebuilt from data/ when the bundle has it (its id is then its content's), else
    described from EXPORT.yaml under the id the bundle gives."""
    folder = f"data/{entry['dataset']}"
    if f"{folder}/spectra.csv" in bundle.sizes:
        spectra = _spectra_from_csv(bundle, folder, entry)
        spectra.name = checked_text("dataset name", name or entry["dataset"])
        parquet = datasets.to_parquet_bytes(spectra)
        return PlannedDataset(
            sha256(parquet).hexdigest(), datasets.metadata(spectra), parquet, spectra
        )
    info = (bundle.export_info.get("datasets") or {}).get(entry["dataset_id"]) or {}
    if not isinstance(info, dict):
        raise BundleError("EXPORT.yaml's datasets section is malformed")
    meta = {
        "name": checked_text("dataset name", name or entry["dataset"]),
        "task": entry["task"],
        "n_samples": _int(info.get("n_samples", 0)),
        "n_features": _int(info.get("n_features", 0)),
        "target_names": [checked_text("target name", t) for t in entry.get("targets") or []],
        "target_stats": info.get("target_stats") or {},
        "wavelength_min": _number(info.get("wavelength_min")),
        "wavelength_max": _number(info.get("wavelength_max")),
        "wavelength_unit": _text(entry.get("wavelength_unit")),
        "source_path": _text(info.get("source_path")),
        "source_sha256": _text(info.get("source_sha256")),
        "source_size": _int(info.get("source_size")) if info.get("source_size") else None,
    }
    if not isinstance(meta["target_stats"], dict):
        raise BundleError("EXPORT.yaml's target_stats is malformed")
    return PlannedDataset(entry["dataset_id"], meta)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def _number(value: Any) -> float | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{value!r} is not a number")
    return value


def _text(value: Any) -> str | None:
    return None if value is None else checked_text("dataset field", value)


def _spectra_from_csv(bundle: Bundle, folder: str, entry: dict[str, Any]) -> datasets.Spectra:
    spectra_rows = _csv_rows(bundle, f"{folder}/spectra.csv")
    target_rows = _csv_rows(bundle, f"{folder}/targets.csv")
    ids = [row[0] for row in spectra_rows[1:]]
    X = [[float(v) for v in row[1:]] for row in spectra_rows[1:]]
    y = [row[1:] for row in target_rows[1:]]
    task = entry["task"]
    metadata, group = _metadata_from_csv(bundle, folder, ids)
    return datasets.from_arrays(
        X,
        [[float(v) for v in row] for row in y] if task == "regression" else y,
        entry["dataset"],
        ids,
        spectra_rows[0][1:],
        target_rows[0][1:],
        task,
        entry.get("wavelength_unit"),
        metadata=metadata,
        group=group,
    )


def _metadata_from_csv(
    bundle: Bundle, folder: str, ids: list[str]
) -> tuple[dict[str, Any], str | None]:
    """The dataset's metadata columns from metadata.csv, typed as its DATASET.yaml says
    (integer, number, text), so the rebuilt dataset is the content that was exported."""
    if f"{folder}/metadata.csv" not in bundle.sizes:
        return {}, None
    described = bundle.yaml(f"{folder}/DATASET.yaml")
    columns = described.get("columns") if isinstance(described, dict) else None
    types = columns.get("metadata") if isinstance(columns, dict) else None
    if not isinstance(types, dict):
        raise BundleError(f"{folder}/DATASET.yaml does not type the columns of metadata.csv")
    rows = _csv_rows(bundle, f"{folder}/metadata.csv")
    if rows[0][1:] != list(types) or [r[0] for r in rows[1:]] != ids:
        raise BundleError(f"{folder}/metadata.csv does not match DATASET.yaml and spectra.csv")
    parse = {
        "integer": lambda v: int(v),
        "number": lambda v: float(v) if v != "" else float("nan"),
        "text": lambda v: v if v != "" else None,
    }
    metadata: dict[str, Any] = {}
    for k, (name, kind) in enumerate(types.items(), start=1):
        if kind not in parse:
            raise BundleError(f"{folder}/DATASET.yaml: metadata type {kind!r} is unknown")
        try:
            values = [parse[kind](row[k]) for row in rows[1:]]
        except ValueError as exc:
            raise BundleError(f"{folder}/metadata.csv, column {name!r}: {exc}") from None
        metadata[checked_text("metadata column name", name)] = (
            np.array(values, dtype=object) if kind == "text" else values
        )
    group = columns.get("group")
    return metadata, group if isinstance(group, str) else None


def _csv_rows(bundle: Bundle, name: str) -> list[list[str]]:
    """A CSV of the bundle parsed whole, within the table size limit (parsed rows take
    ~10x their bytes in memory)."""
    if name not in bundle.sizes:
        raise BundleError(f"{name} is missing from the bundle")
    if bundle.sizes[name] > bundle.limits.max_table_bytes:
        raise BundleError(
            f"{name} is {bundle.sizes[name]} bytes, more than the "
            f"{bundle.limits.max_table_bytes} a table may have (--max-table-bytes)"
        )
    try:
        return list(csv.reader(io.StringIO(bundle.read(name).decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BundleError(f"{name} is not a readable CSV ({_one_line(exc)})") from exc


# -- results --------------------------------------------------------------------------------
def _plan_result(bundle: Bundle, entry: dict[str, Any]) -> PlannedResult:
    folder = entry["path"]
    pipeline = bundle.yaml(f"{folder}/pipeline.yaml")
    if not isinstance(pipeline, dict) or not isinstance(pipeline.get("steps"), list):
        raise BundleError(f"{folder}/pipeline.yaml has no list of steps")
    name = checked_result_name(pipeline.get("name"))
    rows = _score_rows(bundle, folder, entry["task"])
    return PlannedResult(
        entry=entry,
        folder=folder,
        name=name,
        pipeline=pipeline,
        score_rows=rows,
        score=headline_score(rows, entry["metric"]),
        models=_models(bundle, folder),
    )


def _score_rows(bundle: Bundle, folder: str, task: str) -> list[ScoreRow]:
    """Every prediction table of the result, scored by n4afs's metrics."""
    prefix = f"{folder}/predictions/"
    rows: list[ScoreRow] = []
    for path in sorted(n for n in bundle.sizes if n.startswith(prefix) and n.endswith(".csv")):
        stem = path[len(prefix) : -len(".csv")]
        number = stem[len(FOLD_PREFIX) :]
        if is_fold_model(stem) and number.isdigit():
            model, fold = stem, int(number)
        elif stem in _PREDICTION_MODELS:
            model, fold = _PREDICTION_MODELS[stem], -1
        else:
            continue  # a file n4afs does not write: shown, never scored
        for partition, (y_true, y_pred) in _prediction_columns(bundle, path, task).items():
            if model == OUT_OF_FOLD[0] and not is_out_of_fold(model, partition):
                raise BundleError(f"{path}: out-of-fold predictions in partition {partition!r}")
            if any(r.model == model and r.partition == partition for r in rows):
                raise BundleError(f"{path}: {model}/{partition} predictions given twice")
            scores = clean_scores(scores_for(task, y_true, y_pred))
            rows.append(ScoreRow(model, None, partition, fold, len(y_true), scores))
    return rows


def _prediction_columns(bundle: Bundle, path: str, task: str) -> dict[str, tuple[list, list]]:
    """partition -> (y_true, y_pred) of one prediction CSV, checked row by row. The
    dataset's metadata columns may stand between sample_id and y_true (shown, not read)."""
    table = _csv_rows(bundle, path)
    third = "residual" if task == "regression" else "correct"
    expected = ["sample_id", "y_true", "y_pred", third, "partition", "fold"]
    head = table[0] if table else []
    if len(head) < len(expected) or head[0] != expected[0] or head[-5:] != expected[1:]:
        raise BundleError(
            f"{path}: header is not {expected[0]},[metadata columns,]{','.join(expected[1:])}"
        )
    skip = len(head) - len(expected)  # metadata columns
    by_partition: dict[str, tuple[list, list]] = {}
    for number, row in enumerate(table[1:], start=2):
        if len(row) != len(head) or row[4 + skip] not in ("train", "val", "test"):
            raise BundleError(f"{path}, line {number}: not a prediction row")
        y_true, y_pred = row[1 + skip], row[2 + skip]
        if task == "regression":
            try:
                y_true, y_pred = float(y_true), float(y_pred)
            except ValueError:
                raise BundleError(f"{path}, line {number}: y_true/y_pred not numbers") from None
        pair = by_partition.setdefault(row[4 + skip], ([], []))
        pair[0].append(y_true)
        pair[1].append(y_pred)
    return by_partition


def _models(bundle: Bundle, folder: str) -> list[PlannedModel]:
    prefix = f"{folder}/models/"
    manifests = sorted(
        n for n in bundle.sizes if n.startswith(prefix) and n.endswith("/MANIFEST.yaml")
    )
    return [_model(bundle, name) for name in manifests]


def _model(bundle: Bundle, manifest_name: str) -> PlannedModel:
    model_dir = manifest_name[: -len("/MANIFEST.yaml")]
    if "/" in model_dir.rsplit("/models/", 1)[1] or not _MODEL_DIR.fullmatch(
        model_dir.rsplit("/", 1)[1]
    ):
        raise BundleError(f"{model_dir}: not a model folder n4afs writes")
    manifest = bundle.yaml(manifest_name)
    if not isinstance(manifest, dict) or manifest.get("role") not in ("fold", "final"):
        raise BundleError(f"{manifest_name}: no role (fold or final)")
    fold = manifest.get("fold")
    if fold is not None:
        fold = _int(fold)
    steps = manifest.get("steps")
    if not isinstance(steps, list) or not steps:
        raise BundleError(f"{manifest_name}: no steps")
    planned = []
    for step in steps:
        if not isinstance(step, dict):
            raise BundleError(f"{manifest_name}: a step is not a mapping")
        file, class_path, digest = step.get("file"), step.get("class"), step.get("sha256")
        if not isinstance(file, str) or not _STEP_FILE.fullmatch(file):
            raise BundleError(f"{manifest_name}: step file {file!r} is not a step n4afs writes")
        if not isinstance(class_path, str) or not _CLASS_PATH.fullmatch(class_path):
            raise BundleError(f"{manifest_name}: step class {class_path!r} is not a class path")
        listed = bundle.manifest.get(f"{model_dir}/{file}")
        if listed is None or listed[1] != digest:
            raise BundleError(
                f"{model_dir}/{file}: missing, or its content differs from its MANIFEST.yaml"
            )
        planned.append((file.removesuffix(".pkl"), class_path, str(BlobId(digest))))
    return PlannedModel(model_dir, manifest["role"], fold, planned)
