"""The tree's surfaces failing well: `du` scoped to the path it names, `n4a://`
tree paths in the `$N4AFS_WORKSPACE` workspace, modes and times a copy of the tree keeps."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import fsspec
import pytest
import yaml

from n4afs.surfaces.fs import N4AFileSystem
from n4afs.workspace import Workspace
from tests.cli_process import cli as run_cli
from tests.mount_fixture import Mount

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": 3}}]
CLASSIFICATION = [{"_or_": ["snv", "msc"]}, "lda"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Two datasets, each with a run of its own: a scope that leaks shows the other one."""
    ws = Workspace(tmp_path_factory.mktemp("failwell") / "ws")
    ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=3, name="ferm")
    ws.run(templates=[CLASSIFICATION], datasets=["chemotools:coffee"], cv=3, name="origin")
    return ws


def cli(ws, *args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, env={"N4AFS_WORKSPACE": str(ws.path)})


# -- 10: du counts the folder it is given ----------------------------------------------------
def du_json(ws, *args: str) -> dict:
    done = cli(ws, "du", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_named(ws, name: str) -> str:
    return next(r.run_id for r in ws.runs() if r.name == name)


def test_du_of_a_dataset_counts_only_that_dataset(ws):
    whole, ferm = du_json(ws), du_json(ws, "runs/fermentation")
    per_dataset = {d["dataset"]: d for d in whole["datasets"]}
    assert set(per_dataset) == {"fermentation", "coffee"} and per_dataset["coffee"]["logical"] > 0
    assert ferm["scope"] == "runs/fermentation"
    assert ferm["logical_bytes"] == per_dataset["fermentation"]["logical"]
    assert ferm["logical_bytes"] < whole["logical_bytes"]
    assert ferm["referenced_bytes"] == per_dataset["fermentation"]["stored"]
    assert [d["dataset"] for d in ferm["datasets"]] == ["fermentation"]
    assert [r["run"] for r in ferm["runs"]] == [run_named(ws, "ferm")]  # not the coffee run
    assert ferm["largest"] and {r["dataset"] for r in ferm["largest"]} == {"fermentation"}
    text = cli(ws, "du", "runs/fermentation").stdout
    assert text.startswith("runs/fermentation: logical ") and "whole workspace:" in text
    assert run_named(ws, "origin") not in text and "coffee" not in text


def test_du_of_a_run_of_a_run_dataset_and_of_a_result(ws):
    origin = run_named(ws, "origin")
    report = du_json(ws, f"by-run/{origin}")
    assert [r["run"] for r in report["runs"]] == [origin]
    assert [d["dataset"] for d in report["datasets"]] == ["coffee"]
    assert report["logical_bytes"] == report["runs"][0]["logical"] > 0
    assert du_json(ws, f"by-run/{origin}/coffee")["logical_bytes"] == report["logical_bytes"]
    label = best_folder(ws)
    one = du_json(ws, label)
    assert [r["result"] for r in one["largest"]] == [label.rsplit("/", 1)[1]]
    assert one["logical_bytes"] == one["largest"][0]["logical"]


@pytest.mark.parametrize(
    "path, says",
    [
        ("runs/nosuch", "no such path in the tree: /runs/nosuch"),
        ("by-run/nosuch", "no such path in the tree: /by-run/nosuch"),
        ("best", "/best is not a folder du counts"),
        ("runs/fermentation/RESULTS.csv", "is not a folder du counts"),
    ],
)
def test_du_of_a_path_it_cannot_count_is_refused(ws, path, says):
    done = cli(ws, "du", path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


# -- 13: n4a:// tree paths use $N4AFS_WORKSPACE -----------------------------------------------
def test_n4a_tree_path_uses_the_workspace_env_var(ws, monkeypatch):
    monkeypatch.setenv("N4AFS_WORKSPACE", str(ws.path))
    with fsspec.open("n4a:///runs/fermentation/RESULTS.csv", "rb") as f:
        text = f.read().decode()
    assert text.startswith("rank,") and "snv-pls3" in text
    fs = fsspec.filesystem("n4a")
    assert "README.txt" in {p.rsplit("/", 1)[-1] for p in fs.ls("/", detail=False)}
    # a path that names its workspace still wins over the variable
    direct = f"n4a://{ws.path}/runs/fermentation/RESULTS.csv"
    with fsspec.open(direct, "rb") as f:
        assert f.read().decode() == text


def test_n4a_tree_path_without_a_workspace_says_how_to_name_one(monkeypatch):
    monkeypatch.delenv("N4AFS_WORKSPACE", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        N4AFileSystem().info("/runs/fermentation/RESULTS.csv")
    message = str(info.value)
    assert "N4AFS_WORKSPACE" in message and "workspace=" in message


def test_n4a_env_var_naming_no_workspace_is_not_an_io_error(tmp_path, monkeypatch):
    monkeypatch.setenv("N4AFS_WORKSPACE", str(tmp_path / "nothing-here"))
    with pytest.raises(FileNotFoundError) as info:
        N4AFileSystem().info("/runs")
    assert info.value.errno == errno.ENOENT and "nothing-here" in str(info.value)


# -- 14: modes and times a copy keeps; timings the index holds --------------------------------
def best_folder(ws) -> str:
    return f"runs/fermentation/{ws.best('fermentation').row.label}"


def test_tree_modes_are_those_a_copy_should_get(ws, tmp_path):
    fs = N4AFileSystem(workspace=ws.path)
    folder = "/" + best_folder(ws)
    for path in ["/", "/runs", folder, *fs.find(folder, withdirs=True)]:
        info = fs.info(path)
        want = stat.S_IFDIR | 0o755 if info["type"] == "directory" else stat.S_IFREG | 0o644
        assert info["mode"] == want, path
    ws.export(folder, tmp_path / "best.zip")
    with zipfile.ZipFile(tmp_path / "best.zip") as bundle:
        assert {i.external_attr >> 16 for i in bundle.infolist()} == {stat.S_IFREG | 0o644}


def test_readme_and_folders_have_the_workspace_times_not_1970(tmp_path):
    before = time.time()
    empty = Workspace(tmp_path / "empty")
    fs = N4AFileSystem(workspace=empty.path)
    for path in ("/", "/README.txt", "/runs", "/best"):
        assert before - 2 <= fs.info(path)["mtime"] <= time.time() + 2, path


def test_timing_yaml_holds_the_timings_of_the_index(ws):
    fs = N4AFileSystem(workspace=ws.path)
    _, rows = ws.query(
        "SELECT r.seq, r.duration_s, u.created_at FROM results r JOIN runs u USING (run_id) "
        "JOIN datasets d USING (dataset_id) WHERE d.name = 'fermentation'"
    )
    assert rows
    for seq, seconds, started in rows:
        (label,) = [n for n in fs.ls("/runs/fermentation", detail=False) if f"/{seq:04d}_" in n]
        timing = yaml.safe_load(fs.cat(f"{label}/logs/timing.yaml"))
        assert seconds > 0 and timing["seconds"] == pytest.approx(seconds, abs=1e-6)
        assert timing["run_started"] == started.isoformat(timespec="seconds")
        assert timing["seconds_measure"]


@pytest.fixture(scope="module")
def shared_mnt(ws):
    """A mount an unprivileged user can reach: outside pytest's private temporary folder,
    with --allow-other."""
    base = Path(tempfile.mkdtemp(prefix="n4afs-failwell-"))
    base.chmod(0o755)
    with Mount(ws.path, base / "nirs", "--allow-other").serving() as mount:
        yield mount
    shutil.rmtree(base)


def as_nobody(*args: str) -> subprocess.CompletedProcess:
    """Run a command as an unprivileged user (the tests may run as root), with the usual
    umask 022, so what a copy's modes show is what the tree gave it."""
    command = ["sh", "-c", 'umask 022 && exec "$@"', "sh", *args]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


NOBODY = 65534


def test_mount_shows_the_tree_modes_and_times(ws, shared_mnt):
    fs = N4AFileSystem(workspace=ws.path)
    folder = best_folder(ws)
    for rel in ("", "README.txt", "runs", folder, f"{folder}/logs/timing.yaml"):
        st = os.stat(shared_mnt.path / rel)
        info = fs.info("/" + rel)
        assert st.st_mode == info["mode"], rel
        assert st.st_mtime == pytest.approx(info["mtime"], abs=1e-6), rel
    assert stat.S_IMODE(os.stat(shared_mnt.path / folder).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(shared_mnt.path / "README.txt").st_mode) == 0o644
    assert os.stat(shared_mnt.path / "README.txt").st_mtime > 365 * 86400
    timing = (shared_mnt.path / folder / "logs" / "timing.yaml").read_bytes()
    assert timing == fs.cat(f"/{folder}/logs/timing.yaml")
    assert yaml.safe_load(timing)["seconds"] > 0


def test_mount_writes_are_still_refused_read_only(ws, shared_mnt):
    folder = shared_mnt.path / best_folder(ws)
    attempts = [
        lambda: (folder / "scores.yaml").write_text("x"),
        lambda: (folder / "new.txt").write_text("x"),
        lambda: (folder / "newdir").mkdir(),
        lambda: (folder / "scores.yaml").unlink(),
        lambda: os.chmod(folder / "scores.yaml", 0o600),
        lambda: shutil.rmtree(folder / "logs"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.EROFS
    refused = as_nobody("sh", "-c", f"echo x > '{folder}/scores.yaml'")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


@pytest.mark.parametrize("tool", ["cp", "rsync"])
def test_a_copy_of_a_result_can_be_deleted_by_who_made_it(ws, shared_mnt, tool):
    folder = shared_mnt.path / best_folder(ws)
    home = shared_mnt.path.parent / f"home-{tool}"
    home.mkdir()
    os.chown(home, NOBODY if os.geteuid() == 0 else -1, NOBODY if os.geteuid() == 0 else -1)
    copy = home / "copy"
    command = ["cp", "-r"] if tool == "cp" else ["rsync", "-a"]
    made = as_nobody(*command, f"{folder}/", f"{copy}/")
    assert made.returncode == 0, made.stderr
    modes = {p.relative_to(copy): stat.S_IMODE(p.lstat().st_mode) for p in [copy, *copy.rglob("*")]}
    assert len(modes) > 10
    for path, mode in modes.items():
        assert mode == (0o755 if (copy / path).is_dir() else 0o644), (path, oct(mode))
    removed = as_nobody("rm", "-rf", str(copy))
    assert removed.returncode == 0 and not copy.exists(), removed.stderr


def test_du_of_a_mounted_folder_counts_that_folder(ws, shared_mnt):
    mounted = du_json(ws, str(shared_mnt.path / "runs" / "fermentation"))
    assert mounted == du_json(ws, "runs/fermentation")
    done = cli(ws, "du", str(shared_mnt.path / "runs" / "nosuch"))
    assert done.returncode == 2 and done.stderr.startswith("error: no such path in the tree: ")


@pytest.mark.parametrize("command", [["ls"], ["cat"], ["tree"], ["du"], ["open"], ["export"]])
def test_a_tree_path_climbing_out_is_one_line_and_exit_2(tmp_path, command):
    """`..` is refused, never resolved (left by the first pass: a traceback, exit 1)."""
    ws = tmp_path / "ws"
    Workspace(ws)
    done = subprocess.run(
        [sys.executable, "-m", "n4afs.cli", "-w", str(ws), *command, "../x"]
        + (["-o", str(tmp_path / "out")] if command == ["export"] else []),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        == "Error: no such path in the tree: /../x (list what is there with `n4afs ls`)"
    )
