"""Keeping a workspace healthy: what is referenced, what can go, what is broken.

gc is mark-and-sweep with a grace period. Marked: every blob the index references. Swept:
objects (and leftover temporaries) that are unreferenced *and* older than the grace period
(default one hour) *and* older than the start of every run in flight (status `running`, an
owner process alive: `core.index.liveness`), whatever the grace. Workers write a result's blobs
before the coordinator commits its rows, and a worker that re-uses an existing object
refreshes its mtime (`Store.touch`), so anything an in-flight run may still reference is
younger than the run's start: `gc --grace 0` next to a running sweep removes none of its
blobs. The mtime is checked again right before each unlink.

A store may be shared by several workspaces (`core.store.shared`): gc first publishes this
workspace's references in the store, then spares every object another workspace holds
(listed in its document, or newer than its `spare_after`); verify and du count those as
"held by other workspaces", not as garbage.

verify hashes every referenced blob (and a remote store's cached copies) and checks that
index rows hang together; `repair` removes stale temporaries, evicts corrupt cached copies,
moves corrupt objects to `<workspace>/quarantine/`, marks results whose blobs are missing or
corrupt as `broken` (the tree shows them with the reason instead of serving wrong bytes) and
says what recreates the bytes; once they are back, `repair` completes those results again.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n4afs_core.errors import N4AError, SharedStoreError, StoreUnreachable
from n4afs_core.index import writes
from n4afs_core.index.database import Index
from n4afs_core.index.liveness import live_runs
from n4afs_core.index.names import result_label
from n4afs_core.store import shared
from n4afs_core.store.renders import RenderCatalogue
from n4afs_core.store.storage import Store

DEFAULT_GRACE_S = 3600.0
# Objects' mtimes come from the store's clock (S3's, for a remote store) and owners' start
# times from the run's host: spare a minute more than the live runs' starts to absorb skew.
CLOCK_SLACK_S = 60.0


@dataclass
class GcReport:
    referenced: int = 0
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    spared_young: int = 0
    temporaries_removed: int = 0
    live_runs: list[str] = field(default_factory=list)  # runs in flight: their blobs spared
    held_by_others: int = 0  # unreferenced here, held by another workspace of the store
    other_workspaces: list[str] = field(default_factory=list)  # `shared.Holds.describe`
    forgotten: list[str] = field(default_factory=list)  # documents removed (`forget`)
    renders_kept: int = 0  # blobs of the current renderer's stored renders (marked)
    renders_dropped: list[str] = field(default_factory=list)  # old renderers' stamps


def referenced_blobs(index: Index) -> set[str]:
    return {b for (b,) in index.fetchall("SELECT DISTINCT blob_id FROM referenced_blobs")}


def workspace_of(index: Index) -> Path:
    return index.dir


def publish_refs(index: Index, store: Store) -> shared.Published:
    """Publish this workspace's references in the store (`core.store.shared.publish`)."""
    with index.read() as conn:
        in_flight = live_runs(conn)
    read_at = time.time()
    marked = referenced_blobs(index)  # after the live runs, as gc marks
    starts = [start - CLOCK_SLACK_S for start in in_flight.values()]
    return shared.publish(store, workspace_of(index), marked, read_at, starts)


def held_by_others(index: Index, store: Store) -> shared.Holds:
    return shared.others(store, workspace_of(index))


