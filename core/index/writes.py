"""The one module that changes the index: every INSERT, UPDATE and DELETE of its rows.

Each function takes an open connection (the caller holds `Index.write()`'s transaction, so
what must commit together does) and checks, at this boundary, what it writes: names obey
`core.index.names` whatever produced them (a template, a CSV, a bundle from elsewhere), ids are
blob ids where they name blobs. The schema's own bookkeeping (`schema_version`) stays with
the migrations in `core.index.database`. Reading is elsewhere (`core.index.queries`,
`core.index.catalog`).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
from n4afs_core.errors import DatasetError
from n4afs_core.index.catalog import find_datasets
from n4afs_core.index.liveness import OWNER_COLUMNS, Owner, current_owner
from n4afs_core.index.names import checked_result_name, checked_text
from n4afs_core.pipelines.persist import short_id
from n4afs_core.store.ids import BlobId

if TYPE_CHECKING:
    from n4afs_core.pipelines.persist import ResultPayload


def rows_table(names: tuple[str, ...], rows: list[tuple], types: dict[str, Any]) -> Any:
    """An Arrow table from row tuples, to insert many index rows in one statement. Columns
    not in `types` are inferred, as text when there are no rows (a typed empty relation:
    PostgreSQL's engine makes a table of it, `core.index.postgres.PgConnection.register`)."""
    import pyarrow as pa

    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    if not rows:
        types = {name: types.get(name, pa.string()) for name in names}
    return pa.table(
        {
            name: pa.array(list(col), type=types.get(name))
            for name, col in zip(names, columns, strict=True)
        }
    )


# -- blobs and datasets -------------------------------------------------------------------
def register_blob(conn: duckdb.DuckDBPyConnection, blob_id: str, size: int, media_type: str):
    conn.execute(
        "INSERT INTO blobs VALUES (?, ?, ?, current_timestamp) ON CONFLICT DO NOTHING",
        [BlobId(blob_id), size, media_type],
    )


def add_dataset(
    conn: duckdb.DuckDBPyConnection, meta: dict[str, Any], dataset_id: str, blob_id: str | None
) -> bool:
    """Insert a dataset row; False when the same content is already indexed.

    The dataset id is its Parquet blob's id; an imported dataset whose data did not come
    with the bundle keeps its original id and has no blob (`blob_id=None`). `meta` may carry
    `columns` (the roles), `note` and `keys` (user text): they describe the dataset as first
    added, so an existing row keeps its own.
    """
    name = checked_text("dataset name", meta["name"])
    for target in meta["target_names"]:
        checked_text("target name", target)
    note = meta.get("note")
    if note is not None:
        note = checked_text("dataset note", note)
    keys = user_keys(meta.get("keys") or {})
    columns = meta.get("columns")
    for column in (columns or {}).get("metadata", {}):
        checked_text("metadata column name", column)
    known = conn.execute("SELECT blob_id FROM datasets WHERE dataset_id = ?", [dataset_id])
    row = known.fetchone()
    if row is not None:
        if row[0] is None and blob_id is not None:  # its data arrives after its results
            conn.execute(
                "UPDATE datasets SET blob_id = ? WHERE dataset_id = ?", [blob_id, dataset_id]
            )
        return False
    row = {
        "dataset_id": dataset_id,
        "name": name,
        "task": meta["task"],
        "n_samples": meta["n_samples"],
        "n_features": meta["n_features"],
        "target_names": meta["target_names"],
        "target_stats": json.dumps(meta["target_stats"]),
        "wavelength_min": meta["wavelength_min"],
        "wavelength_max": meta["wavelength_max"],
        "wavelength_unit": meta["wavelength_unit"],
        "source_path": meta["source_path"],
        "source_sha256": meta["source_sha256"],
        "source_size": meta["source_size"],
        "blob_id": blob_id,
        # 006: written only when the dataset has them (an index of an older schema takes
        # a dataset that has none)
        "columns": json.dumps(columns) if columns else None,
        "note": note,
        "user_keys": json.dumps(keys) if keys else None,
    }
    names = [k for k, v in row.items() if v is not None or k not in _SINCE_006]
    conn.execute(
        f"INSERT INTO datasets ({', '.join(names)}, created_at) "
        f"VALUES ({', '.join('?' for _ in names)}, current_timestamp)",
        [row[k] for k in names],
    )
    return True


_SINCE_006 = ("columns", "note", "user_keys")


def user_keys(keys: dict[str, Any]) -> dict[str, str]:
    """`--set KEY=VALUE` pairs as the index keeps them: text keys (no `=`, not empty) and
    text values, each checked like any user text."""
    checked = {}
    for key, value in keys.items():
        key = checked_text("dataset key", str(key)).strip()
        if not key or "=" in key:
            raise DatasetError(f"dataset key {key!r}: give --set KEY=VALUE with a KEY")
        checked[key] = checked_text(f"dataset key {key!r}", str(value))
    return checked


def attach_spectra(conn: duckdb.DuckDBPyConnection, dataset_id: str, blob_id: str) -> None:
    """Give a dataset imported without its data the blob of its spectra. The dataset keeps
    its id (its results hang under it); `blob_id` may differ, the Parquet being written by
    this n4afs rather than the one that made the id."""
    conn.execute(
        "UPDATE datasets SET blob_id = ? WHERE dataset_id = ? AND blob_id IS NULL",
        [BlobId(blob_id), dataset_id],
    )


def attach_imported_data(
    conn: duckdb.DuckDBPyConnection,
    dataset_id: str,
    blob_id: str,
    meta: dict[str, Any],
    old_target: str | None,
) -> bool:
    """Give a dataset imported without its spectra or its description (a nirs4all import:
    nirs4all keeps neither) the blob of its spectra and what they say (shape, targets,
    wavelengths, source), and its results the target name the spectra give the placeholder
    `old_target`. False when it holds spectra already (nothing changed)."""
    for target in meta["target_names"]:
        checked_text("target name", target)
    columns = meta.get("columns")
    changed = conn.execute(
        "UPDATE datasets SET blob_id = ?, n_samples = ?, n_features = ?, target_names = ?, "
        "target_stats = ?, wavelength_min = ?, wavelength_max = ?, wavelength_unit = ?, "
        "source_path = ?, source_sha256 = ?, source_size = ?, columns = ? "
        "WHERE dataset_id = ? AND blob_id IS NULL RETURNING dataset_id",
        [
            BlobId(blob_id),
            meta["n_samples"],
            meta["n_features"],
            list(meta["target_names"]),
            json.dumps(meta["target_stats"]),
            meta["wavelength_min"],
            meta["wavelength_max"],
            meta["wavelength_unit"],
            meta["source_path"],
            meta["source_sha256"],
            meta["source_size"],
            json.dumps(columns) if columns else None,
            dataset_id,
        ],
    ).fetchall()
    if not changed:
        return False
    new_target = meta["target_names"][0]
    if old_target is not None and old_target != new_target:
        conn.execute(
            "UPDATE results SET target = ? WHERE dataset_id = ? AND target = ?",
            [new_target, dataset_id, old_target],
        )
    return True


def add_alias(conn: duckdb.DuckDBPyConnection, dataset_id: str, name: str) -> bool:
    """Record `name` as another name of the dataset; False when it is one of its names
    already. A name that belongs to another dataset is refused."""
    name = checked_text("dataset name", name)
    for other in find_datasets(conn, name):
        if other.dataset_id == dataset_id:
            return False
        raise DatasetError(
            f"{name!r} already names dataset {other.name!r} ({other.short_id}), whose content "
            "differs: choose another --name"
        )
    conn.execute("INSERT INTO dataset_aliases VALUES (?, ?, current_timestamp)", [name, dataset_id])
    return True


def trust_import(conn: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Mark the bundle imported as `run_id` trusted (its results may be best, its pickles
    loaded); False when that run is not an import."""
    found = conn.execute("SELECT trusted FROM imports WHERE run_id = ?", [run_id]).fetchone()
    if found is None:
        return False
    conn.execute(  # every run of the bundle (one bundle may import as several runs)
        "UPDATE imports SET trusted = true WHERE bundle_sha256 = "
        "(SELECT bundle_sha256 FROM imports WHERE run_id = ?)",
        [run_id],
    )
    return True


# -- runs ---------------------------------------------------------------------------------
def insert_run(
    conn: Any,
    run_id: str,
    name: str,
    metric: str,
    options: dict[str, Any],
    created: datetime,
    note: str | None = None,
) -> None:
    """A new run, `running`, with the process that writes it as its owner, and the user's
    note about it (`run --note`), if any."""
    conn.execute(
        "INSERT INTO runs (run_id, name, status, metric, options, created_at, finished_at, "
        "note, noted_at) VALUES (?, ?, 'running', ?, ?, ?, NULL, ?, ?)",
        [
            run_id,
            checked_text("run name", name),
            metric,
            json.dumps(options, default=str),
            created,
            None if note is None else checked_text("run note", note),
            None if note is None else created,
        ],
    )
    record_owner(conn, run_id)  # gc spares the blobs of a run whose owner is alive


def set_run_note(conn: Any, run_id: str, note: str) -> bool:
    """Replace a run's note (`n4afs note RUN`); False when there is no such run."""
    text = checked_text("run note", note)
    found = conn.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    if not found:
        return False
    conn.execute(
        "UPDATE runs SET note = ?, noted_at = current_timestamp WHERE run_id = ?", [text, run_id]
    )
    return True


def insert_template(
    conn: Any, run_id: str, position: int, name: str, body: Any, n_configs: int
) -> None:
    conn.execute(
        "INSERT INTO templates VALUES (?, ?, ?, ?, ?)",
        [
            run_id,
            position,
            checked_text("template name", name),
            json.dumps(body, default=str),
            n_configs,
        ],
    )


def insert_run_dataset(conn: Any, run_id: str, dataset_id: str, position: int) -> None:
    conn.execute("INSERT INTO run_datasets VALUES (?, ?, ?)", [run_id, dataset_id, position])


def set_run_status(conn: Any, run_id: str, status: str, finished: datetime | None = None) -> None:
    """A run's end (or its new status): when it finished, the database's clock by default."""
    if finished is None:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = current_timestamp WHERE run_id = ?",
            [status, run_id],
        )
    else:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
            [status, finished, run_id],
        )


