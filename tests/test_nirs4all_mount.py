"""Imported nirs4all results through the FUSE mount: readable names, their import logs, the
converted models as files a user loads, and results imported score-only beside them.

On the real nirs4all 1.4.10 workspaces of tests/fixtures/nirs4all-1.4.10/.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest

from n4afs.workspace import Workspace
from tests.mount_fixture import Mount

FIXTURES = Path(__file__).parent / "fixtures" / "nirs4all-1.4.10"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    source = tmp_path_factory.mktemp("src") / "nirs4all"
    shutil.copytree(FIXTURES, source)
    ws = Workspace(tmp_path_factory.mktemp("mounted") / "ws")
    data = {"fermentation": str(FIXTURES / "data" / "fermentation.csv")}
    ws.import_bundle(source / "legacy", data=data, trust=True)
    ws.import_bundle(source / "edge")
    return ws


@pytest.fixture(scope="module")
def mnt(ws, tmp_path_factory):
    with Mount(ws.path, tmp_path_factory.mktemp("m") / "nirs").serving() as mount:
        yield mount


def test_the_mount_lists_imported_results_by_readable_names(ws, mnt):
    names = sorted(n for n in os.listdir(mnt.path / "runs" / "fermentation") if n[:4].isdigit())
    assert {n.split("_")[1] for n in names} == {
        f"{p}-pls{k}" for p in ("sg1", "msc") for k in (2, 3, 4)
    }
    thin = os.listdir(mnt.path / "runs" / "fermentation_thin")
    assert any(n.split("_")[1:2] == ["gaussian-pls3"] for n in thin)


def test_a_converted_model_loads_from_the_mount_and_predicts(ws, mnt):
    best = ws.results("fermentation")[0]
    folder = mnt.path / "runs" / "fermentation" / best.row.label
    log = (folder / "logs" / "import.txt").read_text()
    assert "final model: converted to n4afs's classes; checked" in log
    (final,) = [n for n in os.listdir(folder / "models") if n.startswith("final_")]
    model = joblib.load(folder / "models" / final / "pipeline.pkl")
    with open(FIXTURES / "data" / "fermentation.csv") as handle:
        rows = list(csv.reader(handle))[1:]
    X = np.array([[float(v) for v in r[3:]] for r in rows])
    expected = best.load_model("final", trust=True).predict(X)
    assert np.array_equal(model.predict(X), expected)


def test_a_score_only_result_says_why_through_the_mount(ws, mnt):
    thin = mnt.path / "runs" / "fermentation_thin"
    (gauss,) = [n for n in os.listdir(thin) if "gaussian" in n]
    assert "models" not in os.listdir(thin / gauss)
    log = (thin / gauss / "logs" / "import.txt").read_text()
    assert "nirs4all operator Gaussian" in log and "score-only" in log
    assert "gaussian-pls3" in (thin / "RESULTS.csv").read_text()
