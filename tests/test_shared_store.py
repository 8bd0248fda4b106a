"""A blob store shared by two workspaces with private indexes: `init` refuses a store in use
unless told it is shared, and neither workspace's gc, verify or du treats the other's
objects as garbage (`core.store.shared`)."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from n4afs_core import maintenance
from n4afs_core.errors import SharedStoreError
from n4afs_core.store import shared

from n4afs.workspace import Workspace
from tests.cli_process import cli
from tests.test_scaleout import s3  # noqa: F401 - the moto S3 server fixture

SWEEP_A = [{"_or_": ["snv", "detrend"]}, {"pls": {"n_components": {"_range_": [1, 3]}}}]
SWEEP_B = [{"_or_": ["msc", "standard"]}, {"pls": {"n_components": 2}}]


@pytest.fixture(params=["folder", "s3"])
def store_url(request, tmp_path):
    """One store two workspaces share: a local folder, or a prefix of moto's S3 bucket."""
    if request.param == "folder":
        return (tmp_path / "team-store").as_uri()
    request.getfixturevalue("s3")
    return f"s3://n4a-bucket/shared-{uuid.uuid4().hex[:8]}"


def sweep(ws: Workspace, template, name: str):
    run = ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=2, name=name)
    assert run.status == "completed"
    return run


def assert_whole(ws: Workspace) -> None:
    """Nothing missing: verify is clean, best works, every model loads from the store."""
    cache = ws.path / "cache"
    if cache.exists():
        shutil.rmtree(cache)  # read what the bucket holds, not what this host cached
    report = ws.verify()
    assert report.ok, (report.missing, report.corrupt, report.problems)
    assert report.orphans == []
    ws.best("fermentation")
    X = ws.load_dataset("fermentation").X
    results = ws.results("fermentation")
    assert results and all(r.load_model().predict(X).shape == (len(X),) for r in results)


def test_init_on_a_store_in_use_refuses_unless_shared(store_url, tmp_path):
    first = Workspace(tmp_path / "a", store=store_url)
    sweep(first, SWEEP_A, "a")
    with pytest.raises(SharedStoreError, match="--shared-store"):
        Workspace(tmp_path / "b", store=store_url)
    assert not (tmp_path / "b").exists()  # nothing written before the refusal
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    done = cli("init", str(tmp_path / "c"), "--store", store_url, env=aws)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "--shared-store" in line and store_url.removeprefix("file://") in line
    assert not (tmp_path / "c").exists()
    Workspace(tmp_path / "b", store=store_url, shared_store=True)


def test_gc_in_one_workspace_loses_nothing_of_the_other(store_url, tmp_path):
    a = Workspace(tmp_path / "a", store=store_url)
    sweep(a, SWEEP_A, "a")
    b = Workspace(tmp_path / "b", store=store_url, shared_store=True)
    sweep(b, SWEEP_B, "b")

    report = b.gc(grace_s=0)
    assert report.removed == [] and report.held_by_others > 0
    assert any(a.path.name in line for line in report.other_workspaces)
    assert_whole(a)
    report = a.gc(grace_s=0)
    assert report.removed == [] and report.held_by_others > 0
    assert_whole(b)
    for ws in (a, b):  # the other's objects are not called garbage
        assert ws.verify().held_by_others > 0
        usage = ws.usage()
        assert usage["unreferenced_bytes"] == 0 and usage["held_by_others_bytes"] > 0


def test_each_workspace_still_collects_its_own_garbage(store_url, tmp_path, monkeypatch):
    monkeypatch.setattr(shared, "SLACK_S", 0.0)  # publications hold nothing written before
    a = Workspace(tmp_path / "a", store=store_url)
    run_a = sweep(a, SWEEP_A, "a")
    b = Workspace(tmp_path / "b", store=store_url, shared_store=True)
    sweep(b, SWEEP_B, "b")
    b.gc(grace_s=0)  # publishes b's references, read after a's objects were written
    a.remove([run_a.run_id])
    report = a.gc(grace_s=0)
    held = maintenance.referenced_blobs(b.index)
    assert report.removed and not held & set(report.removed)
    assert report.held_by_others == len(held - maintenance.referenced_blobs(a.index))
    assert_whole(b)  # the dataset both reference stayed too


def test_a_gone_workspace_holds_its_objects_until_forgotten(store_url, tmp_path, monkeypatch):
    monkeypatch.setattr(shared, "SLACK_S", 0.0)
    a = Workspace(tmp_path / "a", store=store_url)
    sweep(a, SWEEP_A, "a")
    a.gc(grace_s=0)
    gone = shared.workspace_id(a.path)
    shutil.rmtree(a.path)  # deleted without a word: its document stays in the store
    b = Workspace(tmp_path / "b", store=store_url, shared_store=True)
    sweep(b, SWEEP_B, "b")
    assert b.gc(grace_s=0).removed == []
    report = b.gc(grace_s=0, forget=[gone[:8]])
    assert report.forgotten == [gone] and report.removed
    assert_whole(b)
    with pytest.raises(SharedStoreError, match="no workspace"):
        b.gc(forget=[gone])


def test_an_unreadable_document_stops_gc(tmp_path):
    store = tmp_path / "team-store"
    a = Workspace(tmp_path / "a", store=store.as_uri())
    sweep(a, SWEEP_A, "a")
    (store / "refs" / "f00d").write_text("{not json")
    a.remove([a.runs()[0].run_id])
    with pytest.raises(SharedStoreError, match="f00d"):
        a.gc(grace_s=0)
    assert a.verify().orphans == []  # held by whoever that is: never called garbage


def test_objects_without_any_document_are_not_joined(tmp_path):
    """A workspace keeping blobs in its own folder publishes nothing until its gc runs."""
    a = Workspace(tmp_path / "a")
    sweep(a, SWEEP_A, "a")
    with pytest.raises(SharedStoreError, match="gc --dry-run"):
        Workspace(tmp_path / "b", store=(tmp_path / "a").as_uri(), shared_store=True)
    a.gc(dry_run=True)
    b = Workspace(tmp_path / "b", store=(tmp_path / "a").as_uri(), shared_store=True)
    sweep(b, SWEEP_B, "b")
    assert a.gc(grace_s=0).removed == []  # a now reads b's document
    assert_whole(b)
    assert b.gc(grace_s=0).removed == []
    assert_whole(a)
