import numpy as np
import pytest
from n4afs_core.errors import DatasetError, WorkspaceError

from n4afs.workspace import Workspace
from tests.conftest import write_csv


def test_workspace_is_created_with_index_and_store(tmp_path):
    ws = Workspace(tmp_path / "new")
    assert (tmp_path / "new" / "n4a.duckdb").is_file()
    assert (tmp_path / "new" / "objects").is_dir()
    assert ws.datasets() == []
    # reopening finds the same workspace
    assert Workspace(tmp_path / "new", create=False).datasets() == []


def test_opening_a_missing_workspace_without_create(tmp_path):
    with pytest.raises(WorkspaceError, match="n4afs init"):
        Workspace(tmp_path / "absent", create=False)


def test_default_workspace_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("N4AFS_WORKSPACE", str(tmp_path / "env-ws"))
    assert Workspace().path == tmp_path / "env-ws"


def test_same_dataset_twice_is_stored_once(ws):
    first = ws.add_dataset("chemotools:fermentation")
    stats_before = ws.blob_stats()
    second = ws.add_dataset("chemotools:fermentation")
    assert first.dataset_id == second.dataset_id
    assert len(ws.datasets()) == 1
    assert ws.blob_stats() == stats_before
    assert stats_before.n_blobs == 1 and stats_before.stored_bytes > 0


def test_both_bundled_datasets_are_indexed_with_metadata(ws):
    ws.add_dataset("chemotools:fermentation")
    ws.add_dataset("chemotools:coffee")
    by_name = {d.name: d for d in ws.datasets()}
    assert set(by_name) == {"fermentation", "coffee"}
    ferm = by_name["fermentation"]
    assert (ferm.n_samples, ferm.n_features, ferm.task) == (21, 1047, "regression")
    assert (ferm.wavelength_min, ferm.wavelength_max, ferm.wavelength_unit) == (428, 1833, "cm-1")
    assert ferm.source_path == "chemotools:fermentation"
    assert by_name["coffee"].task == "classification"
    assert ws.blob_stats().n_blobs == 2


def test_dataset_round_trips_through_the_store(ws, tmp_path):
    csv = write_csv(tmp_path / "wheat.csv", "id,protein,1100,1102\nA,12.5,0.1,0.2\nB,13,0.2,0.3\n")
    info = ws.add_dataset(csv)
    assert info.name == "wheat" and len(info.source_sha256) == 64
    loaded = ws.load_dataset("wheat")
    np.testing.assert_array_equal(loaded.X, [[0.1, 0.2], [0.2, 0.3]])
    assert loaded.sample_ids == ["A", "B"]
    assert ws.dataset(info.short_id).dataset_id == info.dataset_id


def test_arrays_and_names(ws):
    rng = np.random.default_rng(0)
    info = ws.add_arrays(rng.normal(size=(10, 5)), rng.normal(size=10), name="synthetic")
    assert (info.n_samples, info.n_features) == (10, 5)
    with pytest.raises(DatasetError, match="no dataset 'nope'.*known: synthetic"):
        ws.dataset("nope")


def test_bad_dataset_leaves_the_workspace_untouched(ws, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", "protein,1100\n1.0,abc\n")
    with pytest.raises(DatasetError):
        ws.add_dataset(bad)
    assert ws.datasets() == []
    assert list(ws.store.iter_ids()) == []
