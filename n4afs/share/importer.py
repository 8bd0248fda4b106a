"""`n4afs import`: a verified bundle's results, stored once and shown in the tree.

Order matters: the whole bundle is validated, every piece the index will hold parsed and
checked (`n4afs.share.import_plan`), and every file hash-checked (`n4afs.share.bundle`) first; only
then are files stored as blobs (already-present content costs nothing) and every index row,
dataset rows included, written in one transaction. A refused bundle leaves the workspace's
index untouched; a failure while storing leaves at most unreferenced blobs, which `gc`
removes like those of a crashed run; the same bundle imported twice adds nothing.

An imported result keeps the files it was exported with (`imported_files`), except
`scores.yaml`, which the tree renders from scores recomputed here from the result's
prediction tables: a bundle's own score claims are never believed. Imported results are
marked as such (the `imports` row: bundle sha256, source, trusted) everywhere they show,
and rank for `best` only when trusted (`--trust` now, or `n4afs trust` later). Whether their
pickles may be loaded is decided by the same flag, never by anything inside the bundle.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from n4afs_core.errors import BundleError
from n4afs_core.index import writes
from n4afs_core.pipelines.persist import short_id
from n4afs_core.pipelines.runner import slug

from n4afs.share import nirs4all_source
from n4afs.share.bundle import DEFAULT_LIMITS, Bundle, Limits
from n4afs.share.import_plan import ImportPlan, PlannedDataset, PlannedResult, plan_import


@dataclass
class ImportSummary:
    run_id: str
    results: list[str]
    new_blobs: int
    already_imported: bool = False
    runs: list[str] = field(
        default_factory=list
    )  # every import run (a nirs4all source: one per call)
    dry_run: list[str] = field(
        default_factory=list
    )  # what `--dry-run` would bring in, one line each


def import_bundle(
    ws: Any,
    source: Path,
    name: str | None = None,
    trust: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    data: dict[str, str] | None = None,
    dry_run: bool = False,
) -> ImportSummary:
    """Import an n4afs export, a nirs4all workspace or a nirs4all `.n4a` bundle
    (`n4afs.share.nirs4all_source` makes the latter two bundles like an export)."""
    kind = nirs4all_source.kind_of(Path(source))
    if kind is not None:
        bundles = nirs4all_source.read_source(Path(source), kind, name, data, limits)
        plan_name = name if kind == "n4a" else None
        return _import_all(
            ws, [(b, plan_import(b, plan_name)) for b in bundles], source, name, trust, dry_run
        )
    if data:
        raise BundleError("--data applies to nirs4all workspaces, not to n4afs exports")
    with Bundle(source, limits) as bundle:
        plan = plan_import(bundle, name)
        bundle.verify()
        return _import_all(ws, [(bundle, plan)], source, name, trust, dry_run)


def _import_all(ws, planned, source, name, trust, dry_run) -> ImportSummary:
    """Bundles already imported are skipped; the others' blobs are stored, then all their
    rows written in one transaction: all of them come in, or none."""
    todo = [(b, p) for b, p in planned if not _already_imported(ws, b.manifest_sha256)]
    for bundle, _ in todo:
        _refuse_a_second_copy(ws, bundle)
    if dry_run:
        return ImportSummary("", [], 0, not todo, dry_run=_dry_run_lines(planned, todo, ws))
    if not todo:
        existing = [_already_imported(ws, b.manifest_sha256) for b, _ in planned]
        return ImportSummary(existing[0], [], 0, already_imported=True, runs=existing)
    before = ws.blob_stats().n_blobs
    for _, plan in todo:
        _fit_to_index(ws, plan)
    run_ids: list[str] = []
    try:
        stored = []
        for bundle, plan in todo:
            run_ids.append(_begin(ws, bundle, plan, source, name))
            with ws.store.batch():
                stored.append(_store_files(ws, bundle))
                for dataset in plan.datasets.values():
                    if dataset.parquet is not None:
                        ws.store.put(dataset.parquet)
        _write_rows(
            ws,
            [(b, p, s, r) for (b, p), s, r in zip(todo, stored, run_ids, strict=True)],
            source,
            trust,
        )
    except BaseException:
        for run_id in run_ids:
            _abandon(ws, run_id)
        raise
    labels = [r.entry["result"] for _, plan in todo for r in plan.results]
    return ImportSummary(run_ids[0], labels, ws.blob_stats().n_blobs - before, runs=run_ids)


def _dry_run_lines(planned, todo, ws) -> list[str]:
    lines = []
    for bundle, plan in planned:
        info = bundle.export_info
        head = info.get("nirs4all", {}).get("call") or Path(str(bundle.source)).name
        if (bundle, plan) not in todo:
            lines.append(
                f"run {head}: already imported as {_already_imported(ws, bundle.manifest_sha256)}"
            )
            continue
        flag = "" if info.get("cv_comparable", True) else " (legacy engine: CV not comparable)"
        lines.append(f"run {head}: {len(plan.results)} result(s){flag}")
        for result in plan.results:
            models = "model" if result.models else "score-only"
            lines.append(f"  {result.entry['dataset']}/{result.entry['result']}  {models}")
        for dataset in plan.datasets.values():
            state = (
                "attached"
                if dataset.parquet is not None or dataset.spectra is not None
                else "missing (--data NAME=path.csv)"
            )
            lines.append(f"  dataset {dataset.meta['name']}: spectra {state}")
    return lines


def _refuse_a_second_copy(ws: Any, bundle: Any) -> None:
    """A nirs4all call imported before with other `--data` (or none) would come in again as
    other results: its spectra are not attached to the earlier import, and saying so is
    better than showing every result twice."""
    origin = bundle.export_info.get("nirs4all") or {}
    runs = origin.get("runs")
    if not runs:
        return
    import json

    for run_id, info in ws.index.fetchall("SELECT run_id, export_info FROM imports"):
        earlier = (json.loads(info) or {}).get("nirs4all") or {}
        if earlier.get("runs") == runs:
            raise BundleError(
                f"nirs4all call {origin.get('call')!r} is imported already as run {run_id}, "
                "with other --data than now; --data does not attach spectra to an earlier "
                f"import: remove it first (`n4afs rm {run_id}`), then import again with --data"
            )


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


def dataset_record(export_info: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """EXPORT.yaml's description of a result's dataset (features, shape, stats)."""
    return (export_info.get("datasets") or {}).get(entry["dataset_id"]) or {}


def _fit_to_index(ws: Any, plan: ImportPlan) -> None:
    """Datasets the workspace holds already are not added again: spectra of the same content
    (`Workspace.known_content`; a bundle's CSV rebuilds other Parquet bytes) hang the results
    under the dataset here, the bundle's name for it becoming an alias when free, and
    attach the spectra of one imported without them. A bundle without data may hang results
    under a dataset id the workspace knows: only under one of the same task (a
    classification claim on a regression dataset would rank its results by another
    metric)."""
    for dataset in plan.datasets.values():
        if dataset.spectra is not None:
            _use_known_content(ws, dataset)
    for dataset in plan.datasets.values():
        known = ws.index.fetchall(
            "SELECT task FROM datasets WHERE dataset_id = ?", [dataset.dataset_id]
        )
        if known and known[0][0] != dataset.meta["task"]:
            raise BundleError(
                f"the bundle files results under dataset {dataset.dataset_id[:12]}, a "
                f"{known[0][0]} dataset here, as {dataset.meta['task']}: refusing the bundle"
            )


def _use_known_content(ws: Any, dataset: PlannedDataset) -> None:
    known = ws.known_content(dataset.spectra, dataset.dataset_id)
    if known is None:
        return
    dataset.dataset_id = str(known.dataset_id)
    if known.blob_id is not None:
        dataset.parquet = None  # stored already
    name = dataset.meta["name"]
    if name not in known.names and not ws.index.fetchall(
        "SELECT 1 FROM datasets WHERE name = ? UNION ALL "
        "SELECT 1 FROM dataset_aliases WHERE name = ?",
        [name, name],
    ):
        dataset.alias = name


def _begin(ws, bundle, plan: ImportPlan, source, name) -> str:
    """The import's run row, `running` and owned by this process while its blobs are
    stored, so `gc` spares them whatever its grace (as for a run: core.index.liveness)."""
    now = datetime.now()
    origin = bundle.export_info.get("nirs4all") or {}
    label = slug(name or origin.get("call") or Path(source).stem)
    attempt = short_id(bundle.manifest_sha256, now.isoformat(), os.getpid(), length=6)
    run_id = f"{now:%Y-%m-%d}_import-{label}_{attempt}"  # a killed attempt's row stays apart
    options = {"imported_from": str(source), "versions": bundle.export_info.get("versions")}
    if origin:
        options["nirs4all"] = origin
    with ws.index.write() as conn:
        writes.insert_run(conn, run_id, f"import {label}", plan.metric, options, now)
    return run_id


def _abandon(ws, run_id: str) -> None:
    """A failed import leaves no run behind (its stored blobs are unreferenced: gc's)."""
    with ws.index.write() as conn:
        writes.delete_running_run(conn, run_id)


def _write_rows(ws, items, source, trust) -> None:
    """Every row of the import in one transaction: datasets, results, scores, models, and
    the runs marked completed. `items`: (bundle, plan, stored files, run id)."""
    try:
        with ws.index.write() as conn:
            for bundle, plan, stored, run_id in items:
                _write_all_rows(conn, bundle, plan, stored, run_id, source, trust)
    except ws.index.errors as exc:  # a constraint the plan missed: refused, nothing committed
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleError(f"the bundle does not fit this workspace's index ({first})") from exc


def _write_all_rows(conn, bundle, plan: ImportPlan, stored, run_id, source, trust) -> None:
    """The rows of `_write_rows`, inside its transaction."""
    for blob_id, size in set(stored.values()):
        writes.register_blob(conn, blob_id, size, "imported")
    for dataset in plan.datasets.values():
        blob_id = dataset.blob_id
        if blob_id is not None:
            writes.register_blob(conn, blob_id, len(dataset.parquet), "parquet")
        writes.add_dataset(conn, dataset.meta, dataset.dataset_id, blob_id)
        if dataset.alias is not None:
            writes.add_alias(conn, dataset.dataset_id, dataset.alias)
    writes.set_run_status(conn, run_id, "completed", datetime.now())
    dataset_ids = [plan.datasets[r.entry["dataset_id"]].dataset_id for r in plan.results]
    for position, dataset_id in enumerate(dict.fromkeys(dataset_ids)):
        writes.insert_run_dataset(conn, run_id, dataset_id, position)
    for position, (result, dataset_id) in enumerate(zip(plan.results, dataset_ids, strict=True)):
        _write_result(conn, stored, run_id, position, result, dataset_id)
    writes.insert_import(
        conn, run_id, bundle.manifest_sha256, str(source), bundle.export_info, trust
    )


def _write_result(conn, stored, run_id, position, result: PlannedResult, dataset_id) -> None:
    entry, folder = result.entry, result.folder
    result_id = short_id(run_id, entry["result_id"], length=12)
    writes.insert_template(conn, run_id, position, result.name, result.pipeline, 1)
    writes.insert_imported_result(
        conn,
        result_id,
        run_id,
        dataset_id,
        result.name,
        entry["config_hash"],
        result.pipeline["steps"],
        position,
        entry["metric"],
        result.score,
        entry.get("target"),
    )
    for path, (blob_id, size) in stored.items():
        if path.startswith(folder + "/"):
            writes.insert_imported_file(conn, result_id, path[len(folder) + 1 :], blob_id, size)
    for score in result.score_rows:
        writes.insert_score_row(
            conn,
            result_id,
            score.model,
            None,
            score.partition,
            score.fold,
            score.n_samples,
            score.scores,
        )
    for model in result.models:
        model_id = short_id(result_id, model.folder)
        writes.insert_model(conn, model_id, result_id, model.role, model.fold, model.steps)
