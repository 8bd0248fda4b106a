"""Lab-style dataset files built from real chemotools spectra (issue #18 tests).

The spectra are chemotools' real fermentation spectra (21 samples, every 10th wavelength
to keep the files small); `protein` is their real glucose reference renamed, `moisture` a
second reference column derived from it, `operator` a text metadata column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPERATORS = ("ana", "bruno", "chloe")


def wheat_columns(n: int = 21) -> tuple[list[str], list[list[object]]]:
    """Header and rows: sample_id, protein, moisture, operator, then the wavelengths."""
    from chemotools.datasets import load_fermentation_train

    X, y = load_fermentation_train()
    X = X.iloc[:n, ::10]
    protein = np.round(y["glucose"].to_numpy()[:n], 4)
    moisture = np.round(11.0 + 0.05 * protein + 0.1 * np.arange(n) % 0.7, 4)
    waves = [f"{float(w):g}" for w in X.columns]
    header = ["sample_id", "protein", "moisture", "operator", *waves]
    rows = []
    for i in range(n):
        spectrum = [round(float(v), 6) for v in X.iloc[i].to_numpy()]
        rows.append(
            [f"W{i + 1:03d}", float(protein[i]), float(moisture[i]), OPERATORS[i % 3], *spectrum]
        )
    return header, rows


def plain_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    lines = [",".join(header)] + [",".join(_plain(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def german_csv(path: Path, header: list[str], rows: list[list[object]], bom: bool = True) -> Path:
    """What German Excel writes as 'CSV (Trennzeichen-getrennt)': `;`, decimal commas
    (headers included), CRLF line ends, a BOM when saved as 'CSV UTF-8'."""

    def cell(value: object) -> str:
        return _plain(value).replace(".", ",")

    lines = [";".join(cell(h) for h in header)]
    lines += [";".join(cell(v) for v in row) for row in rows]
    text = "\r\n".join(lines) + "\r\n"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def xlsx(path: Path, header: list[str], rows: list[list[object]], sheet: str = "Sheet1") -> Path:
    """An Excel workbook: wavelength headers as numbers, as Excel users type them; a first
    sheet of notes before the data sheet when `sheet` is not the default."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    if sheet != "Sheet1":
        book.add_worksheet("Notes").write(0, 0, "harvest 2025, FOSS DS2500")
    data = book.add_worksheet(sheet)
    data.write_row(0, 0, [_header_cell(h) for h in header])
    for r, row in enumerate(rows, start=1):
        data.write_row(r, 0, row)
    book.close()
    return path


def _header_cell(name: str) -> object:
    try:
        return float(name)
    except ValueError:
        return name


def _plain(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)
