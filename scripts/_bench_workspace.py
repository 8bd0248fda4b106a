"""A large SYNTHETIC workspace, and its tree written out on the local disk, for the benchmarks.

scripts/bench_tree.py (the fsspec class) and scripts/bench_mount.py (the FUSE mount) both time
the tree against the very same files on ext4; this module builds both sides.

`build_workspace`: SYNTHETIC BUT REALISTIC IN SHAPE. One real sweep (chemotools fermentation,
SNV | MSC x PLS 1..5, 5-fold CV: 10 real results, 60 models, real blobs) is run first; its
results, models, artifacts and score rows are then CLONED WITH SQL (new result ids, sequence
numbers and model ids; the same blobs, so the deduplication is real) over 10 datasets (the
real dataset row plus 9 clones of it under other names and ids, pointing to the same Parquet
blob), `n_results` / 10 results each. The clones carry their source's scores: CLONED ROWS,
not results anybody computed. One big random blob (`big_mb` MiB) is stored and registered as
one more artifact (`big_random.pkl`) of one cloned model, so that model's `pipeline.pkl` is
that big too; it does not unpickle, it is only read.

`Materializer`: the same tree as plain files (see its docstring).
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

N_DATASETS = 10
BLOB_SEED = 2026  # the big blob's random bytes
CHUNK = 1 << 20
EXT4_MAX_LINKS = 65_000
TEMPLATE = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 5]}}}]
CLONE_RUN = "2026-11-25_bench-clones_000000"
BIG_STEP = "big_random"
# Cloned rows carry fixed times and durations, and ids naming what they copy (`clone_tag`),
# so two builds from the same real sweep show the same bytes: stored renders can be reused.
CLONED_AT = "2026-11-25 12:00:00+00"
CLONE_DURATION_S = 1.0
# What a cloned result shows that its id must pin (everything but ids, times, durations)
CLONE_TAG_SQL = (
    "SELECT * EXCLUDE (result_id, run_id, seq, created_at, duration_s, config_hash) "
    "FROM results WHERE run_id = $run ORDER BY seq",
    "SELECT * EXCLUDE (run_id, name, status, created_at, finished_at) FROM runs "
    "WHERE run_id = $run",
    "SELECT r.seq, m.role, m.fold, a.* EXCLUDE (model_id) FROM results r "
    "JOIN models m USING (result_id) JOIN artifacts a USING (model_id) WHERE r.run_id = $run "
    "ORDER BY r.seq, m.role, m.fold, a.step_index",
    "SELECT r.seq, p.* EXCLUDE (result_id, model_id) FROM results r JOIN predictions p "
    "USING (result_id) WHERE r.run_id = $run ORDER BY ALL",
    "SELECT * EXCLUDE (created_at) FROM datasets WHERE dataset_id IN "
    "(SELECT dataset_id FROM results WHERE run_id = $run)",
)
COUNTED_TABLES = ("datasets", "results", "models", "artifacts", "predictions", "blobs")

Log = Callable[[str], None]

# Run in order after `clone_map` (new_id, src_id, dataset_id, seq) is registered; the model
# ids of a clone are numbered in (result, source model) order so reruns give the same ids.
CLONE_MODELS_SQL = (
    "CREATE TEMP TABLE model_map AS SELECT mo.model_id AS src_model, m.new_id, "
    "'bm' || lpad(CAST(row_number() OVER (ORDER BY m.new_id, mo.role, "
    "mo.fold NULLS FIRST, mo.model_id) AS VARCHAR), 10, '0') AS new_model "
    "FROM clone_map m JOIN models mo ON mo.result_id = m.src_id",
    "INSERT INTO models SELECT mm.new_model, mm.new_id, mo.role, mo.fold, ?::TIMESTAMPTZ "
    "FROM model_map mm JOIN models mo ON mo.model_id = mm.src_model",
    "INSERT INTO artifacts SELECT mm.new_model, a.step_index, a.step_name, "
    "a.class_path, a.blob_id FROM model_map mm JOIN artifacts a "
    "ON a.model_id = mm.src_model",
    "INSERT INTO predictions SELECT m.new_id, p.model, mm.new_model, p.partition, "
    "p.fold, p.n_samples, p.scores FROM clone_map m "
    "JOIN predictions p ON p.result_id = m.src_id "
    "LEFT JOIN model_map mm ON mm.src_model = p.model_id AND mm.new_id = m.new_id",
    "INSERT OR REPLACE INTO dataset_seq SELECT dataset_id, max(seq) FROM results "
    "GROUP BY dataset_id",
)


@dataclass
class SyntheticWorkspace:
    """What the benchmarks need to know about the workspace `build_workspace` made."""

    ws: Any  # n4afs.workspace.Workspace
    n_real: int  # results the real sweep computed; every other result is a cloned row
    real_run: str
    real_results: list[str]  # result ids of the real sweep, in sequence order
    dataset_ids: list[str]  # the real dataset first, then its 9 clones
    counts: dict[str, int]  # rows per table (COUNTED_TABLES)
    big_result_id: str  # the result whose final model holds the big blob
    big_model_id: str

    def summary(self) -> str:
        """The row counts, saying which results are real: every report must."""
        c = self.counts
        return (
            f"{c['results']:,} results ({self.n_real} real, the rest CLONED rows), "
            f"{c['datasets']} datasets, {c['models']:,} models, {c['artifacts']:,} artifacts"
        )


# -- building the workspace -----------------------------------------------------------------
def build_workspace(
    ws_dir: Path,
    n_results: int,
    big_mb: int,
    scratch: Path,
    *,
    dataset_tag: str,
    log: Log,
    n_datasets: int = N_DATASETS,
    renders_cache: Path | None = None,
) -> SyntheticWorkspace:
    """One real sweep, then SQL clones up to `n_results` over `n_datasets` datasets, then one
    big blob (on the second dataset, else the first).

    `dataset_tag` seeds the cloned datasets' ids (each script keeps its own ids); `scratch`
    holds the big blob's bytes until the store has them.

    `renders_cache`: a folder kept between runs holding the blob store (shared) and the render
    catalogue of the workspaces built with it, so a rebuilt workspace finds what an earlier
    build rendered (REPORT.html, charts). Reuse is right by construction: a stored render is
    keyed by what it shows (a cloned result's id names the content it copies, `clone_tag`),
    its bytes are a blob checked against their sha256, and a new renderer (`render_stamp`)
    starts a new catalogue folder.
    """
    from n4afs.workspace import Workspace

    if renders_cache is None:
        ws = Workspace(ws_dir)
    else:
        (renders_cache / "renders").mkdir(parents=True, exist_ok=True)
        store = (renders_cache / "store").resolve().as_uri()
        ws = Workspace(ws_dir, store=store, shared_store=True)
        catalogue = ws_dir / "renders"
        if catalogue.is_dir():
            catalogue.rmdir()  # empty: a new workspace
        catalogue.symlink_to((renders_cache / "renders").resolve())
    log("real sweep: fermentation, SNV|MSC x PLS 1..5, 5-fold CV ...")
    run = ws.run(templates=[TEMPLATE], datasets=["chemotools:fermentation"], cv=5, name="real")
    with ws.index.read() as conn:
        real = conn.execute(
            "SELECT result_id, dataset_id FROM results WHERE run_id = ? ORDER BY seq",
            [run.run_id],
        ).fetchall()
    n_real = len(real)
    if n_results < n_datasets * (n_real + 1):
        raise SystemExit(f"--results must be at least {n_datasets * (n_real + 1)}")
    log(f"{n_real} real results; cloning rows to {n_results} results over {n_datasets} datasets")
    dataset_ids = [real[0][1]] + [
        hashlib.sha256(f"{dataset_tag}-dataset-{i}".encode()).hexdigest()
        for i in range(1, n_datasets)
    ]
    tag = clone_tag(ws, run.run_id)
    clone_rows(ws, run.run_id, dataset_ids, clone_plan(real, dataset_ids, n_results, tag))
    # the final model of the first cloned result on the second dataset (else the first)
    big_dataset = dataset_ids[min(1, n_datasets - 1)]
    big_result_id, big_model_id = add_big_blob(ws, big_mb, scratch, big_dataset, log)
    with ws.index.read() as conn:
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED_TABLES
        }
    return SyntheticWorkspace(
        ws=ws,
        n_real=n_real,
        real_run=run.run_id,
        real_results=[r for r, _ in real],
        dataset_ids=dataset_ids,
        counts=counts,
        big_result_id=big_result_id,
        big_model_id=big_model_id,
    )


def clone_tag(ws: Any, real_run: str) -> str:
    """6 hex digits of the sha256 of everything a clone of `real_run`'s results shows but its
    ids, times and durations: the real sweep's results, run, models' artifacts, scores and
    dataset (`CLONE_TAG_SQL`). Cloned result ids carry it: the same id, the same content."""
    digest = hashlib.sha256()
    with ws.index.read() as conn:
        for sql in CLONE_TAG_SQL:
            rows = conn.execute(sql, {"run": real_run}).fetchall()
            digest.update(repr(rows).encode())
    return digest.hexdigest()[:6]


def clone_plan(
    real: list[tuple[str, str]], dataset_ids: list[str], n_results: int, tag: str = "000000"
) -> Any:
    """The cloned results as a pyarrow table (new_id, src_id, dataset_id, seq): `n_results`
    spread evenly over the datasets, the real results counting towards the first, each
    clone copying the real results in turn; ids `bc<tag><number>` (`clone_tag`)."""
    import pyarrow as pa

    n_real, n_datasets = len(real), len(dataset_ids)
    per_dataset = [
        n_results // n_datasets + (1 if i < n_results % n_datasets else 0)
        for i in range(n_datasets)
    ]
    plan: dict[str, list] = {"new_id": [], "src_id": [], "dataset_id": [], "seq": []}
    k = 0
    for i, (dataset_id, count) in enumerate(zip(dataset_ids, per_dataset, strict=True)):
        first_seq = n_real + 1 if i == 0 else 1
        for seq in range(first_seq, count + 1):
            plan["new_id"].append(f"bc{tag}{k:07d}")
            plan["src_id"].append(real[k % n_real][0])
            plan["dataset_id"].append(dataset_id)
            plan["seq"].append(seq)
            k += 1
    return pa.table(plan)


def clone_rows(ws: Any, real_run: str, dataset_ids: list[str], clone_map: Any) -> None:
    """Writes the clones of `clone_plan` into the index in one transaction, so the change
    token moves once, on commit: 9 dataset rows, one run, its results, models, artifacts
    and score rows."""
    import pyarrow as pa

    clone_datasets = pa.table(
        {"dataset_id": dataset_ids[1:], "i": list(range(1, len(dataset_ids)))},
        schema=pa.schema([("dataset_id", pa.string()), ("i", pa.int64())]),
    )
    with ws.index.write() as conn:
        conn.register("clone_map", clone_map)
        conn.register("clone_datasets", clone_datasets)
        conn.execute(
            "INSERT INTO datasets SELECT d.* REPLACE (c.dataset_id AS dataset_id, "
            "d.name || '-' || lpad(CAST(c.i AS VARCHAR), 2, '0') AS name, "
            "d.created_at + to_seconds(c.i) AS created_at) "
            "FROM datasets d, clone_datasets c WHERE d.dataset_id = ?",
            [dataset_ids[0]],
        )
        conn.execute(
            "INSERT INTO runs SELECT * REPLACE (? AS run_id, 'bench-clones' AS name, "
            "'completed' AS status, ?::TIMESTAMPTZ AS created_at, "
            "?::TIMESTAMPTZ AS finished_at) FROM runs WHERE run_id = ?",
            [CLONE_RUN, CLONED_AT, CLONED_AT, real_run],
        )
        conn.execute(
            "INSERT INTO templates SELECT ?, position, name, body, n_configs FROM templates "
            "WHERE run_id = ?",
            [CLONE_RUN, real_run],
        )
        conn.executemany(
            "INSERT INTO run_datasets VALUES (?, ?, ?)",
            [[CLONE_RUN, d, i] for i, d in enumerate(dataset_ids)],
        )
        conn.execute(
            "INSERT INTO results SELECT m.new_id, ?, m.dataset_id, m.seq, r.name, "
            "sha256(m.new_id), r.config, r.choices, r.template_position, r.status, r.metric, "
            "r.score, r.predictions_blob, r.error, ?, ?::TIMESTAMPTZ, r.target "
            "FROM clone_map m JOIN results r ON r.result_id = m.src_id",
            [CLONE_RUN, CLONE_DURATION_S, CLONED_AT],
        )
        for sql in CLONE_MODELS_SQL:
            conn.execute(sql, [CLONED_AT] if "?" in sql else None)
        conn.unregister("clone_map")
        conn.unregister("clone_datasets")


def add_big_blob(ws: Any, big_mb: int, scratch: Path, dataset_id: str, log: Log) -> tuple[str, str]:
    """Stores `big_mb` MiB of seeded random bytes and appends them as one more step
    (`BIG_STEP`) to the first fold model of the first result on `dataset_id`: one blob big
    enough to measure sequential reads. A fold model, not the final one: the result's
    REPORT.html unpickles its final model for the PLS diagnostics. Returns (result id,
    model id)."""
    log(f"big blob: {big_mb} MiB of random bytes -> ws.store.put(path) ...")
    big_file = scratch / "big.bin"
    rng = random.Random(BLOB_SEED)
    with open(big_file, "wb") as out:
        for _ in range(big_mb):
            out.write(rng.randbytes(CHUNK))
    big_blob = ws.store.put(big_file)
    big_file.unlink()
    with ws.index.write() as conn:
        model_id, result_id, n_steps = conn.execute(
            "SELECT m.model_id, r.result_id, (SELECT count(*) FROM artifacts a "
            "WHERE a.model_id = m.model_id) FROM models m JOIN results r USING (result_id) "
            "WHERE r.dataset_id = ? AND m.role = 'fold' ORDER BY r.seq, m.fold LIMIT 1",
            [dataset_id],
        ).fetchone()
        conn.execute(
            "INSERT INTO blobs VALUES (?, ?, 'joblib', current_timestamp) ON CONFLICT DO NOTHING",
            [big_blob, big_mb * CHUNK],
        )
        conn.execute(
            "INSERT INTO artifacts VALUES (?, ?, ?, 'bench.RandomBytes', ?)",
            [model_id, n_steps, BIG_STEP, big_blob],
        )
    return result_id, model_id


# -- materializing the tree -----------------------------------------------------------------
class Materializer:
    """Writes the tree under `root` through the Tree API, on the same ext4 filesystem as the
    blob store, so the disk side holds exactly the files the tree shows.

    Blob files are hard links to the store's objects (both sides read the same page cache);
    a rendered file is written once per content key, and its other places (a file shown under
    `runs/` and `by-run/`, a predictions CSV of cloned rows sharing one predictions blob) are
    hard links to that copy. Chart PNGs are NOT rendered (~0.1-0.2 s each: hours for 100,000):
    they are empty placeholders with the right names, which no disk-side measurement reads.
    Inside a result folder the entries come from `ResultFiles.result_dir` directly, as `Tree`
    does, skipping the tree's per-folder search for the result row (slow at 1,000 results a
    dataset).

    `link_copies` saves inodes and time at 10,000 results: every chart placeholder is a hard
    link to one empty file, and each `by-run/<run>/<dataset>/<result>/` folder, which shows
    exactly the files of `runs/<dataset>/<result>/`, is copied as hard links of the latter.
    Without it, each placeholder is an empty file of its own and `by-run/` is walked like
    `runs/`.
    """

    def __init__(self, tree: Any, root: Path, spare: Path, *, link_copies: bool, log: Log) -> None:
        self.tree, self.root, self.spare = tree, root, spare
        self.link_copies, self.log = link_copies, log
        self.sources: dict[Any, str] = {}  # content key -> a file to hard-link to
        self.overflow: dict[str, str] = {}  # a path whose inode is full -> a spare copy
        self.spare_of: dict[int, str] = {}  # a full inode -> its current spare copy
        self.by_run_copies: list[tuple[str, str]] = []  # (dest, the same folder under runs/)
        self.placeholder = str(spare / "chart-placeholder.png")
        self.files = self.dirs = self.links = self.written = self.spares = self.charts = 0
        self.seconds = 0.0
        self._next_log = 100_000

    def run(self) -> None:
        """Writes the copy, then logs what it holds (the report states its shortcuts)."""
        self.log(f"materializing the tree under {self.root} (Tree API walk) ...")
        started = time.perf_counter()
        self._walk()
        self.seconds = time.perf_counter() - started
        charts = "links to one empty file" if self.link_copies else "empty"
        self.log(
            f"materialized {self.files:,} files + {self.dirs:,} dirs in {self.seconds:.1f} s: "
            f"{self.links:,} hard links, {self.written / 1e6:,.0f} MB written, "
            f"{self.tree.memo.renders:,} renders, {self.charts:,} chart placeholders ({charts}), "
            f"{self.spares} spare copies (EMLINK)"
        )

    def _walk(self) -> None:
        """The whole tree, depth first; the by-run/ copies last, once runs/ is complete."""
        views = self.tree.views  # the very same objects the tree uses
        by_label = {(views.dataset_dirs[r.dataset_id], r.label): r for r in views.snapshot.results}
        Path(self.placeholder).touch()
        # (path, dest, the result whose folder holds it or None, path inside that folder)
        stack: list[tuple[tuple[str, ...], str, Any, tuple[str, ...]]] = [
            ((), str(self.root), None, ())
        ]
        while stack:
            path, dest_dir, result, rest = stack.pop()
            if result is None:
                entries = self.tree.list_dir(path)
            else:
                entries = self.tree.files.result_dir(views, result, rest)
            for name, node in (entries or {}).items():
                dest = os.path.join(dest_dir, name)
                if not node.is_dir:
                    self._place_file(node, dest)
                    continue
                os.mkdir(dest)
                self.dirs += 1
                below = self._below((*path, name), dest, result, (*rest, name), by_label)
                if below is not None:
                    stack.append(below)
            self._progress()
        for dest, source in self.by_run_copies:
            self._copy_folder(source, dest)
            self._progress()

    def _below(
        self, path: tuple[str, ...], dest: str, result: Any, rest: tuple[str, ...], by_label: dict
    ) -> tuple[tuple[str, ...], str, Any, tuple[str, ...]] | None:
        """How to walk the folder just made at `dest`: inside a result folder, or entering one
        (`runs/<dataset>/<result>`, `by-run/<run>/<dataset>/<result>`), through `result_dir`;
        elsewhere through `list_dir`. None: a by-run/ result folder copied later."""
        if result is not None:
            return (path, dest, result, rest)
        entered = None  # the result whose folder this is (not `charts/` beside a ranking)
        if len(path) == 3 and path[0] == "runs":
            entered = by_label.get((path[1], path[2]))
        elif len(path) == 4 and path[0] == "by-run":
            entered = by_label.get((path[2], path[3]))
        if entered is not None and path[0] == "by-run" and self.link_copies:
            self.by_run_copies.append((dest, str(self.root / "runs" / path[2] / path[3])))
            return None
        return (path, dest, entered, ())

    def _place_file(self, node: Any, dest: str) -> None:
        from n4afs.tree.content import BlobContent, BytesContent, LazyContent, SegmentsContent

        self.files += 1
        content = node.content
        if isinstance(content, BlobContent):
            blob = str(self.tree.ws.store.path_of(content.blob_id))
            self._link(("blob", content.blob_id), lambda: blob, dest)
        elif isinstance(content, BytesContent):
            self._write(dest, content.data)
        elif isinstance(content, LazyContent) and content.key[1] == "chart":
            self.charts += 1
            if self.link_copies:
                self._hard_link(self.placeholder, dest)
            else:
                self._write(dest, b"")
        else:
            assert isinstance(content, (LazyContent, SegmentsContent))
            key = (
                ("lazy", content.key)
                if isinstance(content, LazyContent)
                else ("segments", content.segments)
            )
            self._link(key, lambda: self._write(dest, self.tree.read(node)), dest)

    def _copy_folder(self, source: str, dest: str) -> None:
        """`source` (a result folder, already written) again under `dest`, as hard links."""
        for root, dirs, files in os.walk(source):
            target = dest + root[len(source) :]
            for d in dirs:
                os.mkdir(os.path.join(target, d))
            self.dirs += len(dirs)
            for f in files:
                self._hard_link(os.path.join(root, f), os.path.join(target, f))
            self.files += len(files)
            self.charts += len(files) if root.endswith("/charts") else 0

    def _link(self, key: Any, make: Callable[[], str], dest: str) -> None:
        """`dest` as a hard link to the file of content `key`; the first time, `make` writes
        that file (usually `dest` itself) or names an existing one (a store object)."""
        source = self.sources.get(key)
        if source is None:
            source = self.sources[key] = make()
            if source == dest:
                return
        self._hard_link(source, dest)

    def _hard_link(self, source: str, dest: str) -> None:
        try:
            os.link(self.overflow.get(source, source), dest)
        except OSError as exc:  # ext4: at most 65,000 links per inode
            if exc.errno != errno.EMLINK:
                raise
            inode = os.stat(source).st_ino  # paths differ, the inode is what is full
            spare = self.spare_of.get(inode)
            if spare is None or os.stat(spare).st_nlink >= EXT4_MAX_LINKS:
                self.spares += 1
                spare = self.spare_of[inode] = str(self.spare / f"{self.spares:08d}")
                shutil.copyfile(source, spare)
            self.overflow[source] = spare
            os.link(spare, dest)
        self.links += 1

    def _write(self, dest: str, data: bytes) -> str:
        with open(dest, "wb") as out:
            out.write(data)
        self.written += len(data)
        return dest

    def _progress(self) -> None:
        if self.files >= self._next_log:
            self.log(f"  materialized {self.files:,} files, {self.dirs:,} dirs ...")
            self._next_log += 200_000


def add_workspace_arguments(parser) -> None:
    """The size and repeat options every benchmark on a built workspace takes."""
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="1,000 results, 20 MiB, 2 repeats")
