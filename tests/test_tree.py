"""The tree contract on a real run: sizes, determinism, views, ranking, pipelines, interop."""

import csv
import io
import os

import fsspec
import joblib
import numpy as np
import pytest
import yaml
from n4afs_core.index.names import InvalidName
from n4afs_core.metrics.scores import METRICS
from n4afs_core.pipelines.templates import load_template

from n4afs.surfaces.fs import N4AFileSystem
from n4afs.tree.content import FilesListing, directory, file_node
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.conftest import best_csvs

REGRESSION = [
    {"_or_": ["snv", {"savgol": {"deriv": 1, "window_length": 11, "polyorder": 2}}]},
    {"pls": {"n_components": {"_or_": [2, 4, 40]}}},  # 40 components fail on 16 samples
]
CLASSIFICATION = [{"_or_": ["snv", "msc"]}, {"_or_": ["lda", {"plsda": {"n_components": 3}}]}]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("tree") / "ws")
    ws.run(
        templates=[REGRESSION],
        datasets=["chemotools:fermentation"],
        cv=4,
        test_size=0.2,
        name="glucose",
    )
    ws.run(templates=[CLASSIFICATION], datasets=["chemotools:coffee"], cv=3, name="origin")
    return ws


def walk(tree, path=()):
    for name, node in tree.list_dir(path).items():
        if node.is_dir:
            yield from walk(tree, (*path, name))
        else:
            yield (*path, name), node


def test_every_file_reads_exactly_its_stat_size_and_twice_the_same(ws):
    first, second = Tree(ws), Tree(ws)  # separate memos: the second renders anew
    files = dict(walk(first))
    assert len(files) > 300
    for path, node in files.items():
        data = first.read(node)
        assert len(data) == node.size, path
        again = second.lookup(path)
        assert again.size == node.size and second.read(again) == data, path
        if node.size > 10:
            assert first.read(node, 3, 5) == data[3:8]


def test_ranged_reads_of_a_composed_pipeline_pkl_equal_slices_of_the_whole(ws):
    """pipeline.pkl is glue + blobs: every range, inside a blob or across a seam, must
    equal the same slice of the whole file."""
    tree = Tree(ws)
    path, node = next((p, n) for p, n in walk(tree) if p[-1] == "pipeline.pkl")
    whole = bytes(tree.read(node))
    seams = [0]
    for segment in node.content.segments:
        seams.append(seams[-1] + (segment.size if hasattr(segment, "blob_id") else len(segment)))
    assert seams[-1] == node.size == len(whole) and len(seams) >= 4, path
    rng = np.random.default_rng(0)
    cuts = {(a, b) for s in seams for a, b in ((s - 3, s + 3), (s, s + 1), (s - 1, s))}
    cuts |= {tuple(sorted(rng.integers(0, node.size, 2))) for _ in range(50)}
    for lo, hi in sorted(cuts):
        lo, hi = max(lo, 0), min(hi, node.size)
        assert bytes(tree.read(node, lo, hi - lo)) == whole[lo:hi], (lo, hi)
    assert tree.read(node, node.size, 10) == b""


def test_top_level_layout_and_readme(ws):
    tree = Tree(ws)
    assert list(tree.list_dir(())) == ["README.txt", "runs", "by-run", "best", "datasets"]
    assert b"runs/<dataset>/" in tree.read(tree.lookup(("README.txt",)))
    assert set(tree.list_dir(("runs",))) == {"fermentation", "coffee"}
    assert set(tree.list_dir(("best",))) == {
        "fermentation.csv",
        "fermentation.xlsx",
        "fermentation.parquet",
        "coffee.csv",
        "coffee.xlsx",
        "coffee.parquet",
    }
    assert set(tree.list_dir(("datasets", "coffee"))) == {
        "DATASET.yaml",
        "spectra.csv",
        "targets.csv",
    }


def read_csv(tree, path):
    return list(csv.DictReader(io.StringIO(tree.read(tree.lookup(path)).decode("utf-8"))))


