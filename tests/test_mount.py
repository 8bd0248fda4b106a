"""Real FUSE mounts of real runs, read with real tools."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import joblib
import numpy as np
import polars as pl
import pytest

from n4afs.surfaces.fs import N4AFileSystem
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.conftest import best_csvs
from tests.mount_fixture import REPO, Mount, wait_for

SWEEP = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [2, 4]}}}]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("mounted") / "ws")
    ws.run(
        templates=[SWEEP], datasets=["chemotools:fermentation"], cv=4, test_size=0.2, name="mounted"
    )
    return ws


@pytest.fixture(scope="module")
def mnt(ws, tmp_path_factory):
    with Mount(ws.path, tmp_path_factory.mktemp("m") / "nirs").serving() as mount:
        yield mount


def sh(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


def best_label(ws) -> str:
    return ws.best("fermentation").row.label


def test_ls_find_du_stat_cat(ws, mnt):
    root = mnt.path
    out = sh("ls", "-la", str(root / "runs" / "fermentation"))
    assert out.returncode == 0 and "RESULTS.csv" in out.stdout and "-rw-r--r--" in out.stdout
    found = sh("find", str(root)).stdout.splitlines()
    fs_files = N4AFileSystem(workspace=ws.path).find("/", withdirs=True)
    assert len(found) == len(fs_files) + 1  # find also prints the root itself
    du = sh("du", "-sb", str(root / "runs"))
    assert du.returncode == 0 and int(du.stdout.split()[0]) > 100_000
    results_csv = root / "runs" / "fermentation" / "RESULTS.csv"
    size = int(sh("stat", "-c", "%s", str(results_csv)).stdout)
    cat = subprocess.run(["cat", str(results_csv)], capture_output=True, timeout=60)
    assert size == len(cat.stdout) and cat.stdout.startswith(b"rank,result,")


def test_cp_rsync_zip_of_a_result_folder_match_fsspec(ws, mnt, tmp_path):
    label = best_label(ws)
    source = mnt.path / "runs" / "fermentation" / label
    fs = N4AFileSystem(workspace=ws.path)
    reference = tmp_path / "via-fsspec" / label
    for path in fs.find(f"/runs/fermentation/{label}"):
        target = reference / Path(path).relative_to(f"/runs/fermentation/{label}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(fs.cat_file(path))
    assert sh("cp", "-r", str(source), str(tmp_path / "cp")).returncode == 0
    assert sh("diff", "-r", str(tmp_path / "cp"), str(reference)).returncode == 0
    assert sh("rsync", "-a", f"{source}/", str(tmp_path / "rsync")).returncode == 0
    assert sh("diff", "-r", str(tmp_path / "rsync"), str(reference)).returncode == 0
    archive = tmp_path / "result.zip"
    assert sh("zip", "-qr", str(archive), label, cwd=source.parent).returncode == 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                assert zf.read(info) == (reference.parent / info.filename).read_bytes()


def test_csv_polars_and_joblib_on_mounted_files(ws, mnt):
    runs = mnt.path / "runs" / "fermentation"
    (best_csv,) = [p for p in runs.iterdir() if best_csvs([p.name])]
    with open(best_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 21 and rows[0].keys() >= {"sample_id", "y_true", "y_pred", "residual"}
    frame = pl.read_csv(best_csv)
    assert frame.height == 21 and frame["y_pred"].dtype == pl.Float64
    models = runs / best_label(ws) / "models"
    (final,) = [p for p in models.iterdir() if p.name.startswith("final_")]
    pipeline = joblib.load(final / "pipeline.pkl")
    X = ws.load_dataset("fermentation").X
    np.testing.assert_array_equal(
        pipeline.predict(X), ws.best("fermentation").load_model().predict(X)
    )


SPREADSHEET = shutil.which("libreoffice") or shutil.which("soffice")
XLSX = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
TEXT_COLUMNS = {"sample_id", "partition", "result", "name", "run", "status", "origin", "target"}
TEXT_COLUMNS |= {"preprocessing", "model", "metric", "direction"}  # RESULTS.csv


def convert_to_xlsx(csv_paths: list[Path], outdir: Path, locale: str = "C.UTF-8") -> list[Path]:
    """Run `libreoffice --headless --convert-to xlsx` as a user would, in a throwaway profile.

    The locale is pinned because LibreOffice takes the decimal separator from it (under
    de_DE.UTF-8 every `13.5` of our CSVs reads as text): the test checks our bytes, not the
    machine's locale. Its own session, so a hung start is killed whole (soffice.bin included).
    """
    outdir.mkdir(parents=True, exist_ok=True)
    profile = (outdir / "lo-profile").as_uri()
    env = {**os.environ, "HOME": str(outdir), "LC_ALL": locale, "LANG": locale}
    command = [SPREADSHEET, f"-env:UserInstallation={profile}", "--headless"]
    command += ["--convert-to", "xlsx", "--outdir", str(outdir), *map(str, csv_paths)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        output = proc.communicate(timeout=120)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"libreoffice did not finish within 120 s:\n{proc.communicate()[0]!r}")
    converted = [outdir / f"{path.stem}.xlsx" for path in csv_paths]
    assert proc.returncode == 0 and all(p.exists() for p in converted), output
    return converted


def xlsx_cells(path: Path) -> dict[tuple[int, int], tuple[str, str]]:
    """(row, column), 0-based, -> (cell type, value) of the first sheet; shared strings resolved.

    Type "n" is a number cell, "s" a (shared) string; an empty cell has no entry.
    """
    with zipfile.ZipFile(path) as archive:
        strings = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
        sheet = ElementTree.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    shared = ["".join(t.text or "" for t in item.iter(f"{XLSX}t")) for item in strings]
    cells = {}
    for cell in sheet.iter(f"{XLSX}c"):
        value = cell.find(f"{XLSX}v")
        if value is not None:
            kind = cell.get("t", "n")
            cells[cell_index(cell.get("r"))] = (
                kind,
                shared[int(value.text)] if kind == "s" else value.text,
            )
    return cells


def cell_index(ref: str) -> tuple[int, int]:
    """'C12' -> (11, 2)."""
    letters = ref.rstrip("0123456789")
    column = 0
    for letter in letters:
        column = column * 26 + ord(letter) - ord("A") + 1
    return int(ref[len(letters) :]) - 1, column - 1


def assert_sheet_matches_csv(xlsx: Path, csv_path: Path) -> int:
    """Every cell of the sheet is what Python's csv module reads; return the number cells seen.

    Numbers must be number cells (not text), equal to 15 significant digits: LibreOffice 7.4
    writes 15 into the xlsx (and the ods) where our CSVs carry Python's shortest round-trip
    repr, so the last one or two digits of a 17-digit value differ by design.
    """
    with open(csv_path, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    cells = xlsx_cells(xlsx)
    assert [cells.get((0, c)) for c in range(len(header))] == [("s", h) for h in header]
    assert max(row for row, _ in cells) == len(rows) and max(c for _, c in cells) < len(header)
    numbers = 0
    for r, row in enumerate(rows, start=1):
        for c, (column, text) in enumerate(zip(header, row, strict=True)):
            got, where = cells.get((r, c)), f"{csv_path.name} line {r + 1} column {column!r}"
            if text == "":
                assert got is None, f"{where}: empty field became {got}"
            elif column in TEXT_COLUMNS:
                assert got == ("s", text), f"{where}: {text!r} became {got}"
            else:
                assert got is not None and got[0] == "n", f"{where}: {text!r} became {got}"
                assert float(got[1]) == pytest.approx(float(text), rel=1e-14, abs=0), where
                numbers += 1
    return numbers


@pytest.mark.skipif(
    SPREADSHEET is None,
    reason="LibreOffice is not installed (bash scripts/setup.sh --test-tools installs it)",
)
def test_mounted_csvs_open_in_a_spreadsheet_with_numbers_as_numbers(ws, mnt, tmp_path):
    runs = mnt.path / "runs" / "fermentation"
    (best_csv,) = [p for p in runs.iterdir() if best_csvs([p.name])]
    results_csv = runs / "RESULTS.csv"
    best_xlsx, results_xlsx = convert_to_xlsx([best_csv, results_csv], tmp_path)
    # y_true, y_pred, residual of 21 samples and the fold of the cross-validated ones
    assert assert_sheet_matches_csv(best_xlsx, best_csv) >= 21 * 3
    # every text cell stays text: RESULTS.csv has no bare hash6 column, which a spreadsheet
    # would read as a number when it looks like one (4878e2 -> 487800)
    results_rows = len(ws.results("fermentation"))
    numbers = assert_sheet_matches_csv(results_xlsx, results_csv)
    assert numbers >= results_rows * 3


@pytest.mark.skipif(
    SPREADSHEET is None,
    reason="LibreOffice is not installed (bash scripts/setup.sh --test-tools installs it)",
)
@pytest.mark.parametrize("locale", ["de_DE.UTF-8", "fr_FR.UTF-8", "C.UTF-8"])
def test_mounted_xlsx_keep_every_number_in_comma_decimal_locales(ws, mnt, tmp_path, locale):
    """The `.xlsx` twins are what a spreadsheet user opens: LibreOffice, in a locale whose
    decimal point is a comma, reads and saves every number cell as the same number (a CSV
    turns `13.014` into 13014 there), and every text cell as text."""
    short = locale.split(".")[0]
    installed = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
    assert short == "C" or f"{short.lower()}.utf8" in installed.lower(), "run setup.sh --test-tools"
    runs = mnt.path / "runs" / "fermentation"
    (best_csv,) = [p for p in runs.iterdir() if best_csvs([p.name])]
    originals = [runs / "RESULTS.xlsx", best_csv.with_suffix(".xlsx")]
    saved = convert_to_xlsx(originals, tmp_path / short, locale)
    for original, again in zip(originals, saved, strict=True):
        before, after = xlsx_cells(original), xlsx_cells(again)
        numbers = [k for k, (kind, _) in before.items() if kind == "n"]
        assert len(numbers) >= 21 * 3 or original.stem == "RESULTS"
        for key, (kind, value) in before.items():
            got = after.get(key)
            assert got is not None and got[0] == kind, f"{original.name} {key}: {value} -> {got}"
            if kind == "n":
                assert float(got[1]) == pytest.approx(float(value), rel=1e-14, abs=0)
            else:
                assert got[1] == value
    if short != "C":  # the locale took effect: the same numbers as CSV do not survive it
        (from_csv,) = convert_to_xlsx([best_csv], tmp_path / f"{short}-csv", locale)
        with open(best_csv, newline="", encoding="utf-8") as handle:
            header, *rows = list(csv.reader(handle))
        column, cells = header.index("y_true"), xlsx_cells(from_csv)
        kept = [
            cells.get((r, column)) == ("n", row[column])
            or (
                cells.get((r, column), ("", ""))[0] == "n"
                and float(cells[(r, column)][1]) == float(row[column])
            )
            for r, row in enumerate(rows, start=1)
        ]
        assert not all(kept), f"LibreOffice did not apply {locale}: the CSV test proves nothing"


def test_writes_are_refused_read_only(mnt):
    with pytest.raises(OSError) as info:
        (mnt.path / "runs" / "new.txt").write_text("x")
    assert info.value.errno == 30  # EROFS: the mount is read-only whatever the modes say


def test_a_run_writing_while_mounted_shows_whole_results_and_fresh_best(ws, mnt):
    runs = mnt.path / "runs" / "fermentation"
    before = {p.name for p in runs.iterdir()}
    best_file = mnt.path / "best" / "fermentation.csv"
    old_best = best_file.read_bytes()
    missing_name = runs / "0013_sg1-pls4_placeholder"
    assert not missing_name.exists()  # a negative lookup the kernel must not keep
    seen_incomplete: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # any result folder that appears must be whole
        while not stop.is_set():
            for folder in runs.iterdir():
                if folder.name[:4].isdigit() and folder.name not in before:
                    entries = {p.name for p in folder.iterdir()}
                    if "scores.yaml" not in entries and "logs" not in entries:
                        seen_incomplete.append(folder.name)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        better = [
            {"savgol": {"deriv": 1, "window_length": 15, "polyorder": 2}},
            {"pls": {"n_components": {"_range_": [3, 5]}}},
        ]
        started = time.monotonic()
        ws.run(templates=[better], datasets=["fermentation"], cv=4, test_size=0.2, name="better")

        def new_results() -> set[str]:
            return {p.name for p in runs.iterdir() if p.name[:4].isdigit()} - before

        new = wait_for(lambda: len(new_results()) == 3 and new_results(), timeout=5)
        assert {n.split("_")[1] for n in new} == {"sg1-pls3", "sg1-pls4", "sg1-pls5"}
        assert time.monotonic() - started < 60
        tree = Tree(ws)  # the run has returned: what best/ must show now
        final = bytes(tree.read(tree.lookup(("best", "fermentation.csv"))))
        assert final != old_best
        wait_for(lambda: best_file.read_bytes() == final, timeout=2)
    finally:
        stop.set()
        watcher.join()
    assert seen_incomplete == []
    # an `fstat` of a version opened before the result landed answers for that version, and
    # the kernel keeps it for the path: stale for one watcher poll at most
    wait_for(lambda: os.stat(best_file).st_size == len(final), timeout=1)
    label = ws.best("fermentation").row.label
    assert label.split("_")[1].startswith("sg1-pls")
    assert (runs / f"best_{label}.csv").exists()
    assert len(best_csvs(p.name for p in runs.iterdir())) == 1


def test_sigterm_unmounts_cleanly(ws, tmp_path):
    mount = Mount(ws.path, tmp_path / "sig").start()
    assert (mount.path / "README.txt").read_bytes().startswith(b"n4afs workspace")
    mount.proc.send_signal(signal.SIGTERM)
    assert mount.proc.wait(timeout=20) == 0
    assert not os.path.ismount(mount.path)
    mount.assert_clean_log()


def test_a_mount_typed_with_relative_paths_follows_the_workspace(tmp_path):
    """The daemon serves from "/" (libfuse moves there): a workspace given as a relative path
    is still the one the user named, and what is added later still shows."""
    Workspace(tmp_path / "ws")
    mount = Mount(Path("ws"), Path("mnt"), cwd=tmp_path)
    with mount.serving():
        assert (mount.path / "README.txt").is_file()
        added = run_cli("-w", str(tmp_path / "ws"), "datasets", "add", "chemotools:coffee")
        assert added.returncode == 0, added.stderr
        wait_for(lambda: (mount.path / "datasets" / "coffee").exists(), timeout=10)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "n4afs.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_stale_mount_is_detected_and_cleared(ws, tmp_path):
    mount = Mount(ws.path, tmp_path / "stale").start()
    mount.proc.kill()
    mount.proc.wait(timeout=10)
    with pytest.raises(OSError):
        os.listdir(mount.path)  # "Transport endpoint is not connected"
    again = run_cli("mount", str(ws.path), str(mount.path))
    assert again.returncode == 2 and "stale mount" in again.stderr
    cleared = run_cli("umount", str(mount.path))
    assert cleared.returncode == 0 and "cleared stale mount" in cleared.stdout
    assert os.listdir(mount.path) == []


def test_background_mount_and_umount_commands(ws, tmp_path):
    target = tmp_path / "bg"
    out = run_cli("mount", str(ws.path), str(target))
    assert out.returncode == 0, out.stderr
    try:
        assert os.path.ismount(target) and "n4afs umount" in out.stdout
        assert (target / "runs" / "fermentation").is_dir()
        busy = run_cli("mount", str(ws.path), str(target))
        assert busy.returncode == 2 and "busy" in busy.stderr
    finally:
        down = run_cli("umount", str(target))
    assert down.returncode == 0 and not os.path.ismount(target)
    assert "not mounted" in run_cli("umount", str(target)).stderr


def test_refusals_say_what_to_do(ws, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "file").write_text("x")
    out = run_cli("mount", str(ws.path), str(full))
    assert out.returncode == 2 and "not empty" in out.stderr
    out = run_cli("mount", str(tmp_path / "no-ws"), str(tmp_path / "m1"))
    assert out.returncode == 2 and "n4afs init" in out.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO), "FUSE_LIBRARY_NAME": "no-such-fuse"}
    out = subprocess.run(
        [sys.executable, "-m", "n4afs.cli", "mount", str(ws.path), str(tmp_path / "m2")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2 and "install Debian's fuse3" in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_dev_fuse_is_explained(monkeypatch):
    from n4afs_core.errors import MountError

    from n4afs.surfaces import mount as mounting

    real_exists = os.path.exists
    monkeypatch.setattr(
        mounting.os.path, "exists", lambda p: False if p == "/dev/fuse" else real_exists(p)
    )
    with pytest.raises(MountError, match="/dev/fuse does not exist.*--device /dev/fuse"):
        mounting.check_fuse("linux")
    mounting.check_fuse("darwin")  # macFUSE and FUSE-T have no /dev/fuse: mfusepy finds them
    with pytest.raises(MountError, match="n4afs serve"):
        mounting.check_fuse("win32")


def test_corrupt_blob_reads_as_eio_never_wrong_bytes(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.run(templates=[["snv", "pls"]], datasets=["chemotools:fermentation"], name="corrupt")
    label = ws.best("fermentation").row.label
    mount = Mount(ws.path, tmp_path / "c").start()
    try:
        models = mount.path / "runs" / "fermentation" / label / "models"
        final = next(p for p in models.iterdir() if p.name.startswith("final_"))
        fs = N4AFileSystem(workspace=ws.path)
        blob = fs.real_path(f"/runs/fermentation/{label}/models/{final.name}/pls_model.pkl")
        os.chmod(blob, 0o644)
        data = bytearray(Path(blob).read_bytes())
        data[len(data) // 2] ^= 0xFF
        Path(blob).write_bytes(bytes(data))
        with pytest.raises(OSError) as info:
            (final / "pls_model.pkl").read_bytes()
        assert info.value.errno == 5  # EIO
        # the mount keeps serving everything else
        assert (mount.path / "README.txt").read_bytes().startswith(b"n4afs workspace")
    finally:
        mount.stop()
    assert "does not match its sha256" in mount.output()


def test_export_from_a_mounted_path_equals_export_from_the_tree(ws, mnt, tmp_path):
    label = best_label(ws)
    mounted = mnt.path / "runs" / "fermentation" / label
    via_mount = run_cli("export", str(mounted), "-o", str(tmp_path / "m.zip"))
    assert via_mount.returncode == 0, via_mount.stderr
    ws.export(f"runs/fermentation/{label}", tmp_path / "t.zip")
    with zipfile.ZipFile(tmp_path / "m.zip") as a, zipfile.ZipFile(tmp_path / "t.zip") as b:
        names = sorted(n for n in a.namelist() if n != "EXPORT.yaml")
        assert names == sorted(n for n in b.namelist() if n != "EXPORT.yaml")
        for name in names:
            if name != "MANIFEST.yaml":
                assert a.read(name) == b.read(name), name
