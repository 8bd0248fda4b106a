"""`--data NAME=path.csv` on a later import of a nirs4all workspace attaches the spectra to the
results imported before without them (checked against nirs4all's dataset hash), once, so that
`predict` works on them; nothing is imported twice.

On the real nirs4all 1.4.10 workspaces of tests/fixtures/nirs4all-1.4.10/.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from n4afs_core.errors import BundleError, N4AError

from tests import nirs4all_fixture

FIXTURES = nirs4all_fixture.FIXTURES
source = nirs4all_fixture.source  # the fixture: a private copy of them
_count = nirs4all_fixture.count

FERMENTATION = FIXTURES / "data" / "fermentation.csv"


def _state(ws) -> tuple:
    return tuple(
        _count(ws, t) for t in ("results", "runs", "imports", "datasets", "models", "predictions")
    ) + (ws.blob_stats().n_blobs,)


def _renamed_target(tmp_path: Path) -> Path:
    """The fermentation CSV with its target column named glucose (nirs4all's hash reads the
    spectra only)."""
    out = tmp_path / "glucose.csv"
    with open(FERMENTATION) as src, open(out, "w", newline="") as dst:
        rows = list(csv.reader(src))
        rows[0][2] = "glucose"
        csv.writer(dst).writerows(rows)
    return out


def _best(ws, dataset: str):
    return ws.results(dataset)[0]


def test_data_given_later_attaches_the_spectra_and_predict_works(ws, source, tmp_path):
    ws.import_bundle(source / "legacy", trust=True)
    before = _state(ws)
    best = _best(ws, "fermentation")
    path = f"runs/fermentation/{best.row.label}"
    with pytest.raises(N4AError, match="--data"):
        ws.predict(path, FERMENTATION, trust=True)
    glucose = _renamed_target(tmp_path)
    summary = ws.import_bundle(source / "legacy", data={"fermentation": str(glucose)})
    assert summary.already_imported and summary.results == []
    assert any("fermentation" in line and "attached" in line for line in summary.attached)
    after = _state(ws)
    assert after[:6] == before[:6]  # no result, run, import, dataset, model or score row more
    assert after[6] == before[6] + 1  # one blob: the spectra
    info = ws.dataset("fermentation")
    assert info.blob_id is not None and (info.n_samples, info.n_features) == (21, 1047)
    assert list(info.target_names) == ["glucose"]
    assert {r.row.target for r in ws.results("fermentation")} == {"glucose"}
    # predict now knows the wavelengths, and scores against the target column
    done = ws.predict(path, glucose, trust=True)
    assert done.target == "glucose" and done.n_scored == 21
    y_pred = done.table["y_pred"].to_numpy()
    assert np.all(np.isfinite(y_pred)) and done.scores["rmse"] > 0


def test_attaching_again_is_nothing_new(ws, source):
    ws.import_bundle(source / "legacy")
    data = {"fermentation": str(FERMENTATION)}
    ws.import_bundle(source / "legacy", data=data)
    before = _state(ws)
    again = ws.import_bundle(source / "legacy", data=data)
    assert again.already_imported and _state(ws) == before
    assert any("already" in line for line in again.attached)


def test_data_given_first_then_omitted_is_already_imported(ws, source):
    ws.import_bundle(source / "legacy", data={"fermentation": str(FERMENTATION)})
    before = _state(ws)
    assert ws.import_bundle(source / "legacy").already_imported
    assert _state(ws) == before


def test_later_data_of_another_dataset_is_refused_and_nothing_changes(ws, source):
    ws.import_bundle(source / "legacy")
    before = _state(ws)
    wrong = {"fermentation": str(FIXTURES / "data" / "fermentation_b.csv")}
    with pytest.raises(BundleError, match="not the ones nirs4all ran on"):
        ws.import_bundle(source / "legacy", data=wrong)
    assert _state(ws) == before and ws.dataset("fermentation").blob_id is None


def test_later_class_names_are_refused_with_what_to_do(ws, source):
    ws.import_bundle(source / "legacy")
    before = _state(ws)
    coffee = {"coffee": str(FIXTURES / "data" / "coffee.csv") + "#target=y"}
    with pytest.raises(BundleError, match=r"class codes .*n4afs rm .*--data"):
        ws.import_bundle(source / "legacy", data=coffee)
    assert _state(ws) == before and ws.dataset("coffee").blob_id is None


def test_dry_run_says_what_would_be_attached(ws, source):
    ws.import_bundle(source / "dagml")
    before = _state(ws)
    summary = ws.import_bundle(
        source / "dagml", data={"fermentation": str(FERMENTATION)}, dry_run=True
    )
    text = "\n".join(summary.dry_run)
    assert "imported before" in text and "fermentation: spectra would be attached" in text
    assert _state(ws) == before


def test_one_call_of_several_datasets_attaches_each_given(ws, source):
    ws.import_bundle(source / "dagml", trust=True)
    ws.import_bundle(source / "dagml", data={"fermentation": str(FERMENTATION)})
    ws.import_bundle(
        source / "dagml", data={"fermentation_b": str(FIXTURES / "data" / "fermentation_b.csv")}
    )
    assert ws.dataset("fermentation").blob_id is not None
    assert ws.dataset("fermentation_b").blob_id is not None
    assert ws.dataset("coffee").blob_id is None
    best = _best(ws, "fermentation_b")
    new = FIXTURES / "data" / "fermentation_b.csv"
    done = ws.predict(f"runs/fermentation_b/{best.row.label}", new, trust=True)
    assert done.n_scored == 21