@pytest.mark.parametrize("dataset", ["fermentation", "coffee"])
def test_results_csv_follows_the_metric_direction_and_one_best(ws, dataset):
    tree = Tree(ws)
    rows = read_csv(tree, ("runs", dataset, "RESULTS.csv"))
    (metric,) = {r["metric"] for r in rows}
    assert {r["direction"] for r in rows} == {METRICS[metric].direction}
    completed = [r for r in rows if r["status"] == "completed"]
    values = [float(r["score"]) for r in completed]
    higher = METRICS[metric].direction == "higher"
    assert values == sorted(values, reverse=higher)
    assert [r["status"] for r in rows] == sorted([r["status"] for r in rows])  # failed last
    best_files = sorted(n for n in tree.list_dir(("runs", dataset)) if n.startswith("best_"))
    label = ws.best(dataset).row.label
    forms = [f"best_{label}.{suffix}" for suffix in ("csv", "parquet", "xlsx")]
    assert best_files == forms  # one best, three forms
    assert label == completed[0]["result"]
    best = tree.read(tree.lookup(("runs", dataset, best_files[0])))
    assert best == tree.read(tree.lookup(("best", f"{dataset}.csv")))


def test_best_csv_is_one_row_per_sample_excel_style(ws):
    tree = Tree(ws)
    raw = tree.read(tree.lookup(("best", "fermentation.csv")))
    assert raw.startswith(b"sample_id,y_true,y_pred,residual,partition,fold\r\n")
    rows = read_csv(tree, ("best", "fermentation.csv"))
    assert len(rows) == 21 and len({r["sample_id"] for r in rows}) == 21
    assert {r["partition"] for r in rows} == {"val", "test"}
    for r in rows:
        assert float(r["residual"]) == pytest.approx(float(r["y_pred"]) - float(r["y_true"]))


def test_same_result_under_runs_and_by_run_with_no_extra_blob(ws):
    tree = Tree(ws)
    before = ws.blob_stats()
    (run_dir,) = [n for n in tree.list_dir(("by-run",)) if "glucose" in n]
    names = list(tree.list_dir(("by-run", run_dir, "fermentation")))
    labels = [n for n in names if n[:4].isdigit()]  # beside them: the run's RESULTS, charts/
    assert len(labels) == 6
    for label in labels:
        a = {p: tree.read(n) for p, n in walk(tree, ("runs", "fermentation", label))}
        b = {p[4:]: tree.read(n) for p, n in walk(tree, ("by-run", run_dir, "fermentation", label))}
        assert {p[3:]: v for p, v in a.items()} == b
    assert ws.blob_stats() == before
    assert set(tree.list_dir(("by-run", run_dir))) >= {"RUN.yaml", "templates", "fermentation"}
    run_yaml = yaml.safe_load(tree.read(tree.lookup(("by-run", run_dir, "RUN.yaml"))))
    assert run_yaml["status"] == "partial" and run_yaml["failed"] == 2


def test_a_result_folder_is_built_once_for_both_views(ws, monkeypatch):
    """runs/ and by-run/ show the same folder: a cold walk must not build it twice (built:
    not read from a stored result folder, which earlier tests stored)."""
    tree = Tree(ws, stored_renders=False)
    built = []
    original = tree.files.result_dir
    monkeypatch.setattr(
        tree.files, "result_dir", lambda v, r, rest: built.append(rest) or original(v, r, rest)
    )
    (run_dir,) = [n for n in tree.list_dir(("by-run",)) if "glucose" in n]
    label = next(iter(tree.list_dir(("by-run", run_dir, "fermentation"))))
    for inside in [(), ("models",), ("predictions",)]:
        a = tree.list_dir(("runs", "fermentation", label, *inside))
        b = tree.list_dir(("by-run", run_dir, "fermentation", label, *inside))
        assert a is b and a
    assert built == [(), ("models",), ("predictions",)]


def test_failed_result_shows_its_traceback(ws):
    tree = Tree(ws)
    failed = [n for n in tree.list_dir(("runs", "fermentation")) if "pls40" in n]
    assert len(failed) == 2
    listing = tree.list_dir(("runs", "fermentation", failed[0]))
    assert set(listing) == {"pipeline.yaml", "logs"}
    log = tree.read(tree.lookup(("runs", "fermentation", failed[0], "logs", "error.log")))
    assert b"Traceback" in log


