"""Datasets: spectra X (one column per wavelength), targets y, sample ids, and their metadata.

A dataset enters the workspace from a CSV file, numpy arrays, a pandas or polars frame, or
chemotools' bundled real spectra (`chemotools:fermentation`, `chemotools:coffee`). Whatever
the source, it is normalized into one `Spectra` record, validated (every error names the
file, row and column so the user can fix the cell), then written as a Parquet blob whose
sha256 is the dataset id: the same data used by ten runs is stored once.

Design: docs/DESIGN.md, "Concepts".
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from n4afs_core.errors import DatasetError
from n4afs_core.store.ids import sha256_hex

SAMPLE_ID_NAMES = ("sample_id", "sample", "id", "sampleid", "sample id")
CHEMOTOOLS_PREFIX = "chemotools:"


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
    }


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
    return same_y and np.array_equal(a.X, b.X)


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
    _check_unique_ids(spectra, where, first_line)
    return spectra


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
    raise DatasetError(
        f"{where}: sample id {spectra.sample_ids[first]!r} appears twice ({unit} "
        f"{first + offset} and {second + offset}); sample ids must be unique"
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
) -> Spectra:
    """From numpy-like arrays; names default to column numbers and `y`, `y1`, ..."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    task = task or infer_task(y)
    y = y.astype(np.float64) if task == "regression" else y.astype(str)
    n_features = X.shape[1] if X.ndim == 2 else 0
    spectra = Spectra(
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
    )
    return validate(spectra, where or f"dataset {name!r}", first_line)


def from_frame(
    frame: Any,
    name: str,
    targets: Sequence[str],
    sample_id: str | None = None,
    task: str | None = None,
) -> Spectra:
    """From a pandas or polars frame: the named target columns, the rest are spectra."""
    if hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    missing = [t for t in targets if t not in columns]
    if missing:
        raise DatasetError(f"dataset {name!r}: no target column {missing[0]!r}; columns: {columns}")
    spectra_cols = [c for c in columns if c not in targets and c != sample_id]
    ids = frame[sample_id].astype(str).tolist() if sample_id else None
    try:
        X = frame[spectra_cols].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"dataset {name!r}: non-numeric spectra ({exc})") from exc
    return from_arrays(X, frame[list(targets)].to_numpy(), name, ids, spectra_cols, targets, task)


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


# -- CSV --------------------------------------------------------------------------------
def load_csv(
    path: str | Path,
    targets: Sequence[str] | None = None,
    sample_id: str | None = None,
    name: str | None = None,
    task: str | None = None,
) -> Spectra:
    """Read a spectra CSV: numeric headers are wavelengths, other columns targets or ids.

    Errors name the file, the line (1 = header) and the column, so the user can fix the cell.
    Comma, semicolon and tab separators are recognised; with `;`, a decimal comma is too.
    """
    path = Path(path)
    raw = _read_bytes(path)
    rows, delimiter = _parse_rows(raw, path)
    header, body = rows[0], rows[1:]
    roles = _column_roles(header, targets, sample_id, path)
    X = _numeric_block(body, roles["spectra"], header, path, delimiter)
    y = _target_block(body, roles["targets"], header, path, task, delimiter)
    ids = (
        [body[r][roles["id"]].strip() for r in range(len(body))]
        if roles["id"] is not None
        else None
    )
    spectra = from_arrays(
        X,
        y,
        name or path.stem,
        ids,
        [header[c] for c in roles["spectra"]],
        [header[c] for c in roles["targets"]],
        task or infer_task(y),
        where=str(path),
        first_line=2,
    )
    spectra.source_path = str(path.resolve())
    spectra.source_sha256 = sha256_hex(raw)
    spectra.source_size = len(raw)
    return spectra


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, expected a CSV file") from None
    if not raw.strip():
        raise DatasetError(f"{path}: the file is empty; expected a header row and spectra")
    return raw


