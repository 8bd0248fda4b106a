"""Sharing by reference between workspaces on one store: index rows and blob ids, no bytes.

`export_references` writes one small YAML file (`format: n4afs-references/1`): for every
completed result below a tree folder, the rows another index needs (its config, target,
metric, predictions blob, models and their step blobs) and its dataset's description and
blob. `import_references` brings them into another workspace whose store already holds
those blobs: it checks that every one is there (one HEAD each) and refuses, naming what is
missing, with nothing written; then it reads each result's predictions blob (a download,
never an upload), recomputes the scores from it with n4afs's metrics (the file's claims are
never believed, as for a bundle) and writes every row in one transaction. The results are
an import, untrusted unless `--trust`: shown as such everywhere, never best, their pickles
not loaded, until trusted. Results that were themselves imported from a bundle keep their
files as blobs of their own and are not exported by reference (the summary counts them).

Several runs of the same config on a dataset's target come in as one import run per
original run, as for a bundle (`n4afs.share.import_plan.runs_of`).

Design: docs/DESIGN.md, "Import and bundles" (by reference).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from n4afs_core.errors import BlobNotFound, BundleError, N4AError
from n4afs_core.index import writes
from n4afs_core.index.names import checked_result_name, checked_text
from n4afs_core.metrics.ranking import OUT_OF_FOLD, is_out_of_fold_prediction
from n4afs_core.metrics.scores import ranking_metric, scores_for
from n4afs_core.pipelines.persist import ScoreRow, clean_scores, headline_score, short_id
from n4afs_core.pipelines.runner import slug
from n4afs_core.store.ids import BlobId, sha256_hex

FORMAT = "n4afs-references/1"
MAX_BYTES = 64 << 20  # a references file is rows, never data: larger is not one of ours


@dataclass
class ReferencesSummary:
    out: Path
    results: list[str] = field(default_factory=list)
    blobs: int = 0
    skipped_imported: int = 0  # results imported from bundles: their files are theirs


# -- export -----------------------------------------------------------------------------------
def export_references(ws: Any, tree_path: tuple[str, ...], out: Path) -> ReferencesSummary:
    """Write the rows of every completed result below `tree_path` to `out` (YAML)."""
    from n4afs.share.export import _results_below

    tree = ws.tree
    if tree.lookup(tree_path) is None:
        raise N4AError(f"no such path in the tree: /{'/'.join(tree_path)}")
    found = _results_below(tree, tree_path)
    summary = ReferencesSummary(out)
    ids = [r.result_id for r, _ in found if r.status == "completed"]
    with ws.index.read() as conn:
        rows = conn.execute(
            "SELECT r.result_id, r.run_id, r.dataset_id, r.name, r.config_hash, r.config, "
            "r.metric, r.target, r.predictions_blob, d.task FROM results r "
            "JOIN datasets d USING (dataset_id) WHERE r.result_id IN (SELECT unnest(?)) "
            "AND r.predictions_blob IS NOT NULL AND NOT EXISTS (SELECT 1 FROM imported_files "
            "f WHERE f.result_id = r.result_id) ORDER BY r.dataset_id, r.seq",
            [ids],
        ).fetchall()
        models = conn.execute(
            "SELECT m.result_id, m.model_id, m.role, m.fold, a.step_name, a.class_path, "
            "a.blob_id FROM models m JOIN artifacts a USING (model_id) "
            "WHERE m.result_id IN (SELECT unnest(?)) ORDER BY m.model_id, a.step_index",
            [ids],
        ).fetchall()
        dataset_ids = sorted({r[2] for r in rows})
        datasets = conn.execute(
            "SELECT dataset_id, name, task, n_samples, n_features, target_names, blob_id "
            "FROM datasets WHERE dataset_id IN (SELECT unnest(?))",
            [dataset_ids],
        ).fetchall()
        sizes = dict(conn.execute("SELECT blob_id, size FROM blobs").fetchall())
    summary.skipped_imported = len(ids) - len(rows)
    if not rows:
        raise N4AError(
            f"nothing to export by reference under /{'/'.join(tree_path)}: no completed "
            "result computed in a workspace (imported results travel with their files)"
        )
    by_result: dict[str, dict[str, Any]] = {}
    for result_id, model_id, role, fold, step, class_path, blob_id in models:
        model = by_result.setdefault(result_id, {}).setdefault(
            model_id, {"role": role, "fold": fold, "steps": []}
        )
        model["steps"].append([step, class_path, blob_id])
    results = []
    blobs: set[str] = set()
    for (
        result_id,
        run_id,
        dataset_id,
        name,
        config_hash,
        config,
        metric,
        target,
        pred,
        task,
    ) in rows:
        result_models = list(by_result.get(result_id, {}).values())
        blobs.add(pred)
        blobs.update(s[2] for m in result_models for s in m["steps"])
        results.append(
            {
                "result_id": result_id,
                "run": run_id,
                "dataset_id": dataset_id,
                "name": name,
                "config_hash": config_hash,
                "config": json.loads(config),
                "metric": metric,
                "task": task,
                "target": target,
                "predictions_blob": pred,
                "models": result_models,
            }
        )
    described = {}
    for dataset_id, name, task, n_samples, n_features, targets, blob_id in datasets:
        if blob_id is not None:
            blobs.add(blob_id)
        described[dataset_id] = {
            "name": name,
            "task": task,
            "n_samples": n_samples,
            "n_features": n_features,
            "target_names": list(targets),
            "blob_id": blob_id,
        }
    document = {
        "format": FORMAT,
        "store": ws.store.url,
        "workspace": str(ws.path),
        "exported": "/" + "/".join(tree_path),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "datasets": described,
        "blob_sizes": {b: sizes.get(b) for b in sorted(blobs)},
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False))
    os.replace(tmp, out)
    summary.results = [r["name"] for r in results]
    summary.blobs = len(blobs)
    return summary


# -- import -----------------------------------------------------------------------------------
def is_references(path: Path) -> bool:
    """Whether `path` is a references file (a YAML file whose first line names the format)."""
    if not path.is_file() or path.suffix not in (".yaml", ".yml"):
        return False
    with open(path, "rb") as stream:
        return stream.readline().strip() == f"format: {FORMAT}".encode()


@dataclass
class _Planned:
    entry: dict[str, Any]
    name: str
    score_rows: list[ScoreRow]
    score: float | None


def import_references(ws: Any, path: Path, name: str | None, trust: bool) -> Any:
    """Bring the results of a references file into `ws` without storing any byte."""
    from n4afs.share.importer import ImportSummary

    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise BundleError(f"{path} is {len(data)} bytes: not a references file of n4afs")
    digest = sha256_hex(data)
    done = ws.index.fetchall("SELECT run_id FROM imports WHERE bundle_sha256 = ?", [digest])
    if done:
        runs = [r for (r,) in done]
        return ImportSummary(runs[0], [], 0, already_imported=True, runs=runs)
    document = _checked(yaml.safe_load(data), path)
    _require_blobs(ws, document)
    planned = [_plan(ws, entry, document) for entry in document["results"]]
    parts: dict[str | None, list[_Planned]] = {}
    keys = [(p.entry["dataset_id"], p.entry["target"], p.entry["config_hash"]) for p in planned]
    several = len(set(keys)) != len(keys)
    for item in planned:
        parts.setdefault(item.entry["run"] if several else None, []).append(item)
    label = slug(name or path.stem.removesuffix(".refs"))
    now = datetime.now().astimezone()  # aware: the index stores instants
    run_ids = {
        run: f"{now:%Y-%m-%d}_import-{label}_{short_id(digest, now.isoformat(), run, length=6)}"
        for run in parts
    }
    try:
        with ws.index.write() as conn:
            _write(conn, document, parts, run_ids, path, digest, trust, label, now)
    except N4AError as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"the references do not fit this workspace's index ({exc})") from exc
    results = [p.name for items in parts.values() for p in items]
    return ImportSummary(next(iter(run_ids.values())), results, 0, runs=list(run_ids.values()))


def _checked(document: Any, path: Path) -> dict[str, Any]:
    """Every value the index will hold, of the kind it expects; BundleError otherwise."""
    try:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("no format line")
        for dataset_id, info in document["datasets"].items():
            BlobId(dataset_id)
            checked_text("dataset name", info["name"])
            if info["task"] not in ("regression", "classification"):
                raise ValueError(f"task {info['task']!r}")
            for target in info["target_names"]:
                checked_text("target name", target)
            if info["blob_id"] is not None:
                BlobId(info["blob_id"])
        if not document["results"]:
            raise ValueError("no result")
        for entry in document["results"]:
            for key in ("dataset_id", "config_hash", "predictions_blob"):
                BlobId(entry[key])
            if entry["dataset_id"] not in document["datasets"]:
                raise ValueError(f"result {entry['result_id']!r} of an unlisted dataset")
            checked_result_name(entry["name"])
            checked_text("run id", entry["run"])
            checked_text("result id", entry["result_id"])
            task = document["datasets"][entry["dataset_id"]]["task"]
            ranking_metric(entry["metric"], task, f"result {entry['result_id']!r}")
            if entry["target"] not in document["datasets"][entry["dataset_id"]]["target_names"]:
                raise ValueError(f"target {entry['target']!r} is not one of the dataset's")
            for model in entry["models"]:
                if model["role"] not in ("fold", "final"):
                    raise ValueError(f"model role {model['role']!r}")
                if model["fold"] is not None and not isinstance(model["fold"], int):
                    raise ValueError(f"fold {model['fold']!r}")
                for step, class_path, blob_id in model["steps"]:
                    checked_text("step name", step)
                    checked_text("class path", class_path)
                    BlobId(blob_id)
        keys = [
            (e["run"], e["dataset_id"], e["target"], e["config_hash"]) for e in document["results"]
        ]
        if len(set(keys)) != len(keys):
            raise ValueError("one config twice on a dataset's target in one run")
    except (KeyError, TypeError, ValueError, AttributeError, N4AError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise BundleError(
            f"{path} is not a references file n4afs can import ({type(exc).__name__}: "
            f"{first[:200]}): nothing was imported"
        ) from exc
    return document


def _blobs_of(document: dict[str, Any]) -> list[str]:
    blobs = {info["blob_id"] for info in document["datasets"].values() if info["blob_id"]}
    for entry in document["results"]:
        blobs.add(entry["predictions_blob"])
        blobs.update(s[2] for m in entry["models"] for s in m["steps"])
    return sorted(blobs)


def _require_blobs(ws: Any, document: dict[str, Any]) -> None:
    """Every referenced blob is in this workspace's store (one HEAD each); else refuse,
    naming what is missing, before anything is written."""
    missing = []
    for blob_id in _blobs_of(document):
        try:
            size = ws.store.size(blob_id)
        except BlobNotFound:
            missing.append(blob_id)
            continue
        document["blob_sizes"][blob_id] = size  # the store's word, not the file's
    if missing:
        whose = document.get("store") or "the exporting workspace's store"
        raise BundleError(
            f"{len(missing)} of the {len(_blobs_of(document))} blobs these references name "
            f"are not in {ws.store.url} (first: {missing[0][:12]}; exported from {whose}): "
            "nothing was imported; share a bundle with its files instead (`n4afs export` "
            "without --by-reference)"
        )


def _plan(ws: Any, entry: dict[str, Any], document: dict[str, Any]) -> _Planned:
    """The result's score rows, recomputed from its predictions blob (hash-checked)."""
    import pyarrow.parquet as pq

    task = document["datasets"][entry["dataset_id"]]["task"]
    try:
        table = pq.read_table(io.BytesIO(ws.store.read(entry["predictions_blob"])))
        rows = _score_rows(table.to_pydict(), task)
    except (KeyError, ValueError, TypeError) as exc:
        raise BundleError(
            f"the predictions of result {entry['result_id']} ({entry['name']}) cannot be "
            f"scored ({type(exc).__name__}): nothing was imported"
        ) from exc
    return _Planned(entry, entry["name"], rows, headline_score(rows, entry["metric"]))


