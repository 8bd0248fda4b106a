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
from hashlib import sha256
from pathlib import Path
from typing import Any

from n4afs_core.errors import BundleError, N4AError
from n4afs_core.index import writes
from n4afs_core.pipelines.persist import short_id
from n4afs_core.pipelines.runner import slug

from n4afs.share import nirs4all_source
from n4afs.share.bundle import DEFAULT_LIMITS, Bundle, Limits
from n4afs.share.import_plan import (
    ImportPlan,
    PlannedDataset,
    PlannedResult,
    plan_import,
    runs_of,
)


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
    attached: list[str] = field(
        default_factory=list
    )  # spectra given with --data to results imported before without them, one line each


@dataclass
class _Attachment:
    """Spectra given (`--data`) for a nirs4all dataset whose results came in before without
    them: its dataset row gets them (`writes.attach_imported_data`), nothing else is added."""

    dataset_id: str  # the index's
    name: str
    parquet: bytes | None  # None: attached already
    meta: dict[str, Any]
    old_target: str | None
    run_id: str  # the earlier import

    def line(self, dry_run: bool) -> str:
        if self.parquet is None:
            return f"dataset {self.name}: spectra attached already (run {self.run_id})"
        verb = "would be attached" if dry_run else "attached"
        return f"dataset {self.name}: spectra {verb} to the results of run {self.run_id}"


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
    """Bundles already imported are skipped; a nirs4all call imported before with other
    `--data` only attaches the spectra given now; the others' blobs are stored, then all their
    rows written in one transaction: all of them come in, or none."""
    todo, attachments = [], []
    for bundle, plan in planned:
        if _already_imported(ws, bundle.manifest_sha256):
            continue
        earlier = _earlier_import(ws, bundle)
        if earlier is None:
            todo.append((bundle, plan))
        else:
            attachments += _attachments(ws, bundle, plan, *earlier)
    attach = [a for a in attachments if a.parquet is not None]
    lines = [a.line(dry_run) for a in attachments]
    if dry_run:
        return ImportSummary(
            "", [], 0, not todo, dry_run=_dry_run_lines(planned, todo, ws, attachments)
        )
    if not todo and not attach:
        existing = [
            _already_imported(ws, b.manifest_sha256) or _earlier_import(ws, b)[0]
            for b, _ in planned
        ]
        return ImportSummary(
            existing[0], [], 0, already_imported=True, runs=existing, attached=lines
        )
    before = ws.blob_stats().n_blobs
    for _, plan in todo:
        _fit_to_index(ws, plan)
    parts = [(b, run, part) for b, plan in todo for run, part in runs_of(plan)]
    run_ids = [_run_id(b, run, source, name) for b, run, _ in parts]
    # every row written once, rolled back, before anything is stored: a bundle the index
    # cannot hold is refused with nothing uploaded and nothing written
    _try_rows(ws, _items(parts, run_ids, _manifest_ids), source, trust, attach)
    try:
        stored: dict[str, dict[str, tuple[str, int]]] = {}
        for (bundle, run, part), run_id in zip(parts, run_ids, strict=True):
            _begin(ws, run_id, run, bundle, part, source, name)
            if bundle.manifest_sha256 in stored:
                continue
            with ws.store.batch():
                stored[bundle.manifest_sha256] = _store_files(ws, bundle)
                for dataset in part.datasets.values():
                    if dataset.parquet is not None:
                        ws.store.put(dataset.parquet)
        with ws.store.batch():
            for attachment in attach:
                ws.store.put(attachment.parquet)
        files = _items(parts, run_ids, lambda b: stored[b.manifest_sha256])
        _write_rows(ws, files, source, trust, attach)
    except BaseException:
        for run_id in run_ids:
            _abandon(ws, run_id)
        raise
    labels = [r.entry["result"] for _, plan in todo for r in plan.results]
    new_blobs = ws.blob_stats().n_blobs - before
    if not todo:
        runs = sorted({a.run_id for a in attach})
        return ImportSummary(runs[0], [], new_blobs, True, runs=runs, attached=lines)
    return ImportSummary(run_ids[0], labels, new_blobs, runs=run_ids, attached=lines)


