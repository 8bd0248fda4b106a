"""RESULTS.csv/.xlsx/.parquet built from columns (#23): one index query per ranking and
column-wise formatting instead of a Python loop per result and per cell, with the very same
bytes as the row-by-row build, which this module keeps as its reference (`_rows_reference`,
the build RESULTS used until #23) on real sweeps: regression with a test set, classification
without, a choice column of its own, failed results, imported results."""

from __future__ import annotations

import pytest
from n4afs_core.index.queries import score_rows
from n4afs_core.metrics import ranking
from n4afs_core.metrics.scores import METRICS

from n4afs.tree import renderers, report, result_files
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace

REGRESSION = [{"_or_": ["snv", "msc", None]}, {"pls": {"n_components": {"_or_": [2, 3, 40]}}}]
CLASSIFICATION = [{"_or_": ["snv", "msc"]}, {"plsda": {"n_components": {"_or_": [2, 3]}}}]
WINDOWS = [
    {"savgol": {"deriv": 1, "polyorder": 2, "window_length": {"_or_": [7, 11]}}},
    {"pls": {"n_components": {"_or_": [2, 30]}}},
]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Two workspaces' results in one: runs of its own (some configs fail: 40 components
    on 21 samples), and the same sweep imported from another workspace (untrusted)."""
    root = tmp_path_factory.mktemp("columns")
    other = Workspace(root / "other")
    other.run([REGRESSION], ["chemotools:fermentation"], cv=3, test_size=0.2, name="theirs")
    bundle = root / "bundle.zip"
    other.export(("runs", "fermentation"), bundle)
    ws = Workspace(root / "ws")
    ws.run([REGRESSION], ["chemotools:fermentation"], cv=3, test_size=0.2, name="glucose")
    ws.run([WINDOWS], ["chemotools:fermentation"], cv=3, name="windows")
    ws.run([CLASSIFICATION], ["chemotools:coffee"], cv=3, metric="accuracy", name="origin")
    ws.import_bundle(bundle, name="untrusted")
    return ws


def _rows_reference(views, ranked, metric):
    """RESULTS' header and rows as built before #23: one Python loop per result."""
    from n4afs_core.pipelines.templates import choice_columns, describe_config

    snapshot = views.snapshot
    direction = METRICS[metric].direction
    choices = [choice_columns(r.config, r.choices) for r in ranked]
    columns = result_files.RESULTS_COLUMNS
    extra = sorted({c for found in choices for c in found} - set(columns))
    rows = []
    for rank, (r, chosen) in enumerate(zip(ranked, choices, strict=True), start=1):
        cv = snapshot.cv_scores(r.result_id)
        task = views.datasets_by_id[r.dataset_id].task
        trios = []
        for trio_task, (main, _) in result_files.RESULTS_TRIOS.items():
            if trio_task != task:
                trios += [None, None, None]
                continue
            train = snapshot.final_scores(r.result_id, ranking.CALIBRATION[1])
            test = snapshot.final_scores(r.result_id, ranking.TEST[1])
            trios += [train.get(main), cv.get(main), test.get(main)]
        rows.append(
            [
                rank,
                r.label,
                r.seq,
                r.name,
                r.target,
                r.run_id,
                r.status,
                snapshot.origin(r),
                *describe_config(r.config),
                metric,
                direction,
                ranking.ranked_value(metric, cv, r.metric, r.score),
                *trios,
                *[cv.get(c.removeprefix("cv_")) for c in result_files.RESULTS_CV],
                *[chosen.get(c) for c in extra],
            ]
        )
    return [*columns, *extra], rows


def _rankings(tree: Tree):
    """Every ranking the tree shows RESULTS of: each dataset's (per target), and each run's
    results on it (by-run/), with the metric each is ranked by."""
    views = tree.views
    found = []
    for group, results in views.results_by_group.items():
        found.append((views.ranked(group), views.metric_of(results)))
        for run_id in {r.run_id for r in results}:
            shown = [r for r in results if r.run_id == run_id]
            found.append((views.ranked_subset(shown), views.metric_of(shown)))
    return views, found


def test_results_files_are_byte_identical_to_the_row_by_row_build(ws):
    tree = Tree(ws)
    views, rankings = _rankings(tree)
    assert len(rankings) >= 6
    statuses = {r.status for ranked, _ in rankings for r in ranked}
    origins = {views.snapshot.origin(r) for ranked, _ in rankings for r in ranked}
    assert statuses == {"completed", "failed"} and len(origins) == 2
    files = result_files.ResultFiles(ws, tree.memo)
    for ranked, metric in rankings:
        header, rows = _rows_reference(views, ranked, metric)
        where = (ranked[0].dataset_id, ranked[0].target, None)
        csv_, xlsx, parquet = files.results_tables(views, ranked, metric, where)
        assert csv_.data == renderers.csv_bytes(header, rows)
        about = _about(metric)
        assert xlsx.data == renderers.xlsx_bytes(header, rows, about)
        types = result_files.RESULTS_TYPES
        assert parquet.data == renderers.parquet_bytes(header, rows, about, types)