def delete_running_run(conn: Any, run_id: str) -> None:
    """A run that never got its rows (a failed import attempt): it and its owners go."""
    conn.execute("DELETE FROM run_owners WHERE run_id = ?", [run_id])
    conn.execute("DELETE FROM runs WHERE run_id = ? AND status = 'running'", [run_id])


def record_owner(conn: Any, run_id: str, owner: Owner | None = None) -> None:
    """Add this process (or `owner`) to the run's owners, once, if the run exists (inside a
    write transaction)."""
    owner = owner or current_owner()
    conn.execute(
        f"INSERT INTO run_owners (run_id, {OWNER_COLUMNS}) SELECT ?, ?, ?, ?, ?, ? "
        "WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?) AND NOT EXISTS (SELECT 1 "
        "FROM run_owners WHERE run_id = ? AND host = ? AND pid = ? "
        "AND pid_start IS NOT DISTINCT FROM ?)",
        [
            run_id,
            owner.host,
            owner.boot_id,
            owner.pid,
            owner.pid_start,
            owner.started,
            run_id,
            run_id,
            owner.host,
            owner.pid,
            owner.pid_start,
        ],
    )


def release_owner(conn: Any, run_id: str, pid: int | None = None) -> None:
    """Remove this process (or `pid` on this host) from the run's owners: it no longer
    executes the run (inside a write transaction)."""
    conn.execute(
        "DELETE FROM run_owners WHERE run_id = ? AND host = ? AND pid = ?",
        [run_id, socket.gethostname(), os.getpid() if pid is None else pid],
    )


