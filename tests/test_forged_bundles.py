"""Bundles a forger rewrote (with a consistent MANIFEST.yaml: it proves integrity, not
origin): values that would break the index and unsafe names are refused before anything is
written; an untrusted import's models load only with trust."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml
from n4afs_core.errors import BundleError, UntrustedArchive

from n4afs.share.importer import import_bundle
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
