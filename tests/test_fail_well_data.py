"""Data that should be accepted is accepted, and data that cannot be used is refused in one
line saying why (issue #16): a `file://` blob store, wavelength headers compared as numbers,
one dataset per content whatever its names, datasets without spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chemotools import datasets as ct

from core.datasets import WAVELENGTH_RTOL
from core.errors import DatasetError
from n4afs.prediction import predict_bundle, predict_result
from n4afs.workspace import Workspace
from tests.test_cli import run_cli

PLS = [["snv", {"pls": {"n_components": 2}}]]


# -- a file:// store ----------------------------------------------------------------------
def test_a_run_into_a_file_url_store_creates_its_folders(tmp_path):
    store = tmp_path / "nested" / "store"
    ws = Workspace(tmp_path / "ws", store=f"file://{store}")
    run = ws.run(templates=PLS, datasets=["chemotools:fermentation"], cv=3)
    assert run.info.status == "completed"
    blob_id = ws.dataset("fermentation").blob_id
    assert (store / "objects" / blob_id[:2] / blob_id).is_file()
    assert not (tmp_path / "ws" / "objects").exists()  # the blobs live at the URL only
    reopened = Workspace(tmp_path / "ws")  # the URL is remembered
    assert reopened.best("fermentation").load_model("final") is not None
    from core.maintenance import verify

    assert verify(reopened.index, reopened.store).ok


# -- wavelengths matched as numbers --------------------------------------------------------
@pytest.fixture(scope="module")
def fermentation(tmp_path_factory):
    """A workspace with one model of chemotools' fermentation spectra, exported too."""
    base = tmp_path_factory.mktemp("fermentation")
    ws = Workspace(base / "ws")
    ws.run(templates=PLS, datasets=["chemotools:fermentation"], cv=3)
    path = f"runs/fermentation/{ws.best('fermentation').row.label}"
    ws.export(path, base / "model.zip", level="minimal")
    return ws, path, base / "model.zip"


def pandas_csv(path: Path, X, y=None, columns=None) -> Path:
    """What pandas writes from chemotools' own frames: float headers (`428.0`)."""
    frame = X if columns is None else X[columns]
    if y is not None:
        frame = pd.concat([y.reset_index(drop=True), frame.reset_index(drop=True)], axis=1)
    frame.to_csv(path, index=False)
    return path


def test_predict_matches_pandas_float_headers_in_any_order_and_scores_the_target(
    fermentation, tmp_path
):
    ws, path, bundle = fermentation
    X, y = ct.load_fermentation_train()  # written by pandas: float headers
    shuffled = list(np.random.default_rng(0).permutation(X.columns))
    new = pandas_csv(tmp_path / "new.csv", X, y, shuffled)
    assert new.read_text().split(",", 7)[6] != "428.0"  # really another order
    assert "428.0" in new.read_text().splitlines()[0].split(",")

    expected = ws.best("fermentation").load_model("final").predict(X.to_numpy()).ravel()
    for done in (
        predict_result(ws, tuple(path.split("/")), new),
        predict_bundle(bundle, new, trust=True),
    ):
        table = done.table
        assert table.columns == ["sample_id", "y_true", "y_pred", "residual"]
        np.testing.assert_allclose(table["y_pred"].to_numpy(), expected, rtol=1e-12)
        np.testing.assert_array_equal(table["y_true"].to_numpy(), y["glucose"].to_numpy())
        residual = expected - y["glucose"].to_numpy()
        np.testing.assert_allclose(table["residual"].to_numpy(), residual, rtol=1e-9)
        assert done.target == "glucose" and done.n_scored == len(X)
        assert done.scores["rmse"] == pytest.approx(np.sqrt(np.mean(residual**2)))


def test_predict_without_the_target_column_gives_predictions_only(fermentation, tmp_path):
    ws, path, _ = fermentation
    X, _ = ct.load_fermentation_train()
    done = predict_result(ws, tuple(path.split("/")), pandas_csv(tmp_path / "x.csv", X))
    assert done.table.columns == ["sample_id", "y_pred"] and done.scores is None