def test_the_dataset_folders_results_csv_is_the_reference_table(ws):
    """Through the tree, as a user reads it: the columns and the rows, in rank order."""
    tree = Tree(ws)
    views = tree.views
    for name in ("fermentation", "coffee"):
        group = next(g for g in views.results_by_group if views.datasets_by_id[g[0]].name == name)
        results = views.results_by_group[group]
        header, rows = _rows_reference(views, views.ranked(group), views.metric_of(results))
        assert tree.read(tree.lookup(("runs", name, "RESULTS.csv"))) == renderers.csv_bytes(
            header, rows
        )


def test_a_ranking_report_links_only_its_result_column(ws):
    """REPORT.html's ranking: a link in the result column of each result with a report,
    nothing else linked (the table renders one link list per column, not per cell)."""
    table = report.Table(("a", "b"), [(1, "x"), (2, "y"), (3.5, None)], {1: ["x/R", None, "z"]})
    html = report._table(table)
    assert html.count("<a ") == 2
    assert '<td><a href="x/R">x</a></td>' in html and '<td><a href="z">–</a></td>' in html
    assert '<td class="n">3.5</td>' in html


def _about(metric: str) -> list[tuple[str, str]]:
    return result_files.results_about(metric)


def test_the_reference_sees_scores_the_index_holds(ws):
    """The reference is not empty: its score columns are the index's JSON values."""
    tree = Tree(ws)
    views, rankings = _rankings(tree)
    ranked, metric = rankings[0]
    header, rows = _rows_reference(views, ranked, metric)
    first = dict(zip(header, rows[0], strict=True))
    with ws.index.read() as conn:
        scores = score_rows(conn, ranked[0].result_id)
    (cv,) = [row for row in scores if (row["model"], row["partition"]) == ranking.OUT_OF_FOLD]
    assert first["score"] == cv[metric] is not None


@pytest.mark.parametrize(
    "cells",
    [
        ["a,b", 'say "hi"', "two\r\nlines", "cr\ronly", "lf\nonly", "", None, "plain"],
        [1.5, float("nan"), float("inf"), -0.0, 1e-05, 1e16, 0.1 + 0.2, None],
        [1, True, False, 0, -3, 10**20, None, 7],
        ["é ü ß", "μ", "=1+1", "0012", " lead", "trail ", "\t", "x"],
    ],
)
def test_csv_from_columns_writes_what_the_csv_writer_writes(cells):
    import numpy as np

    columns = [cells, list(reversed(cells)), [np.float64(v) if v else v for v in range(8)]]
    header = ["a,b", 'q"', "plain"]
    rows = list(zip(*columns, strict=True))
    assert renderers.csv_columns_bytes(header, columns) == renderers.csv_bytes(header, rows)
    assert renderers.csv_columns_bytes(["one"], [[""]]) == renderers.csv_bytes(["one"], [[""]])


@pytest.mark.parametrize("with_about", [False, True])
def test_a_workbook_holds_the_cells_the_public_writer_wrote(with_about):
    """`xlsx_bytes` writes through XlsxWriter's undecorated methods: the same bytes as the
    public `write_*` calls (`_xlsx_reference`) for every kind of cell."""
    import numpy as np

    rows = [
        [1, 2.5, "a", None, "", True, float("nan"), np.float64(0.25), np.int64(3), "=A1"],
        [-0.0, 1e300, "μ", 0, False, float("inf"), 10**15, "http://x", None, 7.0],
    ] * 3
    header = [f"c{i}" for i in range(10)]
    about = [("metric", "rmse"), ("n", 3)] if with_about else []
    assert renderers.xlsx_bytes(header, rows, about) == _xlsx_reference(header, rows, about)


def _xlsx_reference(header, rows, about):
    """`renderers.xlsx_bytes` as written before #23: `_write_cell` through the public API."""
    import io

    import xlsxwriter

    sink = io.BytesIO()
    book = xlsxwriter.Workbook(sink, {"in_memory": True})
    book.set_properties({"created": renderers.XLSX_CREATED})
    bold = book.add_format({"bold": True})
    sheet = book.add_worksheet("data")
    widths = [len(str(h)) for h in header]
    sheet.write_row(0, 0, list(header), bold)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            renderers._write_cell(sheet, r, c, value)
            if r <= 200:
                widths[c] = max(widths[c], len(renderers.number(value)))
    for c, width in enumerate(widths):
        sheet.set_column(c, c, min(width, renderers.XLSX_MAX_WIDTH) + 2)
    sheet.freeze_panes(1, 0)
    if about:
        notes = book.add_worksheet("about")
        for r, (key, value) in enumerate(about):
            notes.write_string(r, 0, str(key), bold)
            renderers._write_cell(notes, r, 1, value)
        notes.set_column(0, 0, max(len(str(k)) for k, _ in about) + 2)
        notes.set_column(1, 1, renderers.XLSX_MAX_WIDTH * 2)
    book.close()
    return sink.getvalue()


