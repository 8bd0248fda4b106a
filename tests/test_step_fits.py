"""`fit_step` gives the library's own fitted state: same attributes, same pickle bytes."""

import pickle

import n4afs_core.pipelines.step_fits as step_fits
import numpy as np
import pytest
from chemotools.datasets import load_coffee, load_fermentation_train
from chemotools.scatter import MultiplicativeScatterCorrection
from n4afs_core.pipelines.step_fits import fit_step


def _spectra() -> dict[str, np.ndarray]:
    fermentation, _ = load_fermentation_train()
    coffee, _ = load_coffee()
    rng = np.random.default_rng(7)
    return {
        "fermentation": np.asarray(fermentation, dtype=float),
        "fermentation, one fold's rows": np.asarray(fermentation, dtype=float)[::2],
        "coffee": np.asarray(coffee, dtype=float),
        "negative, with zeros": np.where(rng.random((6, 80)) < 0.1, 0.0, -rng.random((6, 80))),
    }


@pytest.mark.parametrize("name", list(_spectra()))
def test_default_msc_pickles_to_the_bytes_of_the_library_fit(name):
    X = _spectra()[name]
    library = MultiplicativeScatterCorrection().fit(X)
    ours = fit_step(MultiplicativeScatterCorrection(), X, None)
    assert type(ours) is MultiplicativeScatterCorrection
    assert list(vars(ours)) == list(vars(library))  # same attributes, set in the same order
    assert pickle.dumps(ours, protocol=5) == pickle.dumps(library, protocol=5)
    assert np.array_equal(ours.transform(X), library.transform(X))


def test_default_msc_skips_the_diagonal_weight_matrix(monkeypatch):
    """The point of the fast path: no n_features x n_features matrix is built."""
    X = _spectra()["fermentation"]
    built = []
    original = np.diag
    monkeypatch.setattr(np, "diag", lambda v, k=0: built.append(np.shape(v)) or original(v, k))
    fit_step(MultiplicativeScatterCorrection(), X, None)
    assert built == []
    MultiplicativeScatterCorrection().fit(X)
    assert built == [(X.shape[1],)]  # the library builds it: the check above can fail


@pytest.mark.parametrize(
    "params",
    [{"method": "median"}, {"weights": "ones"}, {"reference": "first spectrum"}],
)
def test_other_msc_settings_and_other_steps_are_fitted_by_the_library(params, monkeypatch):
    X = _spectra()["coffee"]
    values = {"ones": np.ones(X.shape[1]), "first spectrum": X[0]}
    step = MultiplicativeScatterCorrection(**{k: values.get(v, v) for k, v in params.items()})
    monkeypatch.setattr(step_fits, "_fit_default_msc", lambda *a: pytest.fail("fast path used"))
    fitted = fit_step(step, X, None)
    expected = MultiplicativeScatterCorrection(**step.get_params()).fit(X)
    assert pickle.dumps(fitted, protocol=5) == pickle.dumps(expected, protocol=5)


def test_invalid_input_gets_the_library_error():
    with pytest.raises(ValueError, match="NaN"):
        fit_step(MultiplicativeScatterCorrection(), np.array([[1.0, np.nan], [2.0, 3.0]]), None)