# -- results --------------------------------------------------------------------------------
def plan_results(
    conn: Any, run_id: str, dataset: Any, expanded: list, metric: str, targets: list[str]
) -> None:
    """Pending rows with their sequence numbers, assigned once, target by target, in template
    order: one result per (target, config). The dataset's numbers are shared by its targets,
    so a label stays unique on the dataset. A target must be one of the dataset's.

    The rows go in as one Arrow table: a DuckDB `execute` per row cost ~1 ms each.
    """
    import pyarrow as pa

    rows = conn.execute(  # fetchall: `register` refuses a half-read result
        "SELECT last_seq FROM dataset_seq WHERE dataset_id = ?", [dataset.dataset_id]
    ).fetchall()
    seq = rows[0][0] if rows else 0
    planned: list[tuple] = []
    for target in targets:
        if target not in dataset.target_names:
            raise DatasetError(f"dataset {dataset.name!r} has no target {target!r}")
        first = target == dataset.target_names[0]  # its ids as before several targets
        seen: set[str] = set()
        for position, configs in enumerate(expanded):
            for config in configs:
                if config.hash in seen:
                    continue
                seen.add(config.hash)
                seq += 1
                identity = (run_id, dataset.dataset_id, config.hash, *(() if first else (target,)))
                planned.append(
                    (
                        short_id(*identity, length=12),
                        seq,
                        config.name,
                        config.hash,
                        json.dumps(config.to_template()),
                        json.dumps(config.choices, default=str),
                        position,
                        target,
                    )
                )
    names = ("result_id", "seq", "name", "config_hash", "config", "choices", "position", "target")
    conn.register(
        "planned", rows_table(names, planned, {"seq": pa.int32(), "position": pa.int32()})
    )
    try:
        conn.execute(
            "INSERT INTO results (result_id, run_id, dataset_id, seq, name, config_hash, "
            "config, choices, template_position, status, metric, created_at, target) "
            "SELECT result_id, ?, ?, seq, name, config_hash, config, choices, position, "
            "'pending', ?, current_timestamp, target FROM planned ORDER BY seq",
            [run_id, dataset.dataset_id, metric],
        )
    finally:
        conn.unregister("planned")
    conn.execute(_SET_SEQ, [dataset.dataset_id, seq])


