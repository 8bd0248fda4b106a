"""Make the nirs4all 1.4.10 fixtures of tests/test_import_nirs4all.py with real nirs4all.

    python scripts/make_nirs4all_fixtures.py [--venv /tmp/n4all-venv] [--out DIR]

Creates (once) a throw-away virtual environment OUTSIDE the repository with
`nirs4all==1.4.10 chemotools==0.5.0` (~1 GB, a few minutes; PyPI must be reachable), then runs
this same file inside it (`--inner`), which runs nirs4all on small real spectra (chemotools'
fermentation for regression, coffee for classification, each with a test set) with both
engines and writes, to tests/fixtures/nirs4all-1.4.10/:

    dagml/        a workspace of the default engine (dag-ml): two calls, one on two datasets
    legacy/       a workspace of engine="legacy": regression and PLS-DA classification
    dagml.n4a     RunResult.export() after a dag-ml run
    legacy.n4a    RunResult.export() after a legacy run
    chain.n4a     WorkspaceStore.export_chain() from the dag-ml workspace (cold export)
    data/*.csv    the datasets as n4afs reads them (`--data NAME=path.csv`), rows in
                  nirs4all's order (train rows, then test rows)
    FIXTURES.json what nirs4all itself said: pipelines per workspace, best config per
                  dataset, dataset hashes (the tests compare n4afs's import with it)

The n4afs repository never imports nirs4all; CI uses the committed output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "fixtures" / "nirs4all-1.4.10"
PACKAGES = ["nirs4all==1.4.10", "chemotools==0.5.0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default="/tmp/n4all-venv", help="throw-away venv (made once)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument(
        "--only-edge",
        action="store_true",
        help="(re)make only edge/ and edge_dagml/ (the cases n4afs imports score-only or "
        "converts specially), leaving the other fixtures as they are",
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        if args.only_edge:
            make_edge_fixtures(Path(args.out))
        else:
            make_fixtures(Path(args.out))
        return
    venv = Path(args.venv)
    if REPO in venv.resolve().parents:
        sys.exit("the nirs4all venv must live outside the repository")
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    env = {**os.environ, "PYTHONHASHSEED": "0", "NIRS4ALL_WORKSPACE": str(Path(args.out))}
    inner = [str(python), __file__, "--inner", "--out", args.out]
    subprocess.run(inner + (["--only-edge"] if args.only_edge else []), check=True, env=env)


# -- inside the nirs4all venv ---------------------------------------------------------------
def _datasets():
    import numpy as np
    from chemotools.datasets import load_coffee, load_fermentation_train

    X, y = load_fermentation_train()
    wavelengths = [float(c) for c in X.columns]
    X, y = X.to_numpy(float), y.to_numpy(float)[:, 0]
    positions = np.arange(len(X))
    regression = {}
    for name, remainder in (("fermentation", 2), ("fermentation_b", 0)):
        test = positions % 4 == remainder
        regression[name] = (X[~test], y[~test], X[test], y[test])
    xc, yc = load_coffee()
    coffee_wl = [float(c) for c in xc.columns]
    xc, labels = xc.to_numpy(float), yc.iloc[:, 0].astype(str).to_numpy()
    test = np.arange(len(xc)) % 4 == 1
    classes = sorted(set(labels))
    codes = np.array([classes.index(v) for v in labels], dtype=float)  # nirs4all encodes 0..k-1
    coffee = (xc[~test], codes[~test], xc[test], codes[test], labels[~test], labels[test])
    return regression, wavelengths, coffee, coffee_wl


def _spec(name, parts):
    x_tr, ytr, x_te, yte = parts[:4]
    return {"name": name, "train_x": x_tr, "train_y": ytr, "test_x": x_te, "test_y": yte}


def _write_csv(path: Path, wavelengths, parts, labels=None) -> None:
    """One CSV per dataset, nirs4all's row order (train, then test), a `set` column."""
    import numpy as np

    x_tr, ytr, x_te, yte = parts[:4]
    X = np.vstack([x_tr, x_te])
    y = list(labels[0]) + list(labels[1]) if labels is not None else list(ytr) + list(yte)
    sets = ["train"] * len(x_tr) + ["test"] * len(x_te)
    with open(path, "w") as out:
        out.write(",".join(["sample_id", "set", "y", *[f"{w:g}" for w in wavelengths]]) + "\n")
        for i, (row, target, part) in enumerate(zip(X, y, sets, strict=True)):
            cells = [f"s{i}", part, str(target), *[repr(float(v)) for v in row]]
            out.write(",".join(cells) + "\n")


