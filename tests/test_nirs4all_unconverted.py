"""nirs4all configs and models n4afs cannot carry over come in score-only and say why; a
pickle naming a hostile global or declaring huge arrays refuses the import.

On real nirs4all 1.4.10 output: tests/fixtures/nirs4all-1.4.10/edge (legacy engine, one
config per call: nirs4all's Gaussian, Savitzky-Golay with delta 2 (deriv 1 and 0), a
MinMaxScaler y transform, binary PLS-DA) and edge_dagml (the y transform, default engine),
made by scripts/make_nirs4all_fixtures.py. The expected predictions are read straight from
nirs4all's store and arrays, never from what the import wrote.
"""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import sqlite3
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from n4afs_core.errors import BundleError

from tests import nirs4all_fixture

FIXTURES = nirs4all_fixture.FIXTURES
source = nirs4all_fixture.source  # the fixture: a private copy of them
_count = nirs4all_fixture.count

DATA_FERMENTATION = str(FIXTURES / "data" / "fermentation.csv")
DATA = {
    "fermentation_thin": str(FIXTURES / "data" / "fermentation_thin.csv"),
    "coffee_binary": str(FIXTURES / "data" / "coffee_binary.csv") + "#target=y",
}


def _nothing_written(ws) -> None:
    assert _count(ws, "results") == 0 and _count(ws, "runs") == 0 and _count(ws, "imports") == 0


def _imported_file(ws, result, path: str) -> bytes:
    (blob,) = ws.index.fetchall(
        "SELECT blob_id FROM imported_files WHERE result_id = ? AND path = ?",
        [result.row.result_id, path],
    )[0]
    return ws.store.read(blob)


def _by_call(ws, dataset: str) -> dict:
    """nirs4all call name (gauss, sgdelta1, ...) -> the result imported from it."""
    out = {}
    for result in ws.results(dataset):
        provenance = yaml.safe_load(_imported_file(ws, result, "nirs4all.yaml"))
        out[provenance["pipeline"].split("_p0")[0]] = result
    return out


def _log(ws, result) -> str:
    return _imported_file(ws, result, "logs/import.txt").decode()


def _has_models(ws, dataset, result) -> bool:
    return "models" in ws.tree.list_dir(("runs", dataset, result.row.label))


def _stored(source: Path, engine: str, call: str, fold: str, partition: str):
    """(row positions, y_pred) nirs4all stored for one model of the call's pipeline."""
    conn = sqlite3.connect(f"file:{source / engine / 'store.sqlite'}?mode=ro", uri=True)
    found = conn.execute(
        "SELECT pr.prediction_id, pr.dataset_name FROM predictions pr JOIN pipelines p "
        "USING (pipeline_id) WHERE p.name LIKE ? AND pr.fold_id = ? AND pr.partition = ?",
        (f"{call}_p0_%", fold, partition),
    ).fetchall()
    conn.close()
    assert len(found) == 1, (call, fold, partition)
    table = pq.read_table(source / engine / "arrays" / f"{found[0][1]}.parquet").to_pylist()
    row = next(r for r in table if r["prediction_id"] == found[0][0])
    return row["sample_indices"], np.array(row["y_pred"])


def _spectra(dataset: str) -> tuple[np.ndarray, list[str]]:
    with open(FIXTURES / "data" / f"{dataset}.csv") as handle:
        rows = list(csv.reader(handle))[1:]
    return np.array([[float(v) for v in r[3:]] for r in rows]), [r[2] for r in rows]