# portable upsert (DuckDB's `INSERT OR REPLACE` is not PostgreSQL's)
_SET_SEQ = (
    "INSERT INTO dataset_seq VALUES (?, ?) ON CONFLICT (dataset_id) "
    "DO UPDATE SET last_seq = excluded.last_seq"
)


def next_seq(conn: Any, dataset_id: str) -> int:
    """The dataset's next sequence number, taken (numbers are never handed out twice)."""
    row = conn.execute("SELECT last_seq FROM dataset_seq WHERE dataset_id = ?", [dataset_id])
    seq = (row.fetchone() or (0,))[0] + 1
    conn.execute(_SET_SEQ, [dataset_id, seq])
    return seq


def commit_payloads(conn: Any, payloads: list[ResultPayload]) -> None:
    """Record finished results (the caller holds the transaction).

    Rows go in as one Arrow table per table: a DuckDB `execute` per row cost ~0.7 ms, about
    as much as fitting the whole sweep. Only results still pending are recorded: a
    concurrent resume may have committed some of them first.
    """
    import pyarrow as pa

    payloads = _mark_done(conn, payloads)
    if not payloads:
        return
    blobs = {b[0]: b for p in payloads for b in p.blobs}
    tables = {
        "new_blobs": rows_table(
            ("blob_id", "size", "media_type"), list(blobs.values()), {"size": pa.int64()}
        ),
        "new_models": rows_table(
            ("model_id", "result_id", "role", "fold"),
            [(m.model_id, p.result_id, m.role, m.fold) for p in payloads for m in p.models],
            {"fold": pa.int32()},
        ),
        "new_artifacts": rows_table(
            ("model_id", "step_index", "step_name", "class_path", "blob_id"),
            [
                (m.model_id, a.step_index, a.step_name, a.class_path, a.blob_id)
                for p in payloads
                for m in p.models
                for a in m.artifacts
            ],
            {"step_index": pa.int32()},
        ),
        "new_predictions": rows_table(
            ("result_id", "model", "model_id", "partition", "fold", "n_samples", "scores"),
            [
                (
                    p.result_id,
                    r.model,
                    r.model_id,
                    r.partition,
                    r.fold,
                    r.n_samples,
                    json.dumps(r.scores, sort_keys=True),
                )
                for p in payloads
                for r in p.score_rows
            ],
            {"model_id": pa.string(), "fold": pa.int32(), "n_samples": pa.int32()},
        ),
    }
    for name, table in tables.items():
        conn.register(name, table)
    conn.execute(
        "INSERT INTO blobs SELECT blob_id, size, media_type, current_timestamp FROM new_blobs "
        "WHERE blob_id NOT IN (SELECT blob_id FROM blobs)"
    )
    if tables["new_models"].num_rows:
        conn.execute("INSERT INTO models SELECT *, current_timestamp FROM new_models")
        conn.execute("INSERT INTO artifacts SELECT * FROM new_artifacts")
        conn.execute("INSERT INTO predictions SELECT * FROM new_predictions")
    for name in tables:
        conn.unregister(name)