def _items(parts, run_ids, files_of) -> list[tuple]:
    """(bundle, plan, stored files, run id, whether it writes the datasets) per run."""
    items, seen = [], set()
    for (bundle, _, plan), run_id in zip(parts, run_ids, strict=True):
        first = id(plan.datasets) not in seen
        seen.add(id(plan.datasets))
        items.append((bundle, plan, files_of(bundle), run_id, first))
    return items


def _manifest_ids(bundle: Bundle) -> dict[str, tuple[str, int]]:
    """What `_store_files` will return, known before storing: the manifest's hashes,
    which every file was checked against."""
    return {
        name: (digest, size)
        for name, (size, digest) in bundle.manifest.items()
        if name != "EXPORT.yaml"
    }


def _dry_run_lines(planned, todo, ws, attachments) -> list[str]:
    lines = []
    for bundle, plan in planned:
        info = bundle.export_info
        head = info.get("nirs4all", {}).get("call") or Path(str(bundle.source)).name
        if not any(bundle is b for b, _ in todo):
            earlier = _already_imported(ws, bundle.manifest_sha256)
            if earlier is not None:
                lines.append(f"run {head}: already imported as {earlier}")
                continue
            run_id = _earlier_import(ws, bundle)[0]
            lines.append(f"run {head}: imported before as {run_id}, with other --data")
            lines += [f"  {a.line(True)}" for a in attachments if a.run_id == run_id]
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


def _earlier_import(ws: Any, bundle: Any) -> tuple[str, dict] | None:
    """(run id, export info) of an earlier import of the same nirs4all call made with other
    `--data` (or none): its bundle differs (sample ids, class names, checked models), the
    call does not, and its results must not come in twice."""
    origin = bundle.export_info.get("nirs4all") or {}
    runs = origin.get("runs")
    if not runs:
        return None
    import json

    for run_id, info in ws.index.fetchall("SELECT run_id, export_info FROM imports"):
        earlier = json.loads(info) or {}
        if (earlier.get("nirs4all") or {}).get("runs") == runs:
            return run_id, earlier
    return None


def _attachments(ws: Any, bundle: Any, plan: ImportPlan, run_id: str, earlier: dict) -> list:
    """The spectra this import gives (`--data`, checked against nirs4all's dataset hash when
    the bundle was read) for datasets of the earlier import `run_id`. Class names are refused:
    the earlier results show nirs4all's class codes, which the names would contradict."""
    out = []
    for key, planned in plan.datasets.items():
        if planned.spectra is None:
            continue
        entries = [e for e in earlier.get("results") or [] if e.get("dataset_id") == key]
        if not entries:
            continue
        ids = [short_id(run_id, e["result_id"], length=12) for e in entries]
        found = ws.index.fetchall(
            "SELECT DISTINCT d.dataset_id, d.name, d.task, d.blob_id FROM results r "
            f"JOIN datasets d USING (dataset_id) WHERE r.result_id IN ({','.join('?' * len(ids))})",
            ids,
        )
        if len(found) != 1:
            continue  # its results were removed since (`n4afs rm`)
        dataset_id, name, task, blob_id = found[0]
        if blob_id is None and task == "classification":
            raise BundleError(
                f"--data {entries[0]['dataset']}: run {run_id} imported its results without "
                "the spectra, so they show nirs4all's class codes (0, 1, ...), not the class "
                f"names; to have the names, remove that run (`n4afs rm {run_id}`) and import "
                "again with --data"
            )
        parquet = planned.parquet if blob_id is None else None
        out.append(
            _Attachment(
                str(dataset_id), name, parquet, planned.meta, entries[0].get("target"), run_id
            )
        )
    return out


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


def _label(bundle, source, name) -> str:
    origin = bundle.export_info.get("nirs4all") or {}
    return slug(name or origin.get("call") or Path(source).stem)


