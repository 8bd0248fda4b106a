"""The engine installs under n4afs's own name (`n4afs_core`).

Installed as a top-level `core`, it was shadowed by a user's own `core` package, and
`joblib.load` of a PLS-DA `pipeline.pkl` failed (`No module named 'core.operators'`). These
tests build and install the real wheel, then load every model kind n4afs fits in a fresh
interpreter that has only scikit-learn, chemotools, joblib (with what they need) and n4afs,
run from a folder holding an unrelated `core/` package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import distribution, requires
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT / "tests" / "fixtures" / "legacy-core-pickles"
REGRESSION = ["pls", "ridge", "lasso", "elasticnet", "rf", "svr", "knn"]
CLASSIFICATION = ["plsda", "rf_clf", "svc", "logreg", "knn_clf", "lda"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "n4afs"  # no stale build/ of earlier builds
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("n4afs-*.whl"))


def test_the_wheel_holds_n4afs_and_n4afs_core_and_no_core(wheel):
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"n4afs", "n4afs_core"} <= tops
    assert "core" not in tops


def test_the_wheel_holds_every_module_and_schema_file_of_the_source(wheel):
    """Every subpackage is listed in pyproject: an editable install hides a forgotten one."""
    installed = {
        **{f"n4afs/{p.relative_to(ROOT / 'n4afs')}": p for p in (ROOT / "n4afs").rglob("*.py")},
        **{f"n4afs_core/{p.relative_to(ROOT / 'core')}": p for p in (ROOT / "core").rglob("*.py")},
        **{
            f"n4afs_core/{p.relative_to(ROOT / 'core')}": p
            for p in (ROOT / "core").rglob("schema/*.sql")
        },
    }
    assert set(installed) - set(zipfile.ZipFile(wheel).namelist()) == set()


def _closure(names: list[str]) -> set[str]:
    """The distributions `names` need, by their requirements (no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        for text in requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


@pytest.fixture(scope="module")
def lean_site(wheel, tmp_path_factory) -> Path:
    """A site folder with only scikit-learn, chemotools, joblib (and their needs) and n4afs."""
    site = tmp_path_factory.mktemp("site")
    for name in _closure(["scikit-learn", "chemotools", "joblib"]):
        dist = distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops - {".."}:  # `../../bin/...`: scripts, not packages
            source = Path(dist.locate_file(top))
            importable = top.endswith(".py") or source.is_dir() or source.suffix == ".so"
            if importable and not (site / top).exists():
                (site / top).symlink_to(source)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
        + ["--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> Path:
    """Where the user works: an unrelated `core` package of their own."""
    folder = tmp_path_factory.mktemp("user")
    (folder / "core").mkdir()
    (folder / "core" / "__init__.py").write_text("WHOSE = 'the user'\n", encoding="utf-8")
    (folder / "core" / "operators.py").write_text("raise ImportError('not n4afs')\n")
    return folder


def _fresh_python(site: Path, cwd: Path, code: str, *args: str) -> str:
    """Run `code` in `python -S` that sees only `site` and `cwd`; its standard output."""
    env = {"PYTHONPATH": str(site), "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _load_in_fresh_interpreter(site: Path, cwd: Path, files: dict[str, Path], X: Path) -> dict:
    """joblib.load each file and predict X, in `python -S` seeing only `site` and `cwd`."""
    code = (
        "import json, sys, joblib, numpy as np, core\n"
        "assert core.WHOSE == 'the user'\n"
        "assert not any(m.startswith(('pandas', 'polars', 'duckdb')) for m in sys.modules)\n"
        "X = np.load(sys.argv[1])\n"
        "out = {}\n"
        "for name, path in json.loads(sys.argv[2]).items():\n"
        "    out[name] = [str(v) for v in joblib.load(path).predict(X)]\n"
        "print(json.dumps(out))\n"
    )
    paths = json.dumps({name: str(path) for name, path in files.items()})
    return json.loads(_fresh_python(site, cwd, code, str(X), paths))


def _final_pipeline(tree: Tree, dataset: str, label: str) -> bytes:
    """The bytes every surface serves as the final model's `pipeline.pkl`."""
    models = ("runs", dataset, label, "models")
    (final,) = [name for name in tree.list_dir(models) if name.startswith("final")]
    return bytes(tree.read(tree.lookup((*models, final, "pipeline.pkl"))))


def _fitted(ws: Workspace, dataset: str, models: list[str], out: Path) -> dict[str, Path]:
    """One result per model kind; each final `pipeline.pkl` written to `out` as served."""
    ws.add_dataset(f"chemotools:{dataset}")
    ws.run(templates=[["snv", {"_or_": models}]], datasets=[dataset], cv=2, name=dataset)
    tree, files = Tree(ws), {}
    for result in ws.results(dataset):
        assert result.row.status == "completed", result.row.label
        (name,) = result.config[-1]
        files[name] = out / f"{name}.pkl"
        files[name].write_bytes(_final_pipeline(tree, dataset, result.row.label))
    return files


def test_every_model_kind_loads_in_a_fresh_interpreter_beside_a_user_core(
    tmp_path, lean_site, user_folder
):
    ws = Workspace(tmp_path / "ws")
    files = _fitted(ws, "fermentation", REGRESSION, tmp_path)
    files |= _fitted(ws, "coffee", CLASSIFICATION, tmp_path)
    assert sorted(files) == sorted(REGRESSION + CLASSIFICATION)
    for dataset, kinds in (("fermentation", REGRESSION), ("coffee", CLASSIFICATION)):
        X = tmp_path / f"{dataset}.npy"
        np.save(X, ws.load_dataset(dataset).X[:5])
        loaded = _load_in_fresh_interpreter(lean_site, user_folder, {k: files[k] for k in kinds}, X)
        for kind in kinds:
            expected = ws.results(dataset)  # same model, loaded here by n4afs
            (result,) = [r for r in expected if list(r.config[-1]) == [kind]]
            want = result.load_model("final").predict(np.load(X))
            assert loaded[kind] == [str(v) for v in want], kind


def test_models_pickled_under_the_old_name_still_load(lean_site, user_folder):
    X = LEGACY / "X.npy"
    files = {"pipeline": LEGACY / "plsda-pipeline.pkl"}
    with pytest.raises(AssertionError, match="No module named 'core.operators'|not n4afs"):
        _load_in_fresh_interpreter(lean_site, user_folder, files, X)  # as pickled: old name
    code = "import sys, numpy as np\nfrom n4afs_core import pickles\n"
    code += (
        "m = pickles.load(sys.argv[1])\nprint([str(v) for v in m.predict(np.load(sys.argv[2]))])\n"
    )
    out = _fresh_python(lean_site, user_folder, code, str(files["pipeline"]), str(X))
    expected = np.load(LEGACY / "plsda-predictions.npy")
    assert out.strip() == str([str(v) for v in expected])


def test_a_workspace_holding_old_name_models_serves_files_that_load(
    tmp_path, lean_site, user_folder
):
    """An old workspace's PLS-DA step (pickled by e8c99ff as `core.operators`) is served
    as a `pipeline.pkl` and a step `.pkl` that load in a fresh interpreter beside a user's
    `core`; n4afs's own loading reads it too."""
    import polars as pl

    X = np.load(LEGACY / "X.npy")
    labels = ["arabica", "robusta", "blend"] * 10
    frame = pl.DataFrame({"origin": labels, **{str(1000 + i): X[:, i] for i in range(12)}})
    ws = Workspace(tmp_path / "ws")
    ws.add_dataset(frame, name="beans", targets=["origin"])
    ws.run(templates=[["snv", {"plsda": {"n_components": 2}}]], datasets=["beans"], cv=2)
    (result,) = ws.results("beans")
    old = (LEGACY / "plsda-model-step.pkl").read_bytes()
    old_id = str(ws.store.put(old))
    with ws.index.write() as conn:  # what an index of e8c99ff holds for that step
        conn.execute(
            "INSERT INTO blobs VALUES (?, ?, 'joblib', current_timestamp)", [old_id, len(old)]
        )
        conn.execute(
            "UPDATE artifacts SET blob_id = ?, class_path = 'core.operators.PLSDAClassifier' "
            "WHERE class_path LIKE '%PLSDAClassifier' AND model_id IN "
            "(SELECT model_id FROM models WHERE result_id = ? AND role = 'final')",
            [old_id, result.row.result_id],
        )
    tree = Tree(ws)
    models = ("runs", "beans", result.row.label, "models")
    (final,) = [name for name in tree.list_dir(models) if name.startswith("final")]
    files = {}
    for name in ("pipeline.pkl", "plsda_model.pkl"):
        files[name] = tmp_path / name
        files[name].write_bytes(bytes(tree.read(tree.lookup((*models, final, name)))))
    np.save(tmp_path / "X.npy", X)
    loaded = _load_in_fresh_interpreter(lean_site, user_folder, files, tmp_path / "X.npy")
    expected = [str(v) for v in np.load(LEGACY / "plsda-predictions.npy")]
    assert loaded["pipeline.pkl"] == expected
    served = files["plsda_model.pkl"].read_bytes()
    assert old in served and b"n4afs_core.pickles" in served  # the old bytes, wrapped
    assert old in files["pipeline.pkl"].read_bytes()
    assert ws.results("beans")[0].load_model("final").predict(X).tolist() == expected


def test_public_names_survive_the_move_into_subpackages():
    """The names users and pickles use: `n4afs.N4AFileSystem` is the `n4a://` class, and
    n4afs's own estimator is pickled as `n4afs_core.operators`, its name before the move, so
    models pickled before and after load in either version."""
    import pickle
    import pickletools

    import fsspec
    import n4afs_core.operators
    from n4afs_core.pipelines import operators

    import n4afs

    assert n4afs.N4AFileSystem is fsspec.get_filesystem_class("n4a")
    assert n4afs_core.operators.PLSDAClassifier is operators.PLSDAClassifier
    data = pickle.dumps(operators.PLSDAClassifier(n_components=3))
    names = [arg for op, arg, _ in pickletools.genops(data) if op.name == "SHORT_BINUNICODE"]
    assert "n4afs_core.operators" in names and "n4afs_core.pipelines.operators" not in names
    assert pickle.loads(data).n_components == 3
