"""Inside a fitted PLS model: what a chemometrician reads to trust and defend a calibration.

Pure numpy (and scipy's F, normal distributions) on a fitted scikit-learn pipeline whose last
step is a `PLSRegression` (the steps before it are the preprocessing): regression
coefficients on the preprocessed spectra, VIP scores, and per sample leverage, Hotelling T²
and Q residuals with their usual 95 % limits.

Formulas (X the preprocessed spectra, centred and scaled as the PLS step does; T = X R its
scores, P its X loadings, A components, n calibration samples):

- coefficients: `predict(X) = X_pre · b + b0`, with b = `coef_`ᵀ, b0 = `intercept_ - mean · b`
  (`coef_` already holds the PLS step's scaling).
- VIP_j = sqrt(p · Σ_a SS_a (w_ja / ‖w_a‖)² / Σ_a SS_a), SS_a = q_a² t_aᵀ t_a; Σ_j VIP_j² = p.
- leverage h_i = 1/n + t_i (TᵀT)⁻¹ t_iᵀ (calibration scores T).
- Hotelling T²_i = Σ_a t_ia² / s_a² (s_a² the calibration scores' variance, n - 1); 95 %
  limit A (n - 1) / (n - A) · F(0.95; A, n - A).
- Q_i = ‖x_i - t_i Pᵀ‖² (the squared X residual); 95 % limit by Jackson & Mudholkar (1979)
  from the eigenvalues θ of the calibration residuals' covariance.

A sample above either limit is an outlier. Samples not in the calibration set (a test set)
are projected with the calibration's scores, variance and limits.

Design: docs/DESIGN.md, "Metrics and direction".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class PLSDiagnostics:
    """Coefficients per variable, VIP per variable, and per sample leverage, T², Q."""

    coefficients: np.ndarray  # b, one per variable of the preprocessed spectra
    intercept: float  # b0
    vip: np.ndarray
    n_components: int
    n_calibration: int
    leverage: np.ndarray  # one per sample given to `diagnose`, in that order
    t2: np.ndarray
    q: np.ndarray
    t2_limit: float
    q_limit: float

    @property
    def outliers(self) -> np.ndarray:
        """Samples above the T² or the Q limit."""
        return (self.t2 > self.t2_limit) | (self.q > self.q_limit)


def is_pls_pipeline(pipeline: Any) -> bool:
    """Whether the pipeline's last step is scikit-learn's PLSRegression (or a subclass)."""
    from sklearn.cross_decomposition import PLSRegression

    steps = getattr(pipeline, "steps", None)
    return bool(steps) and isinstance(steps[-1][1], PLSRegression)


def preprocess(pipeline: Any, X: np.ndarray) -> np.ndarray:
    """X through every step of the pipeline but the model."""
    out = np.asarray(X, dtype=float)
    for _, step in pipeline.steps[:-1]:
        out = np.asarray(step.transform(out), dtype=float)
    return out


def coefficients(pls: Any) -> tuple[np.ndarray, float]:
    """(b, b0) with `pls.predict(X) == X · b + b0` for one target."""
    coef = np.asarray(pls.coef_, dtype=float)
    if coef.ndim == 2 and coef.shape[0] == 1:  # scikit-learn >= 1.3: (n_targets, n_features)
        b = coef[0]
    elif coef.ndim == 2 and coef.shape[1] == 1:
        b = coef[:, 0]
    else:
        raise ValueError("PLS diagnostics are for a model of one target")
    b0 = float(np.ravel(pls.intercept_)[0] - np.asarray(pls._x_mean, dtype=float) @ b)
    return b, b0


def vip_scores(pls: Any) -> np.ndarray:
    """Variable importance in projection, one per variable (Wold; Σ VIP² = n variables)."""
    w = np.asarray(pls.x_weights_, dtype=float)  # (p, A)
    t = np.asarray(pls.x_scores_, dtype=float)  # (n, A)
    q = np.asarray(pls.y_loadings_, dtype=float)  # (n_targets, A)
    ss = (q**2).sum(axis=0) * (t**2).sum(axis=0)  # explained y sum of squares per component
    weights = (w / np.linalg.norm(w, axis=0)) ** 2
    return np.sqrt(w.shape[0] * (weights @ ss) / ss.sum())


def _scaled(pls: Any, X: np.ndarray) -> np.ndarray:
    """X centred and scaled as the PLS step centres and scales it."""
    return (X - pls._x_mean) / pls._x_std


def _residual_q(pls: Any, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores, squared X residual per sample) of centred, scaled spectra."""
    t = xs @ pls.x_rotations_
    residual = xs - t @ np.asarray(pls.x_loadings_).T
    return t, (residual**2).sum(axis=1)


