"""The `n4a://` fsspec tree against the same tree written out on the local disk (ext4).

What a user does with the tree is list it, stat it and read files. This builds a workspace of
`--results` results (default 10,000) and compares, in one run, the fsspec filesystem
(`n4afs.fs.N4AFileSystem`) with a plain directory holding exactly the same files.

The workspace is SYNTHETIC BUT REALISTIC IN SHAPE: one real sweep (chemotools fermentation,
SNV | MSC x PLS 1..5, 5-fold CV: 10 real results, 60 models, real blobs) is run first; its
results, models, artifacts and score rows are then CLONED WITH SQL (new result ids, sequence
numbers, model ids; the same blobs, so deduplication is real) over 10 datasets (the real
dataset row plus 9 clones of it under other names and ids, pointing to the same Parquet
blob), `--results` / 10 results each. The clones carry their source's scores. One big random
blob (`--big-mb`, default 200 MiB) is stored and registered as one more artifact
(`big_random.pkl`) of one cloned model, so that model's `pipeline.pkl` is that big too. It
does not unpickle; it is only read.

The same tree is then materialized under the repository directory (same ext4 filesystem as
the blobs) by walking the `Tree` API: directories are created, blob files are hard links to
the store's objects (both sides read the same page cache), rendered files are written as
bytes; files with the same content key (a rendered file shown under `runs/` and `by-run/`,
a predictions CSV of cloned rows sharing one predictions blob) are hard links to one copy.
Chart PNGs are NOT rendered for the copy (each result's charts are its own renders, ~0.1-0.2 s
each: hours for 10,000 results): they are empty placeholder files with the right names, and
no disk-side measurement reads them.

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

Targets (the issue): find and ls no slower than the local disk, big reads >= 90 % of open(),
first listing < 0.3 s.

Run: .venv/bin/python scripts/bench_tree.py [--results 10000] [--big-mb 200] [--repeats 5]
     [--out FILE] [--quick] [--profile] [--keep]
`--quick`: 1,000 results, 20 MiB, 2 repeats (smoke test). `--profile`: cProfile of the cold
operations (first listing, first find). `--keep`: leave the scratch directory.
"""

from __future__ import annotations

import argparse
import cProfile
import errno
import gc
import hashlib
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

N_DATASETS = 10
SUBSET_RESULTS = 200
SEED = 2026
CHUNK = 1 << 20
TEMPLATE = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 5]}}}]
CLONE_RUN = "2026-11-25_bench-clones_000000"
BIG_STEP = "big_random"

_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f} s] {message}", flush=True)


