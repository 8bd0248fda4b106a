"""Export, import and predict: round trips, trust, and hostile bundles."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from n4afs_core import maintenance
from n4afs_core.errors import BundleError, N4AError, RunError, UntrustedArchive

import n4afs
from n4afs.share.bundle import Limits
from n4afs.share.importer import import_bundle
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [3, 5]}}}]


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("origin") / "ws")
    ws.run(
        templates=[SWEEP], datasets=["chemotools:fermentation"], cv=4, test_size=0.2, name="origin"
    )
    return ws


def result_path(ws) -> str:
    return f"runs/fermentation/{ws.best('fermentation').row.label}"


def only_result_path(ws) -> str:
    (result,) = ws.results("fermentation")
    return f"runs/fermentation/{result.row.label}"


def tree_files(ws, path: str) -> dict[str, bytes]:
    tree = Tree(ws)
    parts = tuple(path.strip("/").split("/"))
    return {"/".join(rel): tree.read(node) for rel, node in tree.walk_files(parts)}


def new_spectra_csv(ws, path: Path) -> Path:
    tree = Tree(ws)
    path.write_bytes(tree.read(tree.lookup(("datasets", "fermentation", "spectra.csv"))))
    return path


@pytest.mark.parametrize("level", ["minimal", "default", "with-data"])
def test_round_trip_is_byte_identical_and_idempotent(origin, tmp_path, level):
    bundle = tmp_path / "bundle.zip"
    summary = origin.export(result_path(origin), bundle, level=level)
    assert summary.files > 0 and bundle.exists()
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        export_info = yaml.safe_load(zf.read("EXPORT.yaml"))
    assert {"EXPORT.yaml", "MANIFEST.yaml"} <= names
    (dataset,) = export_info["datasets"].values()
    assert export_info["level"] == level and dataset["features"][0] == "428"
    assert any(n.startswith("data/fermentation/") for n in names) == (level == "with-data")

    target = Workspace(tmp_path / "target")
    first = import_bundle(target, bundle)
    assert not first.already_imported and first.results
    original = tree_files(origin, result_path(origin))
    imported = tree_files(target, only_result_path(target))
    if level == "minimal":
        assert set(imported) == {"pipeline.yaml", "scores.yaml"} | {
            p for p in original if p.startswith(("models/final_", "predictions/"))
        }
        original = {p: original[p] for p in imported}
    claimed, recomputed = (yaml.safe_load(f.pop("scores.yaml")) for f in (original, imported))
    assert imported == original  # same files, same bytes; scores.yaml is n4afs's own
    assert recomputed["origin"].startswith("bundle ") and "untrusted" in recomputed["origin"]
    for model, partitions in claimed["models"].items():
        for partition, scores in partitions.items():
            assert recomputed["models"][model][partition] == pytest.approx(scores, rel=1e-9)
    stats = target.blob_stats()
    again = import_bundle(target, bundle)
    assert again.already_imported and target.blob_stats() == stats
    with pytest.raises(RunError, match="trust"):
        target.best("fermentation")  # untrusted imports are never best
    target.trust(first.run_id)
    assert target.best("fermentation").row.score == pytest.approx(
        origin.best("fermentation").row.score, rel=1e-12
    )


def test_predict_from_zip_and_imported_result_agree_with_load_model(origin, tmp_path):
    bundle = tmp_path / "b.zip"
    origin.export(result_path(origin), bundle)
    new = new_spectra_csv(origin, tmp_path / "new.csv")
    X = origin.load_dataset("fermentation").X
    expected = origin.best("fermentation").load_model("final").predict(X).ravel()

    with pytest.raises(UntrustedArchive, match="--trust"):
        n4afs.predict(bundle, new)
    from_zip = n4afs.predict(bundle, new, trust=True)
    np.testing.assert_array_equal(from_zip["y_pred"].to_numpy(), expected)

    target = Workspace(tmp_path / "t")
    import_bundle(target, bundle)  # not trusted
    with pytest.raises(UntrustedArchive):
        n4afs.predict(only_result_path(target), new, workspace=target)
    imported = n4afs.predict(only_result_path(target), new, workspace=target, trust=True)
    np.testing.assert_array_equal(imported["y_pred"].to_numpy(), expected)
    local = n4afs.predict(result_path(origin), new, workspace=origin)  # local: trusted
    np.testing.assert_array_equal(local["y_pred"].to_numpy(), expected)
    avg = n4afs.predict(result_path(origin), new, workspace=origin, model="avg")
    assert avg.height == 21 and not np.allclose(avg["y_pred"].to_numpy(), expected)


def test_predict_refuses_other_wavelengths(origin, tmp_path):
    bundle = tmp_path / "b.zip"
    origin.export(result_path(origin), bundle, level="minimal")
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,428,429,5000\nA,0.1,0.2,0.3\n")
    from n4afs_core.errors import DatasetError

    with pytest.raises(
        DatasetError, match=r"the model's 431 is missing \(1045 missing, 1 unexpected"
    ):
        n4afs.predict(bundle, bad, trust=True)


def test_export_to_a_linked_folder(origin, tmp_path):
    out = tmp_path / "folder"
    origin.export(result_path(origin), out, link=True)
    label = result_path(origin).split("/")[-1]
    final = next((out / label / "models").glob("final_*"))
    pkl = final / "pls_model.pkl"
    assert pkl.stat().st_nlink >= 2  # a hard link to the object, not a copy
    assert pkl.stat().st_mode & 0o222 == 0  # read-only: editing cannot corrupt the store
    assert (out / "MANIFEST.yaml").exists() and (out / label / "predictions" / "cv.csv").exists()
    target = Workspace(tmp_path / "from-folder")
    assert import_bundle(target, out).results


def small_workspace(path: Path) -> Workspace:
    """A workspace of its own, for tests that damage its store."""
    ws = Workspace(path)
    ws.run(templates=[["snv", {"pls": {"n_components": 3}}]], datasets=["chemotools:fermentation"])
    return ws


def final_model_blob(ws) -> str:
    (blob,) = ws.index.fetchall(
        "SELECT a.blob_id FROM models m JOIN artifacts a USING (model_id) "
        "WHERE m.role = 'final' AND a.step_name = 'pls_model'"
    )[0]
    return blob


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    "name", ["../../../../escaped/pipeline.pkl", "/abs/x", "r/./x", "r//x", "r/" + "a" * 256]
)
@pytest.mark.parametrize("out", ["folder", "bundle.zip"])
def test_export_refuses_a_name_outside_its_target_and_writes_nothing(
    origin, tmp_path, monkeypatch, name, out
):
    from n4afs.share import export as export_module

    real = export_module._entries

    def crafted(*args):
        entries = real(*args)
        return [*entries[:2], export_module.Entry(name, entries[0].node)]

    monkeypatch.setattr(export_module, "_entries", crafted)
    target = tmp_path / "exp" / out
    with pytest.raises(N4AError, match="refusing to export"):
        origin.export(result_path(origin), target)
    assert listing(tmp_path) == []


def test_the_resolved_path_check_refuses_a_link_out_of_the_folder(origin, tmp_path):
    from n4afs.share.export import _DirWriter

    writer = _DirWriter(tmp_path / "out", False, Tree(origin))
    with pytest.raises(N4AError, match="resolves outside"), writer:
        (writer.tmp / "r").symlink_to(tmp_path)
        writer.add_bytes("r/escaped.yaml", b"x")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
@pytest.mark.parametrize("how", ["copy", "link", "zip"])
def test_a_failed_export_leaves_no_partial_folder_or_zip(tmp_path, damage, how):
    ws = small_workspace(tmp_path / "ws")
    blob = final_model_blob(ws)
    path = ws.store.path_of(blob)
    if damage == "missing":
        path.unlink()
    else:
        os.chmod(path, 0o644)
        path.write_bytes(b"not a model")
    exp = tmp_path / "exp"
    exp.mkdir()
    out = exp / ("out.zip" if how == "zip" else "out")
    with pytest.raises(N4AError):
        ws.export(result_path(ws), out, link=how == "link")
    assert listing(exp) == []  # no folder, no 0-byte pkl files, no hidden part


def test_export_into_an_empty_folder_works_and_a_full_one_is_refused(origin, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    origin.export(result_path(origin), out)
    assert (out / "MANIFEST.yaml").exists()
    with pytest.raises(N4AError, match="is not empty"):
        origin.export(result_path(origin), out)


def test_linking_falls_back_to_a_hard_link_where_the_fs_cannot_reflink(tmp_path):
    from n4afs.share.export import _reflink

    source = tmp_path / "source"
    source.write_bytes(b"bytes")
    assert not _reflink(source, tmp_path / "clone")  # ext4 / tmpfs: EOPNOTSUPP or EXDEV
    assert not (tmp_path / "clone").exists()


@pytest.fixture(scope="module")
def xfs(tmp_path_factory):
    """A reflink-capable file system: a loop-mounted XFS image (needs root and xfsprogs,
    which `scripts/setup.sh --test-tools` installs)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        pytest.skip("needs root and mkfs.xfs to make a reflink-capable file system")
    base = tmp_path_factory.mktemp("xfs")
    image, mountpoint = base / "xfs.img", base / "mnt"
    mountpoint.mkdir()
    with open(image, "wb") as f:
        f.truncate(320 << 20)  # XFS's smallest useful size
    subprocess.run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image)], check=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)])
    if mounted.returncode != 0:
        pytest.skip("cannot loop-mount an XFS image here")
    yield mountpoint
    subprocess.run(["umount", str(mountpoint)], check=True)


