"""nirs4all's fitted models converted to n4afs's classes without nirs4all (n4afs.share.
nirs4all_models), on the real nirs4all 1.4.10 output of tests/fixtures/nirs4all-1.4.10/.

The expected predictions are read here straight from nirs4all's store and arrays (its final
and fold rows), never from what the import wrote.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from n4afs_core.errors import BundleError

from tests import nirs4all_fixture

FIXTURES = nirs4all_fixture.FIXTURES
source = nirs4all_fixture.source  # the fixture: a private copy of them
_count = nirs4all_fixture.count

FACTS = json.loads((FIXTURES / "FIXTURES.json").read_text())
DATA = {
    "fermentation": str(FIXTURES / "data" / "fermentation.csv"),
    "fermentation_b": str(FIXTURES / "data" / "fermentation_b.csv"),
    "coffee": str(FIXTURES / "data" / "coffee.csv") + "#target=y",
}
FLOAT32_TOLERANCE = 1e-4  # nirs4all fitted on float32 spectra and stores float32-rounded values


def _spectra(dataset: str) -> tuple[np.ndarray, list[str]]:
    """The fixture CSV's spectra (nirs4all's row order) and targets."""
    with open(FIXTURES / "data" / f"{dataset}.csv") as handle:
        rows = list(csv.reader(handle))[1:]
    return np.array([[float(v) for v in r[3:]] for r in rows]), [r[2] for r in rows]


def _stored(source: Path, engine: str, pipeline: str, fold: str, partitions: tuple[str, ...]):
    """(row positions, y_pred) nirs4all stored for one model of a pipeline, read from the
    test's copy (SQLite adds a -shm beside a WAL store even when it reads)."""
    ws = source / engine
    conn = sqlite3.connect(f"file:{ws / 'store.sqlite'}?mode=ro", uri=True)
    found = conn.execute(
        "SELECT pr.prediction_id, pr.dataset_name FROM predictions pr JOIN pipelines p "
        "USING (pipeline_id) WHERE p.name IN (?, ?) AND pr.fold_id = ? AND pr.partition IN "
        f"({','.join('?' * len(partitions))})",
        (pipeline, pipeline + "_refit", fold, *partitions),
    ).fetchall()
    conn.close()
    assert found, (pipeline, fold)
    table = pq.read_table(ws / "arrays" / f"{found[0][1]}.parquet").to_pylist()
    rows = {r["prediction_id"]: r for r in table}
    positions, y_pred = [], []
    for prediction_id, _ in found:
        positions += rows[prediction_id]["sample_indices"]
        y_pred += rows[prediction_id]["y_pred"]
    return positions, np.array(y_pred)


def _result_of(ws, dataset: str, pipeline: str):
    for result in ws.results(dataset):
        (blob,) = ws.index.fetchall(
            "SELECT blob_id FROM imported_files WHERE result_id = ? AND path = 'nirs4all.yaml'",
            [result.row.result_id],
        )[0]
        if f"pipeline: {pipeline}\n" in ws.store.read(blob).decode():
            return result
    raise AssertionError(f"no result of nirs4all pipeline {pipeline}")


def _import_log(ws, result) -> str:
    (blob,) = ws.index.fetchall(
        "SELECT blob_id FROM imported_files WHERE result_id = ? AND path = 'logs/import.txt'",
        [result.row.result_id],
    )[0]
    return ws.store.read(blob).decode()


def _assert_reproduces(model, dataset, positions, stored, task):
    X, y = _spectra(dataset)
    predicted = model.predict(X[positions].astype(np.float32))
    if task == "regression":
        difference = np.max(np.abs(np.ravel(predicted) - stored))
        assert difference < FLOAT32_TOLERANCE
    else:
        names = sorted(set(y))  # nirs4all's codes 0..k-1 are the sorted class names
        assert list(predicted) == [names[int(v)] for v in stored]


CASES = [
    ("dagml", "fermentation", "regression", []),
    ("dagml", "fermentation_b", "regression", []),
    ("dagml", "coffee", "classification", []),
    ("legacy", "fermentation", "regression", [0, 1, 2]),
    ("legacy", "coffee", "classification", [0, 1, 2]),
]


