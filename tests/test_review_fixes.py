"""Regressions found in review: trust, bundle values and names, ranking, memo keys,
integrity on every surface, gc bookkeeping."""

from __future__ import annotations

import errno
import os
import zipfile
from pathlib import Path

import pytest
import yaml
from n4afs_core import maintenance
from n4afs_core.errors import BlobCorrupt, BundleError, UntrustedArchive

from n4afs.share.importer import import_bundle
from n4afs.surfaces.fs import N4AFileSystem
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("origin") / "ws")
    ws.run(
        templates=[["snv", {"pls": {"n_components": {"_or_": [2, 3]}}}]],
        datasets=["chemotools:fermentation"],
        cv=4,
        name="origin",
    )
    return ws


def bundle_of(ws, tmp_path: Path) -> Path:
    out = tmp_path / "b.zip"
    ws.export(f"runs/fermentation/{ws.best('fermentation').row.label}", out, level="minimal")
    return out


def rewritten(source: Path, target: Path, edit_export=None, extra: dict | None = None) -> Path:
    """A copy whose EXPORT.yaml is edited and whose MANIFEST.yaml is made consistent again
    (a forger can always do that: the manifest proves integrity, not origin)."""
    import hashlib

    with zipfile.ZipFile(source) as src:
        files = {n: src.read(n) for n in src.namelist()}
    if edit_export:
        info = yaml.safe_load(files["EXPORT.yaml"])
        edit_export(info)
        files["EXPORT.yaml"] = yaml.safe_dump(info).encode()
    files.update(extra or {})
    files.pop("MANIFEST.yaml")
    manifest = {
        "format": "n4afs-export/1",
        "files": [
            {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for n, d in files.items()
        ],
    }
    files["MANIFEST.yaml"] = yaml.safe_dump(manifest).encode()
    with zipfile.ZipFile(target, "w") as dst:
        for name, data in files.items():
            dst.writestr(name, data)
    return target


def test_load_model_of_an_untrusted_import_needs_trust(origin, tmp_path):
    target = Workspace(tmp_path / "t")
    import_bundle(target, bundle_of(origin, tmp_path))
    (imported,) = target.results("fermentation")  # untrusted: listed, never best
    with pytest.raises(UntrustedArchive, match="trust=True"):
        imported.load_model()
    assert imported.load_model(trust=True).steps[-1][0] == "pls_model"
    trusted = Workspace(tmp_path / "t2")
    import_bundle(trusted, bundle_of(origin, tmp_path), trust=True)
    assert trusted.best("fermentation").load_model() is not None


@pytest.mark.parametrize(
    "field,value",
    [("dataset_id", "not-a-sha"), ("metric", "foo"), ("metric", "slope"), ("score", "high")],
)
def test_bundle_values_that_would_break_the_index_are_refused(origin, tmp_path, field, value):
    def edit(info):
        info["results"][0][field] = value

    bad = rewritten(bundle_of(origin, tmp_path), tmp_path / "bad.zip", edit)
    target = Workspace(tmp_path / "t")
    with pytest.raises(BundleError, match="describes a result badly"):
        import_bundle(target, bad)
    assert target.datasets() == [] and list(target.store.iter_ids()) == []


@pytest.mark.parametrize("name", ["r/./x.csv", "r//x.csv", "r/evil\nname.csv", "r/" + "a" * 300])
def test_bundle_names_with_dot_empty_control_or_long_components(origin, tmp_path, name):
    bad = rewritten(bundle_of(origin, tmp_path), tmp_path / "bad.zip", extra={name: b"x"})
    with pytest.raises(BundleError):
        import_bundle(Workspace(tmp_path / "t"), bad)


def test_a_name_that_is_both_file_and_folder_is_refused(origin, tmp_path):
    label = origin.best("fermentation").row.label
    bad = rewritten(
        bundle_of(origin, tmp_path),
        tmp_path / "bad.zip",
        extra={f"{label}/models": b"a file where a folder is"},
    )
    with pytest.raises(BundleError, match="both a file and a folder"):
        import_bundle(Workspace(tmp_path / "t"), bad)


def test_best_follows_the_newest_metric_everywhere(tmp_path):
    ws = Workspace(tmp_path / "ws")
    template = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [1, 4]}}}]
    ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=4, metric="rmse")
    ws.run(templates=[template], datasets=["fermentation"], cv=4, metric="r2")
    best = ws.best("fermentation")
    r2 = [r.cv_scores()["r2"] for r in ws.results("fermentation")]
    assert r2 == sorted(r2, reverse=True) and best.cv_scores()["r2"] == max(r2)
    tree_best = [n for n in Tree(ws).list_dir(("runs", "fermentation")) if n.startswith("best_")]
    assert tree_best == [f"best_{best.row.label}.csv"]
    doomed = maintenance.results_beyond_best(ws.index, 1, None)
    assert best.row.result_id not in doomed and len(doomed) == 7


def test_charts_of_results_sharing_predictions_name_their_own_result(origin, tmp_path):
    again = origin.run(
        templates=[["snv", {"pls": {"n_components": 2}}]],
        datasets=["fermentation"],
        cv=4,
        name="again",
    )
    (second,) = again.results
    first = next(
        r
        for r in origin.results("fermentation")
        if r.row.config_hash == second.row.config_hash and r.row.seq != second.row.seq
    )
    assert first.row.predictions_blob == second.row.predictions_blob
    paths = [
        ("runs", "fermentation", r.row.label, "charts", "residuals.png") for r in (first, second)
    ]
    forward, backward = Tree(origin), Tree(origin)
    a = [forward.read(forward.lookup(p)) for p in paths]
    b = [backward.read(backward.lookup(p)) for p in reversed(paths)][::-1]
    assert a == b and a[0] != a[1]


def test_fsspec_and_export_refuse_a_corrupt_blob(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[["snv", "pls"]], datasets=["chemotools:fermentation"], name="c")
    label = ws.best("fermentation").row.label
    fs = N4AFileSystem(workspace=ws.path)
    final = next(
        p for p in fs.ls(f"/runs/fermentation/{label}/models", detail=False) if "final_" in p
    )
    blob = Path(fs.real_path(f"{final}/pls_model.pkl"))
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(OSError) as info:  # the path exists: EIO, as through the mount
        N4AFileSystem(workspace=ws.path, skip_instance_cache=True).cat_file(
            f"{final}/pls_model.pkl"
        )
    assert info.value.errno == errno.EIO and isinstance(info.value.__cause__, BlobCorrupt)
    with pytest.raises(BlobCorrupt):
        Workspace(ws.path).export(f"runs/fermentation/{label}", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_gc_keeps_rows_of_an_object_re_used_during_the_sweep(origin, monkeypatch):
    blob = origin.store.put(b"old garbage about to be re-used")
    old = 1_000_000.0
    os.utime(origin.store.path_of(blob), (old, old))
    seen = []
    real_mtime = origin.store.mtime

    def mtime(blob_id):
        seen.append(blob_id)
        if blob_id == blob and seen.count(blob) == 2:  # re-used between the two looks
            origin.store.touch(blob)
        return real_mtime(blob_id)

    monkeypatch.setattr(origin.store, "mtime", mtime)
    report = maintenance.gc(origin.index, origin.store)
    assert blob not in report.removed and origin.store.exists(blob)
