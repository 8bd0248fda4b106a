"""Replicate scans and groups (issue #18): the scans of one physical sample stay together
in every split of a run, predictions are averaged per group beside the per-scan ones, and
prediction CSVs carry the dataset's metadata columns.

Data: examples/fermentation_multi.csv (real chemotools fermentation spectra, 34 samples
scanned 3 times each under `sample_no`, an `operator` column) and chemotools' real coffee
spectra with a group column added. Every fold assignment is read back from the stored
predictions as the tree shows them, never from the splitter.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from n4afs_core.errors import RunError

from tests.cli_process import cli
from tests.conftest import best_csvs
from tests.tree_reading import header, listing, read, rows

REPO = Path(__file__).resolve().parents[1]
MULTI = REPO / "examples" / "fermentation_multi.csv"
TEMPLATE = [{"snv": {}}, {"pls": {"n_components": 3}}]


def file_columns() -> dict[str, dict[str, str]]:
    """sample_id -> the file's sample_no and operator, read from the CSV itself."""
    with MULTI.open(encoding="utf-8") as f:
        table = csv.DictReader(f)
        return {r["sample_id"]: {k: r[k] for k in ("sample_no", "operator")} for r in table}


def result_folder(ws, where: str) -> str:
    (label,) = [n for n in listing(ws, where) if n[:4].isdigit()]
    return f"{where}/{label}"


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """One run on the replicate file: 5 group folds and a group-aware test split."""
    from n4afs.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("groups") / "ws")
    ws.add_dataset(str(MULTI), name="ferm3")
    run = ws.run([TEMPLATE], ["ferm3"], cv=5, test_size=0.2, name="grouped")
    assert run.status == "completed"
    return ws, run, result_folder(ws, "runs/ferm3/glucose")


def _fold_files(ws, folder: str) -> list[str]:
    names = listing(ws, f"{folder}/predictions")
    return [n for n in names if n.startswith("fold_")]


def test_replicate_scans_never_split_across_folds_on_every_fold(grouped):
    ws, _, folder = grouped
    group_of = {s: c["sample_no"] for s, c in file_columns().items()}
    folds = _fold_files(ws, folder)
    assert len(folds) == 5
    val_fold_of_group: dict[str, set[str]] = {}
    for name in folds:
        table = rows(read(ws, f"{folder}/predictions/{name}"))
        train = {group_of[r["sample_id"]] for r in table if r["partition"] == "train"}
        val = {group_of[r["sample_id"]] for r in table if r["partition"] == "val"}
        assert train and val
        assert not train & val, f"{name}: samples in both its training and validation scans"
        for g in val:
            val_fold_of_group.setdefault(g, set()).add(name)
    assert all(len(f) == 1 for f in val_fold_of_group.values())
    # the pooled out-of-fold table says the same: one fold per group, 3 scans each
    cv = rows(read(ws, f"{folder}/predictions/cv.csv"))
    by_group: dict[str, set[str]] = {}
    for r in cv:
        by_group.setdefault(group_of[r["sample_id"]], set()).add(r["fold"])
    assert all(len(f) == 1 for f in by_group.values())
    assert Counter(group_of[r["sample_id"]] for r in cv) == Counter({g: 3 for g in by_group})


def test_the_test_split_keeps_replicates_together(grouped):
    ws, _, folder = grouped
    group_of = {s: c["sample_no"] for s, c in file_columns().items()}
    test = {group_of[r["sample_id"]] for r in rows(read(ws, f"{folder}/predictions/test.csv"))}
    train = {group_of[r["sample_id"]] for r in rows(read(ws, f"{folder}/predictions/train.csv"))}
    assert test and train and not test & train
    assert len(test) == math.ceil(34 * 0.2)  # the test fraction counts groups


def test_per_group_predictions_match_a_hand_computation(grouped):
    ws, _, folder = grouped
    group_of = {s: c["sample_no"] for s, c in file_columns().items()}
    cv = rows(read(ws, f"{folder}/predictions/cv.csv"))
    by_group = rows(read(ws, f"{folder}/predictions/cv_by_group.csv"))
    groups = sorted({group_of[r["sample_id"]] for r in cv})
    assert [r["group"] for r in by_group] == groups
    true_means, pred_means = [], []
    for g, row in zip(groups, by_group, strict=True):
        scans = [r for r in cv if group_of[r["sample_id"]] == g]
        y_true = np.mean([float(r["y_true"]) for r in scans])
        y_pred = np.mean([float(r["y_pred"]) for r in scans])
        assert int(row["n_scans"]) == len(scans) == 3
        assert float(row["y_true_mean"]) == pytest.approx(y_true, rel=1e-12)
        assert float(row["y_pred_mean"]) == pytest.approx(y_pred, rel=1e-12)
        assert float(row["residual"]) == pytest.approx(y_pred - y_true, rel=1e-9, abs=1e-12)
        assert row["fold"] == scans[0]["fold"]
        true_means.append(y_true)
        pred_means.append(y_pred)
    t, p = np.array(true_means), np.array(pred_means)
    scores = yaml.safe_load(read(ws, f"{folder}/scores.yaml"))
    per_group = scores["cv_by_group"]
    assert per_group["n_groups"] == len(groups)
    assert per_group["scores"]["rmse"] == pytest.approx(np.sqrt(np.mean((p - t) ** 2)))
    r2 = 1 - np.sum((p - t) ** 2) / np.sum((t - t.mean()) ** 2)
    assert per_group["scores"]["r2"] == pytest.approx(r2)
    assert per_group["scores"]["bias"] == pytest.approx(np.mean(p - t))
    assert per_group["directions"]["rmse"] == "lower"
    # ranking stays on the per-scan pooled out-of-fold score
    per_scan = np.array([float(r["y_pred"]) - float(r["y_true"]) for r in cv])
    assert scores["score"] == pytest.approx(np.sqrt(np.mean(per_scan**2)))
    assert scores["score"] == scores["models"]["cv"]["val"]["rmse"]