@pytest.mark.parametrize(("engine", "dataset", "task", "folds"), CASES)
def test_converted_models_predict_nirs4alls_stored_rows(ws, source, engine, dataset, task, folds):
    data = {k: v for k, v in DATA.items() if k in FACTS["workspaces"][engine]["best"]}
    ws.import_bundle(source / engine, data=data, trust=True)
    best = FACTS["workspaces"][engine]["best"][dataset]
    result = _result_of(ws, dataset, best)
    positions, stored = _stored(source, engine, best, "final", ("train",))
    _assert_reproduces(result.load_model("final", trust=True), dataset, positions, stored, task)
    for k in folds:  # legacy keeps every fold's model (shared transformers + the fold's)
        positions, stored = _stored(source, engine, best, str(k), ("train", "val"))
        _assert_reproduces(result.load_model(k, trust=True), dataset, positions, stored, task)
    log = _import_log(ws, result)
    assert "final model: converted to n4afs's classes; checked:" in log
    if task == "regression":
        assert "largest difference" in log
    models = ws.tree.list_dir(("runs", dataset, result.row.label, "models"))
    assert len(models) == 1 + len(folds)
    final = next(name for name in models if name.startswith("final_"))
    files = ws.tree.list_dir(("runs", dataset, result.row.label, "models", final))
    assert {"pipeline.pkl", "MANIFEST.yaml"} <= set(files)


def test_configs_without_a_kept_model_stay_score_only_and_say_why(ws, source):
    ws.import_bundle(source / "dagml")
    others = [
        r
        for r in ws.results("fermentation")
        if "models" not in ws.tree.list_dir(("runs", "fermentation", r.row.label))
    ]
    assert len(others) == 5  # dag-ml keeps the refit of the winning config only
    for result in others:
        assert "kept no fitted model" in _import_log(ws, result)


@pytest.mark.parametrize(
    ("bundle", "pipeline", "dataset"),
    [
        ("dagml.n4a", "glucose_p0_p0_56289576", "fermentation_b"),  # _DagmlExportedModel
        ("chain.n4a", "glucose_p0_p0_67e69816", "fermentation"),  # the store's dict wrapper
        ("legacy.n4a", "glucose_p0_fcf39a0c", "fermentation"),  # shared SG + the refit's PLS
    ],
)
def test_bundle_models_predict_what_nirs4all_stored(ws, source, bundle, pipeline, dataset):
    engine = "legacy" if bundle.startswith("legacy") else "dagml"
    ws.import_bundle(source / bundle, trust=True)
    (result,) = ws.results(Path(bundle).stem)
    positions, stored = _stored(source, engine, pipeline, "final", ("train",))
    model = result.load_model("final", trust=True)
    _assert_reproduces(model, dataset, positions, stored, "regression")
    assert "not checked" in _import_log(ws, result)


