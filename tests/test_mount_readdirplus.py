"""READDIRPLUS on the mount: listings carry their entries' attributes, and stay fresh.

The kernel asks for READDIRPLUS; the daemon answers with each directory's and each
content-addressed file's attributes (`fuse_ops._KernelFuse`), so what `find` descends into
and `ls -la` stats needs no LOOKUP. Observable from outside: an entry sent with its
attributes has its inode number in the listing (`d_ino`), the same as `stat` gives; an entry
sent with its mode only has FUSE's "unknown" inode (0xffffffff) there.
"""

from __future__ import annotations

import os

import pytest

from n4afs.workspace import Workspace
from tests.mount_fixture import Mount, wait_for

UNKNOWN_INO = 0xFFFFFFFF  # FUSE_UNKNOWN_INO: what a mode-only entry shows as d_ino
SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [2, 3]}}}]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("plus") / "ws")
    ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=3, name="first")
    return ws


@pytest.fixture(scope="module")
def mnt(ws, tmp_path_factory):
    with Mount(ws.path, tmp_path_factory.mktemp("m") / "nirs").serving() as mount:
        yield mount


def listed(folder) -> dict[str, os.DirEntry]:
    with os.scandir(folder) as it:
        return {entry.name: entry for entry in it}


def test_result_folders_are_listed_with_their_attributes(mnt):
    entries = listed(mnt.path / "runs" / "fermentation")
    folders = [e for e in entries.values() if e.name[:4].isdigit()]
    assert len(folders) == 4
    for entry in folders:
        assert entry.inode() != UNKNOWN_INO
        assert entry.inode() == os.stat(entry.path).st_ino
        assert entry.is_dir(follow_symlinks=False)


def test_an_unchanged_listing_goes_out_with_attributes_once(mnt):
    """The kernel keeps what it was sent for an hour: listing the same folder again sends
    names and types only, which costs no more than before READDIRPLUS was answered."""
    folder = mnt.path / "by-run"
    first, again = listed(folder), listed(folder)
    assert first.keys() == again.keys()
    assert all(e.inode() != UNKNOWN_INO for e in first.values())
    assert all(e.inode() == UNKNOWN_INO for e in again.values())
    assert all(os.stat(e.path).st_ino == first[e.name].inode() for e in again.values())


def test_rendered_and_changing_files_are_listed_without_attributes(mnt):
    """A chart would render and RESULTS.csv changes: neither is stat'ed by a listing."""
    runs = mnt.path / "runs" / "fermentation"
    results = listed(runs)["RESULTS.csv"]
    assert results.inode() == UNKNOWN_INO
    folder = next(e for e in listed(runs).values() if e.name[:4].isdigit())
    charts = listed(os.path.join(folder.path, "charts"))
    assert charts and all(e.inode() == UNKNOWN_INO for e in charts.values())


def test_a_listing_read_with_attributes_shows_a_result_that_lands_after_it(ws, mnt):
    runs = mnt.path / "runs" / "fermentation"
    before = listed(runs)  # the kernel now holds every result folder with its attributes
    dataset_mtime = listed(mnt.path / "runs")["fermentation"].stat().st_mtime  # from the listing
    ws.run(
        templates=[[{"msc": {}}, {"pls": {"n_components": 5}}]],
        datasets=["fermentation"],
        cv=3,
        name="second",
    )

    def new() -> dict[str, os.DirEntry]:
        now = listed(runs)
        return {n: e for n, e in now.items() if n[:4].isdigit() and n not in before}

    landed = wait_for(lambda: len(new()) == 1 and new(), timeout=5)
    (entry,) = landed.values()
    assert entry.is_dir() and os.stat(entry.path).st_ino != UNKNOWN_INO
    assert {"scores.yaml", "models"} <= set(listed(entry.path))
    wait_for(lambda: os.stat(runs).st_mtime != dataset_mtime, timeout=2)
