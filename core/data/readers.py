"""Reading a dataset file into a `Table`: a header and rows of cells, before any role.

Text files: comma, semicolon or tab separated, UTF-8 with or without a BOM, UTF-16 with a
BOM (Excel's "Unicode text"), or any encoding named with `encoding=` (`cp1252`, what Excel
on Windows writes as "CSV"); a file that is not UTF-8 but reads as Windows-1252 is refused
with a message naming `--encoding cp1252`, never guessed. With `;` or tab separators a
decimal comma is a decimal point (`12,5`, and wavelength headers such as `1100,5`).

Spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) are read with python-calamine: one
sheet, or the one named by `sheet=`; cells keep their types (numbers stay numbers).

Two files, spectra and reference values, become one table joined on a sample id column
(`join`): every sample must be in both files, else the error names those that are not.

Which column is what is `core/data/columns.py`'s rule; building a `Spectra` from the table is
`core/data/datasets.py`'s.

Design: docs/DESIGN.md, "Concepts".
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from n4afs_core.errors import DatasetError
from n4afs_core.store.ids import sha256_hex

SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
MISSING = ("", "nan", "na", "null")  # cells that hold no value (lower case)


@dataclass
class Table:
    """A file's cells. `rows[r][c]` is a `str` from a text file; from a spreadsheet a
    float, int, bool, str or None. `first_line` is the line (text) or row (sheet) number the
    user sees for `rows[0]`; `unit` says which."""

    header: list[str]
    rows: list[list[Any]]
    where: str
    decimal_comma: bool = False
    unit: str = "line"
    first_line: int = 2
    source_path: str | None = None
    source_sha256: str | None = None
    source_size: int | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)  # each file read

    def place(self, row: int, column: int | None = None) -> str:
        """'wheat.csv, line 12, column '1100'' for a message."""
        text = f"{self.where}, {self.unit} {row + self.first_line}"
        return text if column is None else f"{text}, column {self.header[column]!r}"

    def column(self, index: int) -> list[Any]:
        return [row[index] for row in self.rows]


# -- cells ---------------------------------------------------------------------------------
def is_missing(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float):
        return math.isnan(cell)
    return isinstance(cell, str) and cell.strip().lower() in MISSING


def cell_number(cell: Any, decimal_comma: bool) -> float:
    """A cell as a float; ValueError when it is not a number (bools are not numbers)."""
    if isinstance(cell, bool):
        raise ValueError(cell)
    if isinstance(cell, (int, float)):
        return float(cell)
    text = str(cell).strip()
    if decimal_comma:
        text = text.replace(",", ".")
    return float(text)


def cell_text(cell: Any) -> str:
    """A cell as the text a person reads: 12.0 -> '12', 12.5 -> '12.5', TRUE -> 'TRUE'."""
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() else repr(cell)
    if isinstance(cell, int):
        return str(cell)
    if hasattr(cell, "isoformat"):  # a spreadsheet date: ISO text, as a CSV would hold it
        return _iso(cell)
    return "" if cell is None else str(cell).strip()


def header_name(cell: Any, decimal_comma: bool) -> str:
    """A header cell as a column name. A wavelength keeps the digits it was written with,
    a decimal comma becoming a point (`1100,5` -> `1100.5`), so the same grid written by
    German Excel and by pandas names the same columns."""
    name = cell_text(cell)
    if decimal_comma and "," in name:
        try:
            float(name.replace(",", "."))
        except ValueError:
            return name
        return name.replace(",", ".")
    return name


def is_wavelength(name: str) -> bool:
    try:
        value = float(name)
    except ValueError:
        return False
    return math.isfinite(value)


def _iso(value: Any) -> str:
    text = value.isoformat()
    return text[:10] if text.endswith("T00:00:00") else text


# -- reading -------------------------------------------------------------------------------
def read_table(path: str | Path, sheet: str | None = None, encoding: str | None = None) -> Table:
    """The table of a text or spreadsheet file, by its suffix."""
    path = Path(path)
    if path.suffix.lower() in SPREADSHEET_SUFFIXES:
        if encoding is not None:
            raise DatasetError(f"{path}: a spreadsheet has no text encoding; drop --encoding")
        return read_sheet(path, sheet)
    if sheet is not None:
        raise DatasetError(f"{path}: --sheet is for spreadsheets (.xlsx, .xls, .ods)")
    return read_text(path, encoding)


def read_bytes(path: Path, what: str = "a CSV file") -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, expected {what}") from None
    if not raw.strip():
        raise DatasetError(f"{path}: the file is empty; expected a header row and spectra")
    return raw


def read_text(path: Path, encoding: str | None = None) -> Table:
    raw = read_bytes(path)
    rows, delimiter = parse_rows(raw, path, encoding)
    return Table(
        header=[header_name(h, delimiter != ",") for h in rows[0]],
        rows=rows[1:],
        where=str(path),
        decimal_comma=delimiter != ",",
        **_source(path, raw),
    )


def _source(path: Path, raw: bytes) -> dict[str, Any]:
    source = {"path": str(path.resolve()), "sha256": sha256_hex(raw), "size": len(raw)}
    return {
        "source_path": source["path"],
        "source_sha256": source["sha256"],
        "source_size": source["size"],
        "sources": [source],
    }


def decode(raw: bytes, path: Path, encoding: str | None) -> str:
    """Text of a file: the encoding asked for, else UTF-16 with its BOM, else UTF-8 (BOM or
    not). Not UTF-8 is refused, naming Windows-1252 when the bytes read as it."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DatasetError(
                f"unknown encoding {encoding!r}: use e.g. cp1252 (Windows), latin-1, utf-8"
            ) from None
        try:
            return raw.decode(encoding).removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not {encoding} text (byte {exc.start})") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        try:
            raw.decode("cp1252")
        except UnicodeDecodeError:
            hint = "save it as UTF-8 CSV, or name its encoding with --encoding"
        else:
            hint = (
                "it reads as Windows-1252 (what Excel on Windows saves as 'CSV'): add "
                "--encoding cp1252, or save it as 'CSV UTF-8'"
            )
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start}); {hint}") from None


