"""Bundles from a hostile colleague: re-signed manifests around forged scores, unsafe names,
bad inner metadata and bombs. Each is refused before anything is written, or imported
without being believed."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import yaml
from n4afs_core.errors import BundleError, RunError

from n4afs.share.importer import import_bundle
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.conftest import best_csvs

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [3, 5]}}}]


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("origin") / "ws")
    ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=4, name="origin")
    return ws


@pytest.fixture(scope="module")
def bundle(origin, tmp_path_factory) -> Path:
    """A whole result folder with its data: the richest bundle to tamper with."""
    path = tmp_path_factory.mktemp("bundle") / "good.zip"
    best = origin.best("fermentation").row.label
    origin.export(f"runs/fermentation/{best}", path, level="with-data")
    return path


def files_of(source: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(source) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def resigned(source: Path, target: Path, change) -> Path:
    """What a hostile colleague can make: files changed by `change(files)`, then a correct
    MANIFEST.yaml written over them, so every outer hash check passes."""
    files = files_of(source)
    change(files)
    files.pop("MANIFEST.yaml", None)
    rows = [
        {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in sorted(files.items())
    ]
    files["MANIFEST.yaml"] = yaml.safe_dump({"format": "n4afs-export/1", "files": rows}).encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return target


def result_folder(files: dict[str, bytes]) -> str:
    info = yaml.safe_load(files["EXPORT.yaml"])
    return info["results"][0]["path"]


def edit_yaml(files: dict[str, bytes], name: str, edit) -> None:
    data = yaml.safe_load(files[name])
    edit(data)
    files[name] = yaml.safe_dump(data, sort_keys=False).encode()


def assert_nothing_written(ws: Workspace) -> None:
    assert list(ws.store.iter_ids()) == []
    assert ws.runs() == [] and ws.datasets() == []
    assert ws.index.fetchall("SELECT count(*) FROM blobs") == [(0,)]


# -- 1. forged scores -------------------------------------------------------------------
def forge_scores(files: dict[str, bytes]) -> None:
    folder = result_folder(files)

    def claim(scores):
        for partitions in scores["models"].values():
            for values in partitions.values():
                values["rmse"] = 0.001
        scores["score"] = 0.001

    edit_yaml(files, f"{folder}/scores.yaml", claim)
    edit_yaml(files, "EXPORT.yaml", lambda info: info["results"][0].update(score=0.001))


def perfect_predictions(files: dict[str, bytes]) -> None:
    """Forged evidence: every prediction table says y_pred == y_true."""
    folder = result_folder(files)
    tables = [n for n in files if n.startswith(f"{folder}/predictions/") and n.endswith(".csv")]
    for name in tables:
        lines = files[name].decode().split("\r\n")
        out = [lines[0]]
        for line in filter(None, lines[1:]):
            sample, y_true, _, _, partition, fold = line.split(",")
            out.append(",".join([sample, y_true, y_true, "0.0", partition, fold]))
        files[name] = ("\r\n".join(out) + "\r\n").encode()


def own_workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "own")
    ws.run(templates=[["snv", {"pls": {"n_components": 2}}]], datasets=["chemotools:fermentation"])
    return ws


def test_a_forged_score_claim_is_recomputed_and_never_best(origin, bundle, tmp_path):
    ws = own_workspace(tmp_path)
    own_best = ws.best("fermentation").row
    forged = resigned(bundle, tmp_path / "forged.zip", forge_scores)
    summary = import_bundle(ws, forged)
    assert ws.best("fermentation").row.result_id == own_best.result_id

    tree = Tree(ws)
    listing = list(tree.list_dir(("runs", "fermentation")))
    assert best_csvs(listing) == [f"best_{own_best.label}.csv"]
    (imported,) = [r for r in ws.results("fermentation") if r.row.run_id == summary.run_id]
    claimed = origin.best("fermentation").row.score
    assert imported.row.score == pytest.approx(claimed, rel=1e-9)  # recomputed, not 0.001
    folder = ("runs", "fermentation", imported.row.label)
    scores = yaml.safe_load(tree.read(tree.lookup((*folder, "scores.yaml"))))
    assert scores["score"] == pytest.approx(claimed, rel=1e-9)
    assert scores["origin"].startswith("bundle ") and scores["origin"].endswith("(untrusted)")
    results_csv = tree.read(tree.lookup(("runs", "fermentation", "RESULTS.csv"))).decode()
    header, *rows = results_csv.splitlines()
    assert "origin" in header.split(",")
    assert any("(untrusted)" in row and imported.row.label in row for row in rows)
    assert any(",workspace," in row and own_best.label in row for row in rows)
    assert ws.index.fetchall("SELECT trusted FROM imports") == [(False,)]


def test_forged_predictions_rank_after_own_results_until_trusted(bundle, tmp_path):
    ws = own_workspace(tmp_path)
    own_best = ws.best("fermentation").row
    forged = resigned(bundle, tmp_path / "perfect.zip", perfect_predictions)
    summary = import_bundle(ws, forged)
    ranked = ws.results("fermentation")
    assert ranked[0].row.run_id != summary.run_id  # RMSE 0 claimed, ranked after own results
    assert ws.best("fermentation").row.result_id == own_best.result_id
    assert Tree(ws).lookup(("best", "fermentation.csv")) is not None

    (imported,) = [r for r in ranked if r.row.run_id == summary.run_id]
    ws.trust(f"runs/fermentation/{imported.row.label}")  # the user's own decision
    assert ws.best("fermentation").row.run_id == summary.run_id
    assert ws.best("fermentation").row.score == 0.0


def test_trust_refuses_a_run_computed_here(tmp_path):
    ws = own_workspace(tmp_path)
    with pytest.raises(RunError, match="not an imported bundle"):
        ws.trust(ws.runs()[0].run_id)


# -- 2. names ---------------------------------------------------------------------------
def pipeline_named(name: str):
    def change(files):
        folder = result_folder(files)
        edit_yaml(files, f"{folder}/pipeline.yaml", lambda p: p.update(name=name))

    return change


def dataset_named(name: str):
    def change(files):
        def edit(info):
            info["results"][0]["dataset"] = name

        edit_yaml(files, "EXPORT.yaml", edit)

    return change


HOSTILE_NAMES = {
    "result-climbs-out": pipeline_named("../../../../escaped"),
    "result-with-slash": pipeline_named("snv/pls"),
    "result-nul": pipeline_named("snv\x00pls"),
    "result-6kb": pipeline_named("a" * 6000),
    "dataset-control": dataset_named("wheat\x1b]0;pwned\x07"),
    "dataset-nul": dataset_named("wheat\x00"),
    "dataset-6kb": dataset_named("é" * 3000),
}


@pytest.mark.parametrize("kind", list(HOSTILE_NAMES))
def test_unsafe_names_in_a_bundle_are_refused_before_writing(bundle, tmp_path, kind):
    hostile = resigned(bundle, tmp_path / f"{kind}.zip", HOSTILE_NAMES[kind])
    ws = Workspace(tmp_path / "t")
    with pytest.raises(BundleError, match="name"):
        import_bundle(ws, hostile)
    assert_nothing_written(ws)


def test_a_hostile_name_already_in_the_index_shows_as_one_safe_component(origin, tmp_path):
    """Rows written before names were checked, or by hand: the tree and export stay safe."""
    ws = own_workspace(tmp_path)
    with ws.index.write() as conn:
        conn.execute("UPDATE results SET name = '../../../../escaped'")
        conn.execute("UPDATE templates SET name = '../../../../escaped'")
    tree = Tree(ws)
    (run_dir,) = tree.list_dir(("by-run",))
    assert all("/" not in n for n in tree.list_dir(("by-run", run_dir, "templates")))
    names = list(tree.list_dir(("runs", "fermentation")))
    assert all("/" not in n and n not in (".", "..") for n in names)
    (label,) = [
        n for n in names if "escaped" in n and tree.lookup(("runs", "fermentation", n)).is_dir
    ]
    assert label.startswith("0001_escaped_")
    out = tmp_path / "exp" / "out"
    ws.export(f"runs/fermentation/{label}", out)
    escaped = [p for p in (tmp_path / "exp").iterdir() if p.name != "out"]
    assert escaped == [] and (out / label / "pipeline.yaml").is_file()


def test_names_equal_after_unicode_normalization_are_one_name(tmp_path):
    import numpy as np

    ws = Workspace(tmp_path / "ws")
    X, y = np.random.default_rng(0).random((12, 5)), np.arange(12.0)
    nfc = ws.add_arrays(X, y, name="Bl\u00e9")
    nfd = ws.add_arrays(X + 1, y, name="Ble\u0301")
    assert nfc.name == nfd.name == "Bl\u00e9"  # stored in one form
    folders = list(Tree(ws).list_dir(("datasets",)))
    assert sorted(folders) == sorted(["Bl\u00e9", f"Bl\u00e9~{nfd.dataset_id[:8]}"])


# -- 3. bad inner metadata --------------------------------------------------------------
def model_manifest(edit):
    def change(files):
        (name,) = [n for n in files if "/models/final_" in n and n.endswith("MANIFEST.yaml")]
        edit_yaml(files, name, edit)

    return change


def bad_spectra(files):
    (name,) = [n for n in files if n.endswith("/spectra.csv")]
    lines = files[name].split(b"\r\n")
    lines[3] = lines[3].replace(b",", b",abc", 1)
    files[name] = b"\r\n".join(lines)


def dataset_described_badly(files):
    """No data/ folder, so the dataset row comes from EXPORT.yaml, which lies in kind."""
    for name in [n for n in files if n.startswith("data/")]:
        del files[name]
    edit_yaml(
        files, "EXPORT.yaml", lambda i: next(iter(i["datasets"].values())).update(n_samples="many")
    )


BAD_INNER = {
    "model-without-role": model_manifest(lambda m: m.pop("role")),
    "model-steps-not-a-list": model_manifest(lambda m: m.update(steps="pls")),
    "model-step-unknown-file": model_manifest(lambda m: m["steps"][0].update(file="other.pkl")),
    "model-step-bad-sha": model_manifest(lambda m: m["steps"][0].update(sha256="0" * 64)),
    "model-step-escaping-file": model_manifest(lambda m: m["steps"][0].update(file="../x.pkl")),
    "pipeline-not-a-mapping": lambda f: f.update(
        {f"{result_folder(f)}/pipeline.yaml": b"- just\n- a list\n"}
    ),
    "predictions-not-numbers": lambda f: f.update(
        {
            f"{result_folder(f)}/predictions/cv.csv": (
                b"sample_id,y_true,y_pred,residual,partition,fold\r\ns1,abc,1,1,val,0\r\n"
            )
        }
    ),
    "spectra-not-numbers": bad_spectra,
    "dataset-count-not-a-number": dataset_described_badly,
}


@pytest.mark.parametrize("kind", list(BAD_INNER))
def test_bad_inner_metadata_is_refused_before_any_write(bundle, tmp_path, kind):
    hostile = resigned(bundle, tmp_path / f"{kind}.zip", BAD_INNER[kind])
    ws = Workspace(tmp_path / "t")
    with pytest.raises(BundleError):
        import_bundle(ws, hostile)
    assert_nothing_written(ws)


def test_cli_refuses_bad_inner_metadata_in_one_line(bundle, tmp_path):
    import subprocess
    import sys

    hostile = resigned(bundle, tmp_path / "bad.zip", BAD_INNER["model-without-role"])
    done = subprocess.run(
        [sys.executable, "-m", "n4afs.cli", "-w", str(tmp_path / "t"), "import", str(hostile)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert_nothing_written(Workspace(tmp_path / "t"))


# -- 4. bombs ---------------------------------------------------------------------------
def test_a_zip_that_inflates_a_thousandfold_is_refused(bundle, tmp_path):
    def zeros(files):
        files["extra/zeros.bin"] = b"\0" * (16 << 20)  # honest size, tiny compressed

    bomb = resigned(bundle, tmp_path / "bomb.zip", zeros)
    assert bomb.stat().st_size < (2 << 20)
    ws = Workspace(tmp_path / "t")
    with pytest.raises(BundleError, match="inflates"):
        import_bundle(ws, bomb)
    assert_nothing_written(ws)
    summary = ws.import_bundle(bomb, max_ratio=10_000)  # the user may raise the limit
    assert summary.results


def test_yaml_aliases_in_bundle_metadata_are_refused(bundle, tmp_path):
    laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7)
    )

    def alias_bomb(files):
        files["EXPORT.yaml"] = (
            files["EXPORT.yaml"]
            + b"\nbomb:\n"
            + b"".join(b"  " + line.encode() + b"\n" for line in laughs.splitlines())
        )

    hostile = resigned(bundle, tmp_path / "laughs.zip", alias_bomb)
    ws = Workspace(tmp_path / "t")
    with pytest.raises(BundleError, match="alias"):
        import_bundle(ws, hostile)
    assert_nothing_written(ws)


def test_default_limits_accept_a_real_with_data_bundle(bundle, tmp_path):
    ws = Workspace(tmp_path / "t")
    assert import_bundle(ws, bundle).results


# -- an import in flight ----------------------------------------------------------------
def test_gc_with_no_grace_during_an_import_spares_its_blobs(bundle, tmp_path, monkeypatch):
    from n4afs_core import maintenance

    from n4afs.share import importer

    ws = Workspace(tmp_path / "t")
    real_write = importer._write_rows
    collected = []

    def gc_first(ws_, *args):
        collected.append(maintenance.gc(ws_.index, ws_.store, grace_s=0.0))
        return real_write(ws_, *args)

    monkeypatch.setattr(importer, "_write_rows", gc_first)
    summary = import_bundle(ws, bundle)
    assert collected and collected[0].removed == []  # every blob stored so far was spared
    report = maintenance.verify(ws.index, ws.store)
    assert report.ok and report.missing == []
    assert [r.status for r in ws.runs()] == ["completed"] and summary.results


def test_an_import_that_fails_while_storing_leaves_no_run(bundle, tmp_path, monkeypatch):
    ws = Workspace(tmp_path / "t")
    real_put, calls = ws.store.put, []

    def failing_put(source):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_put(source)

    monkeypatch.setattr(ws.store, "put", failing_put)
    with pytest.raises(OSError):
        import_bundle(ws, bundle)
    assert ws.runs() == [] and ws.datasets() == []
    assert ws.index.fetchall("SELECT count(*) FROM run_owners") == [(0,)]


# -- found in review --------------------------------------------------------------------
def no_data(files: dict[str, bytes]) -> None:
    for name in [n for n in files if n.startswith("data/")]:
        del files[name]


def test_a_data_less_bundle_cannot_claim_another_task_for_a_known_dataset(bundle, tmp_path):
    def as_classification(files):
        no_data(files)
        edit_yaml(
            files,
            "EXPORT.yaml",
            lambda i: i["results"][0].update(task="classification", metric="accuracy"),
        )
        folder = result_folder(files)
        for name in [
            n for n in files if n.startswith(f"{folder}/predictions/") and n.endswith(".csv")
        ]:
            del files[name]

    ws = own_workspace(tmp_path)
    runs_before = ws.runs()
    with pytest.raises(BundleError, match="regression dataset here"):
        import_bundle(ws, resigned(bundle, tmp_path / "task.zip", as_classification))
    assert ws.runs() == runs_before


def test_an_untrusted_import_does_not_choose_the_metric_of_best(bundle, tmp_path):
    ws = Workspace(tmp_path / "own")
    sweep = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [1, 2, 3, 4]}}}]
    ws.run(templates=[sweep], datasets=["chemotools:fermentation"], metric="rmse")
    own = ws.best("fermentation").row

    def by_bias(files):
        no_data(files)
        edit_yaml(files, "EXPORT.yaml", lambda i: i["results"][0].update(metric="bias"))

    import_bundle(ws, resigned(bundle, tmp_path / "bias.zip", by_bias))
    tree = Tree(ws)
    listing = list(tree.list_dir(("runs", "fermentation")))
    assert best_csvs(listing) == [f"best_{own.label}.csv"]
    table = tree.read(tree.lookup(("runs", "fermentation", "RESULTS.csv"))).decode()
    assert {row["metric"] for row in csv.DictReader(io.StringIO(table))} == {"rmse"}
    assert ws.best("fermentation").row.result_id == own.result_id


def test_a_bundle_listing_one_result_twice_is_refused_before_writing(bundle, tmp_path):
    def twice(files):
        edit_yaml(
            files,
            "EXPORT.yaml",
            lambda i: i["results"].append({**copy.deepcopy(i["results"][0]), "path": "elsewhere"}),
        )
        folder = result_folder(files)
        for name in [n for n in files if n.startswith(folder + "/")]:
            files["elsewhere/" + name[len(folder) + 1 :]] = files[name]

    ws = Workspace(tmp_path / "t")
    with pytest.raises(BundleError, match="twice"):
        import_bundle(ws, resigned(bundle, tmp_path / "twice.zip", twice))
    assert_nothing_written(ws)


def test_a_killed_import_does_not_block_importing_the_bundle_again(bundle, tmp_path, monkeypatch):
    from n4afs.share import importer

    ws = Workspace(tmp_path / "t")
    real_put = ws.store.put
    monkeypatch.setattr(importer, "_abandon", lambda ws_, run_id: None)  # as if killed
    monkeypatch.setattr(ws.store, "put", lambda source: (_ for _ in ()).throw(OSError(5, "io")))
    with pytest.raises(OSError):
        import_bundle(ws, bundle)
    assert [r.status for r in ws.runs()] == ["running"]  # left behind, its owner "dead"
    monkeypatch.setattr(ws.store, "put", real_put)
    assert import_bundle(ws, bundle).results


def test_run_again_refuses_an_imported_run(bundle, tmp_path):
    ws = Workspace(tmp_path / "t")
    summary = import_bundle(ws, bundle)
    from n4afs_core.pipelines.runner import plan_again

    with pytest.raises(RunError, match="imported, not fitted"):
        plan_again(ws.index, summary.run_id)


def test_unreadable_zip_entries_are_refused_in_one_line(bundle, tmp_path):
    raw = bytearray(bundle.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = raw.find(signature)  # the first entry: EXPORT.yaml
        raw[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
    odd = tmp_path / "odd.zip"
    odd.write_bytes(bytes(raw))
    ws = Workspace(tmp_path / "t")
    with pytest.raises(BundleError, match="compression method 99"):
        import_bundle(ws, odd)
    assert_nothing_written(ws)


def test_c1_control_characters_in_entry_names_are_refused(bundle, tmp_path):
    def csi(files):
        files["notes\x9b2J.txt"] = b"x"

    ws = Workspace(tmp_path / "t")
    with pytest.raises(BundleError, match="control-character"):
        import_bundle(ws, resigned(bundle, tmp_path / "csi.zip", csi))
    assert_nothing_written(ws)


def test_an_import_scored_by_its_bundle_is_never_best_even_trusted(bundle, tmp_path):
    """Imports made before scores were recomputed keep the bundle's claims."""
    ws = Workspace(tmp_path / "t")
    summary = import_bundle(ws, bundle, trust=True)
    assert ws.best("fermentation").row.run_id == summary.run_id
    with ws.index.write() as conn:  # what migration 004 leaves on an older import
        conn.execute("UPDATE imports SET scores_recomputed = false")
    with pytest.raises(RunError, match="trust"):
        ws.best("fermentation")
    assert Tree(ws).lookup(("best", "fermentation.csv")) is None
    (result,) = ws.results("fermentation")
    scores = Tree(ws).read(
        Tree(ws).lookup(("runs", "fermentation", result.row.label, "scores.yaml"))
    )
    assert b"scores as claimed by the bundle" in scores
