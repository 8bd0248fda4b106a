"""Which library writes the tree's .xlsx renders: XlsxWriter or openpyxl (#19).

A render must be fast (a predictions sheet is made on the first `stat` of its file) and
deterministic (the same content gives the same bytes, so sizes are exact and memo keys
hold). Both libraries write the same sheet here: a bold frozen header, then a predictions
table of `--rows` rows (text ids, floats, integers, text metadata), with the document's
creation date fixed. Variants alternate within a repeat; medians are reported. Two renders
a second apart must be byte-identical: the column `identical` says whether they are, and
`zip dates` which timestamps the zip container carries.

Run from a checkout: `.venv/bin/python scripts/bench_xlsx.py [--rows 5000] [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import statistics
import time
import zipfile
from collections.abc import Callable

FIXED = datetime.datetime(2000, 1, 1)
HEADER = ["sample_id", "y_true", "y_pred", "residual", "fold", "partition", "batch", "operator"]


def table(n: int) -> list[tuple]:
    import numpy as np

    rng = np.random.default_rng(0)
    return [
        (
            f"S{i:05d}",
            float(rng.normal(20, 3)),
            float(rng.normal(20, 3)),
            float(rng.normal()),
            i % 5,
            "val",
            f"B{i % 7}",
            "ana",
        )
        for i in range(n)
    ]


def with_xlsxwriter(rows: list[tuple]) -> bytes:
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    book.set_properties({"created": FIXED})
    sheet = book.add_worksheet("predictions")
    sheet.write_row(0, 0, HEADER, book.add_format({"bold": True}))
    for number, row in enumerate(rows, start=1):
        sheet.write_row(number, 0, row)
    sheet.freeze_panes(1, 0)
    book.close()
    return buffer.getvalue()


def with_openpyxl(rows: list[tuple]) -> bytes:
    import openpyxl
    from openpyxl.styles import Font

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "predictions"
    sheet.append(HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "A2"
    book.properties.created = book.properties.modified = FIXED
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


WRITERS: dict[str, Callable[[list[tuple]], bytes]] = {
    "xlsxwriter": with_xlsxwriter,
    "openpyxl": with_openpyxl,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = table(args.rows)
    times: dict[str, list[float]] = {name: [] for name in WRITERS}
    outputs: dict[str, list[bytes]] = {name: [] for name in WRITERS}
    for _ in range(args.repeats):
        for name, write in WRITERS.items():
            started = time.perf_counter()
            outputs[name].append(write(rows))
            times[name].append(time.perf_counter() - started)
        time.sleep(1.1)  # a clock that leaks into the bytes shows in the next render
    print(f"{args.rows} rows x {len(HEADER)} columns, {args.repeats} repeats (median)\n")
    print("| writer | bytes | ms | MB/s | rows/s | identical | zip dates |")
    print("|---|---|---|---|---|---|---|")
    for name in WRITERS:
        data, median = outputs[name][0], statistics.median(times[name])
        identical = len({hashlib.sha256(d).digest() for d in outputs[name]}) == 1
        dates = sorted({i.date_time[:3] for i in zipfile.ZipFile(io.BytesIO(data)).infolist()})
        print(
            f"| {name} | {len(data)} | {median * 1000:.0f} | {len(data) / median / 1e6:.2f} "
            f"| {args.rows / median:.0f} | {identical} | {dates} |"
        )


if __name__ == "__main__":
    main()
