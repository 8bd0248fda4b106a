"""Ranking fails well: a metric that does not fit the task is refused, tables name the metric
they rank by, fit an 80-column terminal, and listings have JSON and CSV forms.

Tables are checked the way a user sees them: the CLI runs under a pseudo-terminal of a given
width, and what it draws is compared with the scores the API reports.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from fcntl import ioctl

import pytest
from n4afs_core.errors import N4AError
from n4afs_core.pipelines.runner import RunOptions, plan_run
from n4afs_core.pipelines.templates import load_templates

from n4afs.cli.terminal import visible
from n4afs.workspace import Workspace

SWEEP = [
    {"_or_": ["snv", "msc"]},
    {"savgol": {"deriv": 1, "window_length": 15, "polyorder": 2}},
    {"pls": {"n_components": {"_range_": [2, 4]}}},
]
CLASSIFY = [{"_or_": ["snv", "msc"]}, {"_or_": ["lda", {"plsda": {"n_components": 3}}]}]
REGRESSION_FITS = "rmse, mae, bias, sep, r2, r2_corr, rpd, rpiq"
CLASSIFICATION_FITS = "accuracy, balanced_accuracy, f1"
EVIL = "evil\x1b]0;pwned\x07\x1b[2Jname\x9b31m"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
ENV = {**os.environ, "PYTHONPATH": os.getcwd()}


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Workspace:
    """fermentation (regression, ranked by rmse) and coffee (classification, by accuracy)."""
    ws = Workspace(tmp_path_factory.mktemp("ranking") / "ws")
    ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=4, name="a long sweep name")
    ws.run(templates=[CLASSIFY], datasets=["chemotools:coffee"], cv=3, name="coffee")
    return ws


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess:
    """The CLI with stdout piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "n4afs.cli", "-w", str(ws.path), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


def in_terminal(ws: Workspace, *args: str, columns: int = 80) -> tuple[int, list[str]]:
    """Run the CLI on a pseudo-terminal `columns` wide: (exit code, screen lines, no ANSI)."""
    leader, follower = pty.openpty()
    ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**ENV, "COLUMNS": str(columns), "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "n4afs.cli", "-w", str(ws.path), *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = proc.wait(timeout=120)
    text = ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")
    return code, text.splitlines()


