"""Names from users and bundles reach the terminal literally and without control bytes.

A dataset may be called `barley [red]x[/red]` (rich markup) or carry raw escape sequences
(a bundle sets the name): the CLI must print the first as typed and never emit an ESC byte
for the second, in tables, one-line answers and error messages alike. Each command runs in a
subprocess and its raw stdout/stderr bytes are inspected.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from n4afs.cli.terminal import visible
from n4afs.workspace import Workspace

MARKUP = "barley [red]x[/red]"
EVIL = "evil\x1b]0;pwned\x07\x1b[2Jname\x9b31m"
TEMPLATE = ["snv", {"pls": {"n_components": {"_range_": [2, 3]}}}]


def run_raw(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-m", "n4afs.cli", *args], capture_output=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> Workspace:
    """Two datasets with hostile names (and a hostile target name), one run on both."""
    ws = Workspace(tmp_path_factory.mktemp("terminal") / "ws")
    ws.add_dataset("chemotools:fermentation", name=MARKUP)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 40)).cumsum(axis=1)
    evil = ws.add_arrays(X, X[:, 5] + rng.normal(size=30), "evil", target_names=["y"])
    with ws.index.write() as conn:  # the index refuses such names now; an older one may hold them
        conn.execute(
            "UPDATE datasets SET name = ?, target_names = ? WHERE dataset_id = ?",
            [EVIL, [f"y{EVIL}"], evil.dataset_id],
        )
    ws.run(templates=[TEMPLATE], datasets=[MARKUP, EVIL], cv=3, name=f"run {MARKUP}")
    return ws


def _commands(ws: Workspace) -> list[list[str]]:
    w = ["-w", str(ws.path)]
    return [
        [*w, "datasets", "list", "--table"],
        [*w, "runs", "--table"],
        [*w, "best", MARKUP, "--table"],
        [*w, "results", MARKUP, "--table"],
        [*w, "best", EVIL, "--table"],
        [*w, "results", EVIL, "--table"],
        [*w, "datasets", "list"],  # piped: CSV
        [*w, "results", EVIL],
        [*w, "sql", "select name from datasets"],
        [*w, "sql", "select name from datasets", "--csv"],
        [*w, "du"],
        [*w, "rm", "--dry-run", "--keep-best", "0"],
        [*w, "best", f"missing {MARKUP} {EVIL}"],  # an error that quotes the name
    ]


def test_markup_in_names_prints_literally(named):
    for args in _commands(named):
        if args[-1] in ("runs", EVIL) or args[-2:] in (["runs", "--table"], [EVIL, "--table"]):
            continue  # run ids are slugs; the other dataset's output does not name this one
        out = run_raw(*args)
        text = (out.stdout + out.stderr).decode()
        assert MARKUP in text, (args, text)


def test_markup_is_shown_in_runs_datasets_best_and_results(named):
    w = ["-w", str(named.path)]
    listed = run_raw(*w, "datasets", "list", "--table").stdout.decode()
    assert MARKUP in listed
    runs = run_raw(*w, "runs", "--table")
    assert runs.returncode == 0 and named.runs()[0].run_id in runs.stdout.decode()
    best = run_raw(*w, "best", MARKUP, "--table")
    assert best.returncode == 0 and best.stdout.decode().startswith(f"{MARKUP}/")
    results = run_raw(*w, "results", MARKUP, "--table")
    assert results.returncode == 0 and f"{MARKUP}: 2 results" in results.stdout.decode()


def test_escape_sequences_in_names_never_reach_the_terminal(named):
    for args in _commands(named):
        out = run_raw(*args)
        for stream in (out.stdout, out.stderr):
            assert b"\x1b" not in stream and b"\x07" not in stream, (args, stream)
            assert "\x9b" not in stream.decode("utf-8", "replace"), (args, stream)


def test_escape_sequences_are_shown_as_visible_text(named):
    out = run_raw("-w", str(named.path), "best", EVIL, "--table")
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().startswith(visible(EVIL) + "/")
    assert visible(EVIL) == "evil\\x1b]0;pwned\\x07\\x1b[2Jname\\x9b31m"


def test_visible_keeps_ordinary_text_and_unicode():
    assert visible("résumé 水 [red]x[/red]") == "résumé 水 [red]x[/red]"
    assert visible("a\tb\nc\x00\x7f") == "a\\x09b\\x0ac\\x00\\x7f"


def test_run_and_datasets_add_show_hostile_names_safely(named, tmp_path):
    template = tmp_path / "t.yaml"
    template.write_text("steps: [snv, {pls: {n_components: 2}}]\n")
    w = ["-w", str(named.path)]
    ran = run_raw(*w, "run", str(template), "-d", EVIL, "-d", MARKUP, "--cv", "3")
    assert ran.returncode == 0, ran.stderr
    assert f"{MARKUP}: best of run" in ran.stdout.decode()
    assert f"{visible(EVIL)}: best of run" in ran.stdout.decode()
    csv = tmp_path / "d.csv"
    csv.write_text("protein,1100,1102\n1.0,0.1,0.2\n2.0,0.3,0.1\n3.0,0.2,0.4\n")
    added = run_raw(*w, "datasets", "add", str(csv), "--name", f"{MARKUP} {EVIL}")
    assert added.returncode != 0 and b"control characters" in added.stderr  # refused
    assert len(added.stderr.splitlines()) == 1 and b"Traceback" not in added.stderr
    for out in (ran, added):
        assert b"\x1b" not in out.stdout + out.stderr and b"\x07" not in out.stdout + out.stderr
