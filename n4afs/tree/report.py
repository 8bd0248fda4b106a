"""REPORT.html: one self-contained, printable page per result, and one per ranking.

Pure functions: sections of plain data (text, tables, PNG bytes) in, HTML bytes out. Every
image is embedded as a data URI, so the page opens from a mount, a zip or an e-mail alike;
no script, no external style sheet, no date: the same inputs give the same bytes.
`n4afs/tree/result_files.py` gathers what each page shows.

Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; border-bottom: 2px solid #335; padding-bottom: .2em; }
h2 { font-size: 1.25em; color: #335; border-bottom: 1px solid #ccd; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eef; }
pre { background: #f6f6fa; padding: .6em; overflow-x: auto; font-size: .9em; }
figure { margin: 1em 0; page-break-inside: avoid; break-inside: avoid; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
.note { background: #fffbe6; border-left: 4px solid #e6c200; padding: .4em .8em; }
code { font-size: .9em; }
@media print { body { margin: 0; max-width: none; } h2 { page-break-after: avoid; }
               a { color: inherit; text-decoration: none; } }
"""


@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    links: dict[int, Sequence[str | None]] = field(default_factory=dict)  # column -> hrefs


@dataclass
class Section:
    """A heading and what follows it, in order: text (str), tables, images (name, PNG),
    preformatted text (`Pre`)."""

    title: str
    parts: list[Any]


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass(frozen=True)
class Image:
    name: str
    png: bytes


@dataclass(frozen=True)
class Note:
    text: str


def page(title: str, sections: Sequence[Section]) -> bytes:
    """One HTML page: the title, then each section under its own `<h2>`."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
    ]
    for section in sections:
        anchor = section.title.lower().replace(" ", "-")
        out.append(f'<section id="{_e(anchor)}">')
        out.append(f"<h2>{_e(section.title)}</h2>")
        out += [_part(p) for p in section.parts]
        out.append("</section>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out).encode("utf-8")


def _part(part: Any) -> str:
    if isinstance(part, Table):
        return _table(part)
    if isinstance(part, Image):
        data = base64.b64encode(part.png).decode("ascii")
        return (
            f'<figure><img alt="{_e(part.name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(part.name)}</figcaption></figure>"
        )
    if isinstance(part, Pre):
        return f"<pre>{_e(part.text)}</pre>"
    if isinstance(part, Note):
        return f'<p class="note">{_e(part.text)}</p>'
    return f"<p>{_e(str(part))}</p>"


def _table(table: Table) -> str:
    out = ["<table>"]
    if any(table.header):  # key/value tables have none
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in table.header) + "</tr>")
    rows = table.rows
    width = len(rows[0]) if rows else 0
    if width and all(len(row) == width for row in rows):  # a column at a time (120,000 cells)
        columns = [
            _cells(values, table.links.get(c)) for c, values in enumerate(zip(*rows, strict=True))
        ]
        out += ["<tr>" + "".join(cells) + "</tr>" for cells in zip(*columns, strict=True)]
    else:
        for i, row in enumerate(rows):
            cells = [_cells([v], _link(table.links, c, i))[0] for c, v in enumerate(row)]
            out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _link(links: dict[int, Sequence[str | None]], column: int, row: int) -> list | None:
    return [links[column][row]] if column in links else None


_HTML_SPECIAL = ("&", "<", ">", '"', "'")  # what `html.escape(..., quote=True)` replaces


def _cells(values: Sequence[Any], links: Sequence[str | None] | None) -> list[str]:
    """One column's `<td>` cells: `cell_text`, escaped, numbers right-aligned (class n),
    wrapped in a link where `links` has one."""
    texts = [cell_text(v) for v in values]
    joined = "".join(texts)
    if any(c in joined for c in _HTML_SPECIAL):  # else escaping changes nothing: skip it
        texts = [_e(t) for t in texts]
    if links is not None:
        hrefs = [links[i] for i in range(len(texts))]
        linked = zip(texts, hrefs, strict=True)
        texts = [f'<a href="{_e(h)}">{t}</a>' if h else t for t, h in linked]
    return [
        f'<td class="n">{t}</td>'
        if (v.__class__ is float or v.__class__ is int)
        or (isinstance(v, (int, float)) and not isinstance(v, bool))
        else f"<td>{t}</td>"
        for t, v in zip(texts, values, strict=True)
    ]


def cell_text(value: Any) -> str:
    """Numbers to 5 significant digits (a report, not a data file: the CSVs hold every
    digit), missing values as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.5g}"
    return str(value)


def _e(text: str) -> str:
    return html.escape(text, quote=True)