def test_run_yaml_and_runs_options_name_the_group_column(grouped):
    ws, run, _ = grouped
    doc = yaml.safe_load(read(ws, f"by-run/{run.run_id}/RUN.yaml"))
    assert doc["groups"] == {"ferm3": "sample_no"}
    (options,) = ws.index.fetchall("SELECT options FROM runs WHERE run_id = ?", [run.run_id])
    assert '"sample_no"' in options[0]


def test_prediction_csvs_carry_the_metadata_columns(grouped):
    ws, _, folder = grouped
    columns = file_columns()
    names = ["cv.csv", "train.csv", "test.csv", "avg.csv", "w_avg.csv", *_fold_files(ws, folder)]
    best = best_csvs(listing(ws, "runs/ferm3/glucose"))
    paths = [f"{folder}/predictions/{n}" for n in names]
    paths += [f"runs/ferm3/glucose/{b}" for b in best] + ["best/ferm3/glucose.csv"]
    for path in paths:
        data = read(ws, path)
        assert header(data) == [
            "sample_id",
            "sample_no",
            "operator",
            "y_true",
            "y_pred",
            "residual",
            "partition",
            "fold",
        ], path
        for r in rows(data):
            assert {k: r[k] for k in ("sample_no", "operator")} == columns[r["sample_id"]]


def test_results_without_metadata_render_as_before(ws):
    from n4afs.tree import renderers

    run = ws.run([TEMPLATE], ["chemotools:fermentation"], cv=3, name="plain")
    folder = result_folder(ws, "runs/fermentation")
    names = [n for n in listing(ws, f"{folder}/predictions") if n.endswith(".csv")]
    assert "cv_by_group.csv" not in names
    (result,) = run.results
    table = result.predictions()
    for name in names:
        data = read(ws, f"{folder}/predictions/{name}")
        assert header(data) == list(renderers.PREDICTION_COLUMNS)
        if name.startswith("fold_"):
            fold = table.filter(table["model"] == name[: -len(".csv")])
            assert data == renderers.predictions_csv(fold, "regression")
    assert "cv_by_group" not in yaml.safe_load(read(ws, f"{folder}/scores.yaml"))
    doc = yaml.safe_load(read(ws, f"by-run/{run.run_id}/RUN.yaml"))
    assert doc["groups"] == {"fermentation": None}