# -- building the workspace -----------------------------------------------------------------
def build_workspace(ws_dir: Path, n_results: int, big_mb: int, scratch: Path) -> dict[str, Any]:
    """One real sweep, then SQL clones up to `n_results`, then one big blob."""
    import pyarrow as pa

    from n4afs.workspace import Workspace

    ws = Workspace(ws_dir)
    log("real sweep: fermentation, SNV|MSC x PLS 1..5, 5-fold CV ...")
    run = ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=5, name="real")
    with ws.index.read() as conn:
        real = conn.execute(
            "SELECT result_id, dataset_id FROM results WHERE run_id = ? ORDER BY seq",
            [run.run_id],
        ).fetchall()
    n_real = len(real)
    real_dataset = real[0][1]
    if n_results < N_DATASETS * (n_real + 1):
        raise SystemExit(f"--results must be at least {N_DATASETS * (n_real + 1)}")
    log(f"{n_real} real results; cloning rows to {n_results} results over {N_DATASETS} datasets")

    dataset_ids = [real_dataset] + [
        hashlib.sha256(f"bench-tree-dataset-{i}".encode()).hexdigest() for i in range(1, N_DATASETS)
    ]
    per_dataset = [
        n_results // N_DATASETS + (1 if i < n_results % N_DATASETS else 0)
        for i in range(N_DATASETS)
    ]
    clone_rows: dict[str, list] = {"new_id": [], "src_id": [], "dataset_id": [], "seq": []}
    k = 0
    for i, (dataset_id, count) in enumerate(zip(dataset_ids, per_dataset, strict=True)):
        first_seq = n_real + 1 if i == 0 else 1
        for seq in range(first_seq, count + 1):
            clone_rows["new_id"].append(f"bc{k:010d}")
            clone_rows["src_id"].append(real[k % n_real][0])
            clone_rows["dataset_id"].append(dataset_id)
            clone_rows["seq"].append(seq)
            k += 1
    clone_map = pa.table(clone_rows)
    clone_datasets = pa.table({"dataset_id": dataset_ids[1:], "i": list(range(1, N_DATASETS))})

    with ws.index.write() as conn:  # one transaction; replaces n4a.changes on commit
        conn.register("clone_map", clone_map)
        conn.register("clone_datasets", clone_datasets)
        conn.execute(
            "INSERT INTO datasets SELECT d.* REPLACE (c.dataset_id AS dataset_id, "
            "d.name || '-' || lpad(CAST(c.i AS VARCHAR), 2, '0') AS name, "
            "d.created_at + to_seconds(c.i) AS created_at) "
            "FROM datasets d, clone_datasets c WHERE d.dataset_id = ?",
            [real_dataset],
        )
        conn.execute(
            "INSERT INTO runs SELECT ?, 'bench-clones', 'completed', metric, options, "
            "now(), now() FROM runs WHERE run_id = ?",
            [CLONE_RUN, run.run_id],
        )
        conn.execute(
            "INSERT INTO templates SELECT ?, position, name, body, n_configs FROM templates "
            "WHERE run_id = ?",
            [CLONE_RUN, run.run_id],
        )
        conn.executemany(
            "INSERT INTO run_datasets VALUES (?, ?, ?)",
            [[CLONE_RUN, d, i] for i, d in enumerate(dataset_ids)],
        )
        conn.execute(
            "INSERT INTO results SELECT m.new_id, ?, m.dataset_id, m.seq, r.name, "
            "sha256(m.new_id), r.config, r.choices, r.template_position, r.status, r.metric, "
            "r.score, r.predictions_blob, r.error, r.duration_s, now() "
            "FROM clone_map m JOIN results r ON r.result_id = m.src_id",
            [CLONE_RUN],
        )
        conn.execute(
            "CREATE TEMP TABLE model_map AS SELECT mo.model_id AS src_model, m.new_id, "
            "'bm' || lpad(CAST(row_number() OVER (ORDER BY m.new_id, mo.model_id) AS VARCHAR),"
            " 10, '0') AS new_model FROM clone_map m JOIN models mo ON mo.result_id = m.src_id"
        )
        conn.execute(
            "INSERT INTO models SELECT mm.new_model, mm.new_id, mo.role, mo.fold, now() "
            "FROM model_map mm JOIN models mo ON mo.model_id = mm.src_model"
        )
        conn.execute(
            "INSERT INTO artifacts SELECT mm.new_model, a.step_index, a.step_name, "
            "a.class_path, a.blob_id FROM model_map mm JOIN artifacts a "
            "ON a.model_id = mm.src_model"
        )
        conn.execute(
            "INSERT INTO predictions SELECT m.new_id, p.model, mm.new_model, p.partition, "
            "p.fold, p.n_samples, p.scores FROM clone_map m "
            "JOIN predictions p ON p.result_id = m.src_id "
            "LEFT JOIN model_map mm ON mm.src_model = p.model_id AND mm.new_id = m.new_id"
        )
        conn.execute(
            "INSERT OR REPLACE INTO dataset_seq SELECT dataset_id, max(seq) FROM results "
            "GROUP BY dataset_id"
        )
        conn.unregister("clone_map")
        conn.unregister("clone_datasets")

    log(f"big blob: {big_mb} MiB of random bytes -> ws.store.put(path) ...")
    big_file = scratch / "big.bin"
    rng = random.Random(SEED)
    with open(big_file, "wb") as out:
        for _ in range(big_mb):
            out.write(rng.randbytes(CHUNK))
    big_blob = ws.store.put(big_file)
    big_file.unlink()
    with ws.index.write() as conn:
        # the final model of the first cloned result on the second dataset
        model_id, result_id, n_steps = conn.execute(
            "SELECT m.model_id, r.result_id, (SELECT count(*) FROM artifacts a "
            "WHERE a.model_id = m.model_id) FROM models m JOIN results r USING (result_id) "
            "WHERE r.dataset_id = ? AND m.role = 'final' ORDER BY r.seq LIMIT 1",
            [dataset_ids[1]],
        ).fetchone()
        conn.execute(
            "INSERT INTO blobs VALUES (?, ?, 'joblib', current_timestamp) ON CONFLICT DO NOTHING",
            [big_blob, big_mb * CHUNK],
        )
        conn.execute(
            "INSERT INTO artifacts VALUES (?, ?, ?, 'bench.RandomBytes', ?)",
            [model_id, n_steps, BIG_STEP, big_blob],
        )
    with ws.index.read() as conn:
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("datasets", "results", "models", "artifacts", "predictions", "blobs")
        }
    stats = ws.blob_stats()
    return {
        "ws": ws,
        "n_real": n_real,
        "counts": counts,
        "blob_stats": stats,
        "big_result_id": result_id,
        "big_model_id": model_id,
        "dataset_ids": dataset_ids,
    }