def _best(ws: Path) -> dict:
    """nirs4all's own best pipeline per dataset: the one it refit (RMSECV / pooled
    out-of-fold winner; its `final` prediction rows), with its stored final test scores."""
    import sqlite3

    conn = sqlite3.connect(f"file:{ws / 'store.sqlite'}?mode=ro", uri=True)
    rows = conn.execute(
        "SELECT DISTINCT p.dataset_name, p.name FROM predictions pr "
        "JOIN pipelines p ON p.pipeline_id = pr.pipeline_id WHERE pr.fold_id = 'final'"
    ).fetchall()
    count = conn.execute("SELECT count(*) FROM pipelines WHERE name NOT LIKE '%_refit'").fetchone()
    hashes = dict(conn.execute("SELECT DISTINCT dataset_name, dataset_hash FROM pipelines"))
    conn.close()
    best = {dataset: name.removesuffix("_refit") for dataset, name in rows}
    return {"pipelines": count[0], "best": best, "dataset_hashes": hashes}


def make_fixtures(out: Path) -> None:
    import nirs4all
    from nirs4all.operators.models import PLSDA
    from nirs4all.operators.transforms import MultiplicativeScatterCorrection as Msc
    from nirs4all.operators.transforms import SavitzkyGolay
    from nirs4all.operators.transforms import StandardNormalVariate as Snv
    from nirs4all.pipeline.storage.workspace_store import WorkspaceStore
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import KFold, StratifiedKFold

    readme = out / "README.md"
    kept = readme.read_bytes() if readme.exists() else None  # written by hand: kept
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    if kept is not None:
        readme.write_bytes(kept)
    regression, wavelengths, coffee, coffee_wl = _datasets()
    for name, parts in regression.items():
        _write_csv(out / "data" / f"{name}.csv", wavelengths, parts)
    _write_csv(out / "data" / "coffee.csv", coffee_wl, coffee, labels=coffee[4:])
    options = {"verbose": 0, "random_state": 0, "save_charts": False}
    pls = {"model": PLSRegression(), "_range_": [2, 4], "param": "n_components"}

    # default engine: a regression call on two datasets, a classification call
    dagml = out / "dagml"
    reg = [{"_or_": [Snv(), Msc()]}, KFold(n_splits=3), pls]
    result = nirs4all.run(
        reg,
        [_spec(n, p) for n, p in regression.items()],
        name="glucose",
        workspace_path=str(dagml),
        **options,
    )
    result.export(str(out / "dagml.n4a"))
    cls = [Snv(), StratifiedKFold(n_splits=3), {"model": LinearDiscriminantAnalysis()}]
    nirs4all.run(cls, _spec("coffee", coffee), name="origin", workspace_path=str(dagml), **options)

    # legacy engine: SG + PLS regression, PLS-DA classification
    legacy = out / "legacy"
    sg = SavitzkyGolay(window_length=11, polyorder=2, deriv=1)
    reg = [{"_or_": [sg, Msc()]}, KFold(n_splits=3), pls]
    result = nirs4all.run(
        reg,
        _spec("fermentation", regression["fermentation"]),
        name="glucose",
        workspace_path=str(legacy),
        engine="legacy",
        **options,
    )
    result.export(str(out / "legacy.n4a"))
    plsda = {"model": PLSDA(), "_range_": [2, 3], "param": "n_components"}
    cls = [Snv(), StratifiedKFold(n_splits=3), plsda]
    nirs4all.run(
        cls,
        _spec("coffee", coffee),
        name="origin",
        workspace_path=str(legacy),
        engine="legacy",
        **options,
    )

    # a cold export of the dag-ml workspace's one refit chain
    store = WorkspaceStore(dagml)
    chain_id = store._conn.execute(  # noqa: SLF001 - nirs4all offers no listing of chains
        "SELECT chain_id FROM chains WHERE fold_strategy = 'refit_only' LIMIT 1"
    ).fetchone()[0]
    store.export_chain(chain_id, out / "chain.n4a")
    store.close()

    for ws in (dagml, legacy):  # checkpoint: the fixture is one file, no -wal to carry
        import sqlite3

        conn = sqlite3.connect(ws / "store.sqlite")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    facts = {
        "nirs4all": nirs4all.__version__,
        "workspaces": {"dagml": _best(dagml), "legacy": _best(legacy)},
    }
    (out / "FIXTURES.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    for ws in (dagml, legacy):
        (ws / "store.sqlite-shm").unlink(missing_ok=True)  # rebuilt by SQLite; the -wal stays
    make_edge_fixtures(out)


def _checkpoint(ws: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(ws / "store.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    (ws / "store.sqlite-shm").unlink(missing_ok=True)


def make_edge_fixtures(out: Path) -> None:
    """edge/ (legacy engine) and edge_dagml/ (default engine): one config per call, so nirs4all
    keeps each one's fitted files (legacy writes those of configs that improved its running
    best only): an operator n4afs does not know (nirs4all's Gaussian), Savitzky-Golay with
    delta 2 (first derivative: not expressible by chemotools' SG; smoothing: delta has no
    effect), a y transform (MinMaxScaler on y), binary PLS-DA (two coffee origins). On
    fermentation_thin and coffee_binary (every 4th / 8th wavelength, two of the three
    origins), so their fitted files stay small."""
    import nirs4all
    import numpy as np
    from nirs4all.operators.models import PLSDA
    from nirs4all.operators.transforms import Gaussian, SavitzkyGolay
    from nirs4all.operators.transforms import StandardNormalVariate as Snv
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.preprocessing import MinMaxScaler

    for folder in ("edge", "edge_dagml"):
        shutil.rmtree(out / folder, ignore_errors=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    # every 4th (8th) wavelength: the fitted files stay small (the fixtures a few MB)
    regression, wavelengths, coffee, coffee_wl = _datasets()
    thin = tuple(a[:, ::4] if a.ndim == 2 else a for a in regression["fermentation"])
    _write_csv(out / "data" / "fermentation_thin.csv", wavelengths[::4], thin)
    ferm = _spec("fermentation_thin", thin)
    two = np.isin(coffee[1], (0.0, 1.0)), np.isin(coffee[3], (0.0, 1.0))
    binary = (
        coffee[0][two[0]][:, ::8],
        coffee[1][two[0]],
        coffee[2][two[1]][:, ::8],
        coffee[3][two[1]],
        coffee[4][two[0]],
        coffee[5][two[1]],
    )
    _write_csv(out / "data" / "coffee_binary.csv", coffee_wl[::8], binary, labels=binary[4:])
    options = {"verbose": 0, "random_state": 0, "save_charts": False}
    legacy = {"workspace_path": str(out / "edge"), "engine": "legacy", **options}
    pls3 = {"model": PLSRegression(n_components=3)}
    calls = {
        "gauss": [Gaussian(), KFold(n_splits=3), pls3],
        "sgdelta1": [SavitzkyGolay(11, 2, deriv=1, delta=2.0), KFold(n_splits=3), pls3],
        "sgdelta0": [SavitzkyGolay(11, 2, deriv=0, delta=2.0), KFold(n_splits=3), pls3],
        "yminmax": [Snv(), {"y_processing": MinMaxScaler()}, KFold(n_splits=3), pls3],
    }
    for name, steps in calls.items():
        nirs4all.run(steps, ferm, name=name, **legacy)
    binary_steps = [Snv(), StratifiedKFold(n_splits=3), {"model": PLSDA(n_components=2)}]
    nirs4all.run(binary_steps, _spec("coffee_binary", binary), name="binary", **legacy)
    yproc = [Snv(), {"y_processing": MinMaxScaler()}, KFold(n_splits=3), pls3]
    nirs4all.run(yproc, ferm, name="yminmax", workspace_path=str(out / "edge_dagml"), **options)
    facts_path = out / "FIXTURES.json"
    facts = json.loads(facts_path.read_text()) if facts_path.exists() else {"workspaces": {}}
    for folder in ("edge", "edge_dagml"):
        facts["workspaces"][folder] = _best(out / folder)
        _checkpoint(out / folder)
    facts_path.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