def test_result_folder_contents(ws):
    tree = Tree(ws)
    label = ws.best("fermentation").row.label
    base = ("runs", "fermentation", label)
    assert set(tree.list_dir(base)) == {
        "pipeline.yaml",
        "scores.yaml",
        "predictions",
        "charts",
        "models",
        "logs",
        "diagnostics",  # a PLS model: coefficients, VIP, leverage, T², Q
        "REPORT.html",
    }
    assert set(tree.list_dir((*base, "predictions"))) == {
        "cv.csv",
        "train.csv",
        "test.csv",
        "avg.csv",
        "w_avg.csv",
        "cv.xlsx",
        "train.xlsx",
        "test.xlsx",
        "avg.xlsx",
        "w_avg.xlsx",
        "fold_0.csv",
        "fold_1.csv",
        "fold_2.csv",
        "fold_3.csv",
        "predictions.parquet",
    }
    charts = tree.list_dir((*base, "charts"))
    assert set(charts) == {
        "predictions_scatter.png",
        "residuals.png",
        "spectra.png",
        "y_distribution.png",
        "folds.png",
        "coefficients.png",
        "t2_q.png",
    }
    assert all(tree.read(n)[:8] == b"\x89PNG\r\n\x1a\n" for n in charts.values())
    coffee = ws.best("coffee").row.label
    assert "confusion_matrix.png" in tree.list_dir(("runs", "coffee", coffee, "charts"))
    models = tree.list_dir((*base, "models"))
    assert len(models) == 5 and sum(n.startswith("final_") for n in models) == 1
    scores = yaml.safe_load(tree.read(tree.lookup((*base, "scores.yaml"))))
    assert scores["metric"] == "rmse" and scores["direction"] == "lower"
    assert scores["score"] == pytest.approx(scores["models"]["cv"]["val"]["rmse"])


def test_pipeline_pkl_predicts_like_load_model_and_step_files_load(ws):
    tree = Tree(ws)
    best = ws.best("fermentation")
    base = ("runs", "fermentation", best.row.label, "models")
    final_dir = next(n for n in tree.list_dir(base) if n.startswith("final_"))
    files = tree.list_dir((*base, final_dir))
    pipeline = joblib.load(io.BytesIO(tree.read(files["pipeline.pkl"])))
    X = ws.load_dataset("fermentation").X
    np.testing.assert_array_equal(pipeline.predict(X), best.load_model("final").predict(X))
    assert "pls_model.pkl" in files
    model = joblib.load(tree.real_path(files["pls_model.pkl"]))
    assert type(model).__name__ == "PLSRegression"
    manifest = yaml.safe_load(tree.read(files["MANIFEST.yaml"]))
    assert manifest["role"] == "final" and "scikit-learn" in manifest["versions"]
    stored = sum(s["size"] for s in manifest["steps"])
    assert files["pipeline.pkl"].size < stored + 300  # the steps' bytes plus a little glue


def test_pipeline_yaml_reruns_to_the_same_scores(ws, tmp_path):
    tree = Tree(ws)
    best = ws.best("fermentation")
    text = tree.read(tree.lookup(("runs", "fermentation", best.row.label, "pipeline.yaml")))
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(text)
    assert load_template(path).expand()[0].hash == best.row.config_hash
    rerun = Workspace(tmp_path / "ws2").run(
        templates=[path], datasets=["chemotools:fermentation"], cv=4, test_size=0.2, name="re"
    )
    (again,) = rerun.results
    assert again.row.score == pytest.approx(best.row.score, rel=1e-12)
    assert again.row.label == f"0001_{best.row.name}_{best.row.hash6}"


