"""Index rows for blobs and datasets: the SQL the engine writes and the API reads back.

Functions take an open connection so the caller chooses the transaction: a dataset's blob
row and its dataset row commit together or not at all.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
from n4afs_core.errors import DatasetError
from n4afs_core.ids import BlobId
from n4afs_core.names import checked_text


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset as the index describes it."""

    dataset_id: BlobId
    name: str
    task: str
    n_samples: int
    n_features: int
    target_names: list[str]
    target_stats: dict[str, Any]
    wavelength_min: float | None
    wavelength_max: float | None
    wavelength_unit: str | None
    source_path: str | None
    source_sha256: str | None
    source_size: int | None
    blob_id: BlobId | None  # None: imported without its data
    created_at: datetime
    aliases: tuple[str, ...] = ()  # other names of the same content (dataset_aliases)

    @property
    def short_id(self) -> str:
        return self.dataset_id.short

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class BlobStats:
    """Logical bytes (what every reference would take as a copy) vs bytes stored once."""

    n_blobs: int
    n_references: int
    logical_bytes: int
    stored_bytes: int

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 1.0


def register_blob(conn: duckdb.DuckDBPyConnection, blob_id: str, size: int, media_type: str):
    conn.execute(
        "INSERT INTO blobs VALUES (?, ?, ?, current_timestamp) ON CONFLICT DO NOTHING",
        [BlobId(blob_id), size, media_type],
    )


_DATASET_COLUMNS = (
    "dataset_id, name, task, n_samples, n_features, target_names, target_stats, "
    "wavelength_min, wavelength_max, wavelength_unit, source_path, source_sha256, "
    "source_size, blob_id, created_at"
)


def add_dataset(
    conn: duckdb.DuckDBPyConnection, meta: dict[str, Any], dataset_id: str, blob_id: str | None
) -> bool:
    """Insert a dataset row; False when the same content is already indexed.

    The dataset id is its Parquet blob's id; an imported dataset whose data did not come
    with the bundle keeps its original id and has no blob (`blob_id=None`).
    """
    name = checked_text("dataset name", meta["name"])
    for target in meta["target_names"]:
        checked_text("target name", target)
    known = conn.execute("SELECT blob_id FROM datasets WHERE dataset_id = ?", [dataset_id])
    row = known.fetchone()
    if row is not None:
        if row[0] is None and blob_id is not None:  # its data arrives after its results
            conn.execute(
                "UPDATE datasets SET blob_id = ? WHERE dataset_id = ?", [blob_id, dataset_id]
            )
        return False
    conn.execute(
        f"INSERT INTO datasets ({_DATASET_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)",
        [
            dataset_id,
            name,
            meta["task"],
            meta["n_samples"],
            meta["n_features"],
            meta["target_names"],
            json.dumps(meta["target_stats"]),
            meta["wavelength_min"],
            meta["wavelength_max"],
            meta["wavelength_unit"],
            meta["source_path"],
            meta["source_sha256"],
            meta["source_size"],
            blob_id,
        ],
    )
    return True


def require_spectra(info: DatasetInfo) -> None:
    """Refuse, saying how to attach them, to use a dataset imported without its spectra."""
    if info.blob_id is not None:
        return
    if info.source_path and info.source_path.startswith("chemotools:"):
        made_from = info.source_path
    elif info.source_sha256:
        made_from = f"the file it was made from ({info.source_path or 'a CSV'}, sha256 "
        made_from += f"{info.source_sha256[:12]}…)"
    else:
        made_from = "its spectra CSV"
    raise DatasetError(
        f"dataset {info.name!r} ({info.short_id}) was imported without its spectra: attach "
        f"them with `n4afs datasets add FILE --name {info.name}`, FILE being {made_from}"
    )


def attach_spectra(conn: duckdb.DuckDBPyConnection, dataset_id: str, blob_id: str) -> None:
    """Give a dataset imported without its data the blob of its spectra. The dataset keeps
    its id (its results hang under it); `blob_id` may differ, the Parquet being written by
    this n4afs rather than the one that made the id."""
    conn.execute(
        "UPDATE datasets SET blob_id = ? WHERE dataset_id = ? AND blob_id IS NULL",
        [BlobId(blob_id), dataset_id],
    )


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


def _aliases(conn: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, ...]]:
    rows = conn.execute(
        "SELECT dataset_id, name FROM dataset_aliases ORDER BY created_at, name"
    ).fetchall()
    found: dict[str, tuple[str, ...]] = {}
    for dataset_id, name in rows:
        found[dataset_id] = (*found.get(dataset_id, ()), name)
    return found


def _dataset_from_row(row: tuple, aliases: dict[str, tuple[str, ...]]) -> DatasetInfo:
    values = dict(zip([c.strip() for c in _DATASET_COLUMNS.split(",")], row, strict=True))
    values["aliases"] = aliases.get(values["dataset_id"], ())
    values["dataset_id"] = BlobId(values["dataset_id"])
    values["blob_id"] = BlobId(values["blob_id"]) if values["blob_id"] else None
    values["target_stats"] = json.loads(values["target_stats"])
    values["target_names"] = list(values["target_names"])
    return DatasetInfo(**values)


def list_datasets(conn: duckdb.DuckDBPyConnection) -> list[DatasetInfo]:
    rows = conn.execute(
        f"SELECT {_DATASET_COLUMNS} FROM datasets ORDER BY created_at, dataset_id"
    ).fetchall()
    aliases = _aliases(conn)
    return [_dataset_from_row(r, aliases) for r in rows]


def find_datasets(conn: duckdb.DuckDBPyConnection, key: str) -> list[DatasetInfo]:
    """By exact name or alias, or by id prefix (at least 4 hex characters)."""
    rows = conn.execute(
        f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE name = ? "
        "OR dataset_id IN (SELECT dataset_id FROM dataset_aliases WHERE name = ?) "
        "OR (length(?) >= 4 AND starts_with(dataset_id, ?)) ORDER BY created_at",
        [key, key, key, key.lower()],
    ).fetchall()
    aliases = _aliases(conn)
    return [_dataset_from_row(r, aliases) for r in rows]


def datasets_like(
    conn: duckdb.DuckDBPyConnection, dataset_id: str, task: str, n_samples: int, n_features: int
) -> list[DatasetInfo]:
    """The datasets that may hold the same content: that id, or the same task and shape."""
    rows = conn.execute(
        f"SELECT {_DATASET_COLUMNS} FROM datasets WHERE dataset_id = ? "
        "OR (task = ? AND n_samples = ? AND n_features = ?) ORDER BY created_at, dataset_id",
        [dataset_id, task, n_samples, n_features],
    ).fetchall()
    aliases = _aliases(conn)
    return [_dataset_from_row(r, aliases) for r in rows]


def blob_stats(conn: duckdb.DuckDBPyConnection) -> BlobStats:
    row = conn.execute(
        """
        SELECT count(DISTINCT r.blob_id), count(*), coalesce(sum(b.size), 0),
               coalesce((SELECT sum(size) FROM blobs WHERE blob_id IN
                         (SELECT blob_id FROM referenced_blobs)), 0)
        FROM referenced_blobs r JOIN blobs b USING (blob_id)
        """
    ).fetchone()
    return BlobStats(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def trust_import(conn: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Mark the bundle imported as `run_id` trusted (its results may be best, its pickles
    loaded); False when that run is not an import."""
    found = conn.execute("SELECT trusted FROM imports WHERE run_id = ?", [run_id]).fetchone()
    if found is None:
        return False
    conn.execute("UPDATE imports SET trusted = true WHERE run_id = ?", [run_id])
    return True