def gc(
    index: Index,
    store: Store,
    dry_run: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
    forget: tuple[str, ...] | list[str] = (),
    current_renders: str | None = None,
) -> GcReport:
    """Delete unreferenced objects (and temporaries) last written or re-used before the
    cutoff: `grace_s` ago, or earlier when a run is in flight.

    A run in flight (status `running`, an owner process alive: `core.index.liveness`) writes its
    blobs before committing the rows that reference them, and re-uses old objects by
    touching them, so every unreferenced object written or touched since its owner took it
    may be one of its results: the cutoff moves back to the start of the oldest live run
    (less `CLOCK_SLACK_S`), whatever the grace. A run whose owner died is interrupted, not
    in flight: its unreferenced blobs are collected as any others (a resume writes again
    what it needs). `grace_s=0` with no live run collects every unreferenced object.

    On a store other workspaces share (`core.store.shared`), this workspace's references
    are published first and what the others hold is spared; `forget` first removes the
    documents of workspaces their users say are gone (ids or prefixes).

    Stored renders (`core.store.renders`) are re-creatable: the records of
    `current_renders` (the renderer stamp of the code calling, `n4afs.tree.renderers.
    render_stamp`) mark their blobs; other stamps' records are dropped first, so their blobs
    are swept as unreferenced. Without `current_renders` every stamp's blobs are kept.
    """
    report = GcReport()
    workspace = workspace_of(index)
    for gone in forget:
        found = shared.forget(store, workspace, gone)
        if found is None:
            raise SharedStoreError(f"the store {store.url} has no workspace {gone!r}")
        report.forgotten.append(found.workspace_id)
    with index.read() as conn:
        in_flight = live_runs(conn)
    read_at = time.time()
    marked = referenced_blobs(index)  # after the live runs: a run settled meanwhile is marked
    report.referenced = len(marked)
    catalogue = RenderCatalogue(index.dir, store)
    stamps = catalogue.stamps()
    kept = stamps if current_renders is None else [s for s in stamps if s == current_renders]
    report.renders_dropped = [s for s in stamps if s not in kept]
    if not dry_run:
        for stamp in report.renders_dropped:  # records first: a record never outlives its blob
            catalogue.drop(stamp)
    # after the drop: a render stored meanwhile is young; renders of removed data go
    rendered = catalogue.live_blobs(kept, marked, drop=not dry_run)
    report.renders_kept = len(rendered)
    marked |= rendered  # published too: the other workspaces of a shared store spare them
    starts = [start - CLOCK_SLACK_S for start in in_flight.values()]
    shared.publish(store, workspace, marked, read_at, starts)  # before reading the others'
    holds = shared.others(store, workspace)
    report.other_workspaces = holds.describe()
    if holds.unreadable:
        raise SharedStoreError(
            f"gc removed nothing: the references of {', '.join(holds.unreadable)} in "
            f"{store.url} cannot be read; if that workspace is gone, `n4afs gc --forget ID`"
        )
    report.live_runs = sorted(in_flight)
    cutoff = time.time() - grace_s
    if in_flight:
        cutoff = min(cutoff, min(in_flight.values()) - CLOCK_SLACK_S)
    for blob_id in store.iter_ids():
        if blob_id in marked:
            continue
        mtime = store.mtime(blob_id)
        if holds.holds(blob_id, mtime):
            report.held_by_others += 1
            continue
        if mtime > cutoff:
            report.spared_young += 1
            continue
        size = store.size(blob_id)
        if not dry_run:
            if store.mtime(blob_id) > cutoff:  # re-used since we looked: keep it
                report.spared_young += 1
                continue
            store.remove(blob_id)
        report.removed.append(blob_id)
        report.removed_bytes += size
    for tmp in store.temporaries() + [t for s in kept for t in catalogue.temporaries(s)]:
        try:
            written = tmp.stat().st_mtime
        except FileNotFoundError:  # published or dropped by its writer since listed
            continue
        if written <= cutoff:
            report.temporaries_removed += 1
            if not dry_run:
                tmp.unlink(missing_ok=True)
    if not dry_run and report.removed:
        with index.write() as conn:
            writes.delete_blob_rows(conn, report.removed)
    return report


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    corrupt_copies: list[str] = field(default_factory=list)  # a remote store's cache
    orphans: list[str] = field(default_factory=list)
    held_by_others: int = 0  # not referenced here, held by another workspace of the store
    renders: int = 0  # blobs of stored renders (re-creatable: not orphans)
    temporaries: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # index rows that do not hang together
    broken_results: list[str] = field(default_factory=list)
    restorable: list[str] = field(default_factory=list)  # broken, but whole again
    recreate: list[str] = field(default_factory=list)  # commands that put missing bytes back
    quarantine: str = ""  # where --repair moved corrupt objects

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.corrupt_copies or self.problems)

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (`describe`): what `n4afs verify --json` prints."""
        return describe(self)


# what `repair` writes into a result it marks broken; it restores only results it marked
BROKEN_PREFIX = "broken: a blob it needs is missing or corrupt"
QUARANTINE = "quarantine"

_COMPLETED_WITHOUT_SCORES = (
    "SELECT r.result_id FROM results r WHERE r.status = 'completed' AND NOT EXISTS "
    "(SELECT 1 FROM predictions p WHERE p.result_id = r.result_id)"
)
_COMPLETED_WITHOUT_MODELS = (
    "SELECT r.result_id FROM results r WHERE r.status = 'completed' AND NOT EXISTS "
    "(SELECT 1 FROM models m WHERE m.result_id = r.result_id) AND NOT EXISTS "
    "(SELECT 1 FROM imported_files f WHERE f.result_id = r.result_id)"
)
_MODELS_WITHOUT_ARTIFACTS = (
    "SELECT m.model_id FROM models m WHERE NOT EXISTS "
    "(SELECT 1 FROM artifacts a WHERE a.model_id = m.model_id)"
)
_ARTIFACTS_WITHOUT_MODEL = (
    "SELECT a.model_id FROM artifacts a LEFT JOIN models m USING (model_id) "
    "WHERE m.model_id IS NULL"
)
_RESULTS_WITHOUT_DATASET = (
    "SELECT r.result_id FROM results r LEFT JOIN datasets d USING (dataset_id) "
    "WHERE d.dataset_id IS NULL"
)
_RESULTS_WITHOUT_RUN = (
    "SELECT r.result_id FROM results r LEFT JOIN runs u USING (run_id) WHERE u.run_id IS NULL"
)
_ROW_CHECKS = [
    ("completed result without predictions rows", _COMPLETED_WITHOUT_SCORES),
    ("completed result without models", _COMPLETED_WITHOUT_MODELS),
    ("model without artifacts", _MODELS_WITHOUT_ARTIFACTS),
    ("artifact of an unknown model", _ARTIFACTS_WITHOUT_MODEL),
    ("result of an unknown dataset", _RESULTS_WITHOUT_DATASET),
    ("result of an unknown run", _RESULTS_WITHOUT_RUN),
]


def verify(
    index: Index, store: Store, repair: bool = False, grace_s: float = DEFAULT_GRACE_S
) -> VerifyReport:
    """Hash every referenced blob (and a remote store's cached copies), check the index.

    With `repair`: stale temporaries go; corrupt cached copies are evicted (the next read
    fetches them again); corrupt objects move to `<workspace>/quarantine/`, so nothing
    serves them and the next put of their bytes writes them fresh; completed results that
    need a missing or corrupt blob are marked broken, and broken results whose blobs are
    all whole again are completed again. `recreate` says what puts the bytes back.
    """
    report = VerifyReport(quarantine=str(index.dir / QUARANTINE))
    marked = referenced_blobs(index)
    for blob_id in sorted(marked):
        report.checked += 1
        if not store.exists(blob_id):
            report.missing.append(blob_id)
        elif not store.verify(blob_id):
            report.corrupt.append(blob_id)
    report.corrupt_copies = [b for b in store.corrupt_cache_copies() if b not in report.corrupt]
    holds = held_by_others(index, store)
    catalogue = RenderCatalogue(index.dir, store)
    rendered = catalogue.blobs(catalogue.stamps())
    report.renders = len(rendered - marked)
    for blob_id in store.iter_ids():
        if blob_id in marked or blob_id in rendered:
            continue
        if holds.holds(blob_id, lambda b=blob_id: _mtime(store, b)):
            report.held_by_others += 1
        else:
            report.orphans.append(blob_id)
    report.temporaries = [str(t) for t in store.temporaries()]
    with index.read() as conn:
        for problem, sql in _ROW_CHECKS:
            report.problems += [f"{problem}: {key}" for (key,) in conn.execute(sql).fetchall()]
    bad = report.missing + report.corrupt
    report.broken_results = _results_using(index, bad) if bad else []
    report.restorable = _restorable(index, set(report.broken_results))
    report.recreate = _recreate_commands(index, bad)
    if repair:
        _repair(index, store, report, grace_s)
    return report


def _mtime(store: Store, blob_id: str) -> float:
    """An object's mtime; one removed since it was listed counts as old."""
    try:
        return store.mtime(blob_id)
    except (FileNotFoundError, N4AError) as exc:
        if isinstance(exc, StoreUnreachable):
            raise
        return 0.0


def _results_using(index: Index, blob_ids: list[str]) -> list[str]:
    rows = index.fetchall(
        "SELECT DISTINCT r.result_id FROM results r WHERE r.predictions_blob IN "
        "(SELECT unnest(?)) UNION SELECT DISTINCT m.result_id FROM models m JOIN artifacts a "
        "USING (model_id) WHERE a.blob_id IN (SELECT unnest(?)) UNION SELECT DISTINCT "
        "result_id FROM imported_files WHERE blob_id IN (SELECT unnest(?))",
        [blob_ids, blob_ids, blob_ids],
    )
    return sorted(r for (r,) in rows)


def _restorable(index: Index, still_broken: set[str]) -> list[str]:
    """Results `repair` marked broken whose blobs were all found whole this time."""
    rows = index.fetchall(
        "SELECT result_id FROM results WHERE status = 'broken' AND starts_with(error, ?)",
        [BROKEN_PREFIX],
    )
    return sorted(r for (r,) in rows if r not in still_broken)


def _recreate_commands(index: Index, blob_ids: list[str]) -> list[str]:
    """What puts missing or corrupt blobs back, one line per run or dataset.

    A fitted run's blobs come back byte for byte from a new run of the same templates,
    datasets and options (`n4afs run --again`); re-running one config alone pickles other
    bytes than the sweep's shared fit, so it would not heal them.
    """
    if not blob_ids:
        return []
    results = _results_using(index, blob_ids)
    runs = index.fetchall(
        "SELECT DISTINCT r.run_id, i.source FROM results r LEFT JOIN imports i USING (run_id) "
        "WHERE r.result_id IN (SELECT unnest(?)) ORDER BY r.run_id",
        [results],
    )
    commands = [
        f"n4afs rm {run_id} -y && n4afs import {shlex.quote(source)} "
        "(add --trust if you trusted it)"
        if source
        else f"n4afs run --again {run_id}"
        for run_id, source in runs
    ]
    datasets = index.fetchall(
        "SELECT name, source_path FROM datasets WHERE blob_id IN (SELECT unnest(?))", [blob_ids]
    )
    commands += [f"dataset {name}: add {path or 'its source'} again" for name, path in datasets]
    return commands


def _repair(index: Index, store: Store, report: VerifyReport, grace_s: float) -> None:
    cutoff = time.time() - grace_s
    for tmp in report.temporaries:
        if os.path.exists(tmp) and os.path.getmtime(tmp) <= cutoff:
            os.unlink(tmp)
    for blob_id in report.corrupt_copies:
        store.evict(blob_id)
    for blob_id in report.corrupt:
        store.quarantine(blob_id, Path(report.quarantine))
    if report.broken_results:
        reason = (
            f"{BROKEN_PREFIX} "
            f"({', '.join(b[:8] for b in (report.missing + report.corrupt)[:5])}); "
            f"recreate it: {'; '.join(report.recreate[:3])}; then `n4afs verify --repair`"
        )
        with index.write() as conn:
            writes.mark_broken(conn, report.broken_results, reason)
    if report.restorable:
        with index.write() as conn:
            writes.mark_restored(conn, report.restorable)


def describe(report: Any) -> dict[str, Any]:
    """A JSON-able summary (lists shortened) for --json output."""
    out = {}
    for key, value in vars(report).items():
        out[key] = value[:50] if isinstance(value, list) else value
    return out


# -- removal ---------------------------------------------------------------------------------
def remove_results(index: Index, result_ids: list[str]) -> list[str]:
    """Delete results and everything hanging from them; runs left empty go too.

    Only index rows are removed: the bytes stay until `gc` (so a mount still reading them
    is not cut off mid-file). Sequence numbers are never handed out again.
    Returns the ids of the runs removed.
    """
    if not result_ids:
        return []
    with index.write() as conn:
        empty = writes.delete_results(conn, result_ids)
    return empty


def results_of_runs(index: Index, run_ids: list[str]) -> list[str]:
    return [
        r
        for (r,) in index.fetchall(
            "SELECT result_id FROM results WHERE run_id IN (SELECT unnest(?))", [run_ids]
        )
    ]


def results_older_than(index: Index, seconds: float) -> list[str]:
    return [
        r
        for (r,) in index.fetchall(
            "SELECT r.result_id FROM results r JOIN runs u USING (run_id) "
            "WHERE u.created_at < now() - to_seconds(?)",
            [seconds],
        )
    ]


def results_beyond_best(index: Index, keep: int, metric: str | None) -> list[str]:
    """Per dataset and target (`core.metrics.ranking.GroupKey`), every result but the `keep` best
    (failed and broken ones included)."""
    from n4afs_core.index.queries import rank_results
    from n4afs_core.metrics.ranking import GROUP_COLUMNS, GroupKey

    doomed = []
    with index.read() as conn:
        found = conn.execute(f"SELECT DISTINCT {GROUP_COLUMNS} FROM results r").fetchall()
        for group in found:
            ranked = rank_results(conn, GroupKey(*group), metric).rows
            completed = [r for r in ranked if r.status == "completed"]
            kept = {r.result_id for r in completed[:keep]}
            doomed += [r.result_id for r in ranked if r.result_id not in kept]
    return doomed


# -- usage -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UsageScope:
    """Which results a `usage` report counts: those matching every id given, all when none
    is (`n4afs du runs/wheat` is the results of one dataset, `du by-run/<run>` one run's).
    `path` names the scope in the report."""

    path: str = "/"
    dataset_id: str | None = None
    run_id: str | None = None
    result_id: str | None = None
    target: str | None = None  # `runs/wheat/protein`: one target of a dataset

    def where(self) -> tuple[str, list[str]]:
        """A WHERE clause on `results r` (and its parameters) keeping the scope's results."""
        pairs = [
            (column, value)
            for column, value in (
                ("dataset_id", self.dataset_id),
                ("run_id", self.run_id),
                ("result_id", self.result_id),
                ("target", self.target),
            )
            if value is not None
        ]
        if not pairs:
            return "", []
        return "WHERE " + " AND ".join(f"r.{c} = ?" for c, _ in pairs), [v for _, v in pairs]


EVERYTHING = UsageScope()

_RESULT_BYTES = """
    WITH model_bytes AS (
        SELECT m.result_id, sum(b.size) AS bytes FROM models m
        JOIN artifacts a USING (model_id) JOIN blobs b ON b.blob_id = a.blob_id GROUP BY 1),
    imported AS (SELECT result_id, sum(size) AS bytes FROM imported_files GROUP BY 1)
    SELECT r.dataset_id, d.name, r.run_id, r.seq, r.name, r.config_hash,
           coalesce(mb.bytes, 0), coalesce(pb.size, 0), coalesce(ib.bytes, 0)
    FROM results r JOIN datasets d USING (dataset_id)
    LEFT JOIN model_bytes mb USING (result_id)
    LEFT JOIN blobs pb ON pb.blob_id = r.predictions_blob
    LEFT JOIN imported ib USING (result_id)
    {where}
"""

# Bytes stored once per group ({key}: r.dataset_id, r.run_id, or one constant for the whole
# scope): each blob of the scope's results (models, predictions, imported files) counted once.
_UNIQUE_BYTES = """
    SELECT k, sum(size) FROM (
        SELECT DISTINCT x.k, x.blob_id, b.size FROM (
            SELECT {key} AS k, a.blob_id FROM results r JOIN models m USING (result_id)
                JOIN artifacts a USING (model_id) {where}
            UNION ALL SELECT {key}, r.predictions_blob FROM results r {where}
            UNION ALL SELECT {key}, f.blob_id FROM results r
                JOIN imported_files f USING (result_id) {where}
        ) x JOIN blobs b ON b.blob_id = x.blob_id
    ) AS unique_blobs GROUP BY 1
"""


def _unique_bytes(index: Index, scope: UsageScope, key: str) -> dict[str, int]:
    where, params = scope.where()
    sql = _UNIQUE_BYTES.format(key=key, where=where)
    return {k: int(size) for k, size in index.fetchall(sql, params * 3)}


def usage(index: Index, store: Store, top: int = 10, scope: UsageScope = EVERYTHING) -> dict:
    """Logical bytes (the tree's views as plain copies) against bytes stored once.

    Logical counts each result twice (runs/ and by-run/) and its model bytes twice (the
    step files and pipeline.pkl); rendered files (CSV, YAML, PNG) are not counted.
    `logical_bytes`, `referenced_bytes`, `dedup_ratio` and the tables count the results in
    `scope`; `stored_bytes` (objects on disk), `rendered_bytes` (stored renders: charts and
    tables drawn once, re-creatable), `unreferenced_bytes` (what gc may reclaim) and
    `index_bytes` are the workspace's, which no scope divides.
    """
    where, params = scope.where()
    rows = index.fetchall(_RESULT_BYTES.format(where=where), params)
    per_result = [
        (
            dataset_id,
            {
                "result": result_label(seq, name, hash_),
                "dataset": dataset,
                "run": run_id,
                "logical": 2 * (2 * models + predictions + imported),
            },
        )
        for dataset_id, dataset, run_id, seq, name, hash_, models, predictions, imported in rows
    ]
    datasets = _group(
        [(dataset_id, row["dataset"], row["logical"]) for dataset_id, row in per_result],
        "dataset",
        _unique_bytes(index, scope, "r.dataset_id"),
    )
    runs = _group(
        [(row["run"], row["run"], row["logical"]) for _, row in per_result],
        "run",
        _unique_bytes(index, scope, "r.run_id"),
    )
    workspace_referenced = int(
        index.fetchall(
            "SELECT coalesce(sum(size), 0) FROM blobs WHERE blob_id IN "
            "(SELECT blob_id FROM referenced_blobs)"
        )[0][0]
    )
    if scope == EVERYTHING:  # datasets' blobs too: everything the index references
        referenced = workspace_referenced
    else:
        referenced = sum(_unique_bytes(index, scope, "'scope'").values())
    marked = referenced_blobs(index)
    holds = held_by_others(index, store)
    catalogue = RenderCatalogue(index.dir, store)
    rendered_blobs = {
        blob_id: size
        for stamp in catalogue.stamps()
        for _, blob_id, size in catalogue.records(stamp)
        if blob_id not in marked
    }
    rendered = sum(rendered_blobs.values())  # re-creatable, kept by gc: not "unreferenced"
    object_bytes = unreferenced = held = 0
    for blob_id in store.iter_ids():
        size = store.size(blob_id)
        object_bytes += size
        if blob_id in marked or blob_id in rendered_blobs:
            continue
        if holds.holds(blob_id, lambda b=blob_id: _mtime(store, b)):
            held += size
        else:
            unreferenced += size
    logical = sum(row["logical"] for _, row in per_result)
    return {
        "scope": scope.path,
        "logical_bytes": logical,
        "referenced_bytes": referenced,
        "stored_bytes": object_bytes,
        "index_bytes": index.size_bytes(),
        "dedup_ratio": logical / referenced if referenced else 1.0,
        "rendered_bytes": rendered,
        "unreferenced_bytes": unreferenced,
        "held_by_others_bytes": held,
        "datasets": datasets,
        "runs": runs,
        "largest": sorted((row for _, row in per_result), key=lambda r: -r["logical"])[:top],
    }


def _group(
    members: list[tuple[str, str, int]], key: str, unique: dict[str, int]
) -> list[dict[str, Any]]:
    """(group id, shown name, logical bytes) per result -> one row per group, largest
    first. Grouped by id: two datasets may share a name."""
    grouped: dict[str, dict[str, Any]] = {}
    for group_id, shown, logical in members:
        entry = grouped.setdefault(group_id, {key: shown, "results": 0, "logical": 0})
        entry["results"] += 1
        entry["logical"] += logical
    for group_id, entry in grouped.items():
        entry["stored"] = unique.get(group_id, 0)
    return sorted(grouped.values(), key=lambda e: -e["logical"])
