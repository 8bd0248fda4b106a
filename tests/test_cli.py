import os
import subprocess
import sys

from n4afs.cli import main


def run_cli(*args, env_ws=None):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    if env_ws is not None:
        env["N4AFS_WORKSPACE"] = str(env_ws)
    return subprocess.run(
        [sys.executable, "-m", "n4afs.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and "0.1.0" in out.stdout
    out = run_cli("--help")
    assert out.returncode == 0
    for word in ("init", "datasets", "--workspace", "N4AFS_WORKSPACE"):
        assert word in out.stdout
    assert "chemotools:fermentation" in run_cli("datasets", "add", "--help").stdout


def test_init_add_list_through_the_environment_variable(tmp_path):
    ws = tmp_path / "cli-ws"
    assert run_cli("init", env_ws=ws).returncode == 0
    added = run_cli("datasets", "add", "chemotools:fermentation", "chemotools:coffee", env_ws=ws)
    assert added.returncode == 0, added.stderr
    assert "21 samples x 1047 features" in added.stdout
    assert "60 samples x 1841 features" in added.stdout
    listed = run_cli("datasets", "list", "--table", env_ws=ws)
    assert listed.returncode == 0
    assert "fermentation" in listed.stdout and "coffee" in listed.stdout
    assert "2 blobs" in listed.stdout


def test_user_errors_are_one_line_with_a_hint(tmp_path, capsys):
    try:
        main(["-w", str(tmp_path / "missing"), "datasets", "list"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("expected a non-zero exit")
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no workspace at") and "n4afs init" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_bad_csv_error_through_the_cli(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("protein,1100,1102\n1.0,0.1,oops\n")
    out = run_cli("-w", str(tmp_path / "w"), "datasets", "add", str(bad))
    assert out.returncode == 2
    assert "bad.csv, line 2, column '1102': 'oops' is not a number" in out.stderr
    assert "Traceback" not in out.stderr


SWEEP_YAML = """
name: small
steps:
  - _or_: [snv, {savgol: {deriv: 1, window_length: 15, polyorder: 2}}]
  - pls: {n_components: {_range_: [2, 6, 2]}}
"""


def test_run_prints_a_ranked_table_then_queries_answer(tmp_path):
    template = tmp_path / "sweep.yaml"
    template.write_text(SWEEP_YAML)
    ws = tmp_path / "ws"
    out = run_cli(
        "-w", str(ws), "run", str(template), "-d", "chemotools:fermentation", "--name", "cli sweep"
    )
    assert out.returncode == 0, out.stderr
    assert "fermentation: best of run" in out.stdout
    assert "6/6" in out.stdout  # the progress bar reached the end
    run_id = out.stdout.splitlines()[0].split()[-1]
    assert run_id.endswith(run_id[-6:]) and "_cli-sweep_" in run_id
    table_rows = [line for line in out.stdout.splitlines() if "_pls" in line or "-pls" in line]
    assert len(table_rows) == 6
    runs = run_cli("-w", str(ws), "runs")
    assert run_id in runs.stdout and "completed" in runs.stdout
    best = run_cli("-w", str(ws), "best", "fermentation", "--table")
    assert best.returncode == 0 and "rmse=" in best.stdout and run_id in best.stdout
    results = run_cli("-w", str(ws), "results", "fermentation", "--metric", "r2", "--table")
    assert results.returncode == 0 and "6 results" in results.stdout


def test_bad_templates_and_runs_are_one_line_errors(tmp_path):
    ws = str(tmp_path / "ws")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("steps: [snv, {pls: {n_components: [1, 2}]\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("steps: [snvv, pls]\n")
    bad_range = tmp_path / "range.yaml"
    bad_range.write_text("steps: [snv, {pls: {n_components: {_range_: [1, 5, 0]}}}]\n")
    cases = [
        (["run", str(bad_yaml), "-d", "chemotools:fermentation"], "bad.yaml"),
        (["run", str(unknown), "-d", "chemotools:fermentation"], "did you mean"),
        (["run", str(bad_range), "-d", "chemotools:fermentation"], "step must not be 0"),
        (["run", "--resume", "nope"], "no run 'nope'"),
        (
            [
                "run",
                str(bad_range).replace("range", "unknown"),
                "-d",
                "chemotools:fermentation",
                "--backend",
                "dask",
            ],
            "needs a scheduler address",
        ),
        (["best", "fermentation"], "no completed result"),
    ]
    for args, message in cases:
        out = run_cli("-w", ws, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    from n4afs.workspace import Workspace

    assert Workspace(ws).runs() == []  # refused runs left nothing behind


def test_tree_commands(tmp_path):
    ws = tmp_path / "ws"
    template = tmp_path / "t.yaml"
    template.write_text("steps: [snv, {pls: {n_components: 3}}]\n")
    assert (
        run_cli("-w", str(ws), "run", str(template), "-d", "chemotools:fermentation").returncode
        == 0
    )
    tree = run_cli("-w", str(ws), "tree", "-L", "3")
    assert "best_0001_snv-pls3_" in tree.stdout and "README.txt" in tree.stdout
    listing = run_cli("-w", str(ws), "ls", "-l", "runs/fermentation")
    assert "RESULTS.csv" in listing.stdout and " B  " in listing.stdout
    cat = run_cli("-w", str(ws), "cat", "best/fermentation.csv")
    assert cat.stdout.startswith("sample_id,y_true,y_pred,residual,partition,fold")
    label = next(
        line
        for line in run_cli("-w", str(ws), "ls", "runs/fermentation").stdout.split()
        if line.startswith("0001_")
    )
    models = run_cli("-w", str(ws), "ls", f"runs/fermentation/{label}models").stdout.split()
    final = next(m for m in models if m.startswith("final_"))
    real = run_cli("-w", str(ws), "open", f"runs/fermentation/{label}models/{final}pls_model.pkl")
    assert real.returncode == 0 and os.path.isfile(real.stdout.strip())
    rendered = run_cli("-w", str(ws), "open", "runs/fermentation/RESULTS.csv")
    assert rendered.returncode == 2 and "n4afs cat" in rendered.stderr
    missing = run_cli("-w", str(ws), "cat", "runs/nope.csv")
    assert missing.returncode == 2 and "no such path" in missing.stderr
    one_file = run_cli("-w", str(ws), "ls", "runs/fermentation/RESULTS.csv")
    assert one_file.returncode == 0 and one_file.stdout == "RESULTS.csv\n"
    gone = run_cli("-w", str(ws), "ls", "runs/nope")
    assert gone.returncode == 2 and "no such path" in gone.stderr
