"""Renderers: index rows and blobs in, the bytes of a human-readable file out.

Every renderer is deterministic — same inputs, same bytes: no timestamps, no library
versions inside, sorted keys where order is not meaningful — so a rendered file can be
memoized by (RENDER_VERSION, renderer, input ids) and its size is known once, exactly.
Bump RENDER_VERSION whenever an output changes, so memos keyed on it never serve old bytes,
and whenever what a result folder lists changes (a folder is stored whole: `stored_folders`).

CSVs are for machines (RFC 4180: a header row, comma separated, `.` as the decimal point,
UTF-8 without a BOM, one row per sample). Spreadsheets get the same tables as `.xlsx`
(`xlsx_bytes`, XlsxWriter: `scripts/bench_xlsx.py` measured it ~2.5x faster than openpyxl
and byte-identical across renders): numbers are number cells, which Excel and LibreOffice
show in the reader's locale, where a CSV's `13.014` becomes 13014 under a comma-decimal one.

Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import yaml

# 2: DATASET.yaml columns/note/keys, metadata.csv; 3: targets; 4: metadata columns in
# prediction CSVs, cv_by_group.csv, scores.yaml's cv_by_group, RUN.yaml's groups;
# 5: .xlsx twins of RESULTS, best and predictions tables; 6: RESULTS' stable columns (metric,
# direction, score; preprocessing, model, n_components, other choices; RMSEC/RMSECV/RMSEP),
# Parquet twins of RESULTS and best tables
# 7: the target's name on target axes, "wavenumber (cm⁻¹)" / "wavelength (nm)", integer ticks
# 8: times (RUN.yaml, DATASET.yaml, timing.yaml, REPORT.html) in local time with their offset
# 9: render keys hashed with their blob ids in full (`content.key_text`)
RENDER_VERSION = 9

# Stored renders (`core.store.renders`) are kept per stamp: RENDER_VERSION and the versions
# of every library that shapes rendered bytes (matplotlib draws the PNGs, XlsxWriter writes
# the workbooks, pyarrow names itself in a Parquet footer, numpy/polars/PyYAML format
# numbers and text). Any of them changing starts a new stamp: old renders are never served
# for new code, and gc drops them. A new renderer needs nothing here unless it draws with
# another library (add it).
# scikit-learn: the PLS diagnostics and ROC curves are computed from the fitted models
RENDER_LIBRARIES = (
    "matplotlib",
    "XlsxWriter",
    "pyarrow",
    "polars",
    "numpy",
    "PyYAML",
    "scikit-learn",
)
# Kinds (a render key's first item) kept in memory only: tiny YAML rendered from rows the
# snapshot holds, measured (fresh process, fermentation, 5 results) at medians of 0.03 ms
# (MANIFEST, timing), 0.07 ms (pipeline) and 0.6 ms (scores, which loads the score rows),
# against 0.04 ms to size a stored render from its record: storing them would save nothing
# and cost a blob and a record each. Every other kind is stored.
IN_MEMORY_KINDS = frozenset(
    {"dataset.yaml", "pipeline.yaml", "scores.yaml", "manifest", "timing.yaml"}
)
PREDICTION_COLUMNS = ("sample_id", "y_true", "y_pred", "residual", "partition", "fold")


@lru_cache(maxsize=1)
def render_stamp() -> str:
    """`v<RENDER_VERSION>-<12 hex of the library versions>`: the folder stored renders of
    this code live in (`core.store.renders`). Computed in a fresh process before its first
    stored render: versions are read from the installed `.dist-info` folder names next to
    each module found (no import; `importlib.metadata` cost ~40 ms, more under load)."""
    from n4afs_core.store.ids import sha256_hex

    libraries = ",".join(f"{name}={_installed_version(name)}" for name in RENDER_LIBRARIES)
    return f"v{RENDER_VERSION}-{sha256_hex(libraries.encode())[:12]}"


# the module each library in RENDER_LIBRARIES is imported as
_MODULE_OF = {"XlsxWriter": "xlsxwriter", "PyYAML": "yaml", "scikit-learn": "sklearn"}


def _installed_version(distribution: str) -> str:
    """The version in `<name>-<version>.dist-info` beside the library's package, else `-`."""
    import importlib.util
    import os

    wanted = re.sub(r"[-_.]+", "_", distribution).lower()
    spec = importlib.util.find_spec(_MODULE_OF.get(distribution, distribution.lower()))
    if spec is None or not spec.origin:
        return "-"
    folder = os.path.dirname(os.path.dirname(spec.origin))
    try:
        names = os.listdir(folder)
    except OSError:
        return "-"
    for name in sorted(names):
        if name.endswith(".dist-info") and "-" in name:
            found, _, version = name.removesuffix(".dist-info").partition("-")
            if re.sub(r"[-_.]+", "_", found).lower() == wanted:
                return version
    return "-"


