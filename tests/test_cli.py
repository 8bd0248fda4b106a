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
    listed = run_cli("datasets", "list", env_ws=ws)
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
