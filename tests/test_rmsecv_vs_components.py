"""Choosing the number of latent variables (#20): `charts/rmsecv_vs_components.png` and its
numbers as CSV, per dataset and per run, one curve per preprocessing, RMSEC too, the chosen
minimum marked; the numbers are the results' own scores from the index."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from n4afs.workspace import Workspace
from tests.tree_reading import listing, read, rows

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 4]}}}]
AGAIN = ["snv", {"pls": {"n_components": {"_or_": [4, 5]}}}]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("components") / "ws")
    ws.run([SWEEP], ["chemotools:fermentation"], cv=3, test_size=0.2, name="sweep")
    ws.run([AGAIN], ["fermentation"], cv=3, test_size=0.2, name="again")
    ws.run([["snv", "lda"]], ["chemotools:coffee"], cv=3, name="coffee")
    return ws


def scores_by_label(ws) -> dict[str, dict]:
    found = {}
    for result in ws.results("fermentation"):
        scores = {(s["model"], s["partition"]): s for s in result.scores}
        found[result.row.label] = {
            "rmsec": scores[("final", "train")]["rmse"],
            "rmsecv": scores[("cv", "val")]["rmse"],
            "rmsep": scores[("final", "test")]["rmse"],
        }
    return found


def test_the_dataset_curve_holds_every_results_scores_from_the_index(ws):
    assert "charts" in listing(ws, "runs/fermentation")
    assert listing(ws, "runs/fermentation/charts") == [
        "rmsecv_vs_components.csv",
        "rmsecv_vs_components.png",
    ]
    table = rows(read(ws, "runs/fermentation/charts/rmsecv_vs_components.csv"))
    expected = scores_by_label(ws)
    # one point per (curve, components): snv 1..5 (4 twice: the lower RMSECV stands), msc 1..4
    points = {(r["curve"], int(r["n_components"])) for r in table}
    assert points == {("snv pls", k) for k in range(1, 6)} | {("msc pls", k) for k in range(1, 5)}
    assert len(table) == len(points)
    for row in table:
        mine = expected[row["result"]]
        for column in ("rmsec", "rmsecv", "rmsep"):
            assert float(row[column]) == mine[column]
    snv4 = [r for r in ws.results("fermentation") if r.row.name == "snv-pls4"]
    assert len(snv4) == 2
    kept = next(r for r in table if (r["curve"], r["n_components"]) == ("snv pls", "4"))
    assert float(kept["rmsecv"]) == min(expected[r.row.label]["rmsecv"] for r in snv4)


def test_each_curves_minimum_and_the_chosen_one_are_marked(ws):
    table = rows(read(ws, "runs/fermentation/charts/rmsecv_vs_components.csv"))
    for curve in {r["curve"] for r in table}:
        mine = [r for r in table if r["curve"] == curve]
        lowest = min(mine, key=lambda r: float(r["rmsecv"]))
        assert [r for r in mine if r["curve_minimum"] == "True"] == [lowest]
    chosen = [r for r in table if r["chosen"] == "True"]
    assert len(chosen) == 1
    assert float(chosen[0]["rmsecv"]) == min(float(r["rmsecv"]) for r in table)
    best = ws.best("fermentation")
    assert math.isclose(float(chosen[0]["rmsecv"]), best.cv_scores()["rmse"])


def test_the_chart_is_a_png_with_content(ws, tmp_path):
    data = read(ws, "runs/fermentation/charts/rmsecv_vs_components.png")
    assert data.startswith(b"\x89PNG")
    (tmp_path / "c.png").write_bytes(data)
    image = Image.open(tmp_path / "c.png").convert("L")
    assert image.getextrema()[0] < 100  # lines drawn, not a blank page
    # deterministic: a second tree renders the same bytes
    from n4afs.tree.tree import Tree, parse_path

    other = Tree(ws)
    path = parse_path("runs/fermentation/charts/rmsecv_vs_components.png")
    assert bytes(other.read(other.lookup(path))) == data


def test_each_run_has_its_own_curve_and_ranking(ws):
    runs = {run.run_id: run for run in ws.runs()}
    again = next(r for r in runs if "_again_" in r)
    table = rows(read(ws, f"by-run/{again}/fermentation/charts/rmsecv_vs_components.csv"))
    assert {(r["curve"], r["n_components"]) for r in table} == {("snv pls", "4"), ("snv pls", "5")}
    assert {r["run"] for r in table} == {again}
    expected = scores_by_label(ws)
    for row in table:
        assert float(row["rmsecv"]) == expected[row["result"]]["rmsecv"]


def test_classification_has_no_components_chart(ws):
    assert "charts" not in listing(ws, "runs/coffee")
    assert ws.tree.lookup(("runs", "coffee", "charts")) is None