def t2_limit(n_components: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The Hotelling T² limit of calibration samples: A (n - 1) / (n - A) · F(A, n - A)."""
    from scipy.stats import f

    a = n_components
    if n <= a:
        return float("nan")
    return float(a * (n - 1) / (n - a) * f.ppf(confidence, a, n - a))


def q_limit(eigenvalues: np.ndarray, confidence: float = CONFIDENCE) -> float:
    """Jackson & Mudholkar's Q limit from the residual covariance's eigenvalues."""
    from scipy.stats import norm

    lam = np.asarray(eigenvalues, dtype=float)
    lam = lam[lam > 0]
    if lam.size == 0:
        return 0.0
    theta1, theta2, theta3 = (float((lam**k).sum()) for k in (1, 2, 3))
    h0 = 1.0 - 2.0 * theta1 * theta3 / (3.0 * theta2**2)
    z = float(norm.ppf(confidence))
    inner = z * np.sqrt(2.0 * theta2 * h0**2) / theta1 + 1.0 + theta2 * h0 * (h0 - 1.0) / theta1**2
    return float(theta1 * inner ** (1.0 / h0))


def diagnose(
    pipeline: Any, X_calibration: np.ndarray, X: np.ndarray | None = None
) -> PLSDiagnostics:
    """The diagnostics of a fitted PLS pipeline, whose model was fitted on `X_calibration`
    (raw spectra: the pipeline's preprocessing is applied here), for the samples of `X`
    (default: the calibration samples themselves)."""
    if not is_pls_pipeline(pipeline):
        raise ValueError("not a pipeline ending in a PLSRegression")
    pls = pipeline.steps[-1][1]
    cal = _scaled(pls, preprocess(pipeline, X_calibration))
    shown = cal if X is None else _scaled(pls, preprocess(pipeline, X))
    n, a = cal.shape[0], int(pls.n_components)
    t_cal, _ = _residual_q(pls, cal)
    t, q = _residual_q(pls, shown)
    variance = t_cal.var(axis=0, ddof=1)
    t2 = ((t**2) / variance).sum(axis=1)
    inverse = np.linalg.pinv(t_cal.T @ t_cal)
    leverage = 1.0 / n + np.einsum("ij,jk,ik->i", t, inverse, t)
    residual = cal - t_cal @ np.asarray(pls.x_loadings_).T
    eigenvalues = np.linalg.svd(residual, compute_uv=False) ** 2 / (n - 1)
    b, b0 = coefficients(pls)
    return PLSDiagnostics(
        coefficients=b,
        intercept=b0,
        vip=vip_scores(pls),
        n_components=a,
        n_calibration=n,
        leverage=leverage,
        t2=t2,
        q=q,
        t2_limit=t2_limit(a, n),
        q_limit=q_limit(eigenvalues),
    )


# -- tables ---------------------------------------------------------------------------------
COEFFICIENT_COLUMNS = ("variable", "wavelength", "coefficient", "vip")
SAMPLE_COLUMNS = (
    "sample_id",
    "partition",
    "leverage",
    "hotelling_t2",
    "q_residual",
    "t2_limit_95",
    "q_limit_95",
    "outlier",
)


def coefficient_rows(
    found: PLSDiagnostics, feature_names: list[str], wavelengths: Any = None
) -> list[tuple]:
    """coefficients.csv: the intercept first, then one row per variable (its name, its
    wavelength when the names are numbers, b_j, VIP_j)."""
    waves = [None] * len(feature_names) if wavelengths is None else [float(w) for w in wavelengths]
    rows: list[tuple] = [("intercept", None, found.intercept, None)]
    rows += [
        (name, wave, float(b), float(v))
        for name, wave, b, v in zip(
            feature_names, waves, found.coefficients, found.vip, strict=True
        )
    ]
    return rows


def sample_rows(found: PLSDiagnostics, sample_ids: list[str], partitions: list[str]) -> list[tuple]:
    """diagnostics.csv: one row per sample diagnosed, in the order given."""
    return [
        (sid, part, float(h), float(t2), float(q), found.t2_limit, found.q_limit, bool(out))
        for sid, part, h, t2, q, out in zip(
            sample_ids,
            partitions,
            found.leverage,
            found.t2,
            found.q,
            found.outliers,
            strict=True,
        )
    ]