# -- text formats ---------------------------------------------------------------------
def number(value: Any) -> str:
    """Shortest exact form, '.' decimal point, empty for missing (what spreadsheets expect)."""
    kind = value.__class__  # the common exact types first: a RESULTS.csv has 300,000 cells
    if kind is str:
        return value
    if kind is float:
        return repr(value) if math.isfinite(value) else ""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return str(value)


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    sink = io.StringIO()
    writer = csv.writer(sink, lineterminator="\r\n")  # RFC 4180 line ends, as Excel writes
    writer.writerow(header)
    text = number
    writer.writerows([text(v) for v in row] for row in rows)
    return sink.getvalue().encode("utf-8")


def csv_columns_bytes(header: Sequence[str], columns: Sequence[Sequence[Any]]) -> bytes:
    """`csv_bytes(header, zip(*columns))`, the same bytes, formatted a column at a time (a
    RESULTS.csv of 10,000 results has 300,000 cells)."""
    if len(header) < 2:  # a row of one empty field is written `""`: the writer knows
        return csv_bytes(header, zip(*columns, strict=True))
    cells = [_quoted(_text_column(c)) for c in columns]
    lines = [_csv_line(header), *map(",".join, zip(*cells, strict=True)), ""]
    return "\r\n".join(lines).encode("utf-8")


_CSV_SPECIAL = ('"', ",", "\r", "\n")  # what `csv.writer` (QUOTE_MINIMAL) quotes a field for


def _csv_line(fields: Sequence[Any]) -> str:
    sink = io.StringIO()
    csv.writer(sink, lineterminator="\r\n").writerow(fields)
    return sink.getvalue().removesuffix("\r\n")


def _quoted(cells: list[str]) -> list[str]:
    """A column's cells as `csv.writer` writes them: those holding a quote, a comma or a line
    break quoted, quotes doubled (one scan of the column when none does, the usual case)."""
    joined = "".join(cells)
    if not any(c in joined for c in _CSV_SPECIAL):
        return cells
    return [
        '"' + c.replace('"', '""') + '"' if any(s in c for s in _CSV_SPECIAL) else c for c in cells
    ]


_NUMBERS = {float, int, bool, type(None)}  # whose `number` is their `repr` in a list


def _text_column(values: Sequence[Any]) -> list[str]:
    """`number` of each value. A column of floats, ints, bools (and None) is formatted by
    the list's own `repr`, in C, then split: no such `repr` holds `, `, and only those of
    None, NaN and infinities (written empty) hold `None`, `nan` or `inf`. Others a value at
    a time, floats and texts (most cells) without a call each."""
    if values and set(map(type, values)) <= _NUMBERS:
        text = repr(list(values))[1:-1]
        if "n" in text:  # None, nan, inf, -inf
            text = text.replace("None", "").replace("-inf", "").replace("nan", "")
            text = text.replace("inf", "")
        return text.split(", ")
    return _text_cells(values)


def _text_cells(values: Sequence[Any]) -> list[str]:
    isfinite, text = math.isfinite, number
    return [
        (repr(v) if isfinite(v) else "")
        if v.__class__ is float
        else v
        if v.__class__ is str
        else text(v)
        for v in values
    ]


