"""Ranking fails well: a metric that does not fit the task is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.errors import N4AError
from core.runner import RunOptions, plan_run
from core.templates import load_templates
from n4afs.workspace import Workspace

SWEEP = [
    {"_or_": ["snv", "msc"]},
    {"savgol": {"deriv": 1, "window_length": 15, "polyorder": 2}},
    {"pls": {"n_components": {"_range_": [2, 4]}}},
]
CLASSIFY = [{"_or_": ["snv", "msc"]}, {"_or_": ["lda", {"plsda": {"n_components": 3}}]}]
REGRESSION_FITS = "rmse, mae, bias, sep, r2, r2_corr, rpd, rpiq"
CLASSIFICATION_FITS = "accuracy, balanced_accuracy, f1"
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