def test_a_reference_cell_left_empty_is_predicted_not_scored(fermentation, tmp_path):
    ws, path, _ = fermentation
    X, y = ct.load_fermentation_train()
    y = y.copy()
    y.iloc[3, 0] = np.nan
    done = predict_result(ws, tuple(path.split("/")), pandas_csv(tmp_path / "n.csv", X, y))
    assert done.n_scored == 20 and done.table["y_true"].null_count() == 1
    assert done.table["residual"].null_count() == 1 and done.table.height == 21


def test_wavelengths_match_within_the_stated_tolerance(fermentation, tmp_path):
    ws, path, _ = fermentation
    X, _ = ct.load_fermentation_train()
    assert WAVELENGTH_RTOL == 1e-6
    close = X.rename(columns={428.0: 428.0 * (1 + 0.5e-6)})
    done = predict_result(ws, tuple(path.split("/")), pandas_csv(tmp_path / "c.csv", close))
    assert done.table.height == 21
    far = X.rename(columns={428.0: 428.01})
    with pytest.raises(DatasetError, match="first difference: the model's 428 is missing"):
        predict_result(ws, tuple(path.split("/")), pandas_csv(tmp_path / "f.csv", far))


def test_a_differing_grid_is_refused_in_one_line_saying_how(fermentation, tmp_path):
    ws, path, bundle = fermentation
    X, _ = ct.load_fermentation_train()
    coarse = pandas_csv(tmp_path / "coarse.csv", X, columns=list(X.columns[::2]))
    with pytest.raises(DatasetError) as refused:
        predict_bundle(bundle, coarse, trust=True)
    message = str(refused.value)
    assert "\n" not in message
    assert "524 columns 428-1833 here, 1047 columns 428-1833 in the model" in message
    assert "first difference: the model's 429 is missing" in message
    assert "523 missing, 0 unexpected" in message
    extra = X.copy()
    extra[5000.0] = 0.1
    with pytest.raises(DatasetError, match="first difference: 5000 is not one of the model's"):
        predict_bundle(bundle, pandas_csv(tmp_path / "extra.csv", extra), trust=True)


def test_cli_predict_prints_the_scores_apart_from_the_csv(fermentation, tmp_path):
    ws, path, bundle = fermentation
    X, y = ct.load_fermentation_train()
    new = pandas_csv(tmp_path / "new.csv", X, y)
    done = run_cli("-w", str(ws.path), "predict", path, str(new))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "sample_id,y_true,y_pred,residual"
    assert len(done.stdout.splitlines()) == 22
    assert "scores against glucose (21 of 21 samples have a value): rmse" in done.stderr
    bad = pandas_csv(tmp_path / "bad.csv", X, columns=list(X.columns[:-1]))
    refused = run_cli("predict", str(bundle), str(bad), "--trust")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "the model's 1833 is missing" in refused.stderr


# -- one column per wavelength ---------------------------------------------------------------
@pytest.mark.parametrize("header", ["428,428", "428,428.0"])
def test_a_repeated_wavelength_header_is_refused(ws, tmp_path, header):
    path = tmp_path / "twice.csv"
    path.write_text(f"protein,{header},430\n1.5,0.1,0.2,0.3\n2.5,0.2,0.3,0.4\n")
    with pytest.raises(DatasetError, match="'428'.*(appears twice|same wavelength)"):
        ws.add_dataset(str(path))
    with pytest.raises(DatasetError, match="'428'.*(appears twice|same wavelength)"):
        ws.add_arrays(np.ones((2, 2)), [1.0, 2.0], "arrays", feature_names=header.split(","))
    assert ws.datasets() == []


@pytest.mark.parametrize("again", ["428.0", "428"])
def test_a_repeated_wavelength_header_is_refused_for_prediction(fermentation, tmp_path, again):
    """pandas writes `428.0`; the same column again, as text or as number, is refused."""
    ws, path, _ = fermentation
    X, _ = ct.load_fermentation_train()
    twice = pandas_csv(tmp_path / "twice.csv", X)
    header, *rows = twice.read_text().splitlines()
    lines = [f"{header},{again}", *(f"{row},{row.split(',', 1)[0]}" for row in rows)]
    twice.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"'428(\.0)?'.*(appears twice|same wavelength)"):
        predict_result(ws, tuple(path.split("/")), twice)