def test_link_export_reflinks_where_it_can_so_editing_it_cannot_corrupt_the_store(xfs):
    ws = small_workspace(xfs / "ws")
    out = xfs / "folder"
    ws.export(result_path(ws), out, link=True)
    pkl = next((out / ws.best("fermentation").row.label / "models").glob("final_*/pls_model.pkl"))
    stored = ws.store.path_of(final_model_blob(ws))
    assert pkl.stat().st_ino != stored.stat().st_ino and pkl.stat().st_nlink == 1  # a clone
    assert pkl.stat().st_mode & 0o777 == 0o444 and pkl.read_bytes() == stored.read_bytes()
    os.chmod(pkl, 0o644)
    pkl.write_bytes(b"edited")
    assert maintenance.verify(ws.index, ws.store).ok  # the store kept its bytes


# -- hostile bundles --------------------------------------------------------------------------
def good_bundle(origin, tmp_path) -> Path:
    bundle = tmp_path / "good.zip"
    origin.export(result_path(origin), bundle, level="minimal")
    return bundle


def rewrite(source: Path, target: Path, change) -> Path:
    """Copy a zip entry by entry, letting `change(info, data)` alter or add entries."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            for new_info, data in change(info, src.read(info)):
                dst.writestr(new_info, data)
    return target


def add_entry(name: str, data: bytes = b"x", mode: int = 0o100644):
    def change(info, content):
        yield info, content
        if info.filename == "EXPORT.yaml":
            extra = zipfile.ZipInfo(name)
            extra.external_attr = mode << 16
            yield extra, data

    return change


def tamper(info, data):
    if info.filename.endswith("scores.yaml"):
        data = data.replace(b"rmse", b"RMSE", 1)
    yield info, data


def drop_export(info, data):
    if info.filename != "EXPORT.yaml":
        yield info, data


def truncated(source: Path, target: Path) -> Path:
    raw = source.read_bytes()
    target.write_bytes(raw[: len(raw) // 2])
    return target


def lying_sizes(source: Path, target: Path) -> Path:
    """A member that inflates far past the size its headers declare."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(
            zipfile.ZipInfo("bomb.bin"), b"\0" * (4 << 20), compress_type=zipfile.ZIP_DEFLATED
        )
    raw = bytearray(target.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.rfind(signature)
        raw[at + offset : at + offset + 4] = struct.pack("<I", 1000)
    target.write_bytes(bytes(raw))
    return target


HOSTILE = {
    "zip-slip": (lambda s, t: rewrite(s, t, add_entry("../../evil.txt")), "climbs out"),
    "absolute": (lambda s, t: rewrite(s, t, add_entry("/etc/evil")), "absolute path"),
    "symlink": (
        lambda s, t: rewrite(s, t, add_entry("link", b"/etc/passwd", 0o120777)),
        "link or special",
    ),
    "hash-mismatch": (lambda s, t: rewrite(s, t, tamper), "sha256 does not match"),
    "truncated": (truncated, "not a readable zip"),
    "no-export-yaml": (lambda s, t: rewrite(s, t, drop_export), "no EXPORT.yaml"),
    "lying-sizes": (lying_sizes, "more bytes than declared|damaged|MANIFEST"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_bundles_are_refused_with_nothing_written(origin, tmp_path, kind):
    make, message = HOSTILE[kind]
    bundle = make(good_bundle(origin, tmp_path), tmp_path / f"{kind}.zip")
    target = Workspace(tmp_path / "target")
    with pytest.raises(BundleError, match=message):
        import_bundle(target, bundle)
    assert list(target.store.iter_ids()) == [] and target.runs() == []
    assert not (tmp_path / "evil.txt").exists()


def test_zip_bomb_by_declared_size_is_refused(origin, tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(good_bundle(origin, tmp_path)) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("zeros.bin", b"\0" * (8 << 20), compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < (1 << 20)  # 8 MiB of zeros in a small zip
    target = Workspace(tmp_path / "target")
    with pytest.raises(BundleError, match="zip bomb"):
        import_bundle(target, bomb, limits=Limits(max_total_bytes=4 << 20))
    assert list(target.store.iter_ids()) == []


def test_cli_export_import_predict(origin, tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.getcwd()}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "n4afs.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    bundle = tmp_path / "cli.zip"
    out = cli("-w", str(origin.path), "export", result_path(origin), "-o", str(bundle))
    assert out.returncode == 0 and "exported" in out.stdout
    new = new_spectra_csv(origin, tmp_path / "new.csv")
    refused = cli("predict", str(bundle), str(new))
    assert refused.returncode == 2 and "--trust" in refused.stderr
    done = cli("predict", str(bundle), str(new), "--trust", "-o", str(tmp_path / "p.csv"))
    assert done.returncode == 0 and (tmp_path / "p.csv").read_text().startswith("sample_id,y_pred")
    imported = cli("-w", str(tmp_path / "t"), "import", str(bundle))
    assert imported.returncode == 0 and "imported 1 result" in imported.stdout
    twice = cli("-w", str(tmp_path / "t"), "import", str(bundle))
    assert "already imported" in twice.stdout
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bundle.read_bytes()[:100])
    bad = cli("-w", str(tmp_path / "t"), "import", str(broken))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