def _tiny_grouped_csv(path: Path, n_groups: int, scans: int = 3) -> Path:
    lines = [next(iter(MULTI.open(encoding="utf-8"))).rstrip("\n")]
    with MULTI.open(encoding="utf-8") as f:
        next(f)
        for i, line in enumerate(f):
            if i >= n_groups * scans:
                break
            lines.append(line.rstrip("\n"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_too_few_groups_for_the_folds_fails_cleanly_and_leaves_no_run(tmp_path):
    from n4afs.workspace import Workspace

    data = _tiny_grouped_csv(tmp_path / "tiny.csv", n_groups=4)  # 12 scans of 4 samples
    template = tmp_path / "t.yaml"
    template.write_text("- snv\n- pls: {n_components: 1}\n")
    ws_path = tmp_path / "ws"
    done = cli("-w", str(ws_path), "run", str(template), "-d", str(data), "--cv", "5")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: dataset 'tiny': 4 groups of replicate scans (column 'sample_no') cannot "
        "make 5 folds; lower --cv, or split scans independently with --no-group"
    ]
    ws = Workspace(ws_path)
    assert ws.runs() == []
    assert ws.index.fetchall("SELECT count(*) FROM results") == [(0,)]
    with pytest.raises(RunError, match="4 groups of replicate scans"):
        ws.run([TEMPLATE], ["tiny"], cv=5)
    with pytest.raises(RunError, match="3 groups of replicate scans"):  # 4 - ceil(4 * 0.2)
        ws.run([TEMPLATE], ["tiny"], cv=4, test_size=0.2)
    assert ws.runs() == []
    assert ws.run([TEMPLATE], ["tiny"], cv=5, group=False).status == "completed"


def test_cli_group_and_no_group(tmp_path):
    from n4afs.workspace import Workspace

    template = tmp_path / "t.yaml"
    template.write_text("- snv\n- pls: {n_components: 2}\n")
    ws_path = tmp_path / "ws"
    base = ("-w", str(ws_path), "run", str(template), "-d", str(MULTI), "--cv", "3")
    by_operator = cli(*base, "--group", "operator", "--name", "by-operator")
    assert by_operator.returncode == 0, by_operator.stderr
    independent = cli(*base, "--no-group", "--name", "independent")
    assert independent.returncode == 0, independent.stderr
    unknown = cli(*base, "--group", "batch")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "error: dataset 'fermentation_multi' has no metadata column 'batch' to group by; "
        "its metadata columns: sample_no, operator"
    ]
    both = cli(*base, "--group", "operator", "--no-group")
    assert both.returncode == 2 and "not both" in both.stderr

    ws = Workspace(ws_path)
    columns = file_columns()
    for name, column in (("by-operator", "operator"), ("independent", None)):
        (run,) = [r for r in ws.runs() if r.name == name]
        doc = yaml.safe_load(read(ws, f"by-run/{run.run_id}/RUN.yaml"))
        assert doc["groups"] == {"fermentation_multi": column}
        # the run's result, beside its ranking (RESULTS.*) and charts/
        (label,) = [
            n
            for n in listing(ws, f"by-run/{run.run_id}/fermentation_multi/glucose")
            if n[:4].isdigit()
        ]
        folder = f"by-run/{run.run_id}/fermentation_multi/glucose/{label}"
        cv = rows(read(ws, f"{folder}/predictions/cv.csv"))
        folds_of: dict[str, set[str]] = {}
        for key in ("operator", "sample_no"):
            folds_of = {}
            for r in cv:
                folds_of.setdefault(columns[r["sample_id"]][key], set()).add(r["fold"])
            if key == "operator" and column == "operator":
                assert all(len(f) == 1 for f in folds_of.values())
        if column is None:  # scans split independently: some sample's scans in two folds
            assert any(len(f) > 1 for f in folds_of.values())
            assert "cv_by_group.csv" not in listing(ws, f"{folder}/predictions")
        else:
            by_group = rows(read(ws, f"{folder}/predictions/cv_by_group.csv"))
            assert [r["group"] for r in by_group] == ["ana", "bruno", "chloe"]


def test_classification_groups_are_stratified_and_voted(ws):
    from chemotools.datasets import load_coffee

    X, y = load_coffee()
    labels = y.iloc[:, 0].astype(str).to_numpy()
    order = np.argsort(labels, kind="stable")
    group = np.empty(len(labels), dtype=object)
    group[order] = [f"bag{i // 2:02d}" for i in range(len(labels))]  # 2 scans per bag
    ws.add_arrays(
        X.to_numpy(),
        labels,
        "coffee_bags",
        task="classification",
        metadata={"bag": list(group)},
        group="bag",
    )
    run = ws.run([[{"plsda": {"n_components": 2}}]], ["coffee_bags"], cv=3)
    assert run.status == "completed"
    folder = result_folder(ws, "runs/coffee_bags")
    cv = rows(read(ws, f"{folder}/predictions/cv.csv"))
    assert header(read(ws, f"{folder}/predictions/cv.csv"))[:2] == ["sample_id", "bag"]
    folds_of: dict[str, set[str]] = {}
    for r in cv:
        folds_of.setdefault(r["bag"], set()).add(r["fold"])
    assert len(folds_of) == 30 and all(len(f) == 1 for f in folds_of.values())
    by_group = rows(read(ws, f"{folder}/predictions/cv_by_group.csv"))
    assert header(read(ws, f"{folder}/predictions/cv_by_group.csv")) == [
        "group",
        "n_scans",
        "y_true_majority",
        "y_pred_majority",
        "correct",
        "fold",
    ]
    for row in by_group:
        scans = [r for r in cv if r["bag"] == row["group"]]
        votes = Counter(r["y_pred"] for r in scans)
        top = max(votes.values())
        assert row["y_pred_majority"] == min(c for c, n in votes.items() if n == top)
        assert row["correct"] == str(int(row["y_pred_majority"] == row["y_true_majority"]))
    scores = yaml.safe_load(read(ws, f"{folder}/scores.yaml"))["cv_by_group"]["scores"]
    correct = np.mean([r["correct"] == "1" for r in by_group])
    assert scores["accuracy"] == pytest.approx(correct)


def test_an_exported_grouped_result_imports_with_its_scores(grouped, tmp_path):
    from n4afs.workspace import Workspace

    ws, _, folder = grouped
    out = tmp_path / "bundle.zip"
    ws.export(folder, out, level="with-data")
    other = Workspace(tmp_path / "other")
    other.import_bundle(out, trust=True)
    (imported,) = other.results("ferm3", target="glucose")
    (original,) = ws.results("ferm3", target="glucose")
    assert imported.ranked_value == pytest.approx(original.ranked_value)
    copy = result_folder(other, "runs/ferm3/glucose")
    assert read(other, f"{copy}/predictions/cv.csv") == read(ws, f"{folder}/predictions/cv.csv")
    assert read(other, f"{copy}/predictions/cv_by_group.csv") == read(
        ws, f"{folder}/predictions/cv_by_group.csv"
    )