XLSX_CREATED = datetime.datetime(2000, 1, 1)  # a fixed document date: same table, same bytes
XLSX_MAX_WIDTH = 40
TEXT_HEADERS = ("sample_id", "partition")  # text in a table whatever they look like


def xlsx_bytes(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    about: Sequence[tuple[str, Any]] = (),
) -> bytes:
    """A table as a workbook: sheet `data` (bold frozen header, columns sized to their
    content, numbers as number cells, text as text even when it looks like a number or a
    formula, empty cells for missing values), and sheet `about` (what the table is: metric,
    direction, ...). Deterministic: fixed document date, XlsxWriter's fixed zip dates."""
    import xlsxwriter

    sink = io.BytesIO()
    book = xlsxwriter.Workbook(sink, {"in_memory": True})
    book.set_properties({"created": XLSX_CREATED})
    bold = book.add_format({"bold": True})
    sheet = book.add_worksheet("data")
    widths = [len(str(h)) for h in header]
    sheet.write_row(0, 0, list(header), bold)
    for r, row in _write_rows(sheet, rows):
        if r <= 200:
            for c, value in enumerate(row):
                widths[c] = max(widths[c], len(number(value)))
    for c, width in enumerate(widths):
        sheet.set_column(c, c, min(width, XLSX_MAX_WIDTH) + 2)
    sheet.freeze_panes(1, 0)
    if about:
        notes = book.add_worksheet("about")
        for r, (key, value) in enumerate(about):
            notes.write_string(r, 0, str(key), bold)
            _write_cell(notes, r, 1, value)
        notes.set_column(0, 0, max(len(str(k)) for k, _ in about) + 2)
        notes.set_column(1, 1, XLSX_MAX_WIDTH * 2)
    book.close()
    return sink.getvalue()


# What pyarrow is asked to write, every option that shapes the bytes pinned (its defaults may
# move between versions). What it cannot be asked not to write: the footer's `created_by`
# (`parquet-cpp-arrow version X`), so the bytes are the same for the same table within a
# pyarrow version, not across versions (as matplotlib's PNGs).
PARQUET_OPTIONS = {
    "version": "2.6",
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
    "store_schema": True,  # ARROW:schema (no version in it); without it `n4a_about` is dropped
    "write_page_index": False,
    "write_page_checksum": False,
}
_PARQUET_TYPES = {"int": "int64", "float": "float64", "text": "string", "bool": "bool_"}


def parquet_bytes(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    about: Sequence[tuple[str, Any]] = (),
    types: dict[str, str] | None = None,
) -> bytes:
    """A table as Parquet with typed columns: `types` names a column's type (int, float,
    text, bool); the others are inferred from their values (all ints: int, all numbers:
    float, all bools: bool, else text; `TEXT_HEADERS` stay text). Empty cells ("" or None)
    are nulls. `about` goes into the footer as `n4a_about` (JSON)."""
    columns = [list(c) for c in zip(*rows, strict=True)] or [[] for _ in header]
    return parquet_columns_bytes(header, columns, about, types)