def test_predict_cli_with_a_converted_model(ws, source):
    ws.import_bundle(source / "legacy", data={"fermentation": DATA["fermentation"]}, trust=True)
    result = _result_of(ws, "fermentation", FACTS["workspaces"]["legacy"]["best"]["fermentation"])
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-m", "n4afs.cli", "-w", str(ws.path), "predict"]
        + [f"runs/fermentation/{result.row.label}", DATA["fermentation"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sample_id,") and "y_pred" in lines[0] and len(lines) == 22
    assert "scores against y (21 of 21 samples have a value): rmse" in done.stderr


# -- pickles naming globals outside the allowed list ----------------------------------------
class _Touch:
    """A pickle that, loaded by pickle itself, runs os.system (creates a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("compressed", [False, True])
def test_a_bundle_whose_pickle_names_os_system_is_refused_and_nothing_runs(
    ws, source, tmp_path, compressed
):
    witness = tmp_path / "pwned"
    payload = pickle.dumps({"estimator": _Touch(witness), "y_transform": None}, protocol=4)
    data = zlib.compress(payload) if compressed else payload
    hostile = tmp_path / "hostile.n4a"
    member = "artifacts/step_1_foldfinal_PLSRegression.joblib"
    with zipfile.ZipFile(source / "dagml.n4a") as good, zipfile.ZipFile(hostile, "w") as z:
        manifest = json.loads(good.read("manifest.json"))
        manifest["artifact_integrity"][member] = "sha256:" + hashlib.sha256(data).hexdigest()
        for name in good.namelist():
            body = {"manifest.json": json.dumps(manifest).encode(), member: data}.get(name)
            z.writestr(name, body if body is not None else good.read(name))
    with pytest.raises(BundleError, match=r"names the global (os|posix|nt)\.system"):
        ws.import_bundle(hostile, trust=True)
    assert not witness.exists()
    assert _count(ws, "results") == 0 and _count(ws, "runs") == 0 and _count(ws, "imports") == 0
    pickle.loads(payload)  # the same bytes loaded by pickle itself do run: the test can fail
    assert witness.exists()


def test_a_workspace_artifact_naming_os_system_is_refused_and_nothing_runs(ws, source, tmp_path):
    witness = tmp_path / "pwned"
    payload = zlib.compress(pickle.dumps({"estimator": _Touch(witness)}, protocol=4))
    conn = sqlite3.connect(source / "dagml" / "store.sqlite")
    (path,) = conn.execute(
        "SELECT artifact_path FROM artifacts WHERE artifact_path LIKE 'd7/%'"
    ).fetchone()
    (source / "dagml" / "artifacts" / path).write_bytes(payload)
    conn.execute(  # the attacker records the hash too: only the loader stands in the way
        "UPDATE artifacts SET content_hash = ? WHERE artifact_path = ?",
        (hashlib.sha256(payload).hexdigest(), path),
    )
    conn.commit()
    conn.close()
    with pytest.raises(BundleError, match=r"names the global (os|posix|nt)\.system"):
        ws.import_bundle(source / "dagml")
    assert not witness.exists()
    assert _count(ws, "results") == 0 and _count(ws, "runs") == 0 and _count(ws, "imports") == 0


def test_a_model_of_a_class_n4afs_does_not_convert_imports_score_only(ws, source, tmp_path):
    import joblib
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVR

    fitted = Pipeline([("svr", SVR().fit(np.eye(3), [1.0, 2.0, 3.0]))])
    buffer = io.BytesIO()
    joblib.dump({"estimator": fitted, "y_transform": None}, buffer, compress=3)
    odd = tmp_path / "svr.n4a"
    with zipfile.ZipFile(source / "chain.n4a") as good, zipfile.ZipFile(odd, "w") as z:
        for name in good.namelist():
            body = buffer.getvalue() if name.endswith(".joblib") else good.read(name)
            z.writestr(name, body)
    ws.import_bundle(odd)
    (result,) = ws.results("svr")
    log = _import_log(ws, result)
    assert "sklearn.svm._classes.SVR, which n4afs does not convert" in log
    assert "imported score-only" in log
    assert "models" not in ws.tree.list_dir(("runs", "svr", result.row.label))


def test_a_converted_model_round_trips_through_an_export(ws, source, tmp_path):
    from n4afs.workspace import Workspace

    ws.import_bundle(source / "legacy", data={"fermentation": DATA["fermentation"]}, trust=True)
    result = _result_of(ws, "fermentation", FACTS["workspaces"]["legacy"]["best"]["fermentation"])
    ws.export(f"runs/fermentation/{result.row.label}", tmp_path / "best.zip")
    other = Workspace(tmp_path / "other")
    other.import_bundle(tmp_path / "best.zip", trust=True)
    (again,) = other.results("fermentation")
    X, _ = _spectra("fermentation")
    for model in ("final", 0, 2):
        expected = result.load_model(model, trust=True).predict(X)
        assert np.array_equal(again.load_model(model, trust=True).predict(X), expected)
    assert _import_log(other, again) == _import_log(ws, result)
