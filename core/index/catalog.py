"""Datasets as the index describes them: the queries that read them back.

Functions take an open connection so the caller chooses the transaction. Writing dataset
rows (and every other row) is `core.index.writes`'s job alone.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
from n4afs_core.errors import DatasetError
from n4afs_core.store.ids import BlobId


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
    # how its columns were read (core.data.datasets.describe_columns); {} before schema 006
    columns: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # `datasets add --note`
    keys: dict[str, str] = field(default_factory=dict)  # `datasets add --set KEY=VALUE`
    aliases: tuple[str, ...] = ()  # other names of the same content (dataset_aliases)

    @property
    def short_id(self) -> str:
        return self.dataset_id.short

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def several_targets(self) -> bool:
        """Whether its results are shown one folder per target (`runs/<dataset>/<target>/`):
        fixed by its content, so a path never changes (`SEVERAL_TARGETS_SQL` in SQL)."""
        return len(self.target_names) > 1


# `DatasetInfo.several_targets` over the dataset row `d`
SEVERAL_TARGETS_SQL = "len(d.target_names) > 1"


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


DATASET_COLUMNS = (
    "dataset_id, name, task, n_samples, n_features, target_names, target_stats, "
    "wavelength_min, wavelength_max, wavelength_unit, source_path, source_sha256, "
    "source_size, blob_id, created_at, columns, note, user_keys"
)


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


def _aliases(conn: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, ...]]:
    rows = conn.execute(
        "SELECT dataset_id, name FROM dataset_aliases ORDER BY created_at, name"
    ).fetchall()
    found: dict[str, tuple[str, ...]] = {}
    for dataset_id, name in rows:
        found[dataset_id] = (*found.get(dataset_id, ()), name)
    return found


def _dataset_from_row(row: tuple, aliases: dict[str, tuple[str, ...]]) -> DatasetInfo:
    values = dict(zip([c.strip() for c in DATASET_COLUMNS.split(",")], row, strict=True))
    values["aliases"] = aliases.get(values["dataset_id"], ())
    values["dataset_id"] = BlobId(values["dataset_id"])
    values["blob_id"] = BlobId(values["blob_id"]) if values["blob_id"] else None
    values["target_stats"] = json.loads(values["target_stats"])
    values["target_names"] = list(values["target_names"])
    values["columns"] = json.loads(values["columns"]) if values["columns"] else {}
    keys = values.pop("user_keys")
    values["keys"] = json.loads(keys) if keys else {}
    return DatasetInfo(**values)


def list_datasets(conn: duckdb.DuckDBPyConnection) -> list[DatasetInfo]:
    rows = conn.execute(
        f"SELECT {DATASET_COLUMNS} FROM datasets ORDER BY created_at, dataset_id"
    ).fetchall()
    aliases = _aliases(conn)
    return [_dataset_from_row(r, aliases) for r in rows]


def find_datasets(conn: duckdb.DuckDBPyConnection, key: str) -> list[DatasetInfo]:
    """By exact name or alias, or by id prefix (at least 4 hex characters)."""
    rows = conn.execute(
        f"SELECT {DATASET_COLUMNS} FROM datasets WHERE name = ? "
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
        f"SELECT {DATASET_COLUMNS} FROM datasets WHERE dataset_id = ? "
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