# -- configs n4afs has no operator for: score-only, with the reason --------------------------
def test_an_unknown_nirs4all_operator_imports_score_only_and_says_why(ws, source):
    summary = ws.import_bundle(source / "edge", data=DATA)
    assert len(summary.results) == 5  # nothing refused: one per pipeline (FIXTURES.json)
    gauss = _by_call(ws, "fermentation_thin")["gauss"]
    assert gauss.row.name == "gaussian-pls3"
    assert "nirs4all operator Gaussian" in _log(ws, gauss)
    assert "imported score-only" in _log(ws, gauss)
    assert not _has_models(ws, "fermentation_thin", gauss)
    pipeline = yaml.safe_load(_imported_file(ws, gauss, "pipeline.yaml"))
    first = next(iter(pipeline["steps"][0].items()))
    assert first == (
        "n4afs_core.pipelines.operators.Unconverted",
        {"nirs4all": "nirs4all.operators.transforms.signal.Gaussian"},
    )
    # ranked and scored like any import, from the predictions nirs4all stored
    positions, y_pred = _stored(source, "edge", "gauss", "final", "test")
    _, y = _spectra("fermentation_thin")
    y_true = np.array([float(y[p]) for p in positions])
    rmse = float(np.sqrt(np.mean((y_pred - y_true) ** 2)))
    assert gauss.test_scores()["rmse"] == pytest.approx(rmse, abs=1e-6)  # y_true float32
    results_csv = ws.tree.read(ws.tree.lookup(("runs", "fermentation_thin", "RESULTS.csv")))
    assert b"gaussian-pls3" in results_csv


@pytest.mark.parametrize("engine", ["edge", "edge_dagml"])
def test_a_y_transform_imports_score_only_and_says_why(ws, source, engine):
    ws.import_bundle(source / engine, data={"fermentation_thin": DATA["fermentation_thin"]})
    result = _by_call(ws, "fermentation_thin")["yminmax"]
    assert result.row.name == "snv-yminmaxscaler-pls3"
    log = _log(ws, result)
    assert "y_processing: MinMaxScaler" in log and "no y transform" in log
    assert not _has_models(ws, "fermentation_thin", result)
    assert result.cv_scores()["rmse"] > 0


def test_savitzky_golay_delta_first_derivative_is_score_only(ws, source):
    ws.import_bundle(source / "edge", data=DATA)
    result = _by_call(ws, "fermentation_thin")["sgdelta1"]
    assert "Savitzky-Golay with delta 2.0" in _log(ws, result)
    assert not _has_models(ws, "fermentation_thin", result)


def test_savitzky_golay_delta_smoothing_converts_and_predicts_nirs4alls_rows(ws, source):
    ws.import_bundle(source / "edge", data=DATA, trust=True)
    result = _by_call(ws, "fermentation_thin")["sgdelta0"]
    assert result.row.name == "sg0-pls3"  # delta changes nothing without a derivative
    X, _ = _spectra("fermentation_thin")
    for fold, model in [("final", "final"), ("0", 0), ("2", 2)]:
        positions, stored = _stored(source, "edge", "sgdelta0", fold, "train")
        predicted = result.load_model(model, trust=True).predict(X[positions].astype(np.float32))
        assert np.max(np.abs(np.ravel(predicted) - stored)) < 1e-4
    assert "final model: converted" in _log(ws, result)


def test_binary_plsda_converts_and_predicts_nirs4alls_classes(ws, source):
    ws.import_bundle(source / "edge", data=DATA, trust=True)
    (result,) = ws.results("coffee_binary")
    X, y = _spectra("coffee_binary")
    names = sorted(set(y))
    assert len(names) == 2
    for fold, model in [("final", "final"), ("1", 1)]:
        for partition in ("train", "test") if fold == "final" else ("train", "val"):
            positions, stored = _stored(source, "edge", "binary", fold, partition)
            predicted = result.load_model(model, trust=True).predict(X[positions])
            assert list(predicted) == [names[int(v)] for v in stored], (fold, partition)
    assert "final model: converted to n4afs's classes; checked" in _log(ws, result)


# -- pickles: a class n4afs does not convert vs a hostile global -----------------------------
def _payload(module: str, name: str) -> bytes:
    """A protocol-2 pickle of `{"estimator": module.name()}`, written opcode by opcode (the
    global need not exist here)."""
    return (
        b"\x80\x02}q\x00X\t\x00\x00\x00estimatorq\x01"
        + f"c{module}\n{name}\n".encode()
        + b")Rq\x02s."
    )


