"""Shared fixtures: real workspaces in temporary directories, real datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def ws(tmp_path):
    """A fresh, empty workspace."""
    from n4afs.workspace import Workspace

    return Workspace(tmp_path / "ws")


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