def _parse_rows(raw: bytes, path: Path) -> tuple[list[list[str]], str]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV"
        ) from None
    first = text.split("\n", 1)[0]
    delimiter = max([",", ";", "\t"], key=first.count)
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
    header = [h.strip() for h in rows[0]]
    _check_unique_header(header, path)
    if len(rows) < 2:
        raise DatasetError(f"{path}: only a header row; expected one row per sample below it")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DatasetError(
                f"{path}, line {line}: {len(row)} fields but the header has {len(header)}; "
                "every row needs one value per column"
            )
    return [header, *rows[1:]], delimiter


def _check_unique_header(header: list[str], path: Path) -> None:
    """A column name given twice is ambiguous (which `428` is the spectrum?): refused."""
    first_seen: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in first_seen:
            raise DatasetError(
                f"{path}, line 1: column {name!r} appears twice (columns "
                f"{first_seen[name] + 1} and {position + 1}); every column needs its own name"
            )
        first_seen[name] = position


def _column_roles(
    header: list[str], targets: Sequence[str] | None, sample_id: str | None, path: Path
) -> dict[str, Any]:
    """Decide which columns are spectra, targets and the sample id."""
    id_col = _find_id_column(header, sample_id, path)
    if targets:
        missing = [t for t in targets if t not in header]
        if missing:
            raise DatasetError(
                f"{path}: no target column {missing[0]!r}; columns are {header[:8]}…"
            )
        target_cols = [header.index(t) for t in targets]
    else:
        target_cols = [i for i, h in enumerate(header) if i != id_col and wavelengths([h]) is None]
        if not target_cols:
            raise DatasetError(
                f"{path}: every column header is a number, so no target column was found; "
                "name the target with --target NAME"
            )
    spectra_cols = [i for i in range(len(header)) if i != id_col and i not in target_cols]
    if not spectra_cols:
        raise DatasetError(f"{path}: no spectra columns besides the targets {targets}")
    return {"id": id_col, "targets": target_cols, "spectra": spectra_cols}


def _find_id_column(header: list[str], sample_id: str | None, path: Path) -> int | None:
    if sample_id is not None:
        if sample_id not in header:
            raise DatasetError(
                f"{path}: no sample id column {sample_id!r}; columns are {header[:8]}…"
            )
        return header.index(sample_id)
    for i, h in enumerate(header):
        if h.strip().lower() in SAMPLE_ID_NAMES:
            return i
    return None


def _to_float(cell: str, delimiter: str) -> float:
    cell = cell.strip()
    if delimiter == ";":
        cell = cell.replace(",", ".")
    return float(cell)


def _numeric_block(
    body: list[list[str]], cols: list[int], header: list[str], path: Path, delimiter: str
) -> np.ndarray:
    X = np.empty((len(body), len(cols)), dtype=np.float64)
    for r, row in enumerate(body):
        for j, c in enumerate(cols):
            try:
                X[r, j] = _to_float(row[c], delimiter)
            except ValueError:
                raise DatasetError(
                    f"{path}, line {r + 2}, column {header[c]!r}: {row[c]!r} is not a number; "
                    "spectra must be numeric"
                ) from None
            if not math.isfinite(X[r, j]):
                raise DatasetError(
                    f"{path}, line {r + 2}, column {header[c]!r}: {row[c]!r} is not a finite "
                    "number; fill or drop that sample"
                )
    return X


def _target_block(
    body: list[list[str]],
    cols: list[int],
    header: list[str],
    path: Path,
    task: str | None,
    delimiter: str,
) -> np.ndarray:
    cells = [[row[c].strip() for c in cols] for row in body]
    for r, row in enumerate(cells):
        for j, value in enumerate(row):
            if value == "" or value.lower() in ("nan", "na", "null"):
                raise DatasetError(
                    f"{path}, line {r + 2}, column {header[cols[j]]!r}: missing target; "
                    "drop that sample or fill the target"
                )
    if task == "classification":
        return np.array(cells, dtype=str)
    try:
        return np.array([[_to_float(v, delimiter) for v in row] for row in cells])
    except ValueError:
        if task == "regression":
            r, j = _first_non_number(cells, delimiter)
            raise DatasetError(
                f"{path}, line {r + 2}, column {header[cols[j]]!r}: {cells[r][j]!r} is not a "
                "number but the task is regression"
            ) from None
        return np.array(cells, dtype=str)


