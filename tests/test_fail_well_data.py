"""Data that should be accepted is accepted, and data that cannot be used is refused in one
line saying why: a `file://` blob store, wavelength headers compared as numbers,
one dataset per content whatever its names, datasets without spectra."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chemotools import datasets as ct
from n4afs_core.data.datasets import WAVELENGTH_RTOL
from n4afs_core.errors import DatasetError

from n4afs.share.prediction import predict_bundle, predict_result
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
    from n4afs_core.maintenance import verify

    assert verify(reopened.index, reopened.store).ok


@pytest.mark.parametrize("spelling", ["absolute", "relative"])
def test_a_plain_folder_path_is_a_local_store_remembered_as_a_file_url(
    tmp_path, monkeypatch, spelling
):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "plain" / "store"
    given = str(store) if spelling == "absolute" else "plain/store"
    ws = Workspace(tmp_path / "ws", store=given)
    ws.run(templates=PLS, datasets=["chemotools:fermentation"], cv=3)
    blob_id = ws.dataset("fermentation").blob_id
    assert (store / "objects" / blob_id[:2] / blob_id).is_file()
    assert "store: " + store.as_uri() in (tmp_path / "ws" / "n4a.yaml").read_text()
    monkeypatch.chdir("/")  # a relative spelling names the folder it named when given
    assert Workspace(tmp_path / "ws", store=store.as_uri()).best("fermentation") is not None


def test_the_cli_takes_a_plain_folder_as_store(tmp_path):
    store = tmp_path / "blobs"
    made = run_cli("init", str(tmp_path / "ws"), "--store", str(store))
    assert made.returncode == 0, made.stderr
    added = run_cli("datasets", "add", "chemotools:fermentation", env_ws=tmp_path / "ws")
    assert added.returncode == 0, added.stderr
    assert any(path.is_file() for path in (store / "objects").rglob("*"))


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


# -- one dataset per content ------------------------------------------------------------------
def wheat_csv(path: Path, headers_as_floats: bool = False) -> Path:
    """A user's CSV of real spectra (fermentation, every 10th wavelength): `glucose,428,...`
    as typed, or `glucose,428.0,...` as pandas writes chemotools' frame."""
    X, y = ct.load_fermentation_train()
    X = X.iloc[:, ::10]
    if not headers_as_floats:
        X = X.rename(columns=lambda c: f"{c:g}")
    return pandas_csv(path, X, y)


def only_dataset_folders(ws: Workspace) -> list[str]:
    return sorted(ws.tree.list_dir(("runs",)))


