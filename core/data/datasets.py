"""Datasets: spectra X (one column per wavelength), targets y, sample ids, metadata columns
(one of them possibly the group of replicate scans), and their description.

A dataset enters the workspace from a CSV or spreadsheet file (`core/data/readers.py`; two files
joined on a sample id), numpy arrays, a pandas or polars frame, or chemotools' bundled real
spectra (`chemotools:fermentation`, `chemotools:coffee`). Which column is what is
`core/data/columns.py`'s rule. Whatever the source, it is normalized into one `Spectra` record,
validated (every error names the file, row and column so the user can fix the cell), then
written as a Parquet blob whose sha256 is the dataset id: the same data used by ten runs is
stored once. A dataset without metadata is written exactly as before metadata existed, so
its id did not change.

Design: docs/DESIGN.md, "Concepts".
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from n4afs_core.data import readers
from n4afs_core.data.columns import SAMPLE_ID_NAMES, Asked, Roles, assign, kind_of_cells
from n4afs_core.data.readers import Table
from n4afs_core.errors import DatasetError

CHEMOTOOLS_PREFIX = "chemotools:"
METADATA_TYPES = ("integer", "number", "text")


@dataclass
class Spectra:
    """A validated dataset in memory. Rows of X, y and sample_ids line up."""

    name: str
    X: np.ndarray  # (n_samples, n_features) float64
    y: np.ndarray  # (n_samples, n_targets): float64 (regression) or str (classification)
    sample_ids: list[str]
    feature_names: list[str]
    target_names: list[str]
    task: str  # regression | classification
    source_path: str | None = None
    source_sha256: str | None = None
    source_size: int | None = None
    wavelength_unit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # name -> one value per sample: int64 (integer), float64 with NaN gaps (number), or an
    # object array of str / None (text); file order. Part of the content.
    metadata: dict[str, np.ndarray] = field(default_factory=dict)
    group_column: str | None = None  # the metadata column naming each scan's physical sample
    # how the file's columns were read (id column, ignored, numbers not made targets, the
    # references file): a description, not content
    roles: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> np.ndarray | None:
        """The physical sample of each scan, as text (`3` for a group 3), or None when the
        dataset has no group column: scans of one group must stay in one fold."""
        if self.group_column is None:
            return None
        return self.labels(self.group_column)

    def labels(self, column: str) -> np.ndarray:
        """A metadata column's values as group labels (text: `3` for 3 or 3.0; a gap is
        None), as `groups` gives them for the group column."""
        return np.array(
            [None if _is_gap(v) else _label(v) for v in self.metadata[column]], dtype=object
        )

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    def target(self, index: int = 0) -> np.ndarray:
        return self.y[:, index]


# -- metadata ---------------------------------------------------------------------------
def wavelengths(feature_names: Sequence[str]) -> np.ndarray | None:
    """Feature names as numbers when every one is numeric (wavelengths), else None."""
    try:
        return np.array([float(name) for name in feature_names])
    except ValueError:
        return None


def guess_unit(values: np.ndarray | None) -> str | None:
    """NIR is recorded in nm (about 350-2600) or in cm-1 (about 4000-12500)."""
    if values is None or len(values) == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if high > 3000:
        return "cm-1"
    if low >= 300 and high <= 2600:
        return "nm"
    return "unknown"


def target_stats(spectra: Spectra) -> dict[str, dict[str, Any]]:
    stats = {}
    for index, name in enumerate(spectra.target_names):
        column = spectra.target(index)
        if spectra.task == "classification":
            labels, counts = np.unique(column.astype(str), return_counts=True)
            stats[name] = {"classes": {str(k): int(v) for k, v in zip(labels, counts, strict=True)}}
        else:
            stats[name] = {
                "min": float(column.min()),
                "max": float(column.max()),
                "mean": float(column.mean()),
                "std": float(column.std(ddof=1)) if len(column) > 1 else 0.0,
            }
    return stats


def metadata(spectra: Spectra) -> dict[str, Any]:
    """Everything the index records about a dataset, captured at load time."""
    waves = wavelengths(spectra.feature_names)
    return {
        "name": spectra.name,
        "source_path": spectra.source_path,
        "source_sha256": spectra.source_sha256,
        "source_size": spectra.source_size,
        "task": spectra.task,
        "n_samples": spectra.n_samples,
        "n_features": spectra.n_features,
        "target_names": list(spectra.target_names),
        "target_stats": target_stats(spectra),
        "wavelength_min": float(waves.min()) if waves is not None else None,
        "wavelength_max": float(waves.max()) if waves is not None else None,
        "wavelength_unit": spectra.wavelength_unit or guess_unit(waves),
        "columns": describe_columns(spectra),
    }


def metadata_types(spectra: Spectra) -> dict[str, str]:
    """Each metadata column's type: integer, number or text."""
    return {name: _type_of(values) for name, values in spectra.metadata.items()}


