"""Issue #16, the tree's surfaces failing well: `du` scoped to the path it names, `n4a://`
tree paths in the `$N4AFS_WORKSPACE` workspace, modes and times a copy of the tree keeps."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import fsspec
import pytest

from n4afs.fs import N4AFileSystem
from n4afs.workspace import Workspace
from tests.mount_fixture import REPO

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": 3}}]
CLASSIFICATION = [{"_or_": ["snv", "msc"]}, "lda"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Two datasets, each with a run of its own: a scope that leaks shows the other one."""
    ws = Workspace(tmp_path_factory.mktemp("failwell") / "ws")
    ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=3, name="ferm")
    ws.run(templates=[CLASSIFICATION], datasets=["chemotools:coffee"], cv=3, name="origin")
    return ws


def cli(ws, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "N4AFS_WORKSPACE": str(ws.path)}
    return subprocess.run(
        [sys.executable, "-m", "n4afs.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


# -- 13: n4a:// tree paths use $N4AFS_WORKSPACE -----------------------------------------------
def test_n4a_tree_path_uses_the_workspace_env_var(ws, monkeypatch):
    monkeypatch.setenv("N4AFS_WORKSPACE", str(ws.path))
    with fsspec.open("n4a:///runs/fermentation/RESULTS.csv", "rb") as f:
        text = f.read().decode()
    assert text.startswith("rank,") and "snv-pls3" in text
    fs = fsspec.filesystem("n4a")
    assert "README.txt" in {p.rsplit("/", 1)[-1] for p in fs.ls("/", detail=False)}
    # a path that names its workspace still wins over the variable
    direct = f"n4a://{ws.path}/runs/fermentation/RESULTS.csv"
    with fsspec.open(direct, "rb") as f:
        assert f.read().decode() == text


def test_n4a_tree_path_without_a_workspace_says_how_to_name_one(monkeypatch):
    monkeypatch.delenv("N4AFS_WORKSPACE", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        N4AFileSystem().info("/runs/fermentation/RESULTS.csv")
    message = str(info.value)
    assert "N4AFS_WORKSPACE" in message and "workspace=" in message


def test_n4a_env_var_naming_no_workspace_is_not_an_io_error(tmp_path, monkeypatch):
    monkeypatch.setenv("N4AFS_WORKSPACE", str(tmp_path / "nothing-here"))
    with pytest.raises(FileNotFoundError) as info:
        N4AFileSystem().info("/runs")
    assert info.value.errno == errno.ENOENT and "nothing-here" in str(info.value)
