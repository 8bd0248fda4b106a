"""`n4afs import`: a verified bundle's results, stored once and shown in the tree.

Order matters: the whole bundle is validated and every file hash-checked first
(`n4afs.bundle`); only then are files stored as blobs (already-present content costs
nothing) and every index row written in one transaction. A refused bundle leaves the
workspace untouched; the same bundle imported twice adds nothing.

An imported result keeps the exact files it was exported with (`imported_files`), so its
folder is byte-identical to the original; its scores and models are indexed too, so it
ranks in RESULTS.csv and `best`. Whether its pickles may be loaded is decided here, by the
importer (`trusted`), never by anything inside the bundle.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from core import catalog, datasets
from core.errors import BundleError, N4AError
from core.persist import short_id
from core.runner import slug
from n4afs.bundle import DEFAULT_LIMITS, Bundle, Limits


@dataclass
class ImportSummary:
    run_id: str
    results: list[str]
    new_blobs: int
    already_imported: bool = False


def import_bundle(
    ws: Any,
    source: Path,
    name: str | None = None,
    trust: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> ImportSummary:
    with Bundle(source, limits) as bundle:
        entries = _result_entries(bundle)
        bundle.verify()
        existing = _already_imported(ws, bundle.manifest_sha256)
        if existing:
            return ImportSummary(existing, [], 0, already_imported=True)
        before = ws.blob_stats().n_blobs
        stored = _store_files(ws, bundle)
        dataset_ids = {e["dataset_id"]: _dataset_for(ws, bundle, e, name) for e in entries}
        run_id = _write_rows(ws, bundle, entries, stored, dataset_ids, source, name, trust)
    return ImportSummary(run_id, [e["result"] for e in entries], ws.blob_stats().n_blobs - before)


def _result_entries(bundle: Bundle) -> list[dict[str, Any]]:
    info = bundle.export_info
    if not isinstance(info, dict) or not str(info.get("format", "")).startswith("n4afs-export/"):
        raise BundleError("EXPORT.yaml does not describe an n4afs export (no format line)")
    entries = info.get("results") or []
    if not entries:
        raise BundleError("the bundle holds no result to import (EXPORT.yaml lists none)")
    for entry in entries:
        _check_entry(entry)
        if f"{entry['path']}/pipeline.yaml" not in bundle.sizes:
            raise BundleError(f"{entry['path']}/pipeline.yaml is missing from the bundle")
    return entries


def _check_entry(entry: Any) -> None:
    """Values that end up in the index must be of the kind the index expects."""
    from core.ids import BlobId
    from core.metrics import get_metric

    try:
        BlobId(entry["dataset_id"])
        BlobId(entry["config_hash"])
        metric = get_metric(entry["metric"])
        score = entry.get("score")
        if not metric.rankable or not (score is None or isinstance(score, (int, float))):
            raise ValueError(f"metric {entry['metric']!r} / score {score!r}")
        for key in ("path", "result", "result_id", "dataset", "task"):
            if not isinstance(entry[key], str):
                raise ValueError(f"{key} is not text")
        if entry["task"] not in ("regression", "classification"):
            raise ValueError(f"task {entry['task']!r}")
    except (KeyError, TypeError, ValueError, N4AError) as exc:
        raise BundleError(
            f"EXPORT.yaml describes a result badly ({exc}): refusing the bundle"
        ) from exc


def _already_imported(ws: Any, manifest_sha: str) -> str | None:
    rows = ws.index.fetchall("SELECT run_id FROM imports WHERE bundle_sha256 = ?", [manifest_sha])
    return rows[0][0] if rows else None


def _store_files(ws: Any, bundle: Bundle) -> dict[str, tuple[str, int]]:
    """Every file of the bundle as a blob: name -> (blob id, size). Streamed."""
    stored = {}
    for name, (size, _) in bundle.manifest.items():
        if name == "EXPORT.yaml":
            continue
        stored[name] = (ws.store.put(_ChunkReader(bundle.chunks(name))), size)
    return stored


class _ChunkReader(io.RawIOBase):
    """A read()-able stream over a chunk iterator, so blobs are written without buffering."""

    def __init__(self, chunks) -> None:
        self.chunks, self.pending = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.pending) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.pending += chunk
        if size < 0:
            size = len(self.pending)
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


def _dataset_for(ws: Any, bundle: Bundle, entry: dict[str, Any], name: str | None) -> str:
    """The dataset row the results hang under: rebuilt from data/ when present."""
    folder = f"data/{entry['dataset']}"
    if f"{folder}/spectra.csv" in bundle.sizes:
        spectra = _spectra_from_csv(bundle, folder, entry)
        spectra.name = name or entry["dataset"]
        return str(ws._store_dataset(spectra).dataset_id)
    known = {str(d.dataset_id) for d in ws.datasets()}
    if entry["dataset_id"] in known:
        return entry["dataset_id"]
    info = dataset_record(bundle.export_info, entry)
    meta = {
        "name": name or entry["dataset"],
        "task": entry["task"],
        "n_samples": info.get("n_samples", 0),
        "n_features": info.get("n_features", 0),
        "target_names": entry.get("targets") or [],
        "target_stats": info.get("target_stats", {}),
        "wavelength_min": info.get("wavelength_min"),
        "wavelength_max": info.get("wavelength_max"),
        "wavelength_unit": entry.get("wavelength_unit"),
        "source_path": info.get("source_path"),
        "source_sha256": info.get("source_sha256"),
        "source_size": info.get("source_size"),
    }
    with ws.index.write() as conn:
        catalog.add_dataset(conn, meta, entry["dataset_id"], blob_id=None)
    return entry["dataset_id"]


def dataset_record(export_info: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """EXPORT.yaml's description of a result's dataset (features, shape, stats)."""
    return (export_info.get("datasets") or {}).get(entry["dataset_id"]) or {}


def _spectra_from_csv(bundle: Bundle, folder: str, entry: dict[str, Any]) -> datasets.Spectra:
    import csv

    spectra_rows = list(csv.reader(io.StringIO(bundle.read(f"{folder}/spectra.csv").decode())))
    target_rows = list(csv.reader(io.StringIO(bundle.read(f"{folder}/targets.csv").decode())))
    ids = [row[0] for row in spectra_rows[1:]]
    X = [[float(v) for v in row[1:]] for row in spectra_rows[1:]]
    y = [row[1:] for row in target_rows[1:]]
    task = entry["task"]
    return datasets.from_arrays(
        X,
        [[float(v) for v in row] for row in y] if task == "regression" else y,
        entry["dataset"],
        ids,
        spectra_rows[0][1:],
        target_rows[0][1:],
        task,
        entry.get("wavelength_unit"),
    )


def _write_rows(ws, bundle, entries, stored, dataset_ids, source, name, trust) -> str:
    now = datetime.now()
    label = slug(name or Path(source).stem)
    run_id = f"{now:%Y-%m-%d}_import-{label}_{bundle.manifest_sha256[:6]}"
    with ws.index.write() as conn:
        for blob_id, size in set(stored.values()):
            conn.execute(
                "INSERT INTO blobs VALUES (?, ?, 'imported', current_timestamp) "
                "ON CONFLICT DO NOTHING",
                [blob_id, size],
            )
        options = {"imported_from": str(source), "versions": bundle.export_info.get("versions")}
        conn.execute(
            "INSERT INTO runs VALUES (?, ?, 'completed', ?, ?, ?, ?)",
            [run_id, f"import {label}", entries[0]["metric"], json.dumps(options), now, now],
        )
        for position, dataset_id in enumerate(dict.fromkeys(dataset_ids.values())):
            conn.execute(
                "INSERT INTO run_datasets VALUES (?, ?, ?)", [run_id, dataset_id, position]
            )
        for position, entry in enumerate(entries):
            _write_result(
                conn, bundle, stored, run_id, position, entry, dataset_ids[entry["dataset_id"]]
            )
        conn.execute(
            "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, current_timestamp)",
            [
                short_id(run_id),
                run_id,
                bundle.manifest_sha256,
                str(source),
                json.dumps(bundle.export_info, default=str),
                trust,
            ],
        )
    return run_id


def _write_result(conn, bundle, stored, run_id, position, entry, dataset_id) -> None:
    folder = entry["path"]
    pipeline = yaml.safe_load(bundle.read(f"{folder}/pipeline.yaml"))
    result_id = short_id(run_id, entry["result_id"], length=12)
    row = conn.execute("SELECT last_seq FROM dataset_seq WHERE dataset_id = ?", [dataset_id])
    seq = (row.fetchone() or (0,))[0] + 1
    conn.execute("INSERT OR REPLACE INTO dataset_seq VALUES (?, ?)", [dataset_id, seq])
    conn.execute(
        "INSERT INTO templates VALUES (?, ?, ?, ?, 1)",
        [run_id, position, entry["result"], json.dumps(pipeline)],
    )
    conn.execute(
        "INSERT INTO results (result_id, run_id, dataset_id, seq, name, config_hash, config, "
        "choices, template_position, status, metric, score, created_at) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, '{}', ?, 'completed', ?, ?, current_timestamp)",
        [
            result_id,
            run_id,
            dataset_id,
            seq,
            pipeline["name"],
            entry["config_hash"],
            json.dumps(pipeline["steps"]),
            position,
            entry["metric"],
            entry["score"],
        ],
    )
    for name, (blob_id, size) in stored.items():
        if name.startswith(folder + "/"):
            conn.execute(
                "INSERT INTO imported_files VALUES (?, ?, ?, ?)",
                [result_id, name[len(folder) + 1 :], blob_id, size],
            )
    _write_scores(conn, bundle, folder, result_id)
    _write_models(conn, bundle, stored, folder, result_id)


def _write_scores(conn, bundle, folder, result_id) -> None:
    if f"{folder}/scores.yaml" not in bundle.sizes:
        return
    scores = yaml.safe_load(bundle.read(f"{folder}/scores.yaml"))
    for model, partitions in (scores.get("models") or {}).items():
        fold = int(model[5:]) if model.startswith("fold_") else -1
        for partition, values in partitions.items():
            values = dict(values)
            n = values.pop("n", 0)
            conn.execute(
                "INSERT INTO predictions VALUES (?, ?, NULL, ?, ?, ?, ?)",
                [result_id, model, partition, fold, n, json.dumps(values, sort_keys=True)],
            )


def _write_models(conn, bundle, stored, folder, result_id) -> None:
    prefix = f"{folder}/models/"
    manifests = [n for n in bundle.sizes if n.startswith(prefix) and n.endswith("/MANIFEST.yaml")]
    for manifest_name in sorted(manifests):
        manifest = yaml.safe_load(bundle.read(manifest_name))
        model_dir = manifest_name[: -len("/MANIFEST.yaml")]
        model_id = short_id(result_id, model_dir)
        conn.execute(
            "INSERT INTO models VALUES (?, ?, ?, ?, current_timestamp)",
            [model_id, result_id, manifest["role"], manifest.get("fold")],
        )
        for index, step in enumerate(manifest["steps"]):
            blob_id, _ = stored[f"{model_dir}/{step['file']}"]
            if blob_id != step["sha256"]:
                raise BundleError(
                    f"{model_dir}/{step['file']}: content differs from its MANIFEST.yaml sha256"
                )
            conn.execute(
                "INSERT INTO artifacts VALUES (?, ?, ?, ?, ?)",
                [model_id, index, step["file"].removesuffix(".pkl"), step["class"], blob_id],
            )