def test_a_with_data_bundle_imported_into_its_own_workspace_is_the_same_dataset(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.add_dataset(str(wheat_csv(tmp_path / "wheat.csv")))
    ws.run(templates=PLS, datasets=["wheat"], cv=3)
    label = ws.best("wheat").row.label
    ws.export(f"runs/wheat/{label}", tmp_path / "b.zip", level="with-data")

    summary = ws.import_bundle(tmp_path / "b.zip", trust=True)
    (dataset,) = ws.datasets()
    assert only_dataset_folders(ws) == ["wheat"]
    assert len(ws.results("wheat")) == 2  # its own result and the imported one, together
    assert ws.best("wheat").row.dataset_id == dataset.dataset_id
    again = ws.run(templates=[["msc", {"pls": {"n_components": 3}}]], datasets=["wheat"], cv=3)
    assert again.info.status == "completed" and summary.results


def test_a_bundle_named_otherwise_gives_the_dataset_an_alias(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.add_dataset(str(wheat_csv(tmp_path / "wheat.csv")))
    ws.run(templates=PLS, datasets=["wheat"], cv=3)
    ws.export("runs/wheat", tmp_path / "b.zip", level="with-data")
    ws.import_bundle(tmp_path / "b.zip", name="wheat-lab2")
    (dataset,) = ws.datasets()
    assert dataset.names == ("wheat", "wheat-lab2")
    assert ws.dataset("wheat-lab2").dataset_id == dataset.dataset_id


def test_known_content_under_another_name_becomes_an_alias_and_says_so(tmp_path):
    ws = Workspace(tmp_path / "ws")
    first = ws.add_dataset(str(wheat_csv(tmp_path / "wheat.csv")))
    admitted = ws.admit_dataset(str(tmp_path / "wheat.csv"), name="other")
    assert admitted.info.dataset_id == first.dataset_id
    assert admitted.note == (
        f"same content as dataset 'wheat' ({first.short_id}): nothing new stored; "
        "'other' is now another name for it"
    )
    copy = wheat_csv(tmp_path / "copy.csv", headers_as_floats=True)  # 428.0: same content
    assert ws.admit_dataset(str(copy)).info.dataset_id == first.dataset_id
    assert [d.names for d in ws.datasets()] == [("wheat", "other", "copy")]
    run = ws.run(templates=PLS, datasets=["other"], cv=3)
    assert run.info.status == "completed"
    assert ws.best("other").row.label == ws.best("wheat").row.label

    ws.add_dataset("chemotools:fermentation")
    with pytest.raises(DatasetError, match="'fermentation' already names dataset"):
        ws.add_dataset(str(tmp_path / "wheat.csv"), name="fermentation")
    again = ws.admit_dataset(str(tmp_path / "wheat.csv"))
    assert again.note == f"same content as dataset 'wheat' ({first.short_id}): nothing new stored"


def test_cli_datasets_add_says_when_the_content_is_known(tmp_path):
    wheat = wheat_csv(tmp_path / "wheat.csv")
    ws = str(tmp_path / "ws")
    assert run_cli("-w", ws, "datasets", "add", str(wheat)).returncode == 0
    added = run_cli("-w", ws, "datasets", "add", str(wheat), "--name", "other")
    assert added.returncode == 0, added.stderr
    assert "same content as dataset 'wheat'" in added.stdout
    assert "'other' is now another name for it" in added.stdout
    listed = run_cli("-w", ws, "datasets", "list", "--table")
    assert "wheat (also other)" in listed.stdout
    listed = run_cli("-w", ws, "datasets", "list", "--json")
    assert [(d["name"], d["aliases"]) for d in json.loads(listed.stdout)] == [("wheat", ["other"])]


# -- datasets without spectra ----------------------------------------------------------------
@pytest.fixture
def data_less(tmp_path):
    """A workspace holding a result imported from a bundle without its data (`wheat`)."""
    origin = Workspace(tmp_path / "origin")
    wheat = wheat_csv(tmp_path / "wheat.csv")
    origin.add_dataset(str(wheat))
    origin.run(templates=PLS, datasets=["wheat"], cv=3)
    origin.export("runs/wheat", tmp_path / "nodata.zip")
    ws = Workspace(tmp_path / "ws")
    ws.import_bundle(tmp_path / "nodata.zip", trust=True)
    return ws, wheat


def test_a_run_on_a_dataset_without_spectra_says_how_to_attach_them(data_less, tmp_path):
    ws, wheat = data_less
    runs_before = ws.runs()
    with pytest.raises(DatasetError) as refused:
        ws.run(templates=PLS, datasets=["wheat"], cv=3)
    message = str(refused.value)
    assert "dataset 'wheat'" in message and "was imported without its spectra" in message
    assert "`n4afs datasets add FILE --name wheat`" in message and str(wheat) in message
    assert ws.runs() == runs_before  # nothing planned
    cli = run_cli("-w", str(ws.path), "run", str(template_file(tmp_path)), "-d", "wheat")
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1
    assert "without its spectra" in cli.stderr and "Traceback" not in cli.stderr


def template_file(tmp_path: Path) -> Path:
    path = tmp_path / "pls.yaml"
    path.write_text("steps:\n  - snv\n  - pls: {n_components: 2}\n")
    return path


def test_adding_the_source_file_attaches_the_spectra(data_less, tmp_path):
    ws, wheat = data_less
    (before,) = ws.datasets()
    admitted = ws.admit_dataset(str(wheat), name="wheat")
    assert admitted.note == (
        f"spectra attached to dataset 'wheat' ({before.short_id}), which was imported without them"
    )
    (after,) = ws.datasets()
    assert after.dataset_id == before.dataset_id and after.blob_id is not None
    run = ws.run(templates=[["msc", {"pls": {"n_components": 3}}]], datasets=["wheat"], cv=3)
    assert run.info.status == "completed" and len(ws.results("wheat")) == 2


def test_other_spectra_named_as_a_dataset_without_spectra_are_refused(data_less, tmp_path):
    ws, _ = data_less
    X, y = ct.load_fermentation_train()
    other = pandas_csv(tmp_path / "other.csv", X.iloc[:, ::5], y)
    with pytest.raises(DatasetError, match="has no spectra, and these are not its own"):
        ws.add_dataset(str(other), name="wheat")
    assert [d.blob_id for d in ws.datasets()] == [None]


def test_bundled_spectra_attach_to_their_data_less_dataset(tmp_path):
    origin = Workspace(tmp_path / "origin")
    origin.run(templates=PLS, datasets=["chemotools:fermentation"], cv=3)
    origin.export("runs/fermentation", tmp_path / "nodata.zip")
    ws = Workspace(tmp_path / "ws")
    ws.import_bundle(tmp_path / "nodata.zip")
    with pytest.raises(DatasetError, match="FILE being chemotools:fermentation"):
        ws.load_dataset("fermentation")
    ws.add_dataset("chemotools:fermentation")
    (dataset,) = ws.datasets()
    assert ws.load_dataset("fermentation").n_samples == 21 == dataset.n_samples