def _mark_done(conn: Any, payloads: list[ResultPayload]) -> list[ResultPayload]:
    """Set status, score and blob of each result still pending; return those payloads.

    A SELECT then an UPDATE: one `UPDATE ... RETURNING` measured slower than both.
    """
    import pyarrow as pa

    still_pending = {
        result_id
        for (result_id,) in conn.execute(
            "SELECT result_id FROM results WHERE status = 'pending' AND result_id IN "
            "(SELECT unnest(?))",
            [[p.result_id for p in payloads]],
        ).fetchall()
    }
    payloads = [p for p in payloads if p.result_id in still_pending]
    if not payloads:
        return payloads
    done = pa.table(
        {
            "result_id": [p.result_id for p in payloads],
            "status": [p.status for p in payloads],
            "score": pa.array([p.score for p in payloads], pa.float64()),
            "error": pa.array([p.error for p in payloads], pa.string()),
            "predictions_blob": pa.array([p.predictions_blob for p in payloads], pa.string()),
            "duration_s": pa.array([p.duration_s for p in payloads], pa.float64()),
        }
    )
    conn.register("done", done)
    try:
        conn.execute(
            "UPDATE results SET status = d.status, score = d.score, error = d.error, "
            "predictions_blob = d.predictions_blob, duration_s = d.duration_s, "
            "created_at = current_timestamp FROM done d WHERE results.result_id = d.result_id"
        )
    finally:
        conn.unregister("done")
    return payloads


# -- imported results -----------------------------------------------------------------------
def insert_imported_result(
    conn: Any,
    result_id: str,
    run_id: str,
    dataset_id: str,
    name: str,
    config_hash: str,
    config: Any,
    position: int,
    metric: str,
    score: float | None,
    target: str | None = None,
    predictions_blob: str | None = None,
) -> None:
    """A completed result from a bundle, numbered next on its dataset. Its name obeys the
    result-name rule here too: a bundle is input from elsewhere. `target`: the one it
    modelled (checked against the dataset's), by default the dataset's first.
    `predictions_blob`: imported by reference, its predictions Parquet, as a run's."""
    seq = next_seq(conn, dataset_id)
    found = conn.execute(
        "SELECT name, target_names FROM datasets WHERE dataset_id = ?", [dataset_id]
    ).fetchone()
    known = list(found[1]) if found is not None else []
    if target is None:
        target = known[0] if known else None
    elif target not in known:
        name = found[0] if found is not None else dataset_id
        raise DatasetError(f"dataset {name!r} has no target {target!r}")
    conn.execute(
        "INSERT INTO results (result_id, run_id, dataset_id, seq, name, config_hash, config, "
        "choices, template_position, status, metric, score, created_at, target, "
        "predictions_blob) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, '{}', ?, 'completed', ?, ?, current_timestamp, ?, ?)",
        [
            result_id,
            run_id,
            dataset_id,
            seq,
            checked_result_name(name),
            config_hash,
            json.dumps(config, default=str),
            position,
            metric,
            score,
            target,
            None if predictions_blob is None else BlobId(predictions_blob),
        ],
    )


