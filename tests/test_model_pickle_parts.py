"""Fitted models are stored from the pickler's parts (frames and the arrays' own memory),
without joining them first, and each fold's models are stored while the next fold fits:
the same bytes as `pickle.dumps`, and still nothing published before the group's batch
syncs, nothing indexed before that."""

import hashlib
import io
import os
import pickle

import joblib
import n4afs_core.store.blobstore as blobstore
import numpy as np
import pytest
from n4afs_core.pipelines.persist import _joblib_bytes

from tests import test_blobstore
from tests.cli_process import kill_when_marked


@pytest.fixture(scope="module")
def fitted():
    """Real fitted steps: arrays of a PLS on fermentation (1047 wavelengths, 10 components:
    ~84 KB an array, above the pickler's 64 KiB frame target, so they come as buffers)."""
    from chemotools.datasets import load_fermentation_train
    from chemotools.scatter import MultiplicativeScatterCorrection
    from sklearn.cross_decomposition import PLSRegression

    X, y = load_fermentation_train()
    X, y = X.to_numpy(dtype=np.float64), y.to_numpy(dtype=np.float64).ravel()
    msc = MultiplicativeScatterCorrection().fit(X)
    return [msc, PLSRegression(n_components=10).fit(msc.transform(X), y)]


# a fresh local blob store per test
store = test_blobstore.store


def test_pickle_parts_are_the_bytes_pickle_dumps_gives(fitted):
    for step in fitted:
        pickled = _joblib_bytes(step)
        expected = pickle.dumps(step, protocol=5)
        assert b"".join(pickled.parts) == expected and pickled.size == len(expected)
    # the PLS's large arrays came as views of their memory, not copied into frames
    pls = _joblib_bytes(fitted[1])
    # x_weights_, x_loadings_, x_rotations_ (1047 x 10)
    assert sum(part.nbytes >= 1047 * 10 * 8 for part in pls.parts) >= 3


def test_a_model_stored_from_parts_loads_with_joblib_and_pickle(fitted, store):
    pls = fitted[1]
    with store.batch():
        blob_id = store.put_parts(_joblib_bytes(pls).parts)
    data = pickle.dumps(pls, protocol=5)
    assert blob_id == hashlib.sha256(data).hexdigest()
    assert store.read(blob_id) == data
    for loaded in (joblib.load(store.path_of(blob_id)), pickle.loads(store.read(blob_id))):
        np.testing.assert_array_equal(loaded.coef_, pls.coef_)
        np.testing.assert_array_equal(loaded.x_loadings_, pls.x_loadings_)
        X = np.ones((2, 1047))
        np.testing.assert_array_equal(loaded.predict(X), pls.predict(X))


def test_parts_are_published_only_when_the_batch_ends_and_stored_once(fitted, store):
    parts = _joblib_bytes(fitted[1]).parts
    with store.batch():
        first = store.put_parts(parts)
        assert store.put_parts(parts) == first and store.put(b"".join(parts)) == first
        assert list(store.objects_dir.rglob("*/*")) == []  # nothing under a real name yet
    assert [p.name for p in store.objects_dir.rglob("*/*")] == [first]
    assert store.temporaries() == []


def test_short_writev_calls_still_write_every_byte(store, monkeypatch):
    """The kernel may write fewer bytes than asked, and accepts only so many parts a call."""
    real = os.writev
    calls = []

    def stingy(fd, buffers):
        calls.append(len(buffers))
        assert len(buffers) <= 3
        return real(fd, [memoryview(buffers[0])[:5]])  # at most 5 bytes a call

    monkeypatch.setattr(os, "writev", stingy)
    monkeypatch.setattr(blobstore, "_IOV_MAX", 3)
    parts = [b"abcdefgh", memoryview(np.arange(7, dtype=np.float64)), b"", b"xyz", b"0123456789"]
    joined = b"".join(bytes(memoryview(p).cast("B")) for p in parts)
    blob_id = store.put_parts(parts)
    assert store.read(blob_id) == joined and len(calls) > len(parts)


KILLED_MID_GROUP = r"""
import sys, time
import n4afs_core.pipelines.persist as persist
import n4afs_core.pipelines.runner as runner
from n4afs.workspace import Workspace

real = persist.store_fitted
calls = []

def store_fitted(store, models, stored):
    real(store, models, stored)
    calls.append(1)
    if len(calls) == 3:  # three folds of the first group written, not yet published
        open(sys.argv[2], "w").write("written")
        time.sleep(120)  # killed here

runner.store_fitted = store_fitted
ws = Workspace(sys.argv[1])
ws.run(templates=[SWEEP], datasets=["fermentation"], cv=5, name="killed")
"""

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 10]}}}]


def test_a_run_killed_while_a_group_stores_its_folds_leaves_nothing_indexed_or_published(
    tmp_path,
):
    from n4afs.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ws.add_dataset("chemotools:fermentation")
    before = {p.name for p in ws.store.objects_dir.rglob("*/*")}
    marker = tmp_path / "marker"
    script = f"SWEEP = {SWEEP!r}\n" + KILLED_MID_GROUP
    kill_when_marked(script, [str(ws.path), str(marker)], marker)

    # the folds' pickles were written, as temporaries only: no object appeared, no row
    assert len(ws.store.temporaries()) > 0
    assert {p.name for p in ws.store.objects_dir.rglob("*/*")} == before
    (run_row,) = ws.runs()
    assert run_row.n_results == 0 and run_row.n_pending == 20
    assert ws.verify().ok

    resumed = ws.resume(run_row.run_id)
    assert resumed.status == "completed" and len(resumed.results) == 20
    reference = Workspace(tmp_path / "ref").run(
        templates=[SWEEP], datasets=["chemotools:fermentation"], cv=5, name="reference"
    )
    scores = sorted((r.name, r.row.score) for r in resumed.results)
    expected = sorted((r.name, r.row.score) for r in reference.results)
    assert [n for n, _ in scores] == [n for n, _ in expected]
    np.testing.assert_allclose([s for _, s in scores], [s for _, s in expected], rtol=1e-12)
    report = ws.verify()
    assert report.ok and report.missing == [] and report.corrupt == []
    pickles = [p.read_bytes() for p in ws.store.objects_dir.rglob("*/*")]
    pickles = [data for data in pickles if data[:2] == b"\x80\x05"]
    assert len(pickles) > 20 * 6  # a PLS per config and fold (5 + final), and the prefixes
    for data in pickles:  # each the pickle of what it loads to
        assert pickle.dumps(pickle.load(io.BytesIO(data)), protocol=5) == data