def _type_of(values: np.ndarray) -> str:
    if values.dtype.kind in "iu":
        return "integer"
    return "number" if values.dtype.kind == "f" else "text"


def describe_columns(spectra: Spectra) -> dict[str, Any]:
    """The roles as DATASET.yaml shows them: id column, targets, spectra count, then only
    what this dataset has of metadata (with types), group, ignored columns, numbers not
    made targets, and the references file of two joined files. Empty for a dataset read
    without roles and without metadata (arrays, chemotools): nothing to say."""
    roles = spectra.roles
    if not roles and not spectra.metadata:
        return {}
    described: dict[str, Any] = {
        "sample_id": roles.get("sample_id"),
        "targets": list(spectra.target_names),
        "spectra": spectra.n_features,
    }
    if spectra.metadata:
        described["metadata"] = metadata_types(spectra)
    if spectra.group_column is not None:
        described["group"] = spectra.group_column
    for key in ("ignored", "not_targets", "references"):
        if roles.get(key):
            described[key] = roles[key]
    return described


def _is_gap(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _label(value: Any) -> str:
    """A group value as text: 3 -> '3', 3.0 -> '3', 'P1' -> 'P1'."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def same_content(a: Spectra, b: Spectra) -> bool:
    """Whether two datasets hold the same samples: ids, targets, task and every value equal,
    wavelengths equal as numbers (`same_wavelength`). Names, units and the source file are
    descriptions, not content: a dataset rebuilt from a bundle's CSV, or written back by
    pandas with `428.0` headers, is the dataset it came from."""
    if (a.task, list(a.target_names), list(a.sample_ids)) != (
        b.task,
        list(b.target_names),
        list(b.sample_ids),
    ):
        return False
    if a.X.shape != b.X.shape or a.y.shape != b.y.shape:
        return False
    if not _same_features(a.feature_names, b.feature_names):
        return False
    same_y = (
        np.array_equal(a.y.astype(np.float64), b.y.astype(np.float64))
        if a.task == "regression"
        else np.array_equal(a.y.astype(str), b.y.astype(str))
    )
    return same_y and _same_metadata(a, b) and np.array_equal(a.X, b.X)


def _same_metadata(a: Spectra, b: Spectra) -> bool:
    if a.group_column != b.group_column or metadata_types(a) != metadata_types(b):
        return False
    for name, values in a.metadata.items():
        other = b.metadata[name]
        if values.dtype.kind == "f":
            if not np.array_equal(values, other, equal_nan=True):
                return False
        elif values.tolist() != other.tolist():
            return False
    return True


def _same_features(a: Sequence[str], b: Sequence[str]) -> bool:
    if list(a) == list(b):
        return True
    waves_a, waves_b = wavelengths(a), wavelengths(b)
    if waves_a is None or waves_b is None or len(waves_a) != len(waves_b):
        return False
    return all(same_wavelength(x, y) for x, y in zip(waves_a, waves_b, strict=True))


# -- validation -------------------------------------------------------------------------
def infer_task(y: np.ndarray) -> str:
    """Numbers are regression targets; labels (any non-number) are classes."""
    return "regression" if np.issubdtype(y.dtype, np.number) else "classification"


def validate(spectra: Spectra, where: str, first_line: int | None = None) -> Spectra:
    """Shape, finiteness and id checks shared by every source.

    `where` names the source; `first_line` is the file line of the first sample, so a CSV's
    errors speak in lines the user sees in an editor, and arrays' errors in sample rows.
    """
    n = spectra.X.shape[0]
    if n == 0 or spectra.X.ndim != 2 or spectra.X.shape[1] == 0:
        raise DatasetError(f"{where}: no spectra found (expected rows of wavelength columns)")
    if spectra.y.shape[0] != n or len(spectra.sample_ids) != n:
        raise DatasetError(
            f"{where}: {n} spectra but {spectra.y.shape[0]} target rows and "
            f"{len(spectra.sample_ids)} sample ids; they must line up"
        )
    _check_unique_features(spectra, where)
    _check_finite_spectra(spectra, where)
    _check_targets(spectra, where)
    _check_metadata(spectra, where)
    _check_unique_ids(spectra, where, first_line)
    return spectra


def _check_metadata(spectra: Spectra, where: str) -> None:
    for name, values in spectra.metadata.items():
        if len(values) != spectra.n_samples:
            raise DatasetError(
                f"{where}: metadata column {name!r} has {len(values)} values for "
                f"{spectra.n_samples} samples; they must line up"
            )
    group = spectra.group_column
    if group is None:
        return
    if group not in spectra.metadata:
        raise DatasetError(
            f"{where}: group {group!r} is not one of the metadata columns "
            f"({', '.join(spectra.metadata) or 'none'})"
        )
    values = spectra.metadata[group]
    gaps = [i for i, v in enumerate(values.tolist()) if v is None or v != v]
    if gaps:
        raise DatasetError(
            f"{where}: sample {spectra.sample_ids[gaps[0]]!r}: no group in column {group!r} "
            f"({len(gaps)} sample(s)); every scan needs the physical sample it was taken from"
        )


def _check_unique_features(spectra: Spectra, where: str) -> None:
    """One column per wavelength: `428` twice, or `428` and `428.0`, would make the model's
    columns ambiguous when new spectra are matched to them."""
    repeated = _first_repeat(spectra.feature_names)
    if repeated is not None:
        first, second = repeated
        raise DatasetError(
            f"{where}: wavelength column {spectra.feature_names[first]!r} appears twice "
            f"(spectra columns {first + 1} and {second + 1}); keep one of them"
        )
    waves = wavelengths(spectra.feature_names)
    if waves is not None:
        _refuse_repeated_wavelengths(waves, spectra.feature_names, where)


def _check_finite_spectra(spectra: Spectra, where: str) -> None:
    bad = np.argwhere(~np.isfinite(spectra.X))
    if len(bad):
        row, col = bad[0]
        raise DatasetError(
            f"{where}: sample {spectra.sample_ids[row]!r}, column "
            f"{spectra.feature_names[col]!r}: value is missing or not finite; fill or drop it"
        )


def _check_targets(spectra: Spectra, where: str) -> None:
    for index, name in enumerate(spectra.target_names):
        column = spectra.target(index)
        if spectra.task == "regression":
            missing = np.flatnonzero(~np.isfinite(column.astype(float)))
        else:
            missing = np.flatnonzero([str(v).strip() in ("", "nan", "None") for v in column])
        if len(missing):
            row = missing[0]
            raise DatasetError(
                f"{where}: sample {spectra.sample_ids[row]!r}, target {name!r}: missing (NaN) "
                f"target in {len(missing)} row(s); drop those samples or fill the target"
            )


def _check_unique_ids(spectra: Spectra, where: str, first_line: int | None) -> None:
    repeated = _first_repeat(spectra.sample_ids)
    if repeated is None:
        return
    first, second = repeated
    unit, offset = ("lines", first_line) if first_line is not None else ("rows", 1)
    id_column = spectra.roles.get("sample_id")
    hint = (
        f"; if these are replicate scans of one sample, use --group {id_column}"
        if id_column and spectra.group_column is None
        else ""
    )
    raise DatasetError(
        f"{where}: sample id {spectra.sample_ids[first]!r} appears twice ({unit} "
        f"{first + offset} and {second + offset}); sample ids must be unique{hint}"
    )


def _first_repeat(values: Sequence[str]) -> tuple[int, int] | None:
    """Positions of the first value seen twice (its first and second), or None."""
    seen: dict[str, int] = {}
    for position, value in enumerate(values):
        if value in seen:
            return seen[value], position
        seen[value] = position
    return None


# -- sources ----------------------------------------------------------------------------
def from_arrays(
    X: Any,
    y: Any,
    name: str,
    sample_ids: Sequence[Any] | None = None,
    feature_names: Sequence[Any] | None = None,
    target_names: Sequence[str] | None = None,
    task: str | None = None,
    wavelength_unit: str | None = None,
    where: str | None = None,
    first_line: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    group: str | None = None,
) -> Spectra:
    """From numpy-like arrays; names default to column numbers and `y`, `y1`, ...

    `metadata` maps column names to one value per sample (ints: integer, floats: number,
    anything else: text, None a gap); `group` names the one of them holding each scan's
    physical sample."""
    spectra = _assemble(
        X, y, name, sample_ids, feature_names, target_names, task, wavelength_unit, metadata
    )
    spectra.group_column = group
    return validate(spectra, where or f"dataset {name!r}", first_line)


def _assemble(
    X: Any,
    y: Any,
    name: str,
    sample_ids: Sequence[Any] | None,
    feature_names: Sequence[Any] | None,
    target_names: Sequence[str] | None,
    task: str | None,
    wavelength_unit: str | None,
    metadata: Mapping[str, Any] | None,
) -> Spectra:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    task = task or infer_task(y)
    y = y.astype(np.float64) if task == "regression" else y.astype(str)
    n_features = X.shape[1] if X.ndim == 2 else 0
    return Spectra(
        name=name,
        X=X,
        y=y,
        sample_ids=[str(s) for s in sample_ids] if sample_ids is not None else _default_ids(len(X)),
        feature_names=[_format_name(f) for f in feature_names]
        if feature_names is not None
        else [str(i) for i in range(n_features)],
        target_names=list(target_names) if target_names else _default_targets(y.shape[1]),
        task=task,
        wavelength_unit=wavelength_unit,
        metadata={str(k): _metadata_array(v) for k, v in (metadata or {}).items()},
    )


def _metadata_array(values: Any) -> np.ndarray:
    """int64 (integer), float64 (number, NaN for a gap) or an object array of str / None."""
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    return np.array([_text_or_none(v) for v in array.tolist()], dtype=object)


def _text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return readers.cell_text(value)


def from_frame(
    frame: Any,
    name: str,
    targets: Sequence[str],
    sample_id: str | None = None,
    task: str | None = None,
    meta: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    group: str | None = None,
) -> Spectra:
    """From a pandas or polars frame: the named target columns, wavelength columns (numeric
    names) as spectra, every other column metadata (`core/data/columns.py`'s rule). A frame with
    no wavelength name at all keeps its other columns as (named) spectra."""
    if hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    missing = [t for t in targets if t not in columns]
    if missing:
        raise DatasetError(f"dataset {name!r}: no target column {missing[0]!r}; columns: {columns}")
    asked = Asked.of(targets, sample_id, meta, ignore, group)
    where = f"dataset {name!r}"

    def kind_of(i: int):
        series = frame[columns[i]]
        if series.dtype.kind in "iuf":
            return kind_of_cells([] if series.isna().all() else [0.0], readers.is_missing, float)
        return kind_of_cells(series.tolist(), readers.is_missing, _frame_number)

    roles = assign(columns, kind_of, asked, where, readers.is_wavelength, task=task)
    spectra_cols = [columns[i] for i in roles.spectra]
    try:
        X = frame[spectra_cols].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"dataset {name!r}: non-numeric spectra ({exc})") from exc
    ids = frame[columns[roles.id]].astype(str).tolist() if roles.id is not None else None
    meta_data = {columns[i]: frame[columns[i]] for i in roles.metadata}
    spectra = _assemble(
        X, frame[list(targets)].to_numpy(), name, ids, spectra_cols, targets, task, None, meta_data
    )
    spectra.group_column = columns[roles.group] if roles.group is not None else None
    spectra.roles = _roles_description(roles, columns)
    return validate(spectra, where)


def _frame_number(cell: Any) -> float:
    if isinstance(cell, bool):
        raise ValueError(cell)
    return float(cell)


def load_chemotools(spec: str) -> Spectra:
    """`chemotools:fermentation` (regression) or `chemotools:coffee` (classification)."""
    key = spec.removeprefix(CHEMOTOOLS_PREFIX)
    from chemotools import datasets as ct

    if key == "fermentation":
        X, y = ct.load_fermentation_train()
        unit, task = "cm-1", "regression"
    elif key == "coffee":
        X, y = ct.load_coffee()
        unit, task = "index", "classification"
    else:
        raise DatasetError(
            f"unknown bundled dataset {spec!r}: use chemotools:fermentation or chemotools:coffee"
        )
    spectra = from_arrays(
        X.to_numpy(), y.to_numpy(), key, None, list(X.columns), list(y.columns), task, unit
    )
    spectra.source_path = spec
    return spectra


def _default_ids(n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"S{i + 1:0{width}d}" for i in range(n)]


def _default_targets(n_targets: int) -> list[str]:
    return ["y"] if n_targets == 1 else [f"y{i + 1}" for i in range(n_targets)]


def _format_name(value: Any) -> str:
    """428.0 -> '428', 428.5 -> '428.5': wavelength headers as a person writes them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- files ------------------------------------------------------------------------------
def load_csv(
    path: str | Path,
    targets: Sequence[str] | None = None,
    sample_id: str | None = None,
    name: str | None = None,
    task: str | None = None,
    meta: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    group: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    references: str | Path | None = None,
    on: str | None = None,
) -> Spectra:
    """Read a dataset file (CSV or spreadsheet, `core/data/readers.py`): numeric headers are
    wavelengths; targets, sample id, metadata, group and ignored columns by
    `core/data/columns.py`'s rule, or as asked.

    Errors name the file, the line (1 = header) and the column, so the user can fix the cell.
    Comma, semicolon and tab separators are recognised; with `;` or tab, decimal commas too.
    `references` (with `on`): a second file of reference values and metadata, joined to
    this one's spectra on the sample id column `on`.
    """
    path = Path(path)
    table = readers.read_table(path, sheet, encoding)
    if references is not None or on is not None:
        if references is None or on is None:
            raise DatasetError("two files are joined with both --targets FILE and --on COLUMN")
        table = readers.join(table, readers.read_table(Path(references), None, encoding), on)
        sample_id = sample_id or on
    asked = Asked.of(targets, sample_id, meta, ignore, group)
    return from_table(table, name or path.stem, asked, task)


def from_table(table: Table, name: str, asked: Asked, task: str | None = None) -> Spectra:
    """A `Spectra` from a file's table: roles decided (`core/data/columns.assign`), then each
    block read with errors naming the cell."""

    def kind_of(i: int):
        number = (lambda c: readers.cell_number(c, True)) if table.decimal_comma else _number
        return kind_of_cells(table.column(i), readers.is_missing, number)

    roles = assign(
        table.header,
        kind_of,
        asked,
        table.where,
        readers.is_wavelength,
        lambda row: f"{table.unit} {row + table.first_line}",
        task,
    )
    X = _numeric_block(table, roles.spectra)
    y = _target_block(table, roles.targets, task)
    ids = [readers.cell_text(r[roles.id]) for r in table.rows] if roles.id is not None else None
    spectra = _assemble(
        X,
        y,
        name,
        ids,
        [table.header[c] for c in roles.spectra],
        [table.header[c] for c in roles.targets],
        task or infer_task(y),
        None,
        {table.header[c]: _typed_column(table, c, roles) for c in roles.metadata},
    )
    spectra.group_column = table.header[roles.group] if roles.group is not None else None
    spectra.roles = _roles_description(roles, table.header)
    if len(table.sources) > 1:
        spectra.roles["references"] = table.sources[1]
    validate(spectra, table.where, table.first_line)
    spectra.source_path = table.source_path
    spectra.source_sha256 = table.source_sha256
    spectra.source_size = table.source_size
    return spectra


def _number(cell: Any) -> float:
    return readers.cell_number(cell, False)


def _roles_description(roles: Roles, header: Sequence[str]) -> dict[str, Any]:
    return {
        "sample_id": header[roles.id] if roles.id is not None else None,
        "ignored": [n for n in roles.ignored if n],
        "not_targets": list(roles.not_targets),
    }


def _typed_column(table: Table, c: int, roles: Roles) -> np.ndarray:
    """A metadata column typed: integer when every cell is a whole number, number when
    every non-empty cell is a number (NaN for an empty one), else text (None if empty)."""
    cells = table.column(c)
    if roles.kinds[c].kind == "number":
        values = np.array(
            [
                math.nan if readers.is_missing(v) else readers.cell_number(v, table.decimal_comma)
                for v in cells
            ],
            dtype=np.float64,
        )
        whole = np.all(np.isfinite(values)) and np.all(values == np.round(values))
        if whole and np.all(np.abs(values) < 2**53):
            return values.astype(np.int64)
        return values
    return np.array(
        [None if readers.cell_text(v) == "" else readers.cell_text(v) for v in cells],
        dtype=object,
    )


def _numeric_block(table: Table, cols: list[int]) -> np.ndarray:
    X = np.empty((len(table.rows), len(cols)), dtype=np.float64)
    for r, row in enumerate(table.rows):
        for j, c in enumerate(cols):
            try:
                X[r, j] = readers.cell_number(row[c], table.decimal_comma)
            except ValueError:
                raise DatasetError(
                    f"{table.place(r, c)}: {row[c]!r} is not a number; spectra must be numeric"
                ) from None
            if not math.isfinite(X[r, j]):
                raise DatasetError(
                    f"{table.place(r, c)}: {row[c]!r} is not a finite number; fill or drop "
                    "that sample"
                )
    return X


def _target_block(table: Table, cols: list[int], task: str | None) -> np.ndarray:
    for r, row in enumerate(table.rows):
        for c in cols:
            if readers.is_missing(row[c]):
                raise DatasetError(
                    f"{table.place(r, c)}: missing target; drop that sample or fill the target"
                )
    if task == "classification":
        return np.array([[readers.cell_text(row[c]) for c in cols] for row in table.rows], str)
    try:
        return np.array(
            [[readers.cell_number(row[c], table.decimal_comma) for c in cols] for row in table.rows]
        )
    except ValueError:
        r, c = _first_non_number(table, cols)
        if task == "regression":
            raise DatasetError(
                f"{table.place(r, c)}: {table.rows[r][c]!r} is not a number but the task is "
                "regression"
            ) from None
        if any(roles_kind == "number" for roles_kind in _kinds(table, cols)):
            raise DatasetError(
                f"{table.where}: the targets mix numbers and text ({table.place(r, c)}: "
                f"{table.rows[r][c]!r}); ask for the numeric or the text targets, not both"
            ) from None
        return np.array([[readers.cell_text(row[c]) for c in cols] for row in table.rows], str)


def _kinds(table: Table, cols: list[int]) -> list[str]:
    number = (lambda c: readers.cell_number(c, True)) if table.decimal_comma else _number
    return [kind_of_cells(table.column(c), readers.is_missing, number).kind for c in cols]


def _first_non_number(table: Table, cols: list[int]) -> tuple[int, int]:
    for r, row in enumerate(table.rows):
        for c in cols:
            try:
                readers.cell_number(row[c], table.decimal_comma)
            except ValueError:
                return r, c
    return 0, cols[0]


# -- Parquet ----------------------------------------------------------------------------
def to_parquet_bytes(spectra: Spectra) -> bytes:
    """Deterministic Parquet: sample_id, targets, metadata, then one `spectrum` list column.

    A fixed-size list keeps thousands of wavelengths in one column (fast, compact); the
    feature names, target names and task ride in the schema metadata under `n4a_dataset`.
    Metadata columns (`meta:<name>`: int64, float64 or string) and the group's name are
    written only when the dataset has them: a dataset without is the same bytes as before.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"sample_id": pa.array(spectra.sample_ids, type=pa.string())}
    for index, target in enumerate(spectra.target_names):
        columns[f"target:{target}"] = pa.array(spectra.target(index))
    for name, values in spectra.metadata.items():
        kind = _type_of(values)
        if kind == "text":
            columns[f"meta:{name}"] = pa.array(values.tolist(), type=pa.string())
        else:
            arrow_type = pa.int64() if kind == "integer" else pa.float64()
            columns[f"meta:{name}"] = pa.array(values, type=arrow_type)
    flat = pa.array(spectra.X.reshape(-1), type=pa.float64())
    columns["spectrum"] = pa.FixedSizeListArray.from_arrays(flat, spectra.n_features)
    info = {  # no dataset name: identity is the content; names live in the index
        "feature_names": spectra.feature_names,
        "target_names": spectra.target_names,
        "task": spectra.task,
        "wavelength_unit": spectra.wavelength_unit,
    }
    if spectra.metadata:
        info["metadata"] = list(spectra.metadata)
        info["group"] = spectra.group_column
    table = pa.table(columns).replace_schema_metadata({"n4a_dataset": json.dumps(info)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def from_parquet_bytes(data: bytes) -> Spectra:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    info = json.loads(table.schema.metadata[b"n4a_dataset"])
    n_features = len(info["feature_names"])
    flat = table.column("spectrum").combine_chunks().flatten().to_numpy()
    targets = [table.column(f"target:{t}").to_numpy() for t in info["target_names"]]
    metadata = {}
    for name in info.get("metadata", []):
        column = table.column(f"meta:{name}")
        if pa.types.is_string(column.type):
            metadata[name] = np.array(column.to_pylist(), dtype=object)
        else:
            metadata[name] = column.to_numpy()
    return Spectra(
        name="",
        X=flat.reshape(-1, n_features),
        y=np.column_stack(targets),
        sample_ids=table.column("sample_id").to_pylist(),
        feature_names=info["feature_names"],
        target_names=info["target_names"],
        task=info["task"],
        wavelength_unit=info["wavelength_unit"],
        metadata=metadata,
        group_column=info.get("group"),
    )


def load_any(source: Any, **options: Any) -> Spectra:
    """One entry point for the API and CLI: a path (CSV, spreadsheet; `references=` and
    `on=` join a second file), `chemotools:NAME`, or a frame."""
    if isinstance(source, Spectra):
        return source
    if isinstance(source, str) and source.startswith(CHEMOTOOLS_PREFIX):
        asked = {k for k, v in options.items() if v not in (None, (), [])}
        if asked - {"name"}:
            raise DatasetError(
                f"{source} has fixed columns: options {', '.join(sorted(asked))} do not apply"
            )
        return load_chemotools(source)
    if isinstance(source, (str, Path)):
        return load_csv(source, **options)
    if hasattr(source, "columns"):
        if "targets" not in options:
            raise DatasetError("a DataFrame dataset needs targets=[column names]")
        return from_frame(source, options.pop("name", "dataset"), **options)
    raise DatasetError(
        f"cannot load a dataset from {type(source).__name__}: give a CSV path, "
        "'chemotools:NAME', a DataFrame, or use from_arrays"
    )


@dataclass
class PredictionInput:
    """New spectra to predict, as columns in the model's order, and their reference values
    when the file has the model's target column (None otherwise)."""

    sample_ids: list[str]
    X: np.ndarray
    target: str | None = None
    y_true: np.ndarray | None = None  # float, NaN where a cell is empty; or str, '' there


def load_for_prediction(
    path: str | Path,
    feature_names: Sequence[str],
    target: str | None = None,
    task: str = "regression",
) -> PredictionInput:
    """New spectra to predict: X ordered as the model's wavelength columns.

    Wavelength headers are matched as numbers (`same_wavelength`), in any column order, so a
    file written by pandas (`428.0`) fits a model trained on `428`. A grid that differs is
    refused in one line saying how. Other non-numeric columns are ignored, except the
    model's `target` column, whose values become `y_true`.
    """
    path = Path(path)
    table = readers.read_table(path)
    header = table.header
    readers.check_unique_header(header, table.where, table.unit)
    id_col = next((i for i, h in enumerate(header) if h.lower() in SAMPLE_ID_NAMES), None)
    target_col = header.index(target) if target in header else None
    candidates = [i for i in range(len(header)) if i not in (id_col, target_col)]
    columns = match_wavelength_columns(header, candidates, list(feature_names), table.where)
    X = _numeric_block(table, columns)
    ids = (
        [readers.cell_text(row[id_col]) for row in table.rows]
        if id_col is not None
        else _default_ids(len(table.rows))
    )
    if target_col is None:
        return PredictionInput(ids, X)
    return PredictionInput(ids, X, header[target_col], _reference_values(table, target_col, task))


def _reference_values(table: Table, col: int, task: str) -> np.ndarray:
    """The target column of new spectra: an empty cell is a sample without a reference
    value (predicted, not scored), a text cell in a regression target is an error."""
    cells = table.column(col)
    empty = [readers.is_missing(c) for c in cells]
    if task == "classification":
        texts = [readers.cell_text(c) for c in cells]
        return np.array(["" if e else c for c, e in zip(texts, empty, strict=True)], dtype=str)
    values = np.full(len(cells), np.nan)
    for r, (cell, is_empty) in enumerate(zip(cells, empty, strict=True)):
        if is_empty:
            continue
        try:
            values[r] = readers.cell_number(cell, table.decimal_comma)
        except ValueError:
            raise DatasetError(
                f"{table.place(r, col)}: {cell!r} is not a number, "
                "but it is the model's target column"
            ) from None
    return values


# -- wavelength grids -------------------------------------------------------------------
# Two wavelength headers name the same wavelength when they differ by at most this fraction
# of their size: `428`, `428.0` and `428.0000001` are one column; `428` and `428.01` are not
# (about 0.002 nm at 2500 nm, 0.01 cm-1 at 10000 cm-1: far below any instrument's step).
WAVELENGTH_RTOL = 1e-6


def same_wavelength(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=WAVELENGTH_RTOL, abs_tol=0.0)


def match_wavelength_columns(
    header: Sequence[str], candidates: Sequence[int], wanted: list[str], where: str
) -> list[int]:
    """The column of `header` (among `candidates`) holding each of `wanted`, in its order.

    Numeric names are matched as numbers within `WAVELENGTH_RTOL`; names that are not all
    numbers (a model trained on named features) must be equal as text. Every numeric
    candidate must be one of the model's wavelengths: a grid that differs is refused.
    """
    waves = wavelengths(wanted)
    numeric = [i for i in candidates if wavelengths([header[i]]) is not None]
    if waves is None:
        by_name = {header[i]: i for i in candidates}
        missing = [w for w in wanted if w not in by_name]
        if missing:
            raise DatasetError(
                f"{where}: no column {missing[0]!r} ({len(missing)} of the model's "
                f"{len(wanted)} feature columns missing)"
            )
        return [by_name[w] for w in wanted]
    found = np.array([float(header[i]) for i in numeric])
    _refuse_repeated_wavelengths(found, [header[i] for i in numeric], where)
    order = np.argsort(found)
    matched = [_nearest(found, order, wave) for wave in waves]
    if all(m is not None for m in matched) and len(numeric) == len(wanted):
        return [numeric[m] for m in matched]
    raise DatasetError(f"{where}: {_grid_difference(waves, found)}")


def _nearest(found: np.ndarray, order: np.ndarray, wave: float) -> int | None:
    """Index into `found` of the value equal to `wave` within the tolerance, else None."""
    position = int(np.searchsorted(found[order], wave))
    for k in (position - 1, position):
        if 0 <= k < len(order) and same_wavelength(found[order[k]], wave):
            return int(order[k])
    return None


def _unmatched(values: np.ndarray, others: np.ndarray) -> list[float]:
    order = np.argsort(others)
    return [float(v) for v in values if _nearest(others, order, v) is None]


def _refuse_repeated_wavelengths(found: np.ndarray, names: list[str], where: str) -> None:
    order = np.argsort(found, kind="stable")
    for a, b in zip(order[:-1], order[1:], strict=True):
        if same_wavelength(found[a], found[b]):
            first, second = sorted((int(a), int(b)))
            raise DatasetError(
                f"{where}: wavelength columns {names[first]!r} and {names[second]!r} are "
                "the same wavelength; keep one of them"
            )


def _grid_difference(model: np.ndarray, found: np.ndarray) -> str:
    """One line: both grids' counts and ranges, and the first wavelength on which they
    disagree (in increasing order)."""

    def grid(values: np.ndarray) -> str:
        if len(values) == 0:
            return "no wavelength columns"
        return f"{len(values)} columns {values.min():g}-{values.max():g}"

    only_model = _unmatched(model, found)
    only_file = _unmatched(found, model)
    first = min(only_model + only_file)
    if only_model and first == min(only_model):
        where = f"the model's {first:g} is missing"
    else:
        where = f"{first:g} is not one of the model's"
    return (
        f"wavelength grid differs from the model's: {grid(found)} here, "
        f"{grid(model)} in the model; first difference: {where} "
        f"({len(only_model)} missing, {len(only_file)} unexpected; wavelengths match within "
        f"a relative {WAVELENGTH_RTOL:g})"
    )