def test_new_results_appear_without_a_new_tree(ws, tmp_path):
    local = Workspace(tmp_path / "fresh")
    local.run(
        templates=[[{"pls": {"n_components": 1}}]],
        datasets=["chemotools:fermentation"],
        name="weak",
    )
    tree = Tree(local)
    fs = N4AFileSystem(workspace=local.path)
    # DATASET.yaml; RESULTS, best: csv + xlsx + parquet; REPORT.html, charts/; the result
    assert len(fs.ls("/runs/fermentation", detail=False)) == 10
    old_best = tree.lookup(("best", "fermentation.csv"))
    old_name = best_csvs(tree.list_dir(("runs", "fermentation")))[0]
    better = [
        {"savgol": {"deriv": 1, "window_length": 15, "polyorder": 2}},
        {"pls": {"n_components": 4}},
    ]
    local.run(templates=[better], datasets=["fermentation"], name="better")
    listing = fs.ls("/runs/fermentation", detail=False)
    assert len(listing) == 11
    new_name = best_csvs(tree.list_dir(("runs", "fermentation")))[0]
    assert old_name == "best_0001_pls1_" + old_name.split("_")[-1]
    assert new_name.startswith("best_0002_sg1-pls4_")
    new_best = tree.lookup(("best", "fermentation.csv"))
    assert tree.read(new_best) != tree.read(old_best)
    assert tree.refreshes == 2


# -- fsspec ---------------------------------------------------------------------------------
def test_fsspec_info_matches_listing_and_reads(ws):
    fs = N4AFileSystem(workspace=ws.path)
    for entry in fs.ls("/runs/fermentation", detail=True):
        info = fs.info(entry["name"])
        assert info == entry
        if info["type"] == "file":
            assert len(fs.cat_file(entry["name"])) == info["size"]
            assert fs.cat_file(entry["name"], 2, 9) == fs.cat_file(entry["name"])[2:9]
    assert fs.modified("/runs/fermentation/RESULTS.csv").year >= 2026
    with pytest.raises(FileNotFoundError):
        fs.info("/runs/nope")
    with pytest.raises(PermissionError):
        fs.open("/runs/fermentation/new.csv", "wb")
    with pytest.raises(PermissionError):
        fs.rm("/runs/fermentation/RESULTS.csv")


def test_find_lists_every_file_without_rendering(ws):
    fs = N4AFileSystem(workspace=ws.path)
    tree = fs._tree(str(ws.path.resolve()))
    rendered = tree.memo.renders
    found = fs.find("/")
    assert len(found) == len(list(walk(Tree(ws))))
    assert tree.memo.renders == rendered


def walk_kinds(tree, path=()):
    """Every directory path, as a listing-only walk (readdir, `find`) sees the tree."""
    yield path
    for name, is_dir in tree.list_kinds(path):
        if is_dir:
            yield from walk_kinds(tree, (*path, name))


def test_listing_names_match_the_built_nodes_in_every_folder(ws):
    """`list_kinds` answers from names alone; the nodes built later must say the same."""
    names_only, full = Tree(ws), Tree(ws)
    folders = list(walk_kinds(names_only))
    assert len(folders) > 100
    for path in folders:
        built = [(name, node.is_dir) for name, node in full.list_dir(path).items()]
        assert list(names_only.list_kinds(path)) == built, path
        assert list(names_only.list_dir(path)) == [name for name, _ in built], path


@pytest.mark.parametrize("stored", [False, True], ids=["built", "stored-folders"])
def test_a_listing_walk_builds_no_file_node_inside_result_folders(ws, stored):
    """A cold `find` lists every folder of every result and stats none of their files:
    the folders of files (models/<id>/, predictions/, charts/, logs/) stay unbuilt, built
    from the index or read from a stored result folder (`test_stored_result_folders`)."""
    if stored:  # a first look at a file of each result folder stores it
        storing = Tree(ws)
        for folder in walk_kinds(storing):
            if len(folder) == 3 and folder[0] == "runs" and folder[2][:4].isdigit():
                storing.lookup((*folder, "pipeline.yaml"))
    tree = Tree(ws, stored_renders=stored)
    folders = list(walk_kinds(tree))
    generation = tree._current()
    listings = [generation.dirs[path] for path in folders]
    files_only = [entries for entries in listings if isinstance(entries, FilesListing)]
    inside_results = [p for p in folders[1:] if p[-1] in ("predictions", "charts", "logs")]
    assert len(files_only) >= len(inside_results) > 20
    assert not any(entries.is_built for entries in files_only)
    read_stored = [f for f in generation.folders._items.values() if f is not None]
    assert bool(read_stored) == stored
    path = next(p for p in folders[1:] if p[-1] == "predictions")
    assert tree.lookup((*path, "cv.csv")).size > 0  # a lookup builds that folder's nodes
    assert generation.dirs[path].is_built
    assert ("runs", "fermentation", "RESULTS.csv") in tree.mutable_paths(generation)
    # one folder (shown under runs/ and by-run/) is built; the refresh bookkeeping built none
    assert len({id(entries) for entries in files_only if entries.is_built}) == 1


