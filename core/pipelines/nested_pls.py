"""One PLS fit for every number of components.

PLS components are computed one after the other (NIPALS deflation), so the first k
components of a PLSRegression(15) fit are exactly those of a PLSRegression(k) fit. A sweep
over `n_components` 1..15 therefore needs one fit per fold, not fifteen: `fit_nested` fits
the largest model once and derives each smaller one by slicing the weights and loadings and
recomputing rotations and coefficients with scikit-learn's own formulas. Each derived model
is a genuine `PLSRegression(n_components=k)` — same class, same params, same attributes —
that predicts what a direct fit would (to ~1e-13), and it pickles on its own.

Design: docs/DESIGN.md, "Scale-out".
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

_SLICED_BY_COMPONENT = (
    "x_weights_",
    "y_weights_",
    "x_loadings_",
    "y_loadings_",
    "_x_scores",
    "_y_scores",
    "x_scores_",
    "y_scores_",
)


def is_plain_pls(estimator: Any) -> bool:
    """Only scikit-learn's PLSRegression itself: subclasses may fit differently."""
    from sklearn.cross_decomposition import PLSRegression

    return type(estimator) is PLSRegression


def fit_nested(template: Any, X: np.ndarray, y: np.ndarray, ks: Iterable[int]) -> dict[int, Any]:
    """Fit `template` once with max(ks) components; return a fitted model per k."""
    from sklearn.base import clone

    ks = sorted(set(ks))
    full = clone(template).set_params(n_components=ks[-1]).fit(X, y)
    return {k: full if k == ks[-1] else truncate(full, k) for k in ks}


def truncate(full: Any, k: int) -> Any:
    """A PLSRegression(k) built from the first k components of a larger fit.

    Attributes that do not depend on k (means, scales, params) are shared with `full`, as
    `intercept_` and `_y_mean` already are within one sklearn fit: fitted models are never
    modified in place, and each pickles on its own to the same bytes as a private copy.
    Arrays sklearn's fit shares between two attributes (`x_scores_` is `_x_scores`, `y_scores_`
    is `_y_scores`) are shared here too: the pickle holds them once, as a direct fit's does
    (sliced apart, they were ~25 % of a 1000 x 1000 sweep's 4.1 GB of fold models).
    """
    model = copy.copy(full)  # a new estimator whose attribute dict is a shallow copy
    model.n_components = k
    sliced: dict[int, np.ndarray] = {}  # id(full's array) -> its first k columns
    for name in _SLICED_BY_COMPONENT:
        if hasattr(full, name):
            # an array `full` holds under two names (sklearn's fit sets x_scores_ to the
            # very array _x_scores is) stays one array: pickled once, as a direct fit is
            value = getattr(full, name)
            if id(value) not in sliced:
                sliced[id(value)] = np.ascontiguousarray(value[:, :k])
            setattr(model, name, sliced[id(value)])
    model.n_iter_ = list(full.n_iter_[:k])
    # the same formulas as PLSRegression.fit, applied to the first k components
    x_inner = small_pinv(model.x_loadings_.T @ model.x_weights_)
    y_inner = small_pinv(model.y_loadings_.T @ model.y_weights_)
    model.x_rotations_ = model.x_weights_ @ x_inner
    model.y_rotations_ = model.y_weights_ @ y_inner
    coef = model.x_rotations_ @ model.y_loadings_.T
    model.coef_ = np.ascontiguousarray((coef * model._y_std).T / model._x_std)
    model.intercept_ = model._y_mean
    model._n_features_out = k
    return model


_GESDD: dict[tuple[int, int], tuple[Any, int]] = {}  # shape -> (LAPACK gesdd, its lwork)


