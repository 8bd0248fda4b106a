"""`n4afs import` of nirs4all 1.4.10 workspaces and .n4a bundles, on real nirs4all output.

The fixtures (tests/fixtures/nirs4all-1.4.10/, made by scripts/make_nirs4all_fixtures.py with
real nirs4all; CI does not install it) hold both engines' workspaces, the three bundle
flavours, the datasets as CSV and FIXTURES.json: what nirs4all itself said (pipelines per
workspace, its best pipeline per dataset, its dataset hashes).
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from n4afs_core.errors import BundleError
from n4afs_core.metrics.scores import scores_for

from n4afs.tree.tree import parse_path
from tests import nirs4all_fixture

FIXTURES = nirs4all_fixture.FIXTURES
source = nirs4all_fixture.source  # the fixture: a private copy of them
_count = nirs4all_fixture.count

FACTS = json.loads((FIXTURES / "FIXTURES.json").read_text())


def _provenance(ws, result) -> dict:
    (blob,) = ws.index.fetchall(
        "SELECT blob_id FROM imported_files WHERE result_id = ? AND path = 'nirs4all.yaml'",
        [result.row.result_id],
    )[0]
    return yaml.safe_load(ws.store.read(blob))


def _path(dataset: str, result) -> str:
    return f"runs/{dataset}/{result.row.label}"


@pytest.mark.parametrize("engine", ["dagml", "legacy"])
def test_each_pipeline_becomes_one_result(ws, source, engine):
    summary = ws.import_bundle(source / engine)
    assert len(summary.results) == FACTS["workspaces"][engine]["pipelines"]
    assert _count(ws, "results") == FACTS["workspaces"][engine]["pipelines"]
    # one import run per nirs4all call (the regression call ran on two datasets: one run)
    assert len(summary.runs) == 2


@pytest.mark.parametrize("engine", ["dagml", "legacy"])
def test_best_per_dataset_is_nirs4alls_best_with_equal_scores(ws, source, engine):
    ws.import_bundle(source / engine, trust=True)
    store = sqlite3.connect(f"file:{source / engine / 'store.sqlite'}?mode=ro", uri=True)
    for dataset, nirs4all_best in FACTS["workspaces"][engine]["best"].items():
        ranked = ws.results(dataset)
        best = ranked[0]
        assert _provenance(ws, best)["pipeline"] == nirs4all_best, dataset
        if best.row.metric != "rmse":
            continue
        # RMSE, MAE, R² of the final model on the test rows, from nirs4all's stored arrays
        (pid,) = store.execute(
            "SELECT pr.prediction_id FROM predictions pr JOIN pipelines p USING (pipeline_id) "
            "WHERE p.name IN (?, ?) AND pr.fold_id = 'final' AND pr.partition = 'test'",
            (nirs4all_best, nirs4all_best + "_refit"),
        ).fetchone()
        table = pq.read_table(source / engine / "arrays" / f"{dataset}.parquet").to_pylist()
        row = next(r for r in table if r["prediction_id"] == pid)
        y_true, y_pred = np.array(row["y_true"]), np.array(row["y_pred"])
        expected = {
            "rmse": float(np.sqrt(np.mean((y_pred - y_true) ** 2))),
            "mae": float(np.mean(np.abs(y_pred - y_true))),
            "r2": float(1 - np.sum((y_true - y_pred) ** 2) / np.sum((y_true - y_true.mean()) ** 2)),
        }
        test = best.test_scores()
        for metric, value in expected.items():
            assert test[metric] == pytest.approx(value, abs=1e-9), (dataset, metric)
        # and nirs4all's own claims agree under these shared definitions
        claimed = _provenance(ws, best)["scores"]["final"]["test"]
        for metric in expected:
            assert claimed[metric] == pytest.approx(test[metric], abs=1e-9)
    store.close()


def test_cv_is_the_pooled_out_of_fold_predictions(ws, source):
    ws.import_bundle(source / "dagml")
    best = ws.results("fermentation")[0]
    table = ws.tree.read(
        ws.tree.lookup(parse_path(_path("fermentation", best) + "/predictions/cv.csv"))
    )
    lines = table.decode().splitlines()[1:]
    assert len(lines) == 16  # every training row once
    y_true = np.array([float(line.split(",")[1]) for line in lines])
    y_pred = np.array([float(line.split(",")[2]) for line in lines])
    assert best.cv_scores()["rmse"] == pytest.approx(
        scores_for("regression", y_true, y_pred)["rmse"]
    )


def test_tree_shows_readable_names_and_the_legacy_flag(ws, source):
    ws.import_bundle(source / "legacy", trust=True)
    names = [r.row.name for r in ws.results("fermentation")]
    assert set(names) == {f"{p}-pls{k}" for p in ("sg1", "msc") for k in (2, 3, 4)}
    results_csv = ws.tree.read(ws.tree.lookup(parse_path("runs/fermentation/RESULTS.csv")))
    assert b"CV not comparable" in results_csv
    best = ws.results("fermentation")[0]
    scores = yaml.safe_load(
        ws.tree.read(ws.tree.lookup(parse_path(_path("fermentation", best) + "/scores.yaml")))
    )
    assert "CV not comparable" in scores["origin"]
    logs = ws.tree.read(
        ws.tree.lookup(parse_path(_path("fermentation", best) + "/logs/import.txt"))
    )
    assert b"final model: converted" in logs and b"legacy engine" in logs


def test_twice_is_nothing_new(ws, source):
    ws.import_bundle(source / "dagml")
    blobs, results = ws.blob_stats().n_blobs, _count(ws, "results")
    again = ws.import_bundle(source / "dagml")
    assert again.already_imported
    assert (ws.blob_stats().n_blobs, _count(ws, "results")) == (blobs, results)


def test_dry_run_lists_and_writes_nothing(ws, source):
    summary = ws.import_bundle(source / "legacy", dry_run=True)
    text = "\n".join(summary.dry_run)
    assert "legacy engine" in text and "score-only" in text and "spectra missing" in text
    assert _count(ws, "results") == 0 and _count(ws, "runs") == 0


def test_data_is_attached_when_its_hash_is_nirs4alls(ws, source):
    data = {
        "fermentation": str(source / "data" / "fermentation.csv"),
        "coffee": str(source / "data" / "coffee.csv") + "#target=y",
    }
    ws.import_bundle(source / "legacy", data=data)
    info = ws.dataset("fermentation")
    assert info.blob_id is not None and info.n_samples == 21
    best = ws.results("coffee")[0]
    cv = ws.tree.read(
        ws.tree.lookup(parse_path(_path("coffee", best) + "/predictions/cv.csv"))
    ).decode()
    assert "Brasil" in cv  # class names come back with the data


def test_data_of_another_dataset_is_refused(ws, source):
    wrong = {"fermentation": str(source / "data" / "fermentation_b.csv")}
    with pytest.raises(BundleError, match="not the ones nirs4all ran on"):
        ws.import_bundle(source / "legacy", data=wrong)
    assert _count(ws, "results") == 0 and _count(ws, "datasets") == 0


def test_export_then_import_round_trips(ws, source, tmp_path):
    from n4afs.workspace import Workspace

    ws.import_bundle(source / "dagml", trust=True)
    best = ws.results("fermentation")[0]
    ws.export(_path("fermentation", best), tmp_path / "best.zip")
    other = Workspace(tmp_path / "other")
    other.import_bundle(tmp_path / "best.zip", trust=True)
    (again,) = other.results("fermentation")
    assert again.row.name == best.row.name and again.row.config_hash == best.row.config_hash
    assert again.cv_scores()["rmse"] == pytest.approx(best.cv_scores()["rmse"], abs=1e-12)


@pytest.mark.parametrize("bundle", ["dagml.n4a", "legacy.n4a", "chain.n4a"])
def test_each_bundle_flavour_imports_as_one_result(ws, source, bundle):
    summary = ws.import_bundle(source / bundle)
    assert len(summary.results) == 1
    (result,) = ws.results(Path(bundle).stem)
    files = ws.tree.list_dir(parse_path(_path(Path(bundle).stem, result)))
    assert "logs" in files and "nirs4all" in files
    assert ws.import_bundle(source / bundle).already_imported


# -- hostile inputs: refused, nothing written ---------------------------------------------
def _nothing_written(ws) -> None:
    assert _count(ws, "results") == 0 and _count(ws, "runs") == 0 and _count(ws, "imports") == 0


def test_store_of_another_version_is_refused(ws, source):
    conn = sqlite3.connect(source / "dagml" / "store.sqlite")
    conn.execute("PRAGMA user_version = 6")
    conn.commit()
    conn.close()
    before = (source / "dagml" / "store.sqlite").read_bytes()
    with pytest.raises(BundleError, match="schema version 6"):
        ws.import_bundle(source / "dagml")
    _nothing_written(ws)
    assert (source / "dagml" / "store.sqlite").read_bytes() == before  # never written to
    assert not (source / "dagml" / "store.sqlite-shm").exists()


def test_bundle_of_an_unknown_flavour_is_refused(ws, source, tmp_path):
    odd = tmp_path / "odd.n4a"
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("manifest.json", json.dumps({"bundle_format_version": "9.0"}))
    with pytest.raises(BundleError, match="does not know"):
        ws.import_bundle(odd)
    _nothing_written(ws)


def test_bundle_with_a_path_escape_is_refused(ws, source, tmp_path):
    evil = tmp_path / "evil.n4a"
    with zipfile.ZipFile(source / "dagml.n4a") as good, zipfile.ZipFile(evil, "w") as z:
        for name in good.namelist():
            z.writestr(name, good.read(name))
        z.writestr("../../outside.txt", b"x")
    with pytest.raises(BundleError, match="climbs out"):
        ws.import_bundle(evil)
    _nothing_written(ws)


def test_tampered_artifact_is_refused(ws, source, tmp_path):
    tampered = tmp_path / "tampered.n4a"
    with zipfile.ZipFile(source / "dagml.n4a") as good, zipfile.ZipFile(tampered, "w") as z:
        for name in good.namelist():
            data = good.read(name)
            z.writestr(name, data + b"\0" if name.startswith("artifacts/") else data)
    with pytest.raises(BundleError, match="differs from its manifest"):
        ws.import_bundle(tampered)
    _nothing_written(ws)


# -- what nirs4all did not keep ---------------------------------------------------------------
def test_predict_without_the_spectra_says_what_is_missing(ws, source):
    from n4afs_core.errors import N4AError

    ws.import_bundle(source / "dagml", trust=True)
    best = ws.results("fermentation")[0]
    with pytest.raises(N4AError, match="keeps no spectra and no wavelengths.*--data"):
        ws.predict(_path("fermentation", best), source / "data" / "fermentation.csv")


def test_data_on_a_later_import_attaches_it_not_doubled(ws, source):
    ws.import_bundle(source / "legacy")
    results = _count(ws, "results")
    data = {"fermentation": str(source / "data" / "fermentation.csv")}
    summary = ws.import_bundle(source / "legacy", data=data)
    assert summary.already_imported and summary.attached
    assert _count(ws, "results") == results
    assert ws.dataset("fermentation").blob_id is not None
