"""The `n4a://` fsspec tree against the same tree written out on the local disk (ext4).

What a user does with the tree is list it, stat it and read files. This builds a workspace of
`--results` results (default 10,000) and compares, in one run, the fsspec filesystem
(`n4afs.surfaces.fs.N4AFileSystem`) with a plain directory holding exactly the same files.

The workspace is SYNTHETIC BUT REALISTIC IN SHAPE (scripts/_bench_workspace.py, shared with
scripts/bench_mount.py): one real sweep (10 real results), then CLONED ROWS over 10 datasets
(new ids, the same blobs, the source's scores), plus one big random blob (`--big-mb`, default
200 MiB) registered as one more artifact (`big_random.pkl`) of one cloned model, so that
model's `pipeline.pkl` is that big too. The same tree is then materialized under the
repository directory (same ext4 filesystem as the blobs) by walking the `Tree` API: blob files
are hard links to the store's objects (both sides read the same page cache), rendered files
are written once per content key and hard-linked elsewhere. Chart PNGs are NOT rendered for the
copy (~0.1-0.2 s each: hours for 10,000 results): they are empty placeholder files with the
right names, and no disk-side measurement reads them.

Measurements (median of `--repeats`, three times as many samples for the cheap ones: ls,
small files, big reads; fsspec and disk interleaved, order rotated per repeat; "warm" = after
one unmeasured pass):

1. `fs.find("/")` (names only) vs `os.walk` + `os.lstat` of every entry; both file counts are
   printed and must match. The first `find` on a fresh instance (which builds every folder) is
   reported separately.
2. `fs.ls("/runs/<dataset>", detail=True)` of a 1,000-result folder vs `os.scandir` +
   `entry.stat()`: warm (same instance), and the first call on a fresh instance.
3. Every file of 200 random result folders (seeded; charts/ excluded, and the result that
   holds the big blob) read whole: `fs.cat_file(p)` vs `open(p, "rb").read()`. Charts
   (matplotlib) are measured apart: the median time to render one chart the first time, and
   to read it again from the render memo; likewise the predictions CSVs.
4. The big blob read sequentially: `fs.open` + `read(1 MiB)` until EOF vs the same with
   `open()`, and `fs.cat_file` whole vs `open().read()`; likewise the model's composed
   `pipeline.pkl` (served from segments) against its materialized copy.
5. Time from creating `N4AFileSystem(workspace=..., skip_instance_cache=True)` to the end of
   its first `ls("/runs/<dataset>")` (target < 0.3 s), and `load_snapshot` alone.

Targets (BENCHMARKS.md, "Targets"): find and ls no slower than the local disk, big reads
>= 90 % of open(), first listing < 0.3 s.

STORED RENDERS (`--renders`, instead of the above; docs/DESIGN.md, "Rendered once, for every
process"): on a workspace of `--results` results (the same synthetic shape; `--big-mb` as
given), `n4afs render` draws and stores every chart and table once (timed: the one-time
cost); the tree's `runs/` is then exported as a plain folder (`export --link`: blob files
hard-linked, rendered files written). Then, each in a FRESH PROCESS (imports done before the
clock starts; a new `N4AFileSystem`, so its first snapshot load is inside), sides in turn,
`--repeats` rounds:

6. `fs.glob("<root>/runs/**/*.png")` and the size (`fs.info`) of every match, through `n4a://`
   vs the same calls of fsspec's local filesystem on the plain folder (goal: within 2x);
   the n4a side also reports how many renders its process drew (must be 0).
7. DuckDB `read_csv` over the glob `<root>/runs/*/*/predictions/cv.csv` (every result's
   pooled out-of-fold predictions, one table: count and sum checked equal), through `n4a://`
   (`register_filesystem`) vs DuckDB's own reader on the plain folder (goal: within 2x), and
   vs DuckDB reading the plain folder through fsspec's local filesystem (the same Python
   file-object bridge n4a:// goes through: what part of the gap is that bridge).
8. The FUSE mount's COLD `find <mnt>/runs -name '*.png'` + `os.stat` of every chart (a
   fresh mount per pass: new daemon, empty kernel caches) vs the floor
   (scripts/_floor_fs.py, as in scripts/bench_mount.py) serving the plain folder, also
   fresh per pass (goal: within 1.2x).

Run: .venv/bin/python scripts/bench_tree.py [--results 10000] [--big-mb 200] [--repeats 5]
     [--out FILE] [--quick] [--profile] [--keep] [--renders]
`--quick`: 1,000 results, 20 MiB, 2 repeats (smoke test). `--profile`: cProfile of the cold
operations (first listing, first find). `--keep`: leave the scratch directory.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _bench_workspace import BIG_STEP, CHUNK, Materializer, add_workspace_arguments, build_workspace  # noqa: E402

SUBSET_RESULTS = 200
SEED = 2026

_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f} s] {message}", flush=True)


# -- timing helpers ---------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def median_of(fn: Callable[[], Any], repeats: int, warm: bool = True, number: int = 1) -> float:
    """Median seconds per call over `repeats` samples of `number` calls, after a warm-up."""
    if warm:
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - started) / number)
    return statistics.median(samples)


def compare(fns: dict[str, Callable[[], Any]], repeats: int, warm: bool = True) -> dict:
    """Median seconds of each function, interleaved: the order rotates on every repeat."""
    if warm:
        for fn in fns.values():
            fn()
    keys, samples = list(fns), {k: [] for k in fns}
    for i in range(repeats):
        for key in keys[i % len(keys) :] + keys[: i % len(keys)]:
            samples[key].append(timed(fns[key])[0])
    return {k: statistics.median(v) for k, v in samples.items()}


def ls_many(fn: Callable[[], Any], number: int = 20) -> Callable[[], None]:
    """`number` calls as one sample (a single `ls` is too short to time alone)."""

    def run() -> None:
        for _ in range(number):
            fn()

    return run


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_rate(seconds: float, nbytes: int) -> str:
    return f"{fmt_time(seconds)} ({nbytes / seconds / 1e6:,.0f} MB/s)"


def profile(label: str, fn: Callable[[], Any], lines: int = 18) -> Any:
    prof = cProfile.Profile()
    value = prof.runcall(fn)
    sink = io.StringIO()
    pstats.Stats(prof, stream=sink).sort_stats("tottime").print_stats(lines)
    print(f"\n--- cProfile: {label} (sorted by tottime) ---")
    print("\n".join(sink.getvalue().splitlines()[: lines + 12]))
    return value


# -- disk-side operations ---------------------------------------------------------------------
def walk_lstat(top: str) -> tuple[int, int]:
    n_files = n_dirs = 0
    for root, dirs, files in os.walk(top):
        for name in dirs:
            os.lstat(os.path.join(root, name))
        for name in files:
            os.lstat(os.path.join(root, name))
        n_dirs += len(dirs)
        n_files += len(files)
    return n_files, n_dirs


def scandir_stat(path: str) -> int:
    n = 0
    with os.scandir(path) as entries:
        for entry in entries:
            entry.stat(follow_symlinks=False)
            n += 1
    return n


def read_all(paths: list[str]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            total += len(f.read())
    return total


def read_chunks(opener: Callable[[], Any]) -> int:
    total = 0
    with opener() as f:
        while chunk := f.read(CHUNK):
            total += len(chunk)
    return total


def open_rb(path: str) -> Any:
    return open(path, "rb")  # noqa: SIM115 - read_chunks closes it


def read_whole(path: str) -> int:
    with open(path, "rb") as f:
        return len(f.read())


def measure_renders(
    ws: Any, dataset: str, result_dirs: list[str], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """First read (a render) and second read (memo) of every predictions CSV and chart."""
    from n4afs.tree.tree import Tree

    renders: dict[str, list[float]] = {"chart": [], "csv": []}
    memo_reads: dict[str, list[float]] = {"chart": [], "csv": []}
    for _ in range(repeats):
        tree = Tree(ws, stored_renders=False)  # a fresh render memo, nothing stored: draws
        tree.refresh()
        for d in result_dirs:
            parts = ("runs", dataset, d.rsplit("/", 1)[-1])
            for kind, sub in (("csv", "predictions"), ("chart", "charts")):
                for node in tree.list_dir((*parts, sub)).values():
                    before = tree.memo.renders
                    elapsed, _ = timed(lambda n=node, t=tree: t.read(n))
                    if tree.memo.renders > before:
                        renders[kind].append(elapsed)
                    memo_reads[kind].append(timed(lambda n=node, t=tree: t.read(n))[0])
    return renders, memo_reads


# -- stored renders (6-8) ---------------------------------------------------------------------
FRESH_GLOB = """
import fsspec, time, json, duckdb
from n4afs.surfaces.fs import N4AFileSystem  # imported outside the clock, as fsspec is
root, side = {root!r}, {side!r}
started = time.perf_counter()
fs = fsspec.filesystem("n4a" if side == "n4a" else "file", skip_instance_cache=True)
charts = fs.glob(root + "/runs/**/*.png")
globbed = time.perf_counter()
total = sum(fs.info(p)["size"] for p in charts)
sized = time.perf_counter()
renders = sum(t.memo.renders for t in getattr(fs, "_trees", {{}}).values())
print(json.dumps({{"glob": globbed - started, "sizes": sized - globbed, "charts": len(charts),
    "bytes": total, "renders": renders}}))