def _score_rows(columns: dict[str, list], task: str) -> list[ScoreRow]:
    """Score rows as the runner makes them (`core.pipelines.persist.score_rows`): one per
    model x partition, plus the pooled out-of-fold row."""
    groups: dict[tuple[str, str], tuple[int, list, list]] = {}
    pooled: tuple[list, list] = ([], [])
    for model, partition, fold, y_true, y_pred in zip(
        columns["model"],
        columns["partition"],
        columns["fold"],
        columns["y_true"],
        columns["y_pred"],
        strict=True,
    ):
        group = groups.setdefault((model, partition), (int(fold), [], []))
        group[1].append(y_true)
        group[2].append(y_pred)
        if is_out_of_fold_prediction(model, partition):
            pooled[0].append(y_true)
            pooled[1].append(y_pred)
    rows = [
        ScoreRow(model, None, partition, fold, len(t), _scores(task, t, p))
        for (model, partition), (fold, t, p) in groups.items()
    ]
    if pooled[0]:
        rows.append(
            ScoreRow(
                OUT_OF_FOLD[0], None, OUT_OF_FOLD[1], -1, len(pooled[0]), _scores(task, *pooled)
            )
        )
    return rows


def _scores(task: str, y_true: list, y_pred: list) -> dict[str, float | None]:
    if task == "regression":
        return clean_scores(scores_for(task, np.asarray(y_true, float), np.asarray(y_pred, float)))
    return clean_scores(scores_for(task, np.asarray(y_true), np.asarray(y_pred)))


