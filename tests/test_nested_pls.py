import pickle

import numpy as np
import pytest
from n4afs_core.data.datasets import load_chemotools
from n4afs_core.pipelines.nested_pls import fit_nested, is_plain_pls, small_pinv
from sklearn.cross_decomposition import PLSRegression
from sklearn.utils.validation import check_is_fitted


@pytest.fixture(scope="module")
def fermentation():
    s = load_chemotools("chemotools:fermentation")
    return s.X, s.target()


def test_every_sliced_model_predicts_like_a_direct_fit(fermentation):
    X, y = fermentation
    models = fit_nested(PLSRegression(), X, y, range(1, 16))
    assert sorted(models) == list(range(1, 16))
    for k, model in models.items():
        direct = PLSRegression(n_components=k).fit(X, y)
        assert type(model) is PLSRegression and model.n_components == k
        assert model.get_params() == direct.get_params()
        check_is_fitted(model)
        np.testing.assert_allclose(model.predict(X), direct.predict(X), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(model.coef_, direct.coef_, rtol=1e-8, atol=1e-12)
        assert model.x_rotations_.shape == direct.x_rotations_.shape


def test_sliced_models_stand_alone_after_pickling(fermentation):
    X, y = fermentation
    models = fit_nested(PLSRegression(scale=False), X, y, [3, 7])
    back = pickle.loads(pickle.dumps(models[3]))
    np.testing.assert_allclose(back.predict(X), PLSRegression(3, scale=False).fit(X, y).predict(X))
    # slicing the smaller model did not alter the larger one
    np.testing.assert_allclose(
        models[7].predict(X), PLSRegression(7, scale=False).fit(X, y).predict(X)
    )


def test_only_plain_pls_is_nested():
    class MyPLS(PLSRegression):
        pass

    assert is_plain_pls(PLSRegression())
    assert not is_plain_pls(MyPLS())


def test_small_pinv_gives_scipys_bits(fermentation):
    """The derived models must pickle to the bytes the scipy path gave (dedup across
    versions): same values, bit for bit, on the matrices a sweep inverts and on others."""
    from scipy.linalg import pinv

    X, y = fermentation
    full = PLSRegression(n_components=15).fit(X, y)
    rng = np.random.default_rng(0)
    matrices = [full.x_loadings_[:, :k].T @ full.x_weights_[:, :k] for k in range(1, 16)]
    matrices += [full.y_loadings_[:, :k].T @ full.y_weights_[:, :k] for k in range(1, 16)]
    matrices += [rng.normal(size=shape) for shape in [(1, 1), (3, 3), (5, 2), (2, 7)]]
    matrices += [np.outer(rng.normal(size=4), rng.normal(size=4)), np.zeros((3, 3))]
    for a in matrices:
        assert small_pinv(a).tobytes() == pinv(a, check_finite=False).tobytes()
    # other dtypes go to scipy itself
    a32 = rng.normal(size=(3, 3)).astype(np.float32)
    assert np.array_equal(small_pinv(a32), pinv(a32, check_finite=False))


def test_a_derived_model_shares_its_scores_as_a_direct_fit_does(fermentation):
    """sklearn's fit sets x_scores_ to the very array _x_scores is (y too): a derived model
    holds them once as well, so it pickles to a direct fit's size, not ~30 % more."""
    X, y = fermentation
    models = fit_nested(PLSRegression(), X, y, [4, 12])
    direct = PLSRegression(n_components=4).fit(X, y)
    assert direct.x_scores_ is direct._x_scores and direct.y_scores_ is direct._y_scores
    derived = models[4]
    assert derived.x_scores_ is derived._x_scores and derived.y_scores_ is derived._y_scores
    assert len(pickle.dumps(derived, protocol=5)) == len(pickle.dumps(direct, protocol=5))
    back = pickle.loads(pickle.dumps(derived, protocol=5))
    assert back.x_scores_ is back._x_scores
    np.testing.assert_array_equal(back.x_scores_, models[12].x_scores_[:, :4])
    np.testing.assert_array_equal(back.predict(X), derived.predict(X))