"""

FRESH_DUCKDB = """
import fsspec, time, json, duckdb
from n4afs.surfaces.fs import N4AFileSystem
root, side = {root!r}, {side!r}
started = time.perf_counter()
con = duckdb.connect()
if side == "n4a":
    fs = fsspec.filesystem("n4a", skip_instance_cache=True)
    con.register_filesystem(fs)
elif side == "plain-fsspec":  # DuckDB reading through fsspec's local filesystem
    con.register_filesystem(fsspec.filesystem("file", skip_instance_cache=True))
    root = "file://" + root
got = con.execute(
    f"SELECT count(*), round(sum(y_pred), 6) FROM read_csv('{{root}}/runs/*/*/predictions/cv.csv')"
).fetchone()
elapsed = time.perf_counter() - started
renders = sum(t.memo.renders for t in getattr(fs, "_trees", {{}}).values()) if side == "n4a" else 0
print(json.dumps({{"read": elapsed, "rows": got[0], "sum": got[1], "renders": renders}}))
"""


def fresh_process(code: str) -> dict[str, Any]:
    import json
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"fresh process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stored_renders(args: Any) -> int:  # noqa: PLR0915 - one linear measurement
    """Measurements 6-8 (the module docstring): a fresh process's glob, DuckDB glob and the
    mount's cold find + stat of every chart, with every render stored, against a plain copy."""
    import subprocess

    from bench_mount import FLOOR_FS, Mount

    scratch = Path(tempfile.mkdtemp(prefix=".bench_tree-renders-", dir=REPO))
    try:
        ws_dir, plain = scratch / "ws", scratch / "plain"
        info = build_workspace(
            ws_dir, args.results, args.big_mb, scratch, dataset_tag="bench-tree", log=log
        )
        ws = info.ws
        log(f"workspace: {info.summary()}; n4afs render (draws and stores every render) ...")
        render_s, done = timed(ws.render)
        log(f"  render: {render_s:.1f} s, {done}")
        from n4afs_core.store.renders import RenderCatalogue

        catalogue = RenderCatalogue(ws.path, ws.store)
        records = [r for stamp in catalogue.stamps() for r in catalogue.records(stamp)]
        render_blobs = {b: size for _, b, size in records}
        log(
            f"  {len(records):,} records, {len(render_blobs):,} distinct blobs, "
            f"{sum(render_blobs.values()) / 1e6:.1f} MB"
        )
        log("plain copy: export runs/ --link ...")
        export_s, _ = timed(lambda: ws.export(("runs",), plain, link=True))
        log(f"  export: {export_s:.1f} s")
        # the plain folder's tree root: where its runs/ folder is
        plain_root = next(p.parent for p in plain.rglob("runs") if p.is_dir())
        if plain_root.name != "runs" and not (plain_root / "runs").is_dir():
            raise SystemExit(f"no runs/ in the export: {plain}")
        roots = {"n4a": f"n4a://{ws_dir}", "plain": str(plain_root)}

        samples: dict[tuple[str, str], list[float]] = {}
        answers: dict[tuple[str, str], set] = {}
        for rep in range(args.repeats):
            for side in ("n4a", "plain") if rep % 2 == 0 else ("plain", "n4a"):
                got = fresh_process(FRESH_GLOB.format(root=roots[side], side=side))
                samples.setdefault(("glob", side), []).append(got["glob"])
                samples.setdefault(("glob+sizes", side), []).append(got["glob"] + got["sizes"])
                answers.setdefault(("glob", side), set()).add((got["charts"], got["bytes"]))
                if got["renders"]:
                    raise SystemExit(f"the fresh n4a process drew {got['renders']} renders")
                got = fresh_process(FRESH_DUCKDB.format(root=roots[side], side=side))
                samples.setdefault(("duckdb", side), []).append(got["read"])
                answers.setdefault(("duckdb", side), set()).add((got["rows"], got["sum"]))
                if side == "plain":
                    code = FRESH_DUCKDB.format(root=roots[side], side="plain-fsspec")
                    got = fresh_process(code)
                    samples.setdefault(("duckdb", "plain-fsspec"), []).append(got["read"])
                    answers[("duckdb", "plain")].add((got["rows"], got["sum"]))
                if got["renders"]:
                    raise SystemExit(f"the fresh DuckDB process drew {got['renders']} renders")
            log(f"  round {rep + 1}/{args.repeats}: {answers}")
        for what in ("glob", "duckdb"):
            if (
                answers[(what, "n4a")] != answers[(what, "plain")]
                or len(answers[(what, "n4a")]) != 1
            ):
                raise SystemExit(f"{what}: different answers {answers}")

        # -- 8. the mount: cold find + stat of every chart, against the floor ------------------
        mounts = {
            "mount": Mount(
                [
                    sys.executable,
                    "-m",
                    "n4afs.cli",
                    "mount",
                    str(ws_dir),
                    str(scratch / "mnt"),
                    "--foreground",
                ],
                scratch / "mnt",
                scratch / "mount.log",
            ),
            "floor": Mount(
                [
                    sys.executable,
                    str(FLOOR_FS),
                    str(plain_root),
                    str(scratch / "mnt-floor"),
                    "--index",
                    str(scratch / "floor.index"),
                ],
                scratch / "mnt-floor",
                scratch / "floor.log",
            ),
        }
        mounts["floor"].start().stop()  # its first start walks the copy and writes its index

        def find_stat(where: Path) -> tuple[int, int]:
            listed = subprocess.run(
                ["find", str(where / "runs"), "-name", "*.png"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            return len(listed), sum(os.stat(p).st_size for p in listed)

        found: dict[str, set] = {}
        for rep in range(args.repeats):
            for side in ("mount", "floor") if rep % 2 == 0 else ("floor", "mount"):
                mount = mounts[side].start()
                try:
                    seconds, got = timed(lambda m=mount: find_stat(m.path))
                finally:
                    mount.stop()
                samples.setdefault(("mount find+stat", side), []).append(seconds)
                found.setdefault(side, set()).add(got)
            log(f"  mount round {rep + 1}/{args.repeats}: {found}")
        if found["mount"] != found["floor"] or len(found["mount"]) != 1:
            raise SystemExit(f"mount and floor differ: {found}")

        def med(what: str, side: str) -> float:
            return statistics.median(samples[(what, side)])

        ((n_charts, chart_bytes),) = answers[("glob", "n4a")]
        ((n_rows, _),) = answers[("duckdb", "n4a")]
        lines = [
            f"Stored renders, {args.results:,} results ({info.summary()}): `n4afs render` drew "
            f"and stored {done['drawn']:,} of {done['files']:,} files in {render_s:.0f} s "
            f"({len(render_blobs):,} distinct blobs, {sum(render_blobs.values()) / 1e6:.1f} MB); "
            f"plain copy by `export --link` in {export_s:.0f} s. Fresh processes, medians of "
            f"{args.repeats}; every n4a process drew 0 renders.",
            "",
            "| measurement | n4a:// or mount | plain folder or floor | ratio | goal |",
            "|---|---:|---:|---:|---|",
        ]
        table = [
            (f"`fs.glob` of every chart ({n_charts:,})", "glob", "n4a", "plain", 2.0),
            (
                f"… and `fs.info` size of each ({chart_bytes / 1e6:.0f} MB)",
                "glob+sizes",
                "n4a",
                "plain",
                2.0,
            ),
            (
                f"DuckDB `read_csv` glob of every `cv.csv` ({n_rows:,} rows)",
                "duckdb",
                "n4a",
                "plain",
                2.0,
            ),
            (
                "… against DuckDB on the plain folder through fsspec's local filesystem",
                "duckdb",
                "n4a",
                "plain-fsspec",
                2.0,
            ),
            (
                "mount cold `find` + `stat` of every chart / floor",
                "mount find+stat",
                "mount",
                "floor",
                1.2,
            ),
        ]
        for label, what, a, b, goal in table:
            ra, rb = med(what, a), med(what, b)
            verdict = "met" if ra / rb <= goal else "NOT met"
            lines.append(
                f"| {label} | {fmt_time(ra)} | {fmt_time(rb)} | **{ra / rb:.2f}×** | "
                f"≤ {goal}×: {verdict} |"
            )
        text = "\n".join(lines) + "\n"
        print("\n" + text)
        if args.out:
            args.out.write_text(text)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


# -- the benchmark ----------------------------------------------------------------------------
def main() -> int:  # noqa: C901, PLR0915 - one linear script, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workspace_arguments(parser)
    parser.add_argument("--profile", action="store_true", help="cProfile the cold operations")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--renders", action="store_true", help="only the stored-renders measurements (6-8)"
    )
    args = parser.parse_args()
    if args.quick:
        args.results, args.big_mb, args.repeats = 1_000, 20, 2
    repeats = args.repeats
    if args.renders:
        return stored_renders(args)

    from n4afs.surfaces.fs import N4AFileSystem
    from n4afs.tree.snapshot import load_snapshot
    from n4afs.tree.tree import Tree, Views

    scratch = Path(tempfile.mkdtemp(prefix=".bench_tree-", dir=REPO))
    rows: list[tuple[str, str, str, str, str]] = []  # label, fsspec, disk, ratio, target
    notes: list[str] = []
    try:
        ws_dir, disk_root, spare = scratch / "ws", scratch / "tree", scratch / "spare"
        disk_root.mkdir()
        spare.mkdir()
        info = build_workspace(
            ws_dir, args.results, args.big_mb, scratch, dataset_tag="bench-tree", log=log
        )
        ws, counts, stats = info.ws, info.counts, info.ws.blob_stats()
        log(
            f"workspace: {info.summary()}, {counts['predictions']:,} score rows; blobs: "
            f"{stats.n_blobs} distinct for {stats.n_references:,} references, "
            f"{stats.logical_bytes / 1e6:,.0f} MB logical, {stats.stored_bytes / 1e6:,.0f} MB "
            f"stored (dedup {stats.dedup_ratio:,.0f}x)"
        )

        # -- the materialized copy -------------------------------------------------------
        mat = Materializer(Tree(ws), disk_root, spare, link_copies=False, log=log)
        mat.run()
        mat_s, n_placeholders = mat.seconds, mat.charts
        mat = None
        gc.collect()

        fs = N4AFileSystem(workspace=str(ws_dir), skip_instance_cache=True)
        top = [e["name"].rsplit("/", 1)[-1] for e in fs.ls("/runs") if e["type"] == "directory"]
        ds_a, ds_b = top[0], top[1]
        labels = {
            ds: [e["name"] for e in fs.ls(f"/runs/{ds}") if e["type"] == "directory"] for ds in top
        }
        n_entries = len(fs.ls(f"/runs/{ds_a}"))
        log(f"datasets: {', '.join(top)}; /runs/{ds_a} has {n_entries:,} entries")

        # -- 5. snapshot load and first listing --------------------------------------------
        log("snapshot load and first listing on fresh instances ...")
        snap_s = median_of(lambda: load_snapshot(ws.index), repeats)
        snapshot = load_snapshot(ws.index)
        views_s = median_of(lambda: Views(snapshot), repeats)
        big_label = next(r.label for r in snapshot.results if r.result_id == info.big_result_id)
        snapshot = None
        first_ls, other_ls = [], []
        for _ in range(repeats):
            gc.collect()
            started = time.perf_counter()
            fresh = N4AFileSystem(workspace=str(ws_dir), skip_instance_cache=True)
            fresh.ls(f"/runs/{ds_a}")
            first_ls.append(time.perf_counter() - started)
            other_ls.append(timed(lambda f=fresh: f.ls(f"/runs/{ds_b}"))[0])
        first_ls_s = statistics.median(first_ls)
        other_ls_s = statistics.median(other_ls)
        if args.profile:
            profile(
                "first ls of a fresh instance",
                lambda: N4AFileSystem(workspace=str(ws_dir), skip_instance_cache=True).ls(
                    f"/runs/{ds_a}"
                ),
            )

        # -- 2. ls of a 1,000-result folder ------------------------------------------------
        log("ls -l of a 1,000-result folder: warm fsspec vs scandir + stat ...")
        assert scandir_stat(str(disk_root / "runs" / ds_a)) == n_entries
        ls_n = 20
        got = compare(
            {
                "fs": ls_many(lambda: fs.ls(f"/runs/{ds_a}", detail=True), ls_n),
                "disk": ls_many(lambda: scandir_stat(str(disk_root / "runs" / ds_a)), ls_n),
            },
            3 * repeats,  # cheap: three times the samples, for a steadier median
        )
        ls_fs, ls_disk = got["fs"] / ls_n, got["disk"] / ls_n

        # -- 1. find over the whole tree ---------------------------------------------------
        log("find: first find on a fresh instance (builds every folder) ...")
        cold = N4AFileSystem(workspace=str(ws_dir), skip_instance_cache=True)
        find_cold_s, found = timed(lambda: cold.find("/"))
        log(f"  cold find: {find_cold_s:.2f} s, {len(found):,} files")
        if args.profile:  # on another fresh instance: the timing above stays unprofiled
            profile(
                "first find / (another fresh instance)",
                lambda: N4AFileSystem(workspace=str(ws_dir), skip_instance_cache=True).find("/"),
            )
        n_files_disk, n_dirs_disk = walk_lstat(str(disk_root))  # also the disk's warm-up
        log(
            f"  fsspec find: {len(found):,} files; disk: {n_files_disk:,} files + "
            f"{n_dirs_disk:,} dirs"
        )
        assert len(found) == n_files_disk, (len(found), n_files_disk)
        log("find: warm fsspec vs os.walk + lstat ...")
        got = compare(
            {"fs": lambda: cold.find("/"), "disk": lambda: walk_lstat(str(disk_root))},
            repeats,
            warm=False,  # both just ran once
        )
        find_fs, find_disk = got["fs"], got["disk"]
        cold = found = None
        gc.collect()

        # -- 3. the small files of 200 random results ----------------------------------------
        rng = random.Random(SEED)
        pool = [p for ds in top for p in labels[ds] if not p.endswith("/" + big_label)]
        chosen = rng.sample(pool, min(SUBSET_RESULTS, len(pool)))
        small = sorted(p for d in chosen for p in fs.find(d) if "/charts/" not in p)
        small_bytes = read_all([str(disk_root) + p for p in small])
        log(
            f"small files: {len(small):,} files ({small_bytes / 1e6:.1f} MB) in "
            f"{len(chosen)} result folders (seed {SEED}), charts/ excluded ..."
        )
        fresh = N4AFileSystem(workspace=str(ws_dir), skip_instance_cache=True)
        small_first_s, got = timed(lambda: sum(len(fresh.cat_file(p)) for p in small))
        assert got == small_bytes, (got, small_bytes)
        groups = {"all": small}
        for p in small:
            name = p.rsplit("/", 1)[-1]
            kind = (
                "pipeline.pkl (segments)"
                if name == "pipeline.pkl"
                else "step .pkl (blob files)"
                if name.endswith(".pkl")
                else "YAML and CSV (rendered)"
            )
            groups.setdefault(kind, []).append(p)
        small_t: dict[str, dict[str, float]] = {}
        for kind, paths in groups.items():
            disk_paths = [str(disk_root) + p for p in paths]
            small_t[kind] = compare(
                {
                    "fs": lambda ps=paths: [fresh.cat_file(p) for p in ps],
                    "disk": lambda ps=disk_paths: read_all(ps),
                },
                3 * repeats,  # cheap: three times the samples, for a steadier median
            )
        fresh = None

        # -- 4. the big blob and its composed pipeline.pkl -----------------------------------
        model_dir = next(
            p.rsplit("/", 1)[0]
            for p in fs.find(f"/runs/{top[1]}/{big_label}/models")
            if p.endswith(f"/{BIG_STEP}.pkl")
        )
        big_path, pipe_path = f"{model_dir}/{BIG_STEP}.pkl", f"{model_dir}/pipeline.pkl"
        big_size, pipe_size = fs.info(big_path)["size"], fs.info(pipe_path)["size"]
        assert os.path.getsize(str(disk_root) + big_path) == big_size
        log(f"big reads: {big_path} ({big_size / 2**20:.0f} MiB) and its pipeline.pkl ...")
        big = {}
        for name, path, size in (("blob", big_path, big_size), ("pipe", pipe_path, pipe_size)):
            disk_path = str(disk_root) + path
            assert read_chunks(lambda p=path: fs.open(p, "rb")) == size
            assert len(fs.cat_file(path)) == size == os.path.getsize(disk_path)
            got = compare(  # cheap: three times the samples, for a steadier median
                {
                    "fs_open": lambda p=path: read_chunks(lambda: fs.open(p, "rb")),
                    "disk_open": lambda p=disk_path: read_chunks(lambda: open_rb(p)),
                    "fs_cat": lambda p=path: fs.cat_file(p),
                    "disk_cat": lambda p=disk_path: read_whole(p),
                },
                3 * repeats,
            )
            big.update({(name, k): v for k, v in got.items()})

        # -- charts and predictions CSVs: first render vs memo ------------------------------
        log("renders: charts and predictions CSVs of the real results, fresh Tree per repeat ...")
        real_dirs = labels[top[0]][: info.n_real]
        warm_tree = Tree(ws, stored_renders=False)  # import matplotlib outside the clock
        chart_dir = ("runs", top[0], real_dirs[0].rsplit("/", 1)[-1], "charts")
        warm_tree.read(next(iter(warm_tree.list_dir(chart_dir).values())))
        warm_tree = None
        renders, memo_reads = measure_renders(ws, top[0], real_dirs, repeats)

        # -- the table ---------------------------------------------------------------------
        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}×"

        def pct(fs_s: float, disk_s: float) -> str:
            return f"{disk_s / fs_s:.0%} of open()"

        rows += [
            (
                f"`find /` names only, {n_files_disk:,} files ({n_dirs_disk:,} dirs), warm",
                fmt_time(find_fs),
                f"{fmt_time(find_disk)} (os.walk + lstat)",
                ratio(find_fs, find_disk),
                "≤ 1×: " + ("met" if find_fs <= find_disk else "NOT met"),
            ),
            (
                "`find /`, first call on a fresh instance (builds every folder), 1 run",
                fmt_time(find_cold_s),
                "—",
                f"({ratio(find_cold_s, find_disk)} the warm walk)",
                "—",
            ),
            (
                f"`ls -l` of `/runs/<dataset>` ({n_entries:,} entries), warm",
                fmt_time(ls_fs),
                f"{fmt_time(ls_disk)} (scandir + stat)",
                ratio(ls_fs, ls_disk),
                "≤ 1×: " + ("met" if ls_fs <= ls_disk else "NOT met"),
            ),
            (
                '`ls -l`, first call on a fresh instance: see "first listing" below',
                fmt_time(first_ls_s),
                "—",
                "—",
                "—",
            ),
            (
                "`ls -l` of another dataset's folder, first time (snapshot already loaded)",
                fmt_time(other_ls_s),
                "—",
                "—",
                "—",
            ),
        ]
        for kind, paths in groups.items():
            t = small_t[kind]
            what = (
                f"read {len(paths):,} small files of {len(chosen)} results "
                f"({small_bytes / 1e6:.0f} MB), warm"
                if kind == "all"
                else f"… of which {len(paths):,} {kind}"
            )
            rows.append(
                (
                    what,
                    f"{fmt_time(t['fs'])} (cat_file)",
                    f"{fmt_time(t['disk'])} (open().read())",
                    ratio(t["fs"], t["disk"]),
                    "—",
                )
            )
        rows.append(
            (
                f"the {len(small):,} files, first pass on a fresh instance (snapshot load, "
                "folders built, YAML/CSV rendered), 1 run",
                fmt_time(small_first_s),
                "—",
                "—",
                "—",
            )
        )
        for name, label, size in (
            ("blob", f"{big_size / 2**20:.0f} MiB blob file", big_size),
            ("pipe", f"its {pipe_size / 2**20:.0f} MiB `pipeline.pkl` (segments)", pipe_size),
        ):
            fs_open, disk_open = big[name, "fs_open"], big[name, "disk_open"]
            fs_cat, disk_cat = big[name, "fs_cat"], big[name, "disk_cat"]
            rows += [
                (
                    f"{label}: `open` + `read(1 MiB)` to EOF, warm",
                    fmt_rate(fs_open, size),
                    fmt_rate(disk_open, size),
                    f"{ratio(fs_open, disk_open)} = {pct(fs_open, disk_open)}",
                    "≥ 90 %: " + ("met" if disk_open / fs_open >= 0.9 else "NOT met"),
                ),
                (
                    f"{label}: whole (`cat_file` / `open().read()`), warm",
                    fmt_rate(fs_cat, size),
                    fmt_rate(disk_cat, size),
                    f"{ratio(fs_cat, disk_cat)} = {pct(fs_cat, disk_cat)}",
                    "≥ 90 %: " + ("met" if disk_cat / fs_cat >= 0.9 else "NOT met"),
                ),
            ]
        rows += [
            (
                "first listing: `N4AFileSystem(...)` → first `ls /runs/<dataset>`",
                fmt_time(first_ls_s),
                "—",
                "—",
                "< 0.3 s: " + ("met" if first_ls_s < 0.3 else "NOT met"),
            ),
            ("… of which `load_snapshot` alone", fmt_time(snap_s), "—", "—", "—"),
            ("… and `Views(snapshot)` (groupings, ranking)", fmt_time(views_s), "—", "—", "—"),
            (
                f"render one predictions CSV, first time (median of {len(renders['csv'])})",
                fmt_time(statistics.median(renders["csv"])),
                "—",
                "—",
                "—",
            ),
            (
                "… read it again (render memo)",
                fmt_time(statistics.median(memo_reads["csv"])),
                "—",
                "—",
                "—",
            ),
            (
                f"render one chart PNG, first time (median of {len(renders['chart'])})",
                fmt_time(statistics.median(renders["chart"])),
                "—",
                "—",
                "—",
            ),
            (
                "… read it again (render memo)",
                fmt_time(statistics.median(memo_reads["chart"])),
                "—",
                "—",
                "—",
            ),
        ]
        notes += [
            f"Workspace: {counts['results']:,} results over {counts['datasets']} datasets, of "
            f"which {info.n_real} real and the rest CLONED rows (synthetic; same blobs, "
            f"dedup {stats.dedup_ratio:,.0f}x), plus one {args.big_mb} MiB random blob.",
            f"Materialized copy: {mat_s:.0f} s, {n_files_disk:,} files + {n_dirs_disk:,} dirs "
            "on the same ext4 filesystem; blob files are hard links to the store objects; the "
            f"{n_placeholders:,} chart PNGs are EMPTY placeholders there (same names; not "
            "rendered: ~0.1-0.2 s each), which no disk-side measurement reads.",
            f"Small files: {len(small):,} files of {len(chosen)} random result folders "
            f"(seed {SEED}), charts/ excluded (renders measured apart).",
            f"Medians of {repeats} repeats ({3 * repeats} for ls, small files and big reads) "
            "unless marked 1 run, fsspec and disk interleaved "
            "(order rotated per repeat) after one unmeasured pass; ratio = fsspec time / disk "
            f"time. Run time before cleanup: {time.perf_counter() - _T0:.0f} s.",
        ]
        header = (
            f"| measurement ({counts['results']:,} results) | n4a:// fsspec | local disk (ext4) "
            "| fsspec / disk | target |\n|---|---:|---:|---:|---|"
        )
        table = "\n".join([header] + ["| " + " | ".join(r) + " |" for r in rows])
        text = table + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        print("\n" + text)
        if args.out:
            args.out.write_text(text)
        return 0
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            log(f"removing {scratch} ...")
            removed_s, _ = timed(lambda: shutil.rmtree(scratch, ignore_errors=True))
            log(f"removed in {removed_s:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
