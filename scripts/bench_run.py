"""Benchmark a whole sweep: n4afs `ws.run` against the plain scikit-learn loop it replaces.

The sweep is the reference one (`docs/PERF-NOTES.md`, "The reference sweep"): SNV, MSC
or Savitzky-Golay 1st derivative (window 15, order 2, mode "interp": stated since #23; the
runs before used chemotools' default "nearest", which differs at the edges only), then PLS
with 1..15 components: 45 configs, 5-fold CV (KFold, shuffle, random_state 42, the folds
n4afs draws with its default seed), pooled out-of-fold RMSE (RMSECV) to rank, plus a final
refit on all samples.

Two data sets, side by side in one run:

- `fermentation`: chemotools' fermentation training set (21 x 1047), real spectra;
- `synthetic`: our own synthetic NIRS-like set (`scripts/make_synthetic_nirs.py`, seed 0),
  1000 x 1000 by default (`--synthetic-size N,P` to change; `--quick`: 200 x 500, 1 repeat).

Variants, each timed (wall clock, imports warmed beforehand so no variant pays them):

1. plain scikit-learn, in memory: per config a `Pipeline`, `cross_val_predict` on the same
   folds, a final refit, RMSECV from the pooled out-of-fold predictions.
2. plain scikit-learn + files: what a plain results folder holds. `cross_val_predict` discards
   the fold models, so the folds are fitted by an explicit loop over the same splits (same
   fits, same predictions: checked equal to variant 1); per config `joblib.dump` of each fold
   pipeline and of the final pipeline, and a predictions CSV (out-of-fold rows + final-model
   rows: sample_id, y_true, y_pred, residual, partition, fold), in a fresh directory. Plain
   writes are not fsynced (what such a loop does); n4afs fsyncs every blob.
3. n4afs `ws.run(..., n_jobs=1)` into a fresh workspace holding only the data set (added
   before the clock starts): fitting, scoring and persisting every model and prediction.
   Also with `n_jobs=2` (another fresh workspace) as an extra row.
4. n4afs identical re-run into the workspace of 3: time, and blob bytes / object files added
   (expected 0: every artifact and prediction table is content-addressed and deduplicated).

Checks: both sides must rank the same best config with the same RMSECV (relative difference
under 1e-6, also reported over all 45 configs); a mismatch is printed loudly and makes the
exit status 1.

Bytes: the plain folder's bytes; n4afs' stored blob bytes (`blob_stats().stored_bytes` minus
the data set's own blob); and an ESTIMATE of the folder tree n4afs shows (docs/DESIGN.md, "The
tree"): each result appears under `runs/<dataset>/` and `by-run/<run>/`, each with, per model
(5 folds + final), one .pkl per step plus `pipeline.pkl` (about the sum of its steps), and the
predictions CSVs. Computed from the index as
`2 views x (2 x sum of the run's artifact blob sizes + CSV bytes)`, the CSV bytes taken from
the plain-files variant (same rows). YAML, charts and the other CSVs are left out, so the
estimate is low and the stored / materialized ratio, if anything, pessimistic.

BLAS (OpenBLAS under numpy/scipy) is limited to `--blas-threads` threads (default 1, `0` for
the library's default) for every variant: on a shared 2-core machine a 2-thread BLAS slows down
erratically whenever anything else runs on the other core (the plain loop, which does 8x more
PLS work than n4afs, measured 6-29 s for the same synthetic sweep with 2 threads), and one
thread per process makes `n_jobs=2` use the two cores without oversubscription.

Every timed figure is the median of `--repeats` repeats (default 3); each repeat uses fresh
directories and workspaces, rotates the order of the variants, runs `gc.collect()` and
`os.sync()` before each timed step. Scratch directories live under the repository root (same
filesystem as a workspace would; `--scratch-dir` to choose) and are all removed when the
script ends (about 4 GB at `--repeats 7`), not between steps: on an ext4 without a journal
(these VMs' root filesystem) each new inode skips, one by one, the inodes freed in the last
60-360 s of its block group, so deleting a step's ~500 files made the next steps' file
creation several times slower and the n4afs times drift up from repeat to repeat
(BENCHMARKS.md, "bench_run — session 6"). Kept files are dropped from the page cache after
their step instead (`posix_fadvise` DONTNEED): in a scratch test, writes into new files took
~5x longer once the page cache had grown past ~2.7 GB. The clean-up at the end can slow file
creation for the next few minutes, so let the machine rest between two runs (the probe shows
whether it did). Both file-writing variants create ~320 files per sweep, so they feel how
fast the filesystem creates files where they write: a probe times 300 file creations in a new
folder before the first and after the last timed step, and the header reports both.

Run from a checkout: `.venv/bin/python scripts/bench_run.py [--repeats 3] [--quick]
[--synthetic-size 1000,1000] [--blas-threads 1] [--scratch-dir DIR] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_measure import Measure, max_rel_diff, settle  # noqa: E402
from _bench_sweep import (  # noqa: E402
    REFERENCE,
    Data,
    check_same_operators,
    fermentation,
    folds,
    n4afs_scores,
    n4afs_workspace,
    plain_classes,
    plain_memory,
    plain_pipeline,
    rmse,
    synthetic,
)

REL_TOL = 1e-6


def load_data(synthetic_size: tuple[int, int]) -> list[Data]:
    return [fermentation(), synthetic(*synthetic_size)]


def plain_files(
    data: Data, configs, out_dir: Path
) -> tuple[dict[str, float], dict[str, np.ndarray], int]:
    """Variant 2; returns scores, out-of-fold predictions and the CSV bytes written."""
    import joblib
    import pandas as pd
    from sklearn.base import clone

    splits = list(folds().split(data.X, data.y))
    ids = data.sample_ids
    scores, oofs, csv_bytes = {}, {}, 0
    classes = plain_classes()
    for config in configs:
        folder = out_dir / config.label
        folder.mkdir(parents=True)
        pipe = plain_pipeline(config, classes)
        oof = np.empty_like(data.y)
        fold_of = np.empty(len(data.y), dtype=int)
        for k, (train, val) in enumerate(splits):
            model = clone(pipe).fit(data.X[train], data.y[train])
            oof[val] = np.asarray(model.predict(data.X[val])).ravel()
            fold_of[val] = k
            joblib.dump(model, folder / f"fold_{k}.joblib")
        final = clone(pipe).fit(data.X, data.y)
        joblib.dump(final, folder / "final.joblib")
        fitted = np.asarray(final.predict(data.X)).ravel()
        n = len(data.y)
        frame = pd.DataFrame(
            {
                "sample_id": ids + ids,
                "y_true": np.concatenate([data.y, data.y]),
                "y_pred": np.concatenate([oof, fitted]),
                "partition": ["val"] * n + ["train"] * n,
                "fold": np.concatenate([fold_of, np.full(n, -1)]),
            }
        )
        frame.insert(3, "residual", frame["y_true"] - frame["y_pred"])
        frame.to_csv(folder / "predictions.csv", index=False)
        csv_bytes += (folder / "predictions.csv").stat().st_size
        scores[config.key] = rmse(data.y, oof)
        oofs[config.key] = oof
    return scores, oofs, csv_bytes


# -- n4afs ------------------------------------------------------------------------------------
def n4afs_run(ws: Any, data: Data, n_jobs: int) -> Any:
    from _bench_sweep import n4afs_run as run

    return run(ws, data, REFERENCE, n_jobs)


def artifact_bytes(ws: Any, run_id: str) -> tuple[int, int]:
    """Sum of the artifact blob sizes of every model of the run (with repeats), model count."""
    with ws.index.read() as conn:
        size, models = conn.execute(
            "SELECT coalesce(sum(b.size), 0), count(DISTINCT m.model_id) FROM results r "
            "JOIN models m USING (result_id) JOIN artifacts a USING (model_id) "
            "JOIN blobs b USING (blob_id) WHERE r.run_id = ?",
            [run_id],
        ).fetchone()
    return int(size), int(models)


def render_bytes(ws: Any) -> int:
    """Bytes of the distinct blobs the workspace's stored renders hold."""
    from n4afs_core.store.renders import RenderCatalogue

    catalogue = RenderCatalogue(ws.path, ws.store)
    blobs = {b: size for stamp in catalogue.stamps() for _, b, size in catalogue.records(stamp)}
    return sum(blobs.values())