def _refused(out: subprocess.CompletedProcess, *words: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    for word in words:
        assert word in out.stderr, out.stderr


# -- item 5: a metric of another task is refused, everywhere ---------------------------------
def test_best_refuses_a_regression_metric_on_a_classification_dataset(swept):
    _refused(cli(swept, "best", "coffee", "--metric", "r2"), "'r2'", "coffee", CLASSIFICATION_FITS)


def test_results_refuses_a_classification_metric_on_a_regression_dataset(swept):
    out = cli(swept, "results", "fermentation", "--metric", "accuracy")
    _refused(out, "'accuracy'", "fermentation", REGRESSION_FITS)


def test_descriptive_metrics_cannot_rank_results(swept):
    _refused(cli(swept, "results", "fermentation", "--metric", "slope"), "descriptive", "rmse")


def test_api_refuses_the_same_metrics(swept):
    with pytest.raises(N4AError, match=CLASSIFICATION_FITS):
        swept.best("coffee", "r2")
    with pytest.raises(N4AError, match=REGRESSION_FITS):
        swept.results("fermentation", "accuracy")
    run = next(r for r in swept.runs() if r.name == "coffee")
    with pytest.raises(N4AError, match=CLASSIFICATION_FITS):
        swept.get_run(run.run_id).best("coffee", "rmse")


def test_keep_best_refuses_a_metric_that_does_not_fit_a_dataset(swept):
    before = len(swept.results("coffee"))
    out = cli(swept, "rm", "--keep-best", "1", "--metric", "r2", "--dry-run")
    _refused(out, "'r2'", "coffee", CLASSIFICATION_FITS)
    assert len(swept.results("coffee")) == before


def test_run_refuses_a_metric_of_another_task_before_planning(swept, tmp_path):
    template = tmp_path / "t.yaml"
    template.write_text("steps: [snv, {pls: {n_components: 2}}]\n")
    runs_before = len(swept.runs())
    out = cli(swept, "run", str(template), "-d", "fermentation", "--metric", "accuracy")
    _refused(out, "'accuracy'", "fermentation", REGRESSION_FITS)
    assert len(swept.runs()) == runs_before  # nothing planned


def test_planning_refuses_one_metric_for_datasets_of_both_tasks(swept):
    infos = [swept.dataset("fermentation"), swept.dataset("coffee")]
    templates = load_templates([["snv", "pls"]])
    with pytest.raises(N4AError, match="coffee"):
        plan_run(swept.index, templates, infos, RunOptions(cv=3, metric="rmse"), "mixed")
    assert len(swept.runs()) == 2


# -- item 6: the table names and shows the metric it ranks by -------------------------------
def _cv(ws: Workspace, dataset: str) -> dict[str, dict]:
    return {r.row.label: r.cv_scores() for r in ws.results(dataset)}


def _cells(line: str) -> list[str]:
    """A table line's cells, whatever box characters separate them."""
    return re.sub("[┃│]", " ", line).split()


def _header(lines: list[str]) -> str:
    return " ".join(next(c for c in map(_cells, lines) if c[:2] == ["rank", "result"]))


@pytest.mark.parametrize("metric", ["r2", "rpiq", "mae"])
def test_results_table_ranks_by_and_shows_the_chosen_metric(swept, metric):
    code, lines = in_terminal(swept, "results", "fermentation", "--metric", metric, columns=120)
    assert code == 0, lines
    header = _header(lines)
    assert metric in header.split() and "rmse (cv)" not in header
    cv = _cv(swept, "fermentation")
    expected = sorted(cv.values(), key=lambda s: s[metric], reverse=metric != "mae")
    shown_values = [f"{s[metric]:.4g}" for s in expected]
    column = header.split().index(metric)
    rows = [cells for cells in map(_cells, lines) if re.match(r"\d+ \d{4}_", " ".join(cells))]
    assert [row[column] for row in rows] == shown_values


def test_best_names_the_metric_it_ranked_by(swept):
    code, lines = in_terminal(swept, "best", "fermentation", "--metric", "rpiq")
    assert code == 0, lines
    assert any("ranked by rpiq" in line for line in lines), lines


# -- item 15: tables fit the terminal; --json and --csv --------------------------------------
def _assert_fits(lines: list[str], columns: int) -> None:
    assert lines, "nothing drawn"
    assert max(len(line) for line in lines) <= columns, "\n".join(lines)
    assert not any("…" in line for line in lines), "\n".join(lines)


@pytest.mark.parametrize(
    ("dataset", "metric"),
    [("fermentation", "rmse"), ("fermentation", "r2"), ("coffee", "accuracy")],
)
def test_ranked_table_fits_80_columns_with_whole_scores(swept, dataset, metric):
    code, lines = in_terminal(swept, "results", dataset, "--metric", metric, columns=80)
    assert code == 0, lines
    _assert_fits(lines, 80)
    text = "\n".join(lines)
    for scores in _cv(swept, dataset).values():
        assert re.search(rf"(?<![\d.]){re.escape(f'{scores[metric]:.4g}')}(?![\d.])", text)
    assert _header(lines).split().count(metric) == 1  # no duplicate "rmse (cv)" / "rmse"


def test_run_summary_and_listings_fit_80_columns(swept, tmp_path):
    for args in (["runs"], ["datasets", "list"], ["best", "fermentation"]):
        code, lines = in_terminal(swept, *args, columns=80)
        assert code == 0, lines
        _assert_fits(lines, 80)
    template = tmp_path / "t.yaml"
    template.write_text("steps: [snv, {pls: {n_components: {_range_: [2, 3]}}}]\n")
    code, lines = in_terminal(swept, "run", str(template), "-d", "fermentation", "--cv", "3")
    assert code == 0, lines
    _assert_fits([line for line in lines if "━" not in line], 80)  # the progress bar is live


def test_results_json_parses_with_every_cv_score(swept):
    out = cli(swept, "results", "fermentation", "--metric", "r2", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    cv = _cv(swept, "fermentation")
    assert [r["rank"] for r in rows] == list(range(1, len(cv) + 1))
    assert {r["metric"] for r in rows} == {"r2"}
    for row in rows:
        assert row["score"] == pytest.approx(cv[row["result"]]["r2"])
        assert row["rpiq"] == pytest.approx(cv[row["result"]]["rpiq"])
        assert row["dataset"] == "fermentation" and row["status"] == "completed"
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_best_runs_and_datasets_have_json(swept):
    best = json.loads(cli(swept, "best", "coffee", "--json").stdout)
    assert best["dataset"] == "coffee" and best["metric"] == "accuracy"
    assert best["result"] == swept.best("coffee").row.label
    runs = json.loads(cli(swept, "runs", "--json").stdout)
    assert {r["run"] for r in runs} == {r.run_id for r in swept.runs()}
    assert {r["metric"] for r in runs} == {"rmse", "accuracy"}
    datasets = json.loads(cli(swept, "datasets", "list", "--json").stdout)
    assert {(d["name"], d["task"], d["samples"]) for d in datasets} == {
        ("fermentation", "regression", 21),
        ("coffee", "classification", 60),
    }


def test_piped_output_is_csv_and_csv_matches_json(swept):
    for args in (
        ["results", "fermentation"],
        ["best", "fermentation"],
        ["runs"],
        ["datasets", "list"],
    ):
        piped = cli(swept, *args)
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout == cli(swept, *args, "--csv").stdout
        records = list(csv.DictReader(io.StringIO(piped.stdout)))
        as_json = json.loads(cli(swept, *args, "--json").stdout)
        as_json = as_json if isinstance(as_json, list) else [as_json]
        assert len(records) == len(as_json) > 0
        for record, entry in zip(records, as_json, strict=True):
            assert list(record) == list(entry)
            for key, value in entry.items():
                if isinstance(value, float):
                    assert float(record[key]) == pytest.approx(value)
                elif isinstance(value, list):
                    assert record[key] == "; ".join(value)
                elif value is not None:
                    assert record[key] == str(value)


def test_a_test_set_adds_its_score_to_the_table_and_records(tmp_path):
    ws = Workspace(tmp_path / "ws")
    template = ["snv", {"pls": {"n_components": {"_range_": [2, 3]}}}]
    ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=3, test_size=0.25)
    code, lines = in_terminal(ws, "results", "fermentation", columns=80)
    assert code == 0, lines
    _assert_fits(lines, 80)
    assert "test rmse" in _header(lines)
    text = "\n".join(lines)
    for result in ws.results("fermentation"):
        assert f"{result.test_scores()['rmse']:.4g}" in text
    rows = json.loads(cli(ws, "results", "fermentation", "--json").stdout)
    tests = {r.row.label: r.test_scores()["rmse"] for r in ws.results("fermentation")}
    assert {r["result"]: r["test_score"] for r in rows} == pytest.approx(tests)


def test_the_short_run_label_of_tables_names_the_run(swept):
    from n4afs.runs import undated

    for run in swept.runs():
        label = undated(run.run_id)
        assert len(label) < len(run.run_id) and swept.get_run(label).run_id == run.run_id


def test_table_flag_draws_a_table_when_piped(swept):
    out = cli(swept, "results", "fermentation", "--table")
    assert out.returncode == 0 and "ranked by rmse" in out.stdout


# -- names with control characters stay inert in every format --------------------------------
@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Workspace:
    import numpy as np

    ws = Workspace(tmp_path_factory.mktemp("hostile") / "ws")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 40)).cumsum(axis=1)
    info = ws.add_arrays(X, X[:, 5] + rng.normal(size=30), "evil", target_names=["y"])
    with ws.index.write() as conn:  # the index refuses such names now; an older one may hold them
        conn.execute(
            "UPDATE datasets SET name = ?, target_names = ? WHERE dataset_id = ?",
            [EVIL, [f"y{EVIL}"], info.dataset_id],
        )
    ws.run(templates=[["snv", "pls"]], datasets=[EVIL], cv=3, name="hostile")
    return ws


def test_json_and_csv_carry_no_control_characters(hostile):
    control = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
    for args in (["datasets", "list"], ["results", EVIL], ["best", EVIL], ["runs"]):
        as_json = cli(hostile, *args, "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert not control.search(as_json.stdout), args
        as_csv = cli(hostile, *args, "--csv")
        assert not control.search(as_csv.stdout.replace("\r\n", "\n")), args
    (dataset,) = json.loads(cli(hostile, "datasets", "list", "--json").stdout)
    assert dataset["name"] == EVIL and dataset["targets"] == [f"y{EVIL}"]
    (record,) = csv.DictReader(io.StringIO(cli(hostile, "datasets", "list", "--csv").stdout))
    assert record["name"] == visible(EVIL)