def _run_id(bundle, run: str | None, source, name) -> str:
    """The import run's id: a killed attempt's row stays apart (date, pid); one per
    original run when the bundle imports as several (`import_plan.runs_of`)."""
    now = datetime.now().astimezone()  # aware: the index stores instants
    attempt = short_id(bundle.manifest_sha256, now.isoformat(), os.getpid(), run, length=6)
    return f"{now:%Y-%m-%d}_import-{_label(bundle, source, name)}_{attempt}"


def _run_row(conn, run_id: str, run: str | None, bundle, plan: ImportPlan, source, name):
    origin = bundle.export_info.get("nirs4all") or {}
    label = _label(bundle, source, name)
    options = {"imported_from": str(source), "versions": bundle.export_info.get("versions")}
    if origin:
        options["nirs4all"] = origin
    if run is not None:
        options["original_run"] = run
    shown = f"import {label}" + (f" ({run})" if run is not None else "")
    writes.insert_run(conn, run_id, shown, plan.metric, options, datetime.now().astimezone())


def _begin(ws, run_id: str, run: str | None, bundle, plan: ImportPlan, source, name) -> None:
    """The import's run row, `running` and owned by this process while its blobs are
    stored, so `gc` spares them whatever its grace (as for a run: core.index.liveness)."""
    with ws.index.write() as conn:
        _run_row(conn, run_id, run, bundle, plan, source, name)


def _abandon(ws, run_id: str) -> None:
    """A failed import leaves no run behind (its stored blobs are unreferenced: gc's)."""
    with ws.index.write() as conn:
        writes.delete_running_run(conn, run_id)


class _Trial(Exception):
    """Raised inside a trial write to roll it back."""


def _write_rows(ws, items, source, trust, attach=()) -> None:
    """Every row of the import in one transaction: datasets, results, scores, models, and
    the runs marked completed; spectra attached to datasets imported before without them.
    `items`: (bundle, plan, stored files, run id, whether it writes the datasets)."""
    _rows(ws, items, source, trust, attach, trial=False)


def _try_rows(ws, items, source, trust, attach=()) -> None:
    """`_write_rows` with the run rows too, rolled back: proves the rows fit before any
    blob is stored (a refusal then leaves nothing behind)."""
    _rows(ws, items, source, trust, attach, trial=True)


def _rows(ws, items, source, trust, attach, trial: bool) -> None:
    try:
        with ws.index.write() as conn:
            for bundle, plan, stored, run_id, datasets in items:
                if trial:
                    _run_row(conn, run_id, None, bundle, plan, source, None)
                _write_all_rows(conn, bundle, plan, stored, run_id, source, trust, datasets)
            for attachment in attach:
                blob_id = sha256(attachment.parquet).hexdigest()
                writes.register_blob(conn, blob_id, len(attachment.parquet), "parquet")
                writes.attach_imported_data(
                    conn, attachment.dataset_id, blob_id, attachment.meta, attachment.old_target
                )
            if trial:
                raise _Trial
    except _Trial:
        return
    except (*ws.index.errors, N4AError) as exc:  # a constraint the plan missed: nothing committed
        if isinstance(exc, BundleError):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleError(f"the bundle does not fit this workspace's index ({first})") from exc


def _write_all_rows(
    conn, bundle, plan: ImportPlan, stored, run_id, source, trust, datasets=True
) -> None:
    """The rows of `_write_rows`, inside its transaction."""
    for blob_id, size in set(stored.values()):
        writes.register_blob(conn, blob_id, size, "imported")
    for dataset in plan.datasets.values() if datasets else ():
        blob_id = dataset.blob_id
        if blob_id is not None:
            writes.register_blob(conn, blob_id, len(dataset.parquet), "parquet")
        writes.add_dataset(conn, dataset.meta, dataset.dataset_id, blob_id)
        if dataset.alias is not None:
            writes.add_alias(conn, dataset.dataset_id, dataset.alias)
    writes.set_run_status(conn, run_id, "completed", datetime.now().astimezone())
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
