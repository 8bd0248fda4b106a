"""What the listing commands (`results`, `best`, `runs`, `datasets list`) print, and in
which form: a table for a person at a terminal, CSV or JSON for a program.

The rule: `--json` prints JSON, `--csv` CSV, `--table` a table; with none of them, a
terminal gets a table and a pipe or file gets CSV (`n4afs results wheat > wheat.csv`).

A *record* is one row as a dict: the same keys, in the same order, become the CSV header and
the JSON object keys. Names come from users and bundles: JSON escapes their control
characters (`ensure_ascii`), CSV writes them as visible `\\xNN` text (`n4afs.cli.terminal`).

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click

from n4afs.cli.terminal import shown, visible  # light: `n4afs --help` imports this module

Record = dict[str, Any]


def format_options(command: Callable) -> Callable:
    """--json, --csv and --table, one choice (the last given wins), stored as `fmt`."""
    for flag, text in (
        ("table", "Print a table (the default at a terminal)."),
        ("csv", "Print CSV (the default when piped)."),
        ("json", "Print JSON."),
    ):
        command = click.option(f"--{flag}", "fmt", flag_value=flag, help=text)(command)
    return command


def chosen_format(fmt: str | None) -> str:
    """The format asked for, else a table at a terminal and CSV anywhere else."""
    if fmt is not None:
        return fmt
    return "table" if sys.stdout.isatty() else "csv"


def emit(fmt: str, records: Sequence[Record], columns: Sequence[str] = ()) -> None:
    """Print records as JSON (a list) or CSV (a header, then one line each); `columns`
    is the header when there are no records."""
    if fmt == "json":
        click.echo(json.dumps([_json_ready(r) for r in records], indent=2, allow_nan=False))
        return
    header = list(records[0]) if records else list(columns)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([visible(name) for name in header])
    writer.writerows([_csv_cell(record.get(name)) for name in header] for record in records)


def emit_one(fmt: str, record: Record) -> None:
    """One record: a JSON object, or CSV with one line under its header."""
    if fmt == "json":
        click.echo(json.dumps(_json_ready(record), indent=2, allow_nan=False))
    else:
        emit(fmt, [record])


def _plain(value: Any) -> Any:
    """JSON has no NaN and no dates: NaN is null, a datetime its ISO text in local time,
    with its offset (the index hands back instants)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        return value.astimezone().isoformat(timespec="seconds")
    return value


def _json_ready(record: Record) -> Record:
    return {key: _plain(value) for key, value in record.items()}


def _csv_cell(value: Any) -> str:
    """Empty for a missing score, full precision for a float, `; ` between list items."""
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "; ".join(visible(item) for item in value)
    return visible(value)


# -- tables ---------------------------------------------------------------------------------
# kinds of listing columns: numbers are never wrapped nor cut (a score is whole or absent);
# words (status, task, dates) are short and kept on one line; names wrap when room is short
NUMBER, WORD, NAME = "number", "word", "name"
NAME_ROOM = 8  # what a name column keeps at least, when an earlier name column is wide
GAP = 2  # between columns


def fitted_table(title: str, columns: list[tuple[str, str]], rows: list[list[str]], width: int):
    """A table of `columns` (header, kind) that fits `width` terminal columns whenever its
    numbers and words do: names take what is left, in column order, so the first name
    column (the one users copy) stays whole if it can. Left to itself, rich cuts numbers
    (`5.…`) before it wraps names."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=shown(title),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for (header, kind), fitted in zip(columns, _column_widths(columns, rows, width), strict=True):
        table.add_column(
            shown(header),
            width=fitted,
            justify="right" if kind == NUMBER else "left",
            no_wrap=kind != NAME,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(shown(cell) for cell in row))
    return table


def _column_widths(columns: list[tuple[str, str]], rows: list[list[str]], width: int) -> list[int]:
    from rich.cells import cell_len

    natural = [
        max([cell_len(visible(header)), *(cell_len(visible(row[i])) for row in rows)])
        for i, (header, _) in enumerate(columns)
    ]
    names = [i for i, (_, kind) in enumerate(columns) if kind == NAME]
    room = (
        width
        - GAP * (len(columns) - 1)
        - sum(natural[i] for i in range(len(columns)) if i not in names)
    )
    fitted = list(natural)
    for position, i in enumerate(names):
        later = sum(min(natural[j], NAME_ROOM) for j in names[position + 1 :])
        fitted[i] = max(1, min(natural[i], room - later))
        room -= fitted[i]
    return fitted


# -- records --------------------------------------------------------------------------------
def task_metrics(metric: str | None) -> list[str]:
    """Every metric of the ranking metric's task, in `METRICS` order."""
    from n4afs_core.metrics.scores import METRICS

    if metric is None:
        return []
    task = METRICS[metric].task
    return [name for name, spec in METRICS.items() if spec.task == task]


RESULT_COLUMNS = (
    "rank",
    "dataset",
    "target",
    "result",
    "run",
    "status",
    "metric",
    "score",
    "test_score",
)


def result_record(result: Any, rank: int | None = None) -> Record:
    """A ranked result: where it is, the metric that ranked it, its value (`score`, pooled
    CV) and the final model's on the test set (`test_score`, empty without one), then every
    pooled CV score of its task (empty for a failed result)."""
    row = result.row
    completed = row.status == "completed"
    cv = result.cv_scores() if completed else {}
    test = result.test_scores() if completed else {}
    record: Record = {} if rank is None else {"rank": rank}
    record |= {
        "dataset": row.dataset,
        "target": row.target,
        "result": row.label,
        "run": row.run_id,
        "status": row.status,
        "metric": result.ranked_by,
        "score": result.ranked_value,
        "test_score": test.get(result.ranked_by),
    }
    return record | {name: cv.get(name) for name in task_metrics(result.ranked_by)}


# column -> its value, one mapping per record kind: the columns (a CSV header even with no
# rows) and the records come from the same place, so they cannot drift apart
RUN_FIELDS: dict[str, Callable[[Any], Any]] = {
    "run": lambda r: r.run_id,
    "name": lambda r: r.name,
    "status": lambda r: r.status,
    "metric": lambda r: r.metric,
    "results": lambda r: r.n_results,
    "failed": lambda r: r.n_failed,
    "pending": lambda r: r.n_pending,
    "started": lambda r: r.created_at,
    "finished": lambda r: r.finished_at,
    "note": lambda r: r.note,
}
RUN_COLUMNS = tuple(RUN_FIELDS)

DATASET_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda d: d.dataset_id,
    "name": lambda d: d.name,
    "task": lambda d: d.task,
    "samples": lambda d: d.n_samples,
    "features": lambda d: d.n_features,
    "wavelength_min": lambda d: d.wavelength_min,
    "wavelength_max": lambda d: d.wavelength_max,
    "wavelength_unit": lambda d: d.wavelength_unit,
    "targets": lambda d: list(d.target_names),
    "aliases": lambda d: list(d.aliases),
    "has_spectra": lambda d: d.blob_id is not None,
}
DATASET_COLUMNS = tuple(DATASET_FIELDS)


def run_record(run: Any) -> Record:
    return {column: value(run) for column, value in RUN_FIELDS.items()}


def dataset_record(dataset: Any) -> Record:
    return {column: value(dataset) for column, value in DATASET_FIELDS.items()}