def _table_reference(table: report.Table) -> str:
    """`report._table` as written before #23: a cell at a time."""
    out = ["<table>"]
    if any(table.header):
        out.append("<tr>" + "".join(f"<th>{report._e(h)}</th>" for h in table.header) + "</tr>")
    for i, row in enumerate(table.rows):
        cells = []
        for c, value in enumerate(row):
            text = report._e(report.cell_text(value))
            href = table.links.get(c, [None] * len(table.rows))[i]
            if href:
                text = f'<a href="{report._e(href)}">{text}</a>'
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="n">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


@pytest.mark.parametrize(
    "rows",
    [
        [(1, "a<b", 2.5, None, True), (2, "x & 'y'", float("nan"), "z", False)],
        [("plain", 1), ("text", 2.0)],
        [("key", "value"), ("ragged", 1, 2)],
        [],
    ],
)
def test_report_tables_render_as_a_cell_at_a_time(rows):
    import numpy as np

    links = {0: [f"r{i}/REPORT.html" if i % 2 else None for i in range(len(rows))]}
    for table in (
        report.Table(("a", "b"), rows),
        report.Table(("", ""), rows, links),
        report.Table(("n",), [(np.float64(0.5),), (np.int64(3),), ('"q"',)]),
    ):
        assert report._table(table) == _table_reference(table)


def _points_reference(views, results):
    """RMSECV-vs-components points as computed before #23: a loop per result."""
    from n4afs_core.metrics.components import Point, curve_name
    from n4afs_core.pipelines.templates import choice_columns, describe_config

    snapshot = views.snapshot
    found = []
    for r in results:
        preprocessing, model, k = describe_config(r.config)
        if k is None:
            continue
        other = choice_columns(r.config, r.choices)
        train = snapshot.final_scores(r.result_id, ranking.CALIBRATION[1])
        test = snapshot.final_scores(r.result_id, ranking.TEST[1])
        cv = snapshot.cv_scores(r.result_id)
        found.append(
            Point(
                curve_name(preprocessing, model, other),
                *(preprocessing, model, k, train.get("rmse"), cv.get("rmse"), test.get("rmse")),
                r.label,
                r.run_id,
            )
        )
    return found


def test_components_points_are_those_of_the_loop_per_result(ws):
    tree = Tree(ws)
    views, rankings = _rankings(tree)
    checked = 0
    for ranked, _ in rankings:
        shown = tuple(r for r in ranked if r.status == "completed")
        points = result_files.ResultFiles(ws, tree.memo)._component_points(views, shown)
        assert points == _points_reference(views, shown)
        checked += len(points)
    assert checked > 20


def test_results_csv_parses_no_score_document_per_result(ws, monkeypatch):
    """RESULTS.csv and the ranking's REPORT.html read the final models' scores in one query
    per ranking: never a snapshot lookup (and a JSON document parsed) per result."""
    from n4afs.tree.snapshot import Snapshot

    tree = Tree(ws)
    listing = tree.list_dir(("runs", "fermentation"))  # ranked: cv scores parsed
    calls = []
    real = Snapshot.final_scores
    monkeypatch.setattr(Snapshot, "final_scores", lambda *a: calls.append(a) or real(*a))
    for name in ("RESULTS.csv", "RESULTS.xlsx", "RESULTS.parquet", "REPORT.html"):
        assert tree.read(listing[name])
    assert calls == []


def test_results_and_component_charts_on_postgresql_are_those_on_duckdb(tmp_path, pg_index_url):
    """The final models' scores query (`core.index.queries.final_scores`) on a shared index:
    RMSEC and RMSEP (a test set) and the components chart's numbers as on DuckDB."""
    from tests.test_postgres_index import _store, _without_run_ids

    texts = []
    for ws in (
        Workspace(tmp_path / "pg", store=_store(tmp_path), index=pg_index_url),
        Workspace(tmp_path / "duck"),
    ):
        run = ws.run([REGRESSION], ["chemotools:fermentation"], cv=3, test_size=0.2, name="same")
        tree = ws.tree
        files = [("RESULTS.csv",), ("charts", "rmsecv_vs_components.csv")]
        read = [tree.read(tree.lookup(("runs", "fermentation", *f))).decode() for f in files]
        texts.append([_without_run_ids(text, [run.run_id]) for text in read])
    assert texts[0] == texts[1]
    assert "rmsep" in texts[0][0] and ",," not in texts[0][1].splitlines()[1]
