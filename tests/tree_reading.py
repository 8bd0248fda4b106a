"""Reading a workspace's tree in tests by path strings: files (size checked), listings and
CSV rows."""

from __future__ import annotations

import csv
import io

from n4afs.tree.tree import parse_path


def read(ws, path: str) -> bytes:
    node = ws.tree.lookup(parse_path(path))
    assert node is not None, f"no {path} in the tree"
    data = bytes(ws.tree.read(node))
    assert len(data) == node.size  # exact sizes
    return data


def listing(ws, path: str) -> list[str]:
    found = ws.tree.list_dir(parse_path(path))
    assert found is not None, f"no folder {path} in the tree"
    return sorted(found)


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def header(data: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(data.decode("utf-8"))))