# -- materializing the tree -------------------------------------------------------------------
class Materializer:
    """Writes the tree under `root` through the Tree API (list_dir / read)."""

    def __init__(self, tree: Any, root: Path, spare: Path) -> None:
        self.tree, self.root, self.spare = tree, root, spare
        self.sources: dict[Any, str] = {}  # content key -> a file to hard-link to
        self.files = self.dirs = self.links = self.written = self.spares = 0
        self.placeholders = 0
        self._next_log = 50_000

    def _link(self, key: Any, make: Callable[[], str], dest: str) -> None:
        source = self.sources.get(key)
        if source is None:
            source = self.sources[key] = make()
            if source == dest:
                return
        try:
            os.link(source, dest)
        except OSError as exc:  # ext4: at most 65,000 links per inode
            if exc.errno != errno.EMLINK:
                raise
            self.spares += 1
            copy = str(self.spare / f"{self.spares:08d}")
            shutil.copyfile(source, copy)
            self.sources[key] = copy
            os.link(copy, dest)
        self.links += 1

    def _write(self, dest: str, data: bytes) -> str:
        with open(dest, "wb") as out:
            out.write(data)
        self.written += len(data)
        return dest

    def run(self) -> None:
        from n4afs.content import BlobContent, BytesContent, LazyContent, SegmentsContent

        store = self.tree.ws.store
        stack: list[tuple[tuple[str, ...], str]] = [((), str(self.root))]
        while stack:
            path, dest_dir = stack.pop()
            for name, node in (self.tree.list_dir(path) or {}).items():
                dest = os.path.join(dest_dir, name)
                if node.is_dir:
                    os.mkdir(dest)
                    self.dirs += 1
                    stack.append(((*path, name), dest))
                    continue
                self.files += 1
                content = node.content
                if path and path[-1] == "charts":  # never rendered here: hours for 100k PNGs
                    self._write(dest, b"")
                    self.placeholders += 1
                elif isinstance(content, BlobContent):
                    blob = str(store.path_of(content.blob_id))
                    self._link(("blob", content.blob_id), lambda b=blob: b, dest)
                elif isinstance(content, BytesContent):
                    self._write(dest, content.data)
                else:
                    key = (
                        ("lazy", content.key)
                        if isinstance(content, LazyContent)
                        else ("segments", content.segments)
                    )
                    assert isinstance(content, (LazyContent, SegmentsContent))
                    self._link(key, lambda n=node, d=dest: self._write(d, self.tree.read(n)), dest)
            if self.files >= self._next_log:
                log(f"  materialized {self.files:,} files, {self.dirs:,} dirs ...")
                self._next_log += 100_000


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
    from n4afs.tree import Tree

    renders: dict[str, list[float]] = {"chart": [], "csv": []}
    memo_reads: dict[str, list[float]] = {"chart": [], "csv": []}
    for _ in range(repeats):
        tree = Tree(ws)  # a fresh render memo
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


# -- the benchmark ----------------------------------------------------------------------------
def main() -> int:  # noqa: C901, PLR0915 - one linear script, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="1,000 results, 20 MiB, 2 repeats")
    parser.add_argument("--profile", action="store_true", help="cProfile the cold operations")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    if args.quick:
        args.results, args.big_mb, args.repeats = 1_000, 20, 2
    repeats = args.repeats

    from n4afs.fs import N4AFileSystem
    from n4afs.snapshot import load_snapshot
    from n4afs.tree import Tree, Views

    scratch = Path(tempfile.mkdtemp(prefix=".bench_tree-", dir=REPO))
    rows: list[tuple[str, str, str, str, str]] = []  # label, fsspec, disk, ratio, target
    notes: list[str] = []
    try:
        ws_dir, disk_root, spare = scratch / "ws", scratch / "tree", scratch / "spare"
        disk_root.mkdir()
        spare.mkdir()
        info = build_workspace(ws_dir, args.results, args.big_mb, scratch)
        ws = info["ws"]
        counts, stats = info["counts"], info["blob_stats"]
        log(
            f"workspace: {counts['results']:,} results ({info['n_real']} real, the rest CLONED "
            f"rows), {counts['datasets']} datasets, {counts['models']:,} models, "
            f"{counts['artifacts']:,} artifacts, {counts['predictions']:,} score rows; blobs: "
            f"{stats.n_blobs} distinct for {stats.n_references:,} references, "
            f"{stats.logical_bytes / 1e6:,.0f} MB logical, {stats.stored_bytes / 1e6:,.0f} MB "
            f"stored (dedup {stats.dedup_ratio:,.0f}x)"
        )

        # -- the materialized copy -------------------------------------------------------
        log(f"materializing the tree under {disk_root} (Tree API walk) ...")
        tree = Tree(ws)
        mat = Materializer(tree, disk_root, spare)
        mat_s, _ = timed(mat.run)
        log(
            f"materialized {mat.files:,} files + {mat.dirs:,} dirs in {mat_s:.1f} s: "
            f"{mat.links:,} hard links, {mat.written / 1e6:,.0f} MB written, "
            f"{tree.memo.renders:,} renders, {mat.placeholders:,} chart placeholders (empty), "
            f"{mat.spares} spare copies (EMLINK)"
        )
        n_placeholders = mat.placeholders
        tree = mat = None
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
        big_label = next(r.label for r in snapshot.results if r.result_id == info["big_result_id"])
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
        real_dirs = labels[top[0]][: info["n_real"]]
        warm_tree = Tree(ws)  # import matplotlib outside the clock
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
            f"which {info['n_real']} real and the rest CLONED rows (synthetic; same blobs, "
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
