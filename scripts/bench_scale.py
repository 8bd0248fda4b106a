"""How n4afs's costs grow: workspaces of 45, 1,350, 10,000 and 100,000 results, in one run.

Workspaces (`--sizes`, default 45,1350,10000,100000):

- 45: REAL, the PERF-NOTES reference sweep (SNV | MSC | SG1 w15 x PLS 1..15, 5-fold CV) on
  chemotools' fermentation set (21 x 1047);
- 1,350: REAL, one sweep on fermentation: SNV | MSC | detrend, then SG 1st or 2nd derivative
  (polyorder 2) with windows 7, 9, .., 35, then PLS 1..15 = 3 x 30 x 15 configs;
- 10,000 and 100,000: CLONED. scripts/_bench_workspace.py's workspace: one real sweep (10
  results), then its result, model, artifact and score rows cloned with SQL (new ids, the
  SAME blobs) to the size, over size / 10,000 datasets (so 10,000 results in each dataset:
  one at 10,000, ten at 100,000), plus one 1 MiB random blob. Cloned rows carry their
  source's scores; their stored bytes are not those of real results (the blobs are shared),
  so "stored bytes per result" is given for the real sizes only.

At each size, in this order:

1. sweep time per config: the 45-config reference sweep run again into the workspace (a fresh
   process, imports warmed before the clock), `n_jobs=1`: does a bigger workspace slow a
   sweep? (For the real sizes, the build sweep's own time per config too.)
2. index bytes per result (DuckDB file + WAL), stored bytes per result (real sizes).
3. `n4afs best <dataset>` and `n4afs runs`, each in a fresh process, median of `--repeats`.
4. the mount: `n4afs mount --foreground` started -> the first `ls MOUNTPOINT` answered
   (one, on a fresh mount); then on that mount `ls best/` (every dataset's best, before any
   dataset folder is browsed), the first `ls -la runs/<dataset>` (the folder
   of the dataset with the most results: 10,000 at the cloned sizes), the first read of its
   RESULTS.csv; warm `ls -la` of the same folder against the floor (scripts/_floor_fs.py, the
   minimal mfusepy filesystem, serving a copy of that one folder on the local disk: the same
   names, sizes and mtimes, sizes as sparse files), in turns, median of `--repeats`; `find`
   over the whole mount (sizes up to `--find-max`, default 10,000, with `--find-timeout`:
   a whole-mount `find` lists every result folder under runs/ and by-run/); the mount
   daemon's resident memory (VmRSS and peak VmHWM from /proc) after all of that.
5. `n4afs du`, `n4afs verify` and `n4afs gc --dry-run`, each in a fresh process (`du` is
   n4afs's own: a `du` over the whole mount would stat, hence render, every chart). `verify`'s
   hashing speed against `sha256sum` over the same object files (warm, median of 3 each).
6. a Workspace's resident memory: a fresh process opens it, lists the tree root and the
   dataset folder, asks `best` and reads RESULTS.csv through `ws.tree`; VmRSS / VmHWM.

Then each metric's growth between consecutive sizes as a log-log slope (d log metric / d log
results): above 1.1 grows faster than linearly: a FINDING. Per-result metrics are given as
their slope + 1 (the slope of the total).

Run: `.venv/bin/python scripts/bench_scale.py [--sizes 45,1350,10000,100000] [--repeats 3]
[--quick] [--out FILE]`. Scratch under the repository root, removed at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_sweep import MSC, REFERENCE, SNV, Sweep, savgol  # noqa: E402
from bench_mount import FLOOR_FS, Mount  # noqa: E402

N4AFS = [sys.executable, "-m", "n4afs.cli"]
DETREND = ("detrend", "detrend", {})
REAL_1350 = Sweep(
    "1350",
    ((SNV, MSC, DETREND), tuple(savgol(w, d) for d in (1, 2) for w in range(7, 37, 2))),
    range(1, 16),
)
PER_DATASET = 10_000  # results a dataset at the cloned sizes

_T0 = time.perf_counter()


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - _T0:6.0f} s] {text}", flush=True)


def loadavg() -> float:
    return os.getloadavg()[0]


# -- building -------------------------------------------------------------------------------
def build(size: int, where: Path, scratch: Path) -> dict[str, Any]:
    """The workspace of `size` results; what the report must say about it."""
    from n4afs.workspace import Workspace

    if size in (len(REFERENCE), len(REAL_1350)):
        sweep = REFERENCE if size == len(REFERENCE) else REAL_1350
        ws = Workspace(where)
        ws.add_dataset("chemotools:fermentation")
        started = time.perf_counter()
        ws.run(templates=[sweep.template()], datasets=["fermentation"], cv=5, n_jobs=1)
        seconds = time.perf_counter() - started
        return {"ws": ws, "real": size, "build_per_config": seconds / size, "kind": "real"}
    from _bench_workspace import build_workspace

    n_datasets = max(1, size // PER_DATASET)
    synthetic = build_workspace(
        where, size, 1, scratch, dataset_tag="scale", log=log, n_datasets=n_datasets
    )
    return {"ws": synthetic.ws, "real": synthetic.n_real, "kind": "cloned"}


def counts(ws: Any) -> dict[str, Any]:
    with ws.index.read() as conn:
        results = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        name, per = conn.execute(
            "SELECT d.name, count(*) AS n FROM results r JOIN datasets d USING (dataset_id) "
            "GROUP BY d.name ORDER BY n DESC, d.name LIMIT 1"
        ).fetchone()
    db = Path(ws.index.db_path)
    index = sum(p.stat().st_size for p in (db, Path(str(db) + ".wal")) if p.exists())
    return {
        "results": results,
        "dataset": name,
        "dataset_results": per,
        "index_bytes": index,
        "stored_bytes": ws.blob_stats().stored_bytes,
    }


# -- fresh processes --------------------------------------------------------------------------
def fresh(argv: list[str], repeats: int, timeout: float = 3600) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=timeout, cwd=str(ROOT))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


SWEEP_CODE = """
import json, sys, time
sys.path.insert(0, {scripts!r})
from _bench_sweep import REFERENCE
from n4afs.workspace import Workspace
import sklearn.cross_decomposition, chemotools.scatter, chemotools.derivative  # warm imports
ws = Workspace({ws!r})
ws.runs()
started = time.perf_counter()
ws.run(templates=[REFERENCE.template()], datasets=[{dataset!r}], cv=5, n_jobs=1, name="probe")
print(time.perf_counter() - started)
"""

VERIFY_CODE = """
import time
from n4afs.workspace import Workspace
ws = Workspace({ws!r})
ws.runs()
started = time.perf_counter()
ws.verify()
print(time.perf_counter() - started)
"""

MEMORY_CODE = """
import sys
from n4afs.workspace import Workspace
ws = Workspace({ws!r})
tree = ws.tree
tree.list_dir(())
tree.list_dir(("runs",))
listing = tree.list_dir(("runs", {dataset!r}))
tree.read(listing["RESULTS.csv"])
ws.best({dataset!r})
status = open("/proc/self/status").read().split("\\n")
print(" ".join(l.split()[1] for l in status if l.startswith(("VmRSS:", "VmHWM:"))))
"""


def python_out(code: str, timeout: float = 3600) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
    )
    return done.stdout.strip().splitlines()[-1]


def rss_kib(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    values = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith("Vm")}
    return values["VmRSS"], values["VmHWM"]


# -- the mount --------------------------------------------------------------------------------
def timed(fn) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def run_out(argv: list[str], timeout: float = 3600) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout


def copy_listing(folder: Path, disk: Path) -> int:
    """The entries of `folder` (a mount folder) as empty dirs and sparse files of the same
    sizes and mtimes under `disk`: what `ls -la` of the floor then shows."""
    disk.mkdir(parents=True)
    n = 0
    for entry in os.scandir(folder):
        st = entry.stat(follow_symlinks=False)
        target = disk / entry.name
        if entry.is_dir(follow_symlinks=False):
            target.mkdir()
        else:
            with open(target, "wb") as out:
                out.truncate(st.st_size)
        os.utime(target, ns=(st.st_mtime_ns, st.st_mtime_ns))
        n += 1
    return n


def measure_mount(ws_dir: Path, dataset: str, scratch: Path, args, size: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mnt = scratch / "mnt"
    command = [*N4AFS, "mount", str(ws_dir), str(mnt), "--foreground"]
    mount = Mount(command, mnt, scratch / "mount.log")
    started = time.perf_counter()
    mount.start()
    run_out(["ls", str(mnt)])
    out["first_ls"] = time.perf_counter() - started
    out["mounted"] = mount.started_s
    folder = mnt / "runs" / dataset
    try:
        # every dataset's best, no dataset folder browsed yet (the index ranks each)
        out["best_ls"], _ = timed(lambda: run_out(["ls", str(mnt / "best")]))
        out["results_csv"], body = timed(lambda: (folder / "RESULTS.csv").read_bytes())
        out["results_csv_rows"] = body.count(b"\n") - 1
        out["ls_cold"], lines = timed(lambda: run_out(["ls", "-la", str(folder)]))
        out["ls_lines"] = len(lines.splitlines())
        # the floor: the same folder's entries on disk, served by the minimal mfusepy filesystem
        disk = scratch / "floor-disk" / dataset
        copy_listing(folder, disk)
        floor_mnt = scratch / "mnt-floor"
        floor = Mount(
            [sys.executable, str(FLOOR_FS), str(disk.parent), str(floor_mnt)],
            floor_mnt,
            scratch / "floor.log",
        ).start()
        try:
            sides = {"mount": str(folder), "floor": str(floor_mnt / dataset)}
            samples: dict[str, list[float]] = {k: [] for k in sides}
            for path in sides.values():  # first passes, unmeasured
                run_out(["ls", "-la", path])
            for rep in range(args.repeats):
                order = list(sides) if rep % 2 == 0 else list(reversed(sides))
                for side in order:
                    seconds, text = timed(lambda p=sides[side]: run_out(["ls", "-la", p]))
                    samples[side].append(seconds)
                    if len(text.splitlines()) != out["ls_lines"]:
                        raise SystemExit(f"{side}: ls -la gave {len(text.splitlines())} lines")
            out["ls_warm"] = statistics.median(samples["mount"])
            out["ls_floor"] = statistics.median(samples["floor"])
        finally:
            floor.stop()
        out["mount_rss_listed"] = rss_kib(mount.proc.pid)[0]  # before find
        if size <= args.find_max:
            try:
                out["find"], text = timed(
                    lambda: run_out(["find", str(mnt)], timeout=args.find_timeout)
                )
                out["find_entries"] = len(text.splitlines())
            except subprocess.TimeoutExpired:
                out["find"] = None
                out["find_note"] = f"> {args.find_timeout:.0f} s (stopped)"
        else:
            out["find_note"] = f"not run (size > --find-max {args.find_max:,})"
        out["mount_rss"], out["mount_hwm"] = rss_kib(mount.proc.pid)
    finally:
        mount.stop()
    return out


# -- verify against sha256sum -----------------------------------------------------------------
def hash_speed(ws: Any, ws_dir: Path, scratch: Path, repeats: int) -> dict[str, Any]:
    files = [str(ws.store.path_of(b)) for b in ws.store.iter_ids()]
    total = sum(os.path.getsize(f) for f in files)
    listing = scratch / "objects.list"
    listing.write_bytes(b"\0".join(f.encode() for f in files) + b"\0")
    sha = ["bash", "-c", f"xargs -0 -n 2000 sha256sum < '{listing}' > /dev/null"]
    fresh(sha, 1)  # warm the page cache
    samples: dict[str, list[float]] = {"sha": [], "verify": [], "verify_cli": []}
    for rep in range(repeats):
        for side in ("sha", "verify") if rep % 2 == 0 else ("verify", "sha"):
            if side == "sha":
                samples[side].append(fresh(sha, 1))
            else:
                samples[side].append(float(python_out(VERIFY_CODE.format(ws=str(ws_dir)))))
    samples["verify_cli"].append(fresh([*N4AFS, "-w", str(ws_dir), "verify"], 1))
    return {
        "objects": len(files),
        "object_bytes": total,
        "sha256sum": statistics.median(samples["sha"]),
        "verify": statistics.median(samples["verify"]),
        "verify_cli": samples["verify_cli"][0],
    }


# -- one size ---------------------------------------------------------------------------------
def measure(size: int, scratch: Path, args) -> dict[str, Any]:
    where = scratch / f"ws-{size}"
    log(f"size {size:,}: building ...")
    built = build(size, where, scratch)
    ws = built.pop("ws")
    m: dict[str, Any] = {"size": size, **built, **counts(ws), "load_start": loadavg()}
    log(f"size {size:,}: {m['results']:,} results ({m['kind']}, {m['real']} real); measuring")
    dataset = m["dataset"]
    m["best"] = fresh([*N4AFS, "-w", str(where), "best", dataset], args.repeats)
    m["runs"] = fresh([*N4AFS, "-w", str(where), "runs"], args.repeats)
    log(f"  best {m['best']:.2f} s, runs {m['runs']:.2f} s")
    m.update(measure_mount(where, dataset, scratch / f"mount-{size}", args, size))
    log(
        f"  mount first ls {m['first_ls']:.2f} s; ls -la {m['ls_lines']} lines cold "
        f"{m['ls_cold']:.3f} s warm {m['ls_warm']:.3f} s floor {m['ls_floor']:.3f} s; "
        f"RESULTS.csv {m['results_csv']:.3f} s; find {m.get('find')}; "
        f"RSS {m['mount_rss'] / 1024:.0f} MiB (peak {m['mount_hwm'] / 1024:.0f})"
    )
    m["du"] = fresh([*N4AFS, "-w", str(where), "du"], 1)
    m["gc"] = fresh([*N4AFS, "-w", str(where), "gc", "--dry-run"], 1)
    m.update(hash_speed(ws, where, scratch, 3))
    log(
        f"  du {m['du']:.2f} s, gc --dry-run {m['gc']:.2f} s, verify {m['verify_cli']:.2f} s "
        f"(in process {m['verify']:.2f} s) vs "
        f"sha256sum {m['sha256sum']:.2f} s over {m['objects']:,} objects"
    )
    code = MEMORY_CODE.format(ws=str(where), dataset=dataset)
    rss, hwm = (int(v) for v in python_out(code).split())
    m["ws_rss"], m["ws_hwm"] = rss, hwm
    code = SWEEP_CODE.format(
        scripts=str(Path(__file__).parent), ws=str(where), dataset="fermentation"
    )
    m["sweep_per_config"] = float(python_out(code)) / len(REFERENCE)
    m["load_end"] = loadavg()
    log(
        f"  workspace RSS {rss / 1024:.0f} MiB (peak {hwm / 1024:.0f}); 45-config sweep "
        f"{m['sweep_per_config'] * 1e3:.1f} ms a config; load {m['load_start']:.1f} -> "
        f"{m['load_end']:.1f}"
    )
    del ws
    shutil.rmtree(where, ignore_errors=True)
    return m


# -- report -----------------------------------------------------------------------------------
# (key, label, unit, per result?) ; per-result metrics' slope is shown as the total's
METRICS = (
    ("sweep_per_config", "45-config sweep into it, per config", "ms", False),
    ("index_per_result", "index bytes / result", "B", True),
    ("stored_per_result", "stored bytes / result (real sizes)", "B", True),
    ("best", "`n4afs best` (fresh process)", "s", False),
    ("runs", "`n4afs runs` (fresh process)", "s", False),
    ("first_ls", "`n4afs mount` -> first `ls` answered", "s", False),
    ("best_ls", "`ls best/` on that fresh mount (every dataset's best)", "s", False),
    ("ls_cold", "`ls -la runs/<dataset>`, first", "s", False),
    ("ls_warm", "`ls -la runs/<dataset>`, warm", "s", False),
    ("ls_floor", "same on the floor, warm", "s", False),
    ("results_csv", "first read of its RESULTS.csv", "s", False),
    ("find", "`find` over the whole mount", "s", False),
    ("du", "`n4afs du`", "s", False),
    ("verify_cli", "`n4afs verify` (fresh process)", "s", False),
    ("verify", "`ws.verify()` in a process, imports done", "s", False),
    ("sha256sum", "`sha256sum` of the same objects", "s", False),
    ("gc", "`n4afs gc --dry-run`", "s", False),
    ("mount_rss_listed", "mount daemon RSS before `find`", "MiB", False),
    ("mount_hwm", "mount daemon peak RSS (after `find` when run)", "MiB", False),
    ("ws_hwm", "a Workspace's peak RSS", "MiB", False),
)


def value(m: dict[str, Any], key: str) -> float | None:
    if key == "index_per_result":
        return m["index_bytes"] / m["results"]
    if key == "stored_per_result":
        return m["stored_bytes"] / m["results"] if m["kind"] == "real" else None
    v = m.get(key)
    if v is None:
        return None
    return v / 1024 if key.endswith(("hwm", "rss", "rss_listed")) else v


def show(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "ms":
        return f"{v * 1e3:.1f} ms"
    if unit == "s":
        return f"{v * 1e3:.0f} ms" if v < 1 else f"{v:.2f} s"
    if unit == "B":
        return f"{v:,.0f} B"
    return f"{v:,.0f} MiB"


def report(sizes: list[dict[str, Any]]) -> tuple[str, list[str]]:
    head = "| metric | " + " | ".join(f"{m['results']:,} ({m['kind']})" for m in sizes)
    slopes_head = " | ".join(
        f"slope {a['results']:,}→{b['results']:,}" for a, b in zip(sizes, sizes[1:], strict=False)
    )
    lines = [
        head + (" | " + slopes_head if slopes_head else "") + " |",
        "|---|" + "---:|" * (len(sizes) + max(0, len(sizes) - 1)),
    ]
    findings = []
    for key, label, unit, per_result in METRICS:
        vals = [value(m, key) for m in sizes]
        cells = [show(v, unit) for v in vals]
        slopes = []
        for (a, va), (b, vb) in zip(
            zip(sizes, vals, strict=True), list(zip(sizes, vals, strict=True))[1:], strict=False
        ):
            if not va or not vb:
                slopes.append("—")
                continue
            s = math.log(vb / va) / math.log(b["results"] / a["results"]) + (1 if per_result else 0)
            flag = s > 1.1
            slopes.append(f"**{s:.2f}** ⚠" if flag else f"{s:.2f}")
            if flag:
                findings.append(
                    f"{label}: slope {s:.2f} from {a['results']:,} to {b['results']:,} results "
                    f"({show(va, unit)} -> {show(vb, unit)})"
                )
        lines.append(f"| {label} | " + " | ".join(cells + slopes) + " |")
    extra = []
    for m in sizes:
        speed = m["object_bytes"] / m["verify"] / (m["object_bytes"] / m["sha256sum"])
        extra.append(
            f"- {m['results']:,} results ({m['kind']}: {m['real']} real; largest dataset "
            f"`{m['dataset']}` with {m['dataset_results']:,}): `ls -la` {m['ls_lines']} lines, "
            f"mount / floor warm {m['ls_warm'] / m['ls_floor']:.2f}× (goal ≤ 1.2×); RESULTS.csv "
            f"{m['results_csv_rows']:,} rows; find {m.get('find_entries', '—')} entries "
            f"{m.get('find_note', '')}; verify hashed {m['object_bytes'] / 1e6:,.1f} MB in "
            f"{m['objects']:,} objects at {speed:.0%} of sha256sum's speed (`ws.verify()` in "
            f"process against `xargs sha256sum`, warm; goal ≥ 80 %; verify also checks the "
            f"index rows); mount daemon RSS {m['mount_rss'] / 1024:.0f} "
            f"MiB (peak {m['mount_hwm'] / 1024:.0f}); index {m['index_bytes'] / 1e6:,.1f} MB; "
            f"1-min load {m['load_start']:.2f} -> {m['load_end']:.2f}"
            + (
                f"; the build sweep took {m['build_per_config'] * 1e3:.1f} ms a config"
                if "build_per_config" in m
                else ""
            )
        )
    return "\n".join(lines) + "\n\n" + "\n".join(extra) + "\n", findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="45,1350,10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--find-max", type=int, default=10_000)
    parser.add_argument("--find-timeout", type=float, default=600)
    parser.add_argument("--quick", action="store_true", help="sizes 45,1350, 2 repeats")
    parser.add_argument("--scratch-dir", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sizes = [int(v) for v in ("45,1350" if args.quick else args.sizes).split(",")]
    if args.quick:
        args.repeats = 2
    started, load_before = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix=".bench_scale-", dir=args.scratch_dir))
    measured = []
    try:
        for size in sizes:
            (scratch / f"mount-{size}").mkdir()
            measured.append(measure(size, scratch, args))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_after = os.getloadavg()
    table, findings = report(measured)
    header = (
        f"bench_scale, started {started} UTC, sizes {', '.join(f'{s:,}' for s in sizes)}, "
        f"medians of {args.repeats}; 1/5/15-min load {load_before[0]:.2f}/{load_before[1]:.2f}/"
        f"{load_before[2]:.2f} before, {load_after[0]:.2f}/{load_after[1]:.2f}/"
        f"{load_after[2]:.2f} after; total {time.perf_counter() - _T0:.0f} s. Slopes: "
        "d log(metric) / d log(results) between consecutive sizes (for per-result metrics, of "
        "their total); > 1.1 (⚠) grows faster than linearly.\n\n"
    )
    text = (
        header
        + table
        + "\nFindings (slope > 1.1):\n"
        + ("\n".join(f"- {f}" for f in findings) if findings else "- none")
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
