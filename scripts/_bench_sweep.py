"""Sweeps shared by scripts/bench_run.py and scripts/bench_peers.py: the data sets, the configs
as an n4afs template and as plain scikit-learn pipelines, the plain loop, the n4afs run.

A `Sweep` is preprocessing positions (each an `_or_` of alternatives) then PLS with a range of
components: the n4afs template and the plain pipelines are built from the same description,
every parameter stated (Savitzky-Golay's `mode` too: chemotools' default is "nearest", the
scipy-like "interp" is said explicitly), and `check_same_operators` proves the plain classes
and parameters are what n4afs's operator registry builds. A config is keyed by the canonical
JSON of its expanded steps, which is what n4afs stores as a result's `config`, so scores are
compared config by config, not by name (two Savitzky-Golay windows share a readable name).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
CV_FOLDS, SEED = 5, 42

# (readable label, n4afs operator, every parameter of the chemotools class)
SNV = ("snv", "snv", {})
MSC = ("msc", "msc", {"method": "mean", "reference": None, "weights": None})


def savgol(window: int, deriv: int = 1, polyorder: int = 2) -> tuple[str, str, dict]:
    params = {"deriv": deriv, "mode": "interp", "polyorder": polyorder, "window_length": window}
    return (f"sg{deriv}w{window}", "savgol", params)


PLS_PARAMS = {"copy": True, "max_iter": 500, "scale": True, "tol": 1e-06}


@dataclass(frozen=True)
class Config:
    key: str  # canonical JSON of the expanded steps (n4afs's result `config`)
    label: str  # readable: snv-sg1w15-pls3
    steps: tuple[tuple[str, dict], ...]  # (n4afs operator, params), the PLS last


@dataclass(frozen=True)
class Sweep:
    """`positions`: per preprocessing step, its alternatives; then PLS `components`."""

    name: str
    positions: tuple[tuple[tuple[str, str, dict], ...], ...]
    components: range

    def template(self) -> list[dict]:
        steps: list[dict] = [
            {"_or_": [op if not params else {op: dict(params)} for _, op, params in alts]}
            for alts in self.positions
        ]
        lo, hi = self.components.start, self.components.stop - 1
        pls = {"n_components": {"_range_": [lo, hi]}, **PLS_PARAMS}
        return [*steps, {"pls": pls}]

    def configs(self) -> list[Config]:
        out = []
        for chain in itertools.product(*self.positions):
            for k in self.components:
                steps = tuple((op, dict(params)) for _, op, params in chain)
                steps += (("pls", {"n_components": k, **PLS_PARAMS}),)
                key = json.dumps([{op: params} for op, params in steps], sort_keys=True)
                label = "-".join([*(lab for lab, _, _ in chain), f"pls{k}"])
                out.append(Config(key, label, steps))
        return out

    def __len__(self) -> int:
        n = len(self.components)
        for alts in self.positions:
            n *= len(alts)
        return n


# The PERF-NOTES reference sweep: SNV | MSC | SG 1st derivative (window 15) x PLS 1..15.
REFERENCE = Sweep("reference", ((SNV, MSC, savgol(15)),), range(1, 16))


# -- data -----------------------------------------------------------------------------------
@dataclass
class Data:
    name: str
    X: np.ndarray
    y: np.ndarray
    sample_ids: list[str]
    add: Callable[[Any], Any]  # adds the data set to a workspace (not timed)
    description: str


def default_ids(n: int) -> list[str]:
    """S0001, S0002, ...: the ids n4afs gives samples that come without any."""
    width = max(4, len(str(n)))
    return [f"S{i + 1:0{width}d}" for i in range(n)]


def fermentation() -> Data:
    from chemotools.datasets import load_fermentation_train

    X_f, y_f = load_fermentation_train()
    return Data(
        "fermentation",
        X_f.to_numpy(dtype=np.float64),
        y_f.to_numpy(dtype=np.float64).ravel(),
        default_ids(len(X_f)),
        lambda ws: ws.add_dataset("chemotools:fermentation"),
        "chemotools fermentation training set (real)",
    )


def synthetic(n: int, p: int) -> Data:
    import sys

    sys.path.insert(0, str(SCRIPTS))
    from make_synthetic_nirs import make

    X_s, y_s, wavelengths = make(n, p, seed=0)
    return Data(
        "synthetic",
        X_s,
        y_s,
        default_ids(len(X_s)),
        lambda ws: ws.add_arrays(
            X_s, y_s, name="synthetic", feature_names=wavelengths, wavelength_unit="nm"
        ),
        "ours, make_synthetic_nirs.make(seed=0)",
    )


# -- the plain scikit-learn loop ------------------------------------------------------------
def plain_classes() -> dict[str, type]:
    """The classes a plain script imports directly for each n4afs operator used here."""
    from chemotools.derivative import SavitzkyGolay
    from chemotools.scatter import MultiplicativeScatterCorrection, StandardNormalVariate
    from sklearn.cross_decomposition import PLSRegression

    return {
        "snv": StandardNormalVariate,
        "msc": MultiplicativeScatterCorrection,
        "savgol": SavitzkyGolay,
        "pls": PLSRegression,
    }


def plain_pipeline(config: Config, classes: dict[str, type]) -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [(f"{op}{i}", classes[op](**params)) for i, (op, params) in enumerate(config.steps)]
    )


def check_same_operators(sweep: Sweep) -> None:
    """Every plain step is the class, with the parameters, n4afs's registry builds."""
    from n4afs_core.pipelines.operators import build, get_operator

    classes = plain_classes()
    seen = set()
    for config in sweep.configs():
        for op, params in config.steps:
            marker = (op, json.dumps(params, sort_keys=True))
            if marker in seen:
                continue
            seen.add(marker)
            plain, n4a = classes[op](**params), build(get_operator(op), dict(params))
            if type(plain) is not type(n4a) or plain.get_params() != n4a.get_params():
                raise SystemExit(f"plain step {plain!r} differs from n4afs' {n4a!r}")


def folds() -> Any:
    from sklearn.model_selection import KFold

    return KFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED)


def rmse(y: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - y_pred) ** 2)))


def plain_memory(
    data: Data, configs: list[Config]
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Per config: `cross_val_predict` on the folds, a final refit, RMSECV (pooled)."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_predict

    classes = plain_classes()
    cv = folds()
    scores, oofs = {}, {}
    for config in configs:
        pipe = plain_pipeline(config, classes)
        oof = np.asarray(cross_val_predict(pipe, data.X, data.y, cv=cv, n_jobs=1)).ravel()
        clone(pipe).fit(data.X, data.y)  # the final refit a plain loop keeps
        scores[config.key] = rmse(data.y, oof)
        oofs[config.key] = oof
    return scores, oofs


# -- n4afs ------------------------------------------------------------------------------------
def n4afs_workspace(path: Path, data: Data) -> tuple[Any, int]:
    """A fresh workspace holding the data set; returns it and the data set's blob bytes."""
    from n4afs.workspace import Workspace

    ws = Workspace(path)
    data.add(ws)
    return ws, ws.blob_stats().stored_bytes


def n4afs_run(ws: Any, data: Data, sweep: Sweep, n_jobs: int) -> Any:
    return ws.run(
        templates=[sweep.template()],
        datasets=[data.name],
        cv=CV_FOLDS,
        name="bench",
        n_jobs=n_jobs,
    )


def n4afs_scores(run: Any) -> dict[str, float]:
    """Scores keyed by the canonical JSON of each result's config."""
    return {json.dumps(r.row.config, sort_keys=True): r.row.score for r in run.results}
