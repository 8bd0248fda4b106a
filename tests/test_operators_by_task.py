"""A model name that exists for both tasks fits the dataset's task; a model of the wrong
kind is refused when the run is planned, not one error.log per result."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from n4afs_core.errors import TemplateError


def test_rf_on_class_labels_fits_a_random_forest_classifier(ws):
    run = ws.run(templates=[["snv", "rf"]], datasets=["chemotools:coffee"], cv=3, name="rf")
    results = ws.results("coffee")
    assert [r.status for r in results] == ["completed"]
    model = results[0].load_model("final")
    assert type(model.steps[-1][1]).__name__ == "RandomForestClassifier"
    assert results[0].config == [{"snv": {}}, {"rf_clf": {}}]  # pipeline.yaml says what was fitted
    assert run.best("coffee").scores[0]["accuracy"] > 0.5  # the cv row


def test_each_dataset_of_one_run_gets_the_model_of_its_task(ws):
    ws.run(
        templates=[["snv", {"pls": {"n_components": 3}}]],
        datasets=["chemotools:coffee", "chemotools:fermentation"],
        cv=3,
    )
    assert ws.results("coffee")[0].config[-1] == {"plsda": {"n_components": 3}}
    assert ws.results("fermentation")[0].config[-1] == {"pls": {"n_components": 3}}
    assert {r.status for r in ws.results("coffee") + ws.results("fermentation")} == {"completed"}


def test_a_regression_only_model_on_class_labels_is_refused_before_anything_is_planned(ws):
    ws.add_dataset("chemotools:coffee")
    with pytest.raises(TemplateError) as info:
        ws.run(templates=[["snv", "ridge"]], datasets=["coffee"], cv=3)
    message = str(info.value)
    assert "ridge is a regression model" in message and "'coffee' is classification" in message
    assert "rf_clf" in message and "plsda" in message
    assert ws.runs() == []


def test_the_cli_refuses_a_wrong_kind_of_model_in_one_line_with_exit_2(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "N4AFS_WORKSPACE": str(tmp_path / "ws")}
    template = tmp_path / "t.yaml"
    template.write_text("steps: [snv, lda]\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "n4afs.cli", "run", str(template), "-d", "chemotools:fermentation"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "lda is a classification model" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_a_partner_that_does_not_take_the_parameters_set_is_refused_at_planning(ws):
    """`svr: {epsilon: ...}` has no svc equivalent (found in review: every result failed)."""
    ws.add_dataset("chemotools:coffee")
    with pytest.raises(TemplateError) as info:
        ws.run(templates=[["snv", {"svr": {"epsilon": 0.2}}]], datasets=["coffee"], cv=3)
    assert "svr (as svc on classification).epsilon: unknown parameter for svc" in str(info.value)
    assert ws.runs() == []