def insert_imported_file(conn: Any, result_id: str, path: str, blob_id: str, size: int) -> None:
    conn.execute(
        "INSERT INTO imported_files VALUES (?, ?, ?, ?)", [result_id, path, BlobId(blob_id), size]
    )


def insert_score_row(
    conn: Any,
    result_id: str,
    model: str,
    model_id: str | None,
    partition: str,
    fold: int,
    n_samples: int,
    scores: dict[str, Any],
) -> None:
    conn.execute(
        "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            result_id,
            model,
            model_id,
            partition,
            fold,
            n_samples,
            json.dumps(scores, sort_keys=True),
        ],
    )


def insert_model(
    conn: Any, model_id: str, result_id: str, role: str, fold: int | None, steps: list
) -> None:
    """A fitted model and its steps: (step name, class path, blob id) in pipeline order."""
    conn.execute(
        "INSERT INTO models VALUES (?, ?, ?, ?, current_timestamp)",
        [model_id, result_id, role, fold],
    )
    for index, (step_name, class_path, blob_id) in enumerate(steps):
        conn.execute(
            "INSERT INTO artifacts VALUES (?, ?, ?, ?, ?)",
            [model_id, index, step_name, class_path, BlobId(blob_id)],
        )


def insert_import(
    conn: Any, run_id: str, bundle_sha256: str, source: str, export_info: Any, trusted: bool
) -> None:
    """The import record: scores recomputed by this n4afs, trusted or not."""
    conn.execute(
        "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, current_timestamp, true)",
        [
            short_id(run_id),
            run_id,
            bundle_sha256,
            source,
            json.dumps(export_info, default=str),
            trusted,
        ],
    )


# -- maintenance ----------------------------------------------------------------------------
def delete_blob_rows(conn: Any, blob_ids: list[str]) -> None:
    """Rows of blobs gc removed, unless something references them again since."""
    conn.execute(
        "DELETE FROM blobs WHERE blob_id IN (SELECT unnest(?)) "
        "AND blob_id NOT IN (SELECT blob_id FROM referenced_blobs)",
        [blob_ids],
    )


def mark_broken(conn: Any, result_ids: list[str], reason: str) -> None:
    """Completed results whose blobs are missing or corrupt: `broken`, with how to heal."""
    conn.execute(
        "UPDATE results SET status = 'broken', error = ? WHERE status = 'completed' "
        "AND result_id IN (SELECT unnest(?))",
        [reason, result_ids],
    )


def mark_restored(conn: Any, result_ids: list[str]) -> None:
    """Broken results whose blobs are whole again: `completed`."""
    conn.execute(
        "UPDATE results SET status = 'completed', error = NULL WHERE result_id IN "
        "(SELECT unnest(?))",
        [result_ids],
    )


def delete_results(conn: Any, result_ids: list[str]) -> list[str]:
    """Results and everything hanging from them; runs left empty go too (their ids are
    returned). Only rows: the bytes stay until gc."""
    conn.execute("CREATE TEMP TABLE doomed AS SELECT unnest(?) AS result_id", [result_ids])
    conn.execute(
        "DELETE FROM artifacts WHERE model_id IN (SELECT model_id FROM models "
        "WHERE result_id IN (SELECT result_id FROM doomed))"
    )
    for table in ("models", "predictions", "imported_files", "results"):
        conn.execute(f"DELETE FROM {table} WHERE result_id IN (SELECT result_id FROM doomed)")
    empty = [
        r
        for (r,) in conn.execute(
            "SELECT run_id FROM runs u WHERE NOT EXISTS "
            "(SELECT 1 FROM results r WHERE r.run_id = u.run_id)"
        ).fetchall()
    ]
    for table in ("templates", "run_datasets", "imports", "runs"):
        conn.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT unnest(?))", [empty])
    conn.execute("DROP TABLE doomed")
    return empty
