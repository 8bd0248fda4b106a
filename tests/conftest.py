"""Shared fixtures: real workspaces in temporary directories, real datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.postgres_fixture import pg_index_url, postgres_server  # noqa: E402, F401 - fixtures


@pytest.fixture
def ws(tmp_path):
    """A fresh, empty workspace."""
    from n4afs.workspace import Workspace

    return Workspace(tmp_path / "ws")


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def small_tmpfs(tmp_path):
    """A factory of small file systems to fill: `small_tmpfs("10m")` mounts a tmpfs of that
    size under the test's folder (needs root) and returns it; unmounted after the test."""
    import subprocess

    mounted: list[Path] = []

    def make(size: str) -> Path:
        where = tmp_path / f"small-{len(mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"cannot mount a small tmpfs: {done.stderr}"
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def best_csvs(names) -> list[str]:
    """The `best_*.csv` among folder entries (each has a `.xlsx` twin beside it)."""
    return [str(n) for n in names if str(n).startswith("best_") and str(n).endswith(".csv")]