def parse_rows(raw: bytes, path: Path, encoding: str | None = None) -> tuple[list[list[str]], str]:
    """Rows of a text file (header first, stripped), and the separator found."""
    text = decode(raw, path, encoding)
    first = text.split("\n", 1)[0]
    delimiter = max([",", ";", "\t"], key=first.count)
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
    header = [h.strip() for h in rows[0]]
    if len(rows) < 2:
        raise DatasetError(f"{path}: only a header row; expected one row per sample below it")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DatasetError(
                f"{path}, line {line}: {len(row)} fields but the header has {len(header)}; "
                "every row needs one value per column"
            )
    return [header, *rows[1:]], delimiter


def check_unique_header(header: list[str], where: str, unit: str = "line") -> None:
    """A column name given twice is ambiguous (which `428` is the spectrum?): refused."""
    first_seen: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in first_seen:
            raise DatasetError(
                f"{where}, {unit} 1: column {name!r} appears twice (columns "
                f"{first_seen[name] + 1} and {position + 1}); every column needs its own name"
            )
        first_seen[name] = position


def read_sheet(path: Path, sheet: str | None) -> Table:
    """One sheet of a workbook: the only one, or the one named. Empty rows are dropped, and
    columns whose header and cells are all empty (Excel's formatted-but-empty columns)."""
    raw = read_bytes(path, "a spreadsheet")
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(raw))
    except Exception as exc:  # calamine's errors have no common base
        raise DatasetError(f"{path}: not a readable spreadsheet ({exc})") from None
    names = list(book.sheet_names)
    listed = ", ".join(repr(n) for n in names)
    if sheet is None:
        if len(names) != 1:
            raise DatasetError(
                f"{path}: {len(names)} sheets ({listed}): choose one with --sheet NAME"
            )
        sheet = names[0]
    elif sheet not in names:
        raise DatasetError(f"{path}: no sheet {sheet!r}; its sheets are {listed}")
    cells = book.get_sheet_by_name(sheet).to_python(skip_empty_area=True)
    rows = [row for row in cells if any(not _empty(c) for c in row)]
    where = f"{path} (sheet {sheet!r})"
    if not rows:
        raise DatasetError(f"{where}: the sheet is empty; expected a header row and spectra")
    width = max(len(r) for r in rows)
    rows = [list(r) + [""] * (width - len(r)) for r in rows]
    kept = [c for c in range(width) if any(not _empty(r[c]) for r in rows)]
    header = [header_name(rows[0][c], False) for c in kept]
    for c, name in zip(kept, header, strict=True):
        if name == "":
            raise DatasetError(f"{where}, row 1, column {c + 1}: a column without a name")
    if len(rows) < 2:
        raise DatasetError(f"{where}: only a header row; expected one row per sample below it")
    return Table(
        header=header,
        rows=[[row[c] for c in kept] for row in rows[1:]],
        where=where,
        unit="row",
        **_source(path, raw),
    )