def test_a_files_listing_whose_nodes_disagree_with_its_names_is_an_error():
    listing = FilesListing(("a.csv", "b.csv"), lambda: {"a.csv": file_node("a.csv", 0.0, None)})
    assert list(listing) == ["a.csv", "b.csv"] and "b.csv" in listing
    assert listing.get("c.csv") is None and not listing.is_built  # not listed: not built
    with pytest.raises(RuntimeError, match="built as"):
        listing.get("a.csv")
    folder = FilesListing(("logs",), lambda: {"logs": directory("logs", 0.0)})
    with pytest.raises(RuntimeError, match="holds a folder"):
        folder.get("logs")


def test_pandas_pyarrow_duckdb_and_polars_read_n4a_urls(ws):
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.csv as pacsv
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    url = f"n4a://{os.path.abspath(ws.path)}/runs/fermentation/RESULTS.csv"
    frame = pd.read_csv(url)
    assert len(frame) == 6 and frame["rank"].tolist() == list(range(1, 7))
    fs = fsspec.filesystem("n4a")
    path = f"{os.path.abspath(ws.path)}/best/coffee.csv"
    with PyFileSystem(FSSpecHandler(fs)).open_input_stream(path) as stream:
        assert pacsv.read_csv(stream).num_rows == 60
    conn = duckdb.connect()
    conn.register_filesystem(fs)
    assert conn.execute(f"SELECT count(*) FROM read_csv('n4a://{path}')").fetchall() == [(60,)]
    with fs.open(path) as handle:
        assert pl.read_csv(handle).height == 60


def test_hostile_dataset_names_stay_single_components(tmp_path):
    local = Workspace(tmp_path / "hostile")
    rng = np.random.default_rng(1)
    for name in ["../../etc", "a/b", "CON", "x\u0301y", "wheat", "WHEAT"]:
        local.add_arrays(rng.normal(size=(10, 6)), rng.normal(size=10), name=name)
    with pytest.raises(InvalidName, match="control characters"):  # refused at the index
        local.add_arrays(rng.normal(size=(10, 6)), rng.normal(size=10), name="x\x00y")
    names = list(Tree(local).list_dir(("datasets",)))
    assert len(names) == 6 and len({n.lower() for n in names}) == 6
    for name in names:
        assert "/" not in name and "\x00" not in name and name not in (".", "..")
    assert "wheat" in names


def test_a_refresh_adopts_loaded_rows_and_reads_only_new_results(tmp_path, monkeypatch):
    """Model and score rows of a visible result never change: a new snapshot keeps the
    ones already loaded and reads the rest for the new results only (one page)."""
    from n4afs.tree import snapshot as snapshot_module

    ws = Workspace(tmp_path / "ws")
    template = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": 2}}]
    ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=3, name="first")
    tree = Tree(ws)
    first = {p: n for p, n in walk(tree) if "models" in p}  # loads every row once
    asked: list = []
    real = snapshot_module._model_rows
    monkeypatch.setattr(
        snapshot_module,
        "_model_rows",
        lambda conn, page: asked.append(page) or real(conn, page),
    )
    second = ws.run(
        templates=[["detrend", {"pls": {"n_components": 3}}]],
        datasets=["fermentation"],
        cv=3,
        name="second",
    )
    again = {p: n for p, n in walk(tree) if "models" in p}
    seqs = sorted(r.row.seq for r in second.results)
    assert asked == [(second.results[0].row.dataset_id, seqs[0], seqs[-1])]
    assert set(first) < set(again)
    fresh = {p: n for p, n in walk(Tree(ws)) if "models" in p}
    assert {p: n.size for p, n in again.items()} == {p: n.size for p, n in fresh.items()}
