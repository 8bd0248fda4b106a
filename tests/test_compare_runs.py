"""Comparing runs (#20): `n4afs compare RUN_A RUN_B` puts the same configs of two runs side by
side and says which run holds the best of each; `by-run/<run>/<dataset>/RESULTS.csv` is the
ranking within one run, with RESULTS.csv's header. Two runs of overlapping templates:
A = {snv, msc} x PLS {2, 3}, B = snv x PLS {3, 4} with other folds (another seed)."""

from __future__ import annotations

import json

import pytest
from n4afs_core.errors import RunError
from n4afs_core.metrics.scores import is_better

from n4afs.cli import main
from n4afs.workspace import Workspace
from tests.tree_reading import header, read, rows

A = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [2, 3]}}}]
B = ["snv", {"pls": {"n_components": {"_or_": [3, 4]}}}]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("compare") / "ws")
    ws.run([A], ["chemotools:fermentation"], cv=3, test_size=0.2, name="first")
    ws.run([B], ["fermentation"], cv=4, test_size=0.2, seed=7, name="second")
    return ws


def run_ids(ws) -> tuple[str, str]:
    by_name = {r.name: r.run_id for r in ws.runs()}
    return by_name["first"], by_name["second"]


def cv_rmse(ws, run_id: str) -> dict[str, tuple[str, float]]:
    """config name -> (label, RMSECV) of the run's results on fermentation."""
    return {
        r.row.name: (r.row.label, r.cv_scores()["rmse"])
        for r in ws.results("fermentation")
        if r.row.run_id == run_id
    }


def test_the_same_configs_side_by_side_with_the_better_run(ws):
    first, second = run_ids(ws)
    compared = ws.compare("first", "second")
    assert (compared.run_a, compared.run_b) == (first, second)
    (group,) = compared.groups
    assert (group.dataset, group.target, group.metric) == ("fermentation", "glucose", "rmse")
    a, b = cv_rmse(ws, first), cv_rmse(ws, second)
    by_config = {row.config: row for row in group.rows}
    assert set(by_config) == set(a) | set(b)
    shared = by_config["snv-pls3"]
    assert (shared.result_a, shared.score_a) == a["snv-pls3"]
    assert (shared.result_b, shared.score_b) == b["snv-pls3"]
    assert shared.better == ("a" if a["snv-pls3"][1] < b["snv-pls3"][1] else "b")
    assert by_config["msc-pls2"].better == "only a" and by_config["msc-pls2"].result_b is None
    assert by_config["snv-pls4"].better == "only b" and by_config["snv-pls4"].score_a is None
    best_a = min(a.values(), key=lambda v: v[1])
    best_b = min(b.values(), key=lambda v: v[1])
    assert (group.best_a.label, group.best_b.label) == (best_a[0], best_b[0])
    assert group.best_in == ("a" if is_better("rmse", best_a[1], best_b[1]) else "b")
    assert ws.best("fermentation").row.label == min(best_a, best_b, key=lambda v: v[1])[0]


def test_the_cli_prints_the_comparison_as_csv_json_and_a_table(ws, capsys):
    first, second = run_ids(ws)
    main(["-w", str(ws.path), "compare", first, "second", "--json"])  # returns: exit 0
    records = json.loads(capsys.readouterr().out)
    assert {r["config"] for r in records} == {"snv-pls2", "snv-pls3", "msc-pls2", "msc-pls3",
                                              "snv-pls4"}  # fmt: skip
    assert records[0]["result_a"] and records[0]["metric"] == "rmse"
    main(["-w", str(ws.path), "compare", "first", "second", "--table"])
    out = capsys.readouterr().out
    assert "snv-pls3" in out and "best:" in out and "only" in out


def test_comparing_a_run_with_itself_or_an_unknown_run_is_one_clear_line(ws, capsys):
    with pytest.raises(RunError):
        ws.compare("first", "first")
    with pytest.raises(SystemExit) as done:
        main(["-w", str(ws.path), "compare", "first", "nosuch"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no run 'nosuch'") and len(err.strip().splitlines()) == 1


def test_by_run_results_csv_is_the_ranking_within_the_run(ws):
    first, second = run_ids(ws)
    whole = read(ws, "runs/fermentation/RESULTS.csv")
    for run_id, expected in ((first, cv_rmse(ws, first)), (second, cv_rmse(ws, second))):
        data = read(ws, f"by-run/{run_id}/fermentation/RESULTS.csv")
        assert header(data) == header(whole)
        table = rows(data)
        assert [r["run"] for r in table] == [run_id] * len(expected)
        assert {r["name"]: float(r["rmsecv"]) for r in table} == {
            name: value for name, (_, value) in expected.items()
        }
        ranked = [float(r["score"]) for r in table]
        assert ranked == sorted(ranked)
        assert [int(r["rank"]) for r in table] == list(range(1, len(table) + 1))