def _write(conn, document, parts, run_ids, path, digest, trust, label, now) -> None:
    """Every row of the import, inside one transaction."""
    for blob_id, size in document["blob_sizes"].items():
        writes.register_blob(conn, blob_id, int(size), "referenced")
    for dataset_id, info in document["datasets"].items():
        known = conn.execute(
            "SELECT task FROM datasets WHERE dataset_id = ?", [dataset_id]
        ).fetchone()
        if known is not None:
            if known[0] != info["task"]:
                raise BundleError(
                    f"dataset {dataset_id[:12]} is a {known[0]} dataset here, a "
                    f"{info['task']} one in the references: nothing was imported"
                )
            continue
        meta = {
            "name": info["name"],
            "task": info["task"],
            "n_samples": int(info["n_samples"]),
            "n_features": int(info["n_features"]),
            "target_names": list(info["target_names"]),
            "target_stats": {},
            "wavelength_min": None,
            "wavelength_max": None,
            "wavelength_unit": None,
            "source_path": None,
            "source_sha256": None,
            "source_size": None,
        }
        writes.add_dataset(conn, meta, dataset_id, info["blob_id"])
    export_info = {k: document[k] for k in ("format", "store", "workspace", "exported", "date")}
    for run, items in parts.items():
        run_id = run_ids[run]
        options = {"imported_from": str(path), "by_reference": True}
        if run is not None:
            options["original_run"] = run
        shown = f"import {label}" + (f" ({run})" if run is not None else "")
        writes.insert_run(conn, run_id, shown, items[0].entry["metric"], options, now)
        writes.set_run_status(conn, run_id, "completed", datetime.now().astimezone())
        for position, dataset_id in enumerate(dict.fromkeys(p.entry["dataset_id"] for p in items)):
            writes.insert_run_dataset(conn, run_id, dataset_id, position)
        for position, item in enumerate(items):
            _write_result(conn, run_id, position, item)
        writes.insert_import(conn, run_id, digest, str(path), export_info, trust)


def _write_result(conn, run_id: str, position: int, item: _Planned) -> None:
    entry = item.entry
    result_id = short_id(run_id, entry["result_id"], length=12)
    config = entry["config"]
    writes.insert_template(conn, run_id, position, item.name, config, 1)
    writes.insert_imported_result(
        conn,
        result_id,
        run_id,
        entry["dataset_id"],
        item.name,
        entry["config_hash"],
        config["steps"] if isinstance(config, dict) and "steps" in config else config,
        position,
        entry["metric"],
        item.score,
        entry["target"],
        predictions_blob=entry["predictions_blob"],
    )
    ids = {}
    for model in entry["models"]:
        model_id = short_id(result_id, model["role"], model["fold"])
        shown = "final" if model["role"] == "final" else f"fold_{model['fold']}"
        ids[shown] = model_id
        writes.insert_model(conn, model_id, result_id, model["role"], model["fold"], model["steps"])
    for row in item.score_rows:
        writes.insert_score_row(
            conn,
            result_id,
            row.model,
            ids.get(row.model),
            row.partition,
            row.fold,
            row.n_samples,
            row.scores,
        )