def parquet_columns_bytes(
    header: Sequence[str],
    columns: Sequence[Sequence[Any]],
    about: Sequence[tuple[str, Any]] = (),
    types: dict[str, str] | None = None,
) -> bytes:
    """`parquet_bytes` of a table given as its columns (one list per header name)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    fields, arrays = [], []
    for name, values in zip(header, columns, strict=True):
        values = [None if v == "" else v for v in values]
        kind = (types or {}).get(name) or _column_type(name, values)
        if kind == "text":
            values = [None if v is None else str(v) for v in values]
        elif kind == "float":
            values = [None if v is None else float(v) for v in values]
        kind_type = getattr(pa, _PARQUET_TYPES[kind])()
        fields.append(pa.field(name, kind_type))
        arrays.append(pa.array(values, type=kind_type))
    schema = pa.schema(fields)
    if about:
        text = json.dumps({str(k): v for k, v in about}, sort_keys=True, default=str)
        schema = schema.with_metadata({"n4a_about": text})
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink, **PARQUET_OPTIONS)
    return sink.getvalue()


def _column_type(name: str, values: list) -> str:
    present = [v for v in values if v is not None]
    if name in TEXT_HEADERS or not present:
        return "text"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in present):
        return "text"
    return "int" if all(isinstance(v, numbers.Integral) for v in present) else "float"


def _write_rows(sheet: Any, rows: Iterable[Sequence[Any]]) -> Iterator[tuple[int, Sequence]]:
    """`_write_cell` of every cell, row after row from row 1, yielding each (row number,
    row) once written. The common exact types (float, str, None, int) go first and through
    XlsxWriter's undecorated methods (its public ones only add the A1-notation check): the
    same cells, the same bytes (shared strings are numbered in the order written), ~2x
    faster on a RESULTS.xlsx of 300,000 cells. An XlsxWriter without them: the public path."""
    number_, string_ = getattr(sheet, "_write_number", None), getattr(sheet, "_write_string", None)
    if number_ is None or string_ is None:
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                _write_cell(sheet, r, c, value)
            yield r, row
        return
    isfinite = math.isfinite
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            kind = value.__class__
            if kind is float:
                if isfinite(value):
                    number_(r, c, value, None)
            elif kind is str:
                if value:
                    string_(r, c, value, None)
            elif value is None:
                pass
            elif kind is int:
                number_(r, c, float(value), None)
            else:
                _write_cell(sheet, r, c, value)
        yield r, row


def _write_cell(sheet: Any, row: int, column: int, value: Any) -> None:
    if value is None or value == "":
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, column, value)
    elif isinstance(value, numbers.Real):
        if math.isfinite(value):
            sheet.write_number(row, column, float(value))
    else:  # never `write`: it would make '=...' a formula and 'http...' a link
        sheet.write_string(row, column, str(value))


def typed_csv_rows(data: bytes) -> tuple[list[str], list[list[Any]]]:
    """A CSV n4afs did not render (an imported file) back into a table for `xlsx_bytes`:
    cells that read as numbers become numbers, except in `TEXT_HEADERS` columns."""
    header, *rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    text = {i for i, name in enumerate(header) if name in TEXT_HEADERS}
    return header, [[_typed(v) if i not in text else v for i, v in enumerate(r)] for r in rows]


def _typed(cell: str) -> Any:
    try:
        value = float(cell)
    except ValueError:
        return cell
    return int(value) if value.is_integer() and "." not in cell and "e" not in cell else value


# libyaml's emitter when PyYAML has it (its wheels do): the same text, ~4x faster, and
# YAML is most of the cost of a cold read of a result folder
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def shown_time(value: datetime.datetime | None) -> str | None:
    """An instant from the index as a reader reads it: ISO text on this process's local
    clock, with its offset (`2026-12-06T10:45:19+01:00`): one instant, whoever wrote it."""
    return None if value is None else value.astimezone().isoformat(timespec="seconds")


def yaml_bytes(data: Any) -> bytes:
    """Block-style YAML, keys in the given order. The documents we render (plain dicts,
    lists, strings and numbers) are written by `_block_yaml`, which produces PyYAML's
    exact text ~10x faster; anything else goes to PyYAML itself."""
    text = _block_yaml(data)
    if text is None:
        text = _pyyaml(data)
    return text.encode("utf-8")


def _pyyaml(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_DUMPER,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


# -- YAML without PyYAML's representer ---------------------------------------------------
# PyYAML builds a node graph and resolves every scalar against its regexes: for the small
# documents of a result folder (scores.yaml, MANIFEST.yaml…) that was ~1 ms each, most of
# a cold read of the folder through the mount. `_block_yaml` writes the same text directly
# for the shapes we render, and declines (None) the rest. tests/test_renderers.py checks
# it against PyYAML on every YAML file of a real tree and on generated documents.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")  # never quoted, never wrapped
_LINE_WIDTH = 90  # PyYAML wraps lines past 100 columns; stay clear of it
_KEY_MAX = 100  # PyYAML writes keys of 128 characters or more as `? key`
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()


class _Decline(Exception):
    """The document has something `_block_yaml` does not write exactly as PyYAML."""


def _block_yaml(data: Any) -> str | None:
    lines: list[str] = []
    try:
        if type(data) is dict and data:
            _mapping(data, 0, "", lines)
        elif type(data) is list and data:
            _sequence(data, 0, "", lines)
        else:
            return None
    except _Decline:
        return None
    return "".join(lines)


def _mapping(data: dict, indent: int, lead: str, lines: list[str]) -> None:
    """`lead`: what the first line starts with (indentation, or a sequence item's `- `)."""
    prefix = lead
    for key, value in data.items():
        key_text = _plain_key(key)
        if type(value) is dict and value:
            lines.append(f"{prefix}{key_text}:\n")
            _mapping(value, indent + 2, " " * (indent + 2), lines)
        elif type(value) is list and value:
            lines.append(f"{prefix}{key_text}:\n")
            _sequence(value, indent, " " * indent, lines)  # PyYAML does not indent these
        elif type(value) is str and not _is_plain(value):
            lines.append(prefix + _quoted_entry(indent, key_text, value))
        else:
            lines.append(f"{prefix}{key_text}: {_scalar_text(value)}\n")
        prefix = " " * indent


def _sequence(items: list, indent: int, lead: str, lines: list[str]) -> None:
    prefix = lead + "- "
    for item in items:
        if type(item) is dict and item:
            _mapping(item, indent + 2, prefix, lines)
        elif type(item) is list and item:
            _sequence(item, indent + 2, prefix, lines)
        elif type(item) is str and not _is_plain(item):
            text = _string_scalar(item)
            if text is None or len(prefix) + len(text) > _LINE_WIDTH:
                raise _Decline  # would wrap: rare in a list, left to PyYAML
            lines.append(f"{prefix}{text}\n")
        else:
            lines.append(f"{prefix}{_scalar_text(item)}\n")
        prefix = " " * indent + "- "


def _plain_key(key: Any) -> str:
    if type(key) is str and len(key) < _KEY_MAX and _is_plain(key):
        return key
    raise _Decline


@lru_cache(maxsize=65536)
def _is_plain(text: str) -> bool:
    """Cached: a cold `du` of 200 result folders asks it ~90,000 times of a few hundred
    distinct keys and values (a quarter of the YAML renders' time)."""
    return bool(_IDENTIFIER.match(text)) and _resolves_to_str(text)


def _scalar_text(value: Any) -> str:
    """A plain identifier, a number, a bool, null, or an empty collection."""
    kind = type(value)
    if kind is str:  # callers checked `_is_plain`
        return value
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return _float_text(value)
    if kind is dict and not value:
        return "{}"
    if kind is list and not value:
        return "[]"
    raise _Decline


@lru_cache(maxsize=4096)
def _quoted_entry(indent: int, key: str, value: str) -> str:
    """PyYAML's lines for `key: value` in a mapping at `indent`, the first line without
    its indentation: made by PyYAML itself in the same position (nested mappings), so a
    long value wraps exactly where and as it would."""
    document: dict[str, Any] = {key: value}
    for _ in range(indent // 2):
        document = {"k": document}
    text = _pyyaml(document)
    return text.split("\n", indent // 2)[-1][indent:]


@lru_cache(maxsize=65536)
def _resolves_to_str(text: str) -> bool:
    """Whether PyYAML reads `text` back as a string (not a number, bool, date, null)."""
    return _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG


@lru_cache(maxsize=4096)
def _string_scalar(value: str) -> str | None:
    """PyYAML's own text for a string that needs quoting or has spaces, when it is one
    line (it does not depend on where the scalar sits in a block document, as long as no
    line reaches the wrapping width)."""
    text = _pyyaml(value)
    text = text.removesuffix("\n...\n").removesuffix("\n")
    return None if "\n" in text else text


def _float_text(value: float) -> str:
    """PyYAML's representer: `.nan`, `.inf`, else repr with a `.0` put before a bare
    exponent (`1e17` is not a YAML float, `1.0e+17` is)."""
    if value != value:
        return ".nan"
    if value in (math.inf, -math.inf):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def prediction_rows(table: Any, task: str, metadata: Metadata | None = None) -> list[tuple]:
    """Rows of a predictions table (polars) as CSV rows: residual = y_pred - y_true; the
    sample's metadata values after its id (empty for a sample the dataset has not: rows of
    a separate test dataset)."""
    rows = []
    values = metadata[1] if metadata else {}
    blank = (None,) * len(metadata[0]) if metadata else ()
    for sample, y_true, y_pred, partition, fold in table.select(
        "sample_id", "y_true", "y_pred", "partition", "fold"
    ).iter_rows():
        # classification: 1 when correct instead of a residual
        residual = y_pred - y_true if task == "regression" else int(y_pred == y_true)
        meta = values.get(sample, blank) if metadata else ()
        rows.append((sample, *meta, y_true, y_pred, residual, partition, "" if fold < 0 else fold))
    return rows


Metadata = tuple[tuple[str, ...], dict[str, tuple]]
"""A dataset's metadata column names and, per sample id, its values in that order."""


def predictions_table(
    table: Any, task: str, metadata: Metadata | None = None
) -> tuple[tuple[str, ...], list[tuple]]:
    """A prediction table's header and rows: sample_id, the dataset's metadata columns (when
    it has some), y_true, y_pred, residual (classification: correct), partition, fold."""
    header = (
        PREDICTION_COLUMNS
        if task == "regression"
        else ("sample_id", "y_true", "y_pred", "correct", "partition", "fold")
    )
    if metadata:
        header = (header[0], *metadata[0], *header[1:])
    return header, prediction_rows(table, task, metadata)


def predictions_csv(table: Any, task: str, metadata: Metadata | None = None) -> bytes:
    return csv_bytes(*predictions_table(table, task, metadata))


# -- charts ---------------------------------------------------------------------------
def _figure(width: float = 6.4, height: float = 4.8):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def warm_up() -> None:
    """Import what drawing a chart and saving it as PNG need (matplotlib's Agg backend and
    figure, Pillow's plugins, imported on the first save), ahead of the first chart
    (`Tree.prepare`)."""
    png_bytes(_figure(0.1, 0.1))


def png_bytes(fig: Any) -> bytes:
    """PNG without the matplotlib version or a date in its metadata."""
    sink = io.BytesIO()
    fig.savefig(sink, format="png", metadata={"Software": None})
    return sink.getvalue()


def scatter_chart(
    y_true, y_pred, partition, title: str, scores: dict[str, Any], target: str | None = None
) -> bytes:
    import numpy as np

    fig = _figure()
    ax = fig.add_subplot()
    for part, marker in (("val", "o"), ("test", "^")):
        mask = np.asarray(partition) == part
        if mask.any():
            ax.scatter(
                np.asarray(y_true)[mask],
                np.asarray(y_pred)[mask],
                marker=marker,
                alpha=0.75,
                label="cross-validation" if part == "val" else "test",
            )
    low = float(min(np.min(y_true), np.min(y_pred)))
    high = float(max(np.max(y_true), np.max(y_pred)))
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="1:1")
    ax.set_xlabel(f"reference {_named(target)}(y_true)")
    ax.set_ylabel(f"predicted {_named(target)}(y_pred)")
    ax.set_title(title)
    text = "\n".join(f"{k:<9} = {v:.4g}" for k, v in scores.items() if v is not None)
    ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", family="monospace")
    ax.legend(loc="lower right")
    return png_bytes(fig)


def residuals_chart(y_true, residual, title: str, target: str | None = None) -> bytes:
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(y_true, residual, alpha=0.75)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel(f"reference {_named(target)}(y_true)")
    ax.set_ylabel(f"residual {_named(target)}(y_pred - y_true)")
    ax.set_title(title)
    return png_bytes(fig)


def spectra_chart(wavelengths, X, unit: str | None, title: str) -> bytes:
    fig = _figure(8.0, 4.8)
    ax = fig.add_subplot()
    for row in X:
        ax.plot(wavelengths, row, linewidth=0.6, alpha=0.6)
    ax.set_xlabel(axis_label(unit))
    ax.set_ylabel("signal")
    if len(wavelengths) > 1 and wavelengths[0] > wavelengths[-1]:
        ax.invert_xaxis()  # wavenumbers recorded decreasing are shown so
    ax.set_title(title)
    return png_bytes(fig)


def distribution_chart(
    values_by_partition: dict[str, list], task: str, title: str, target: str | None = None
) -> bytes:
    import numpy as np

    fig = _figure()
    ax = fig.add_subplot()
    if task == "regression":
        ax.hist(list(values_by_partition.values()), label=list(values_by_partition), bins=15)
        ax.set_xlabel(target or "target")
    else:
        labels = sorted({str(v) for vs in values_by_partition.values() for v in vs})
        width = 0.8 / max(len(values_by_partition), 1)
        for i, (part, values) in enumerate(values_by_partition.items()):
            counts = [sum(1 for v in values if str(v) == label) for label in labels]
            ax.bar(np.arange(len(labels)) + i * width, counts, width, label=part)
        ax.set_xticks(np.arange(len(labels)), labels)
        ax.set_xlabel(target or "class")
    ax.set_ylabel("samples")
    _integer_axis(ax.yaxis)
    ax.set_title(title)
    ax.legend()
    return png_bytes(fig)


def folds_chart(sample_order: list[str], fold_of: dict[str, int], title: str) -> bytes:
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(
        range(len(sample_order)), [fold_of.get(s, -1) for s in sample_order], marker="|", s=200
    )
    ax.set_xlabel("sample (dataset order)")
    ax.set_ylabel("validation fold (-1: test)")
    _integer_axis(ax.xaxis)
    _integer_axis(ax.yaxis)
    ax.set_title(title)
    return png_bytes(fig)


def confusion_chart(y_true, y_pred, title: str, target: str | None = None) -> bytes:
    import numpy as np

    labels = sorted({str(v) for v in [*y_true, *y_pred]})
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[index[str(t)], index[str(p)]] += 1
    fig = _figure()
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(f"predicted {_named(target)}".rstrip())
    ax.set_ylabel(f"reference {_named(target)}".rstrip())
    ax.set_title(title)
    return png_bytes(fig)


def _named(target: str | None) -> str:
    """`glucose ` to put before a parenthesis on an axis label; empty without a name."""
    return f"{target} " if target else ""


def _integer_axis(axis: Any) -> None:
    """Ticks at whole numbers only (components, folds, counts)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def components_chart(points: Sequence[Any], target: str | None, title: str) -> bytes:
    """RMSECV against the number of components, one colour per curve (`core.metrics.components`):
    RMSECV solid, RMSEC dashed, each curve's minimum circled, the chosen one starred."""
    fig = _figure(8.0, 5.2)
    ax = fig.add_subplot()
    names = list(dict.fromkeys(p.curve for p in points))
    colours = [f"C{i % 10}" for i in range(len(names))]
    for name, colour in zip(names, colours, strict=True):
        mine = [p for p in points if p.curve == name]
        ks = [p.n_components for p in mine]
        ax.plot(ks, [_nan(p.rmsecv) for p in mine], "o-", color=colour, label=f"{name}: RMSECV")
        ax.plot(
            ks,
            [_nan(p.rmsec) for p in mine],
            "--",
            color=colour,
            alpha=0.7,
            linewidth=1,
            label=f"{name}: RMSEC",
        )
        for p in mine:
            if p.curve_minimum:
                ax.plot(
                    [p.n_components],
                    [p.rmsecv],
                    "o",
                    markersize=12,
                    markerfacecolor="none",
                    markeredgecolor=colour,
                )
    for p in points:
        if p.chosen:
            ax.plot(
                [p.n_components],
                [p.rmsecv],
                "*",
                markersize=18,
                color="black",
                label=f"chosen: {p.curve}, {p.n_components} LV, RMSECV {p.rmsecv:.4g}",
            )
    if not points:
        ax.text(
            0.5, 0.5, "no result with a number of components", ha="center", transform=ax.transAxes
        )
    _integer_axis(ax.xaxis)
    ax.set_xlabel("number of components (latent variables)")
    ax.set_ylabel(f"RMSE ({target})" if target else "RMSE")
    ax.set_title(title)
    if points:
        ax.legend(fontsize="small")
    return png_bytes(fig)


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def axis_label(unit: str | None) -> str:
    """The spectral axis as a chemometrician names it, from the dataset's unit."""
    if unit == "cm-1":
        return "wavenumber (cm⁻¹)"
    if unit == "nm":
        return "wavelength (nm)"
    if unit in (None, "", "index", "unknown"):
        return "variable"
    return f"wavelength ({unit})"


def note_chart(text: str, title: str) -> bytes:
    fig = _figure()
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    ax.set_title(title)
    return png_bytes(fig)


def coefficients_chart(
    x, coefficients, vip, intercept: float, unit: str | None, title: str
) -> bytes:
    """Regression coefficients against the spectral axis, VIP below (1: the usual line)."""
    fig = _figure(8.0, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(x, coefficients, linewidth=1)
    top.axhline(0.0, color="grey", linewidth=0.8)
    top.set_ylabel("coefficient b")
    top.set_title(title)
    top.text(
        0.01,
        0.97,
        f"intercept b0 = {intercept:.6g}",
        transform=top.transAxes,
        va="top",
        family="monospace",
    )
    bottom.plot(x, vip, linewidth=1, color="C1")
    bottom.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    bottom.set_ylabel("VIP")
    bottom.set_xlabel(axis_label(unit))
    if len(x) > 1 and x[0] > x[-1]:  # wavenumbers are shown decreasing, as recorded
        bottom.invert_xaxis()
    return png_bytes(fig)


def t2_q_chart(t2, q, t2_limit: float, q_limit: float, sample_ids, partitions, title: str) -> bytes:
    """Hotelling T² against Q residuals, the 95 % limits dashed, outliers named."""
    import numpy as np

    t2, q, parts = np.asarray(t2), np.asarray(q), np.asarray(partitions)
    fig = _figure()
    ax = fig.add_subplot()
    for part, marker, label in (("train", "o", "calibration"), ("test", "^", "test")):
        mask = parts == part
        if mask.any():
            ax.scatter(t2[mask], q[mask], marker=marker, alpha=0.75, label=label)
    ax.axvline(t2_limit, color="red", linestyle="--", linewidth=1, label="95 % limits")
    ax.axhline(q_limit, color="red", linestyle="--", linewidth=1)
    for sid, x, y in zip(sample_ids, t2, q, strict=True):
        if x > t2_limit or y > q_limit:
            ax.annotate(
                str(sid), (x, y), fontsize="small", xytext=(3, 3), textcoords="offset points"
            )
    ax.set_xlabel("Hotelling T²")
    ax.set_ylabel("Q residuals")
    ax.set_title(title)
    ax.legend(loc="upper right")
    return png_bytes(fig)


def roc_chart(curves: Sequence[Any], title: str) -> bytes:
    """One-vs-rest ROC curves (`core.metrics.roc.Curve`), AUC per class in the legend."""
    fig = _figure()
    ax = fig.add_subplot()
    for curve in curves:
        ax.plot(curve.fpr, curve.tpr, linewidth=1.2, label=f"{curve.label} (AUC {curve.auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return png_bytes(fig)