def _plant(source: Path, engine: str, artifact_like: str, payload: bytes) -> None:
    """Replace one artifact of a nirs4all workspace, recording its sha256 in the store too
    (only the loader stands in the way)."""
    data = zlib.compress(payload)
    conn = sqlite3.connect(source / engine / "store.sqlite")
    paths = [
        p
        for (p,) in conn.execute(
            "SELECT DISTINCT artifact_path FROM artifacts WHERE artifact_path LIKE ?",
            (artifact_like,),
        )
    ]
    assert paths, artifact_like
    for path in paths:
        (source / engine / "artifacts" / path).write_bytes(data)
        conn.execute(
            "UPDATE artifacts SET content_hash = ? WHERE artifact_path = ?",
            (hashlib.sha256(data).hexdigest(), path),
        )
    conn.commit()
    conn.close()


def test_the_payload_names_its_global():
    assert pickle.loads(_payload("builtins", "dict")) == {"estimator": {}}


def test_a_nirs4all_class_n4afs_does_not_convert_leaves_the_result_score_only(ws, source):
    module, name = "nirs4all.operators.transforms.signal", "Detrend"
    _plant(source, "legacy", "%transformer_SavitzkyGolay%", _payload(module, name))
    summary = ws.import_bundle(source / "legacy", data={"fermentation": DATA_FERMENTATION})
    assert len(summary.results) == 8
    touched = [
        r
        for r in ws.results("fermentation")
        if f"{module}.{name}, which n4afs does not convert" in _log(ws, r)
    ]
    assert touched and all("score-only" in _log(ws, r) for r in touched)


@pytest.mark.parametrize(
    ("module", "name"),
    [("builtins", "eval"), ("subprocess", "Popen"), ("os", "system"), ("numpy", "load")],
)
@pytest.mark.parametrize(
    ("engine", "artifact"),
    [
        ("legacy", "%transformer_SavitzkyGolay%"),  # a config n4afs converts
        ("edge", "%transformer_Gaussian%"),  # a config imported score-only: read all the same
    ],
)
def test_a_pickle_naming_a_hostile_global_refuses_the_import(
    ws, source, module, name, engine, artifact
):
    _plant(source, engine, artifact, _payload(module, name))
    with pytest.raises(BundleError, match=f"names the global {module}.{name}"):
        ws.import_bundle(source / engine)
    _nothing_written(ws)


# -- arrays declared larger than any model: refused before numpy allocates ------------------
class _Array:
    """numpy's own pickling of an array (`_reconstruct`, then its state), with the shape and
    data chosen here."""

    def __init__(self, shape: tuple, dtype: str, data, state: bool = True) -> None:
        self.shape, self.dtype, self.data, self.state = shape, dtype, data, state

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        if not self.state:
            return (_reconstruct, (np.ndarray, self.shape, b"b"))
        state = (1, self.shape, np.dtype(self.dtype), False, self.data)
        return (_reconstruct, (np.ndarray, (0,), b"b"), state)


@pytest.mark.parametrize(
    "array",
    [
        _Array((10**10,), "b", None, state=False),  # _reconstruct's own shape: 10 GB
        _Array((10**10,), "f8", b""),  # a state declaring 80 GB of floats
        _Array((3 * 10**8,), "O", []),  # 2.4 GB of object pointers numpy leaves unset
    ],
    ids=["reconstruct", "floats", "objects"],
)
def test_a_pickle_declaring_a_huge_array_is_refused_quickly(ws, source, array):
    payload = pickle.dumps({"estimator": array}, protocol=4)
    _plant(source, "legacy", "%transformer_SavitzkyGolay%", payload)
    started = time.monotonic()
    with pytest.raises(BundleError, match=r"declares an array of shape .* more than") as info:
        ws.import_bundle(source / "legacy")
    assert time.monotonic() - started < 30
    assert "\n" not in str(info.value)
    _nothing_written(ws)


