"""The committed nirs4all 1.4.10 fixtures (tests/fixtures/nirs4all-1.4.10, made by
scripts/make_nirs4all_fixtures.py) as the import tests use them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "nirs4all-1.4.10"


@pytest.fixture
def source(tmp_path) -> Path:
    """A copy of the fixtures: a test may not alter the committed files."""
    copy = tmp_path / "src"
    shutil.copytree(FIXTURES, copy)
    return copy


def count(ws, table: str) -> int:
    """Rows of an index table: what an import that was refused must not have added."""
    return ws.index.fetchall(f"SELECT count(*) FROM {table}")[0][0]