def _first_non_number(cells: list[list[str]], delimiter: str) -> tuple[int, int]:
    for r, row in enumerate(cells):
        for j, value in enumerate(row):
            try:
                _to_float(value, delimiter)
            except ValueError:
                return r, j
    return 0, 0


# -- Parquet ----------------------------------------------------------------------------
def to_parquet_bytes(spectra: Spectra) -> bytes:
    """Deterministic Parquet: sample_id, targets, then one `spectrum` list column.

    A fixed-size list keeps thousands of wavelengths in one column (fast, compact); the
    feature names, target names and task ride in the schema metadata under `n4a_dataset`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"sample_id": pa.array(spectra.sample_ids, type=pa.string())}
    for index, target in enumerate(spectra.target_names):
        columns[f"target:{target}"] = pa.array(spectra.target(index))
    flat = pa.array(spectra.X.reshape(-1), type=pa.float64())
    columns["spectrum"] = pa.FixedSizeListArray.from_arrays(flat, spectra.n_features)
    info = {  # no dataset name: identity is the content; names live in the index
        "feature_names": spectra.feature_names,
        "target_names": spectra.target_names,
        "task": spectra.task,
        "wavelength_unit": spectra.wavelength_unit,
    }
    table = pa.table(columns).replace_schema_metadata({"n4a_dataset": json.dumps(info)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def from_parquet_bytes(data: bytes) -> Spectra:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    info = json.loads(table.schema.metadata[b"n4a_dataset"])
    n_features = len(info["feature_names"])
    flat = table.column("spectrum").combine_chunks().flatten().to_numpy()
    targets = [table.column(f"target:{t}").to_numpy() for t in info["target_names"]]
    return Spectra(
        name="",
        X=flat.reshape(-1, n_features),
        y=np.column_stack(targets),
        sample_ids=table.column("sample_id").to_pylist(),
        feature_names=info["feature_names"],
        target_names=info["target_names"],
        task=info["task"],
        wavelength_unit=info["wavelength_unit"],
    )


def load_any(source: Any, **options: Any) -> Spectra:
    """One entry point for the API and CLI: a path, `chemotools:NAME`, or a frame."""
    if isinstance(source, Spectra):
        return source
    if isinstance(source, str) and source.startswith(CHEMOTOOLS_PREFIX):
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
    rows, delimiter = _parse_rows(_read_bytes(path), path)
    header, body = rows[0], rows[1:]
    id_col = _find_id_column(header, None, path)
    target_col = header.index(target) if target in header else None
    candidates = [i for i in range(len(header)) if i not in (id_col, target_col)]
    columns = match_wavelength_columns(header, candidates, list(feature_names), str(path))
    X = _numeric_block(body, columns, header, path, delimiter)
    ids = [row[id_col].strip() for row in body] if id_col is not None else _default_ids(len(body))
    if target_col is None:
        return PredictionInput(ids, X)
    y_true = _reference_values(body, target_col, header, path, delimiter, task)
    return PredictionInput(ids, X, header[target_col], y_true)


def _reference_values(
    body: list[list[str]], col: int, header: list[str], path: Path, delimiter: str, task: str
) -> np.ndarray:
    """The target column of new spectra: an empty cell is a sample without a reference
    value (predicted, not scored), a text cell in a regression target is an error."""
    cells = [row[col].strip() for row in body]
    empty = [c == "" or c.lower() in ("nan", "na", "null") for c in cells]
    if task == "classification":
        return np.array(["" if e else c for c, e in zip(cells, empty, strict=True)], dtype=str)
    values = np.full(len(cells), np.nan)
    for r, (cell, is_empty) in enumerate(zip(cells, empty, strict=True)):
        if is_empty:
            continue
        try:
            values[r] = _to_float(cell, delimiter)
        except ValueError:
            raise DatasetError(
                f"{path}, line {r + 2}, column {header[col]!r}: {cell!r} is not a number, "
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