def test_arrays_whose_data_do_not_fit_their_shape_are_not_loaded():
    from n4afs.share import nirs4all_models

    short = pickle.dumps({"estimator": _Array((1000,), "O", [1, 2])}, protocol=4)
    with pytest.raises(nirs4all_models.NotConvertible, match="do not fit its shape"):
        nirs4all_models.load_restricted(short, "short.joblib")
    fine = np.arange(6.0).reshape(2, 3)
    loaded = nirs4all_models.load_restricted(pickle.dumps({"a": fine}, protocol=4), "ok.joblib")
    assert np.array_equal(loaded["a"], fine)


def test_each_edge_pipeline_becomes_one_result(ws, source):
    facts = json.loads((FIXTURES / "FIXTURES.json").read_text())["workspaces"]
    for engine in ("edge", "edge_dagml"):
        summary = ws.import_bundle(source / engine)
        assert len(summary.results) == facts[engine]["pipelines"], engine


def test_a_score_only_result_round_trips_through_an_export(ws, source, tmp_path):
    from n4afs.workspace import Workspace

    ws.import_bundle(source / "edge", trust=True)
    gauss = _by_call(ws, "fermentation_thin")["gauss"]
    ws.export(f"runs/fermentation_thin/{gauss.row.label}", tmp_path / "gauss.zip")
    other = Workspace(tmp_path / "other")
    other.import_bundle(tmp_path / "gauss.zip", trust=True)
    (again,) = other.results("fermentation_thin")
    assert (again.row.name, again.row.config_hash) == (gauss.row.name, gauss.row.config_hash)
    assert again.cv_scores()["rmse"] == pytest.approx(gauss.cv_scores()["rmse"], abs=1e-12)
    assert "nirs4all operator Gaussian" in _log(other, again)


def test_a_bundle_whose_config_holds_an_unknown_step_keeps_no_model(ws, source, tmp_path):
    """A step without fitted files (nirs4all's stateless ones) would be missing from a model
    built from the bundle's artifacts: the config says so, the model is not kept."""
    import zipfile

    odd = tmp_path / "odd.n4a"
    with zipfile.ZipFile(source / "legacy.n4a") as good, zipfile.ZipFile(odd, "w") as z:
        for member in good.namelist():
            body = good.read(member)
            if member == "pipeline.json":
                pipeline = json.loads(body)
                pipeline["steps"].insert(0, "nirs4all.operators.transforms.signal.Gaussian")
                body = json.dumps(pipeline).encode()
            z.writestr(member, body)
    ws.import_bundle(odd)
    (result,) = ws.results("odd")
    assert result.row.name == "gaussian-sg1-pls2"
    log = _log(ws, result)
    assert "nirs4all operator Gaussian" in log and "imported score-only" in log
    assert not _has_models(ws, "odd", result)


def test_a_config_naming_another_library_never_imports_it(ws, source, tmp_path, monkeypatch):
    """A store may name any class path in a config: only scikit-learn and chemotools modules
    are imported to read it; anything else is kept as text, score-only."""
    witness = tmp_path / "imported"
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "i21_witness.py").write_text(
        f"open({str(witness)!r}, 'w').close()\nclass Thing:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    conn = sqlite3.connect(source / "legacy" / "store.sqlite")
    for pipeline_id, config in conn.execute(
        "SELECT pipeline_id, expanded_config FROM pipelines WHERE name LIKE 'glucose%'"
    ).fetchall():
        steps = json.loads(config)
        conn.execute(
            "UPDATE pipelines SET expanded_config = ? WHERE pipeline_id = ?",
            (json.dumps(["i21_witness.Thing", *steps]), pipeline_id),
        )
    conn.commit()
    conn.close()
    ws.import_bundle(source / "legacy")
    assert not witness.exists()
    for result in ws.results("fermentation"):
        assert result.row.name.startswith("thing-")
        assert "i21_witness.Thing: n4afs reads scikit-learn and chemotools" in _log(ws, result)
        assert not _has_models(ws, "fermentation", result)
    __import__("i21_witness")  # the module does write its witness when imported
    assert witness.exists()