def object_files(ws: Any) -> int:
    return sum(1 for _ in ws.store.iter_ids())  # the store interface: local or remote


def index_bytes(ws: Any) -> int:
    db = ws.index.db_path
    wal = Path(str(db) + ".wal")
    return sum(p.stat().st_size for p in (db, wal) if p.exists())


# -- measuring --------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    settle()
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def dir_bytes(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def drop_cached_pages(path: Path) -> None:
    """Write out a finished step's files and drop them from the page cache, keeping them.

    On these VMs writes into new files took ~5x longer once the page cache had grown past
    ~2.7 GB (BENCHMARKS.md, "bench_run — session 6"), which kept files reach within a few
    repeats; deleting them instead slows file creation (see the docstring)."""
    os.sync()
    for file in (p for p in path.rglob("*") if p.is_file()):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_up(scratch: Path, configs) -> None:
    """Import and exercise everything once (sklearn, chemotools, joblib, pandas, DuckDB,
    pyarrow, loky workers) on a tiny random set, so no timed variant pays import costs."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(30, 40)) + 1.0, rng.normal(size=30)
    tiny = Data(
        "warmup",
        X,
        y,
        [f"S{i}" for i in range(30)],
        lambda ws: ws.add_arrays(X, y, name="warmup"),
        "",
    )
    plain_memory(tiny, configs[:1] + configs[15:16] + configs[30:31])
    plain_files(tiny, configs[:1] + configs[15:16] + configs[30:31], scratch / "warm-files")
    ws, _ = n4afs_workspace(scratch / "warm-ws", tiny)
    n4afs_run(ws, tiny, 1)
    n4afs_run(ws, tiny, 2)


def creation_probe(folder: Path, files: int = 300) -> float:
    """Microseconds to create one empty file in a new folder, over `files` creations.

    What the file-writing variants meet on this filesystem at that moment. The files are
    kept: deleting them would slow down the very thing measured (see the docstring)."""
    folder.mkdir()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    started = time.perf_counter()
    for i in range(files):
        os.close(os.open(folder / f"f{i}", flags, 0o600))
    return (time.perf_counter() - started) / files * 1e6


def measure_dataset(data: Data, configs, scratch: Path, repeats: int, log) -> dict[str, Any]:
    m = Measure()
    checks: dict[str, Any] = {}
    steps = ["plain_memory", "plain_files", "n4afs_1", "n4afs_2"]
    for rep in range(repeats):
        order = steps[rep % len(steps) :] + steps[: rep % len(steps)]
        for step in order:
            where = scratch / f"{data.name}-{step}-{rep}"
            if step == "plain_memory":
                (scores, oofs), seconds = timed(lambda: plain_memory(data, configs))
                m.time(step, seconds)
                checks["plain_scores"], checks["plain_oofs"] = scores, oofs
            elif step == "plain_files":
                (scores, oofs, csv), seconds = timed(lambda w=where: plain_files(data, configs, w))
                m.time(step, seconds)
                size, files = dir_bytes(where)
                m.note("plain_files_bytes", size)
                m.note("plain_files_count", files)
                m.note("plain_csv_bytes", csv)
                drop_cached_pages(where)
                checks["files_scores"], checks["files_oofs"] = scores, oofs
            else:
                n_jobs = int(step[-1])
                ws, dataset_bytes = n4afs_workspace(where, data)
                if rep == 0 and n_jobs == 1:
                    stored = ws.load_dataset(data.name)
                    checks["same_data"] = np.array_equal(stored.X, data.X) and np.array_equal(
                        stored.target(), data.y
                    )
                run, seconds = timed(lambda ws=ws, n=n_jobs: n4afs_run(ws, data, n))
                m.time(step, seconds)
                after = ws.blob_stats()
                m.note(f"{step}_stored", after.stored_bytes - dataset_bytes)
                m.note(f"{step}_files", object_files(ws) - 1)
                if n_jobs == 1:
                    checks["n4afs_scores"] = n4afs_scores(run)
                    best = run.best(data.name).row
                    checks["n4afs_best"] = (json.dumps(best.config, sort_keys=True), best.score)
                    size, models = artifact_bytes(ws, run.run_id)
                    m.note("artifact_bytes", size)
                    m.note("models", models)
                    m.note("index_bytes", index_bytes(ws))
                    files_before, index_before = object_files(ws), index_bytes(ws)
                    rerun, seconds = timed(lambda ws=ws: n4afs_run(ws, data, 1))
                    m.time("rerun", seconds)
                    m.note("rerun_added", ws.blob_stats().stored_bytes - after.stored_bytes)
                    m.note("rerun_files_added", object_files(ws) - files_before)
                    m.note("rerun_index_added", index_bytes(ws) - index_before)
                    checks["rerun_scores"] = n4afs_scores(rerun)
                    # what storing every render would add (`n4afs render`: not part of a
                    # run; docs/DESIGN.md, "Rendered once, for every process")
                    done, seconds = timed(lambda ws=ws: ws.render())
                    m.time("render", seconds)
                    m.note("render_stored", render_bytes(ws))
                    m.note("render_files", done["files"])
                del ws  # its files stay until the script ends (see the docstring)
                drop_cached_pages(where)
            log(f"  {data.name} repeat {rep + 1}/{repeats}: {step} {m.times[step][-1]:.2f} s")
        log(f"  {data.name} repeat {rep + 1}/{repeats}: re-run {m.times['rerun'][-1]:.2f} s")
    return {"m": m, **checks}


# -- checks and report ------------------------------------------------------------------------
def correctness(name: str, r: dict[str, Any]) -> tuple[list[str], bool]:
    plain, n4a = r["plain_scores"], r["n4afs_scores"]
    plain_best = min(plain, key=plain.get)
    best_name, best_score = r["n4afs_best"]
    diff_all = max_rel_diff(plain, n4a)
    diff_best = abs(best_score - plain[plain_best]) / plain[plain_best]
    oof_same = max(
        float(np.max(np.abs(r["plain_oofs"][k] - r["files_oofs"][k]))) for k in r["plain_oofs"]
    )
    rerun_same = r["rerun_scores"] == n4a
    ok = (
        best_name == plain_best
        and diff_best <= REL_TOL
        and diff_all <= REL_TOL
        and r.get("same_data", False)
        and rerun_same
    )
    labels = {c.key: c.label for c in REFERENCE.configs()}
    plain_score = plain[plain_best]
    plain_best, best_name = labels.get(plain_best, plain_best), labels.get(best_name, best_name)
    lines = [
        f"- {name}: plain best **{plain_best}** RMSECV {plain_score:.9g}; n4afs best "
        f"**{best_name}** RMSECV {best_score:.9g}; relative difference {diff_best:.1e} (best), "
        f"{diff_all:.1e} (max over all {len(plain)} configs); plain in-memory vs plain-files "
        f"out-of-fold predictions max |diff| {oof_same:.1e}; n4afs stored data set equals the "
        f"plain arrays: {r.get('same_data')}; re-run scores identical: {rerun_same} -> "
        + ("**MATCH**" if ok else "**MISMATCH — RESULTS DIFFER, SEE ABOVE**")
    ]
    return lines, ok


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def report(results: dict[str, dict[str, Any]], sizes: dict[str, str]) -> tuple[str, bool]:
    out = [
        "| dataset | variant | median s | range s | × plain (memory) | × plain + files | "
        "bytes written / stored | files |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    notes, all_ok = [], True
    for name, r in results.items():
        m: Measure = r["m"]
        base, files = m.median("plain_memory"), m.median("plain_files")

        def med(key: str, m: Measure = m) -> float:
            return statistics.median(m.values[key])

        rows = [
            ("plain sklearn, in memory", "plain_memory", "—", "—"),
            (
                "plain sklearn + files (joblib + CSV)",
                "plain_files",
                fmt_bytes(med("plain_files_bytes")),
                f"{med('plain_files_count'):.0f}",
            ),
            (
                "n4afs `ws.run`, n_jobs=1",
                "n4afs_1",
                fmt_bytes(med("n4afs_1_stored")),
                f"{med('n4afs_1_files'):.0f}",
            ),
            (
                "n4afs `ws.run`, n_jobs=2",
                "n4afs_2",
                fmt_bytes(med("n4afs_2_stored")),
                f"{med('n4afs_2_files'):.0f}",
            ),
            (
                "`n4afs render` after the run (every chart and table drawn and stored)",
                "render",
                fmt_bytes(med("render_stored")),
                f"{med('render_files'):.0f}",
            ),
            (
                "n4afs identical re-run (same workspace)",
                "rerun",
                f"+{fmt_bytes(max(m.values['rerun_added']))}",
                f"+{max(m.values['rerun_files_added']):.0f}",
            ),
        ]
        label = f"{name} ({sizes[name]})"
        for variant, key, size, count in rows:
            t = m.median(key)
            vs_mem = "—" if key == "plain_memory" else f"{t / base:.2f}×"
            vs_files = "—" if key.startswith("plain") else f"{t / files:.2f}×"
            spread = f"{min(m.times[key]):.2f}–{max(m.times[key]):.2f}"
            out.append(
                f"| {label} | {variant} | {t:.2f} | {spread} | {vs_mem} | {vs_files} "
                f"| {size} | {count} |"
            )
        stored = med("n4afs_1_stored")
        artifacts, csv = med("artifact_bytes"), med("plain_csv_bytes")
        materialized = 2 * (2 * artifacts + csv)
        notes.append(
            f"- {name}: n4afs stores {fmt_bytes(stored)} of blobs (data set excluded) against "
            f"{fmt_bytes(med('plain_files_bytes'))} for the plain folder "
            f"({stored / med('plain_files_bytes'):.2f}×) and an estimated materialized tree "
            f"of {fmt_bytes(materialized)} = 2 views × (2 × {fmt_bytes(artifacts)} artifacts "
            f"of {med('models'):.0f} models + {fmt_bytes(csv)} CSV): **stored / materialized "
            f"= {stored / materialized:.3f}** (target ≤ 0.333). Re-run added "
            f"{max(m.values['rerun_added'])} blob bytes and {max(m.values['rerun_files_added'])} "
            f"object files (max over repeats); the index file grew by "
            f"{fmt_bytes(med('rerun_index_added'))} on the re-run (index after the first run: "
            f"{fmt_bytes(med('index_bytes'))}, not counted in stored bytes)."
        )
        run_s, render_s = m.median("n4afs_1"), m.median("render")
        notes.append(
            f"- {name}: storing every render (`n4afs render`, not part of a run) took "
            f"{render_s:.2f} s for {med('render_files'):.0f} files "
            f"(stored once: {fmt_bytes(med('render_stored'))} of blobs, "
            f"{med('render_stored') / max(med('n4afs_1_stored'), 1):.2f}× the run's own); "
            f"run + render would be {(run_s + render_s) / base:.2f}× the plain loop."
        )
        lines, ok = correctness(name, r)
        notes.extend(lines)
        all_ok = all_ok and ok
    text = "\n".join(out) + "\n\n" + "\n".join(notes) + "\n"
    return text, all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--synthetic-size", default=None, help="N,P (default 1000,1000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 x 500, 1 repeat")
    parser.add_argument("--out", help="also write the Markdown tables to this file")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads in this process (default 1; 0 = the library's default)",
    )
    parser.add_argument(
        "--scratch-dir",
        type=Path,
        default=ROOT,
        help="where the workspaces and folders are written (default: the repository root)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    size_text = args.synthetic_size or ("200,500" if args.quick else "1000,1000")
    n, p = (int(v) for v in size_text.split(","))

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    configs = REFERENCE.configs()
    check_same_operators(REFERENCE)
    data = load_data((n, p))
    scratch = Path(tempfile.mkdtemp(prefix=".bench_run-", dir=args.scratch_dir))
    limits = contextlib.nullcontext()
    if args.blas_threads > 0:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=args.blas_threads, user_api="blas")
    results, sizes = {}, {}
    threads = args.blas_threads or "library default"
    try:
        with limits:
            log(f"warming up imports in {scratch} (BLAS threads: {threads}) ...")
            warm_up(scratch, configs)
            probe_before = creation_probe(scratch / "probe-before")
            log(f"file creation: {probe_before:.0f} µs a file")
            for d in data:
                sizes[d.name] = f"{d.X.shape[0]} × {d.X.shape[1]}"
                log(f"{d.name} {sizes[d.name]} ({d.description}): {len(configs)} configs")
                results[d.name] = measure_dataset(d, configs, scratch, repeats, log)
            probe_after = creation_probe(scratch / "probe-after")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text, ok = report(results, sizes)
    header = (
        f"Medians of {repeats} repeats; 45 configs × 5 folds + final refit per data set; "
        f"BLAS threads in the main process: {threads} (n_jobs=2 workers: joblib's own limit); "
        f"total script wall time {time.perf_counter() - started:.0f} s; 1-min load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after; creating a file in a new "
        f"folder of the scratch directory took {probe_before:.0f} µs before the first timed "
        f"step and {probe_after:.0f} µs after the last. The materialized-tree "
        "size is an ESTIMATE: 2 views × (2 × the run's artifact blob bytes [step .pkl files + "
        "pipeline.pkl] + the plain variant's predictions CSV bytes); YAML, charts and other "
        "CSVs are not counted.\n\n"
    )
    print(header + text)
    if args.out:
        Path(args.out).write_text(header + text, encoding="utf-8")
    if not ok:
        print(
            "!!! n4afs and the plain loop DISAGREE (best config, RMSECV or data): see above !!!",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