def _empty(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


# -- two files -----------------------------------------------------------------------------
def join(spectra: Table, references: Table, on: str) -> Table:
    """The spectra file's columns, then the reference file's (its `on` column dropped),
    rows in the spectra file's order, matched by the text of `on`. A sample in one file
    only is an error naming it (with the count); a sample id twice in a file too; a column
    name in both files too."""
    for table in (spectra, references):
        if on not in table.header:
            raise DatasetError(f"{table.where} has no column {on!r}; its columns: {_few(table)}")
    key_s, key_r = spectra.header.index(on), references.header.index(on)
    by_id = {}
    for r, row in enumerate(references.rows):
        key = cell_text(row[key_r])
        if key in by_id:
            raise DatasetError(
                f"{references.place(r, key_r)}: sample {key!r} appears twice "
                f"({references.unit}s {by_id[key] + references.first_line} and "
                f"{r + references.first_line}); one row of reference values per sample"
            )
        by_id[key] = r
    keys = [cell_text(row[key_s]) for row in spectra.rows]
    _refuse_unmatched(spectra, references, [k for k in keys if k not in by_id])
    _refuse_unmatched(references, spectra, [k for k in by_id if k not in set(keys)])
    both = [h for h in references.header if h != on and h in spectra.header]
    if both:
        raise DatasetError(
            f"column {both[0]!r} is in both {spectra.where} and {references.where}; "
            "rename it in one of them"
        )
    kept = [c for c in range(len(references.header)) if c != key_r]
    rows = []
    for key, row in zip(keys, spectra.rows, strict=True):
        other = references.rows[by_id[key]]
        rows.append([*row, *(_as_text_cell(other[c], references) for c in kept)])
    return Table(
        header=[*spectra.header, *(references.header[c] for c in kept)],
        rows=rows,
        where=f"{spectra.where} + {references.where}",
        decimal_comma=spectra.decimal_comma,
        unit=spectra.unit,
        first_line=spectra.first_line,
        source_path=spectra.source_path,
        source_sha256=spectra.source_sha256,
        source_size=spectra.source_size,
        sources=[*spectra.sources, *references.sources],
    )


def _as_text_cell(cell: Any, table: Table) -> Any:
    """A reference cell in the joined table's number convention (its decimal separator
    may differ from the spectra file's)."""
    if isinstance(cell, str) and table.decimal_comma:
        try:
            return repr(cell_number(cell, True))
        except ValueError:
            return cell
    return cell


def _refuse_unmatched(table: Table, other: Table, missing: list[str]) -> None:
    if missing:
        shown = ", ".join(repr(k) for k in missing[:5]) + (", …" if len(missing) > 5 else "")
        raise DatasetError(
            f"{len(missing)} sample(s) of {table.where} have no row in {other.where}: {shown}; "
            "every sample needs its spectrum and its reference values"
        )


def _few(table: Table) -> str:
    return ", ".join(table.header[:8]) + (", …" if len(table.header) > 8 else "")