def small_pinv(a: np.ndarray) -> np.ndarray:
    """`scipy.linalg.pinv(a, check_finite=False)` bit for bit, without its per-call overhead.

    A sweep derives ~250 models, two tiny (k x k) pseudo-inverses each; for those scipy's
    decorators, argument checks and workspace query cost ~0.1 ms a call, far more than the
    SVD. This calls the same LAPACK routine (gesdd) with the same workspace size and applies
    scipy's rank cut-off, so the bytes of every derived model stay those of the scipy path
    (tests/test_nested_pls.py compares them). Anything unusual goes to scipy itself.
    """
    from scipy.linalg import pinv

    if a.dtype != np.float64 or a.ndim != 2 or 0 in a.shape:
        return pinv(a, check_finite=False)
    gesdd, lwork = _GESDD.get(a.shape) or _gesdd_for(a)
    u, s, vh, info = gesdd(a, compute_uv=True, lwork=lwork, full_matrices=False, overwrite_a=False)
    if info != 0:
        return pinv(a, check_finite=False)  # raises scipy's own error
    cutoff = np.max(s, initial=0.0) * (max(a.shape) * np.finfo(np.float64).eps)
    rank = np.sum(s > cutoff)
    u = u[:, :rank]
    u /= s[:rank]
    return (u @ vh[:rank]).conj().T


def _gesdd_for(a: np.ndarray) -> tuple[Any, int]:
    """The gesdd routine and workspace size scipy.linalg.svd would pick for `a`'s shape."""
    from scipy.linalg import get_lapack_funcs
    from scipy.linalg.lapack import _compute_lwork

    gesdd, gesdd_lwork = get_lapack_funcs(("gesdd", "gesdd_lwork"), (a,), ilp64="preferred")
    lwork = _compute_lwork(
        gesdd_lwork, a.shape[0], a.shape[1], compute_uv=True, full_matrices=False
    )
    _GESDD[a.shape] = (gesdd, lwork)
    return gesdd, lwork


def predict_plain_pls(model: Any, X: np.ndarray) -> np.ndarray:
    """`PLSRegression.predict(X)`, same arithmetic, without its input validation.

    On small data sets the validation (dtype, finiteness, dataframe checks) costs ~0.3 ms a
    call, several times the product itself, and a sweep predicts ~500 times. `X` must be a
    float64 array the caller owns (it is centered in place); anything else, or a non-finite
    value, goes through `model.predict`, which raises what it always raised.
    """
    if not _plain_input(model, X):
        return model.predict(X)
    X -= model._x_mean
    return _from_centered(model, X)


def _plain_input(model: Any, X: np.ndarray) -> bool:
    return (
        X.dtype == np.float64
        and X.ndim == 2
        and X.shape[1] == model.n_features_in_
        and bool(np.isfinite(X).all())
    )


def _from_centered(model: Any, centered: np.ndarray) -> np.ndarray:
    y_pred = centered @ model.coef_.T + model.intercept_
    return y_pred.ravel() if model._predict_1d else y_pred


class CenteredRows:
    """`predict_plain_pls` for the models of one nested fit: rows centered once, not per k.

    The models `fit_nested` derives share the full fit's `_x_mean` (the same array), so
    `X[rows] - _x_mean` is the same for each of them; only the product with each model's
    `coef_` differs. On a 1000 x 1000 set the copy, finiteness check and centering of a
    fold's rows cost ~1 ms, 25 times per fold for PLS 1..25, where the product costs ~0.2 ms.
    One centered copy is held per partition (the last X and mean seen): the same floats
    as `predict_plain_pls` gives each model on its own.
    """

    def __init__(self) -> None:
        self._held: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self.centerings = 0  # how many times rows were copied and centered (tests count)

    def predict(self, model: Any, X: np.ndarray, rows: np.ndarray, partition: str) -> np.ndarray:
        held = self._held.get(partition)
        if held is None or held[0] is not X or held[1] is not model._x_mean:
            part = X[rows]
            centered = None
            if _plain_input(model, part):
                part -= model._x_mean
                centered = part
                self.centerings += 1
            held = self._held[partition] = (X, model._x_mean, centered)
        if held[2] is None or held[2].shape[1] != model.n_features_in_:
            return model.predict(X[rows])
        return _from_centered(model, held[2])
