"""Data that should be accepted is accepted, and data that cannot be used is refused in one
line saying why (issue #16): a `file://` blob store, wavelength headers compared as numbers,
one dataset per content whatever its names, datasets without spectra."""

from __future__ import annotations

from n4afs.workspace import Workspace

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
