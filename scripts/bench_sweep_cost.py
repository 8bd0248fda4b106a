"""Where an n4afs sweep's time goes beyond the fits: one sweep of scripts/bench_peers.py, n4afs
only, in this process, with counters that hold under load.

Per run: wall seconds, the process's CPU seconds (user, sys: every thread, the store's writer
thread included), bytes written (`/proc/self/io`: wchar, write_bytes), the store's syncs
(`syncfs`, `fsync`, `sync_file_range` calls, seconds in `syncfs`), the seconds the runner waits
at the end of each group's batch (the writer finishing, the syncs, the renames), index write
transactions, models stored, the 1-min load. `--mode` removes a part of the persistence to price
it: `nostore` (no blob is hashed or written: fits, scores, pickles, Parquet tables and index rows
only), `hashonly` (hashed, not written). `--profile` prints a cProfile of the main thread's CPU
time (`time.thread_time`: waits and other processes do not count).

Imports are excluded as bench_peers excludes them: a tiny sweep first, and every operator of
the timed sweep built once. One core (OMP/MKL/OPENBLAS threads 1, n_jobs=1). Linux (the
counters read /proc and wrap glibc's syncfs).

Run: `.venv/bin/python scripts/bench_sweep_cost.py fermentation|big|big-subset [--repeats 5]
[--mode normal|nostore|hashonly] [--profile] [--synthetic-size 1000,1000]`; one JSON line a
run, then the medians.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

COUNTS: dict[str, float] = {}


def _count(name: str, amount: float = 1) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + amount


def instrument() -> None:
    """Count the store's syncs, the batch-end waits and index writes."""
    import n4afs_core.store.blobstore as bs
    from n4afs_core.index.database import Index

    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        _count("fsync")
        real_fsync(fd)

    os.fsync = fsync

    class Libc:
        def __init__(self, libc) -> None:
            self._libc = libc

        def syncfs(self, fd: int) -> int:
            started = time.perf_counter()
            done = self._libc.syncfs(fd)
            _count("syncfs")
            _count("syncfs_s", time.perf_counter() - started)
            return done

        def __getattr__(self, name: str):
            return getattr(self._libc, name)

    if bs._LIBC is not None:
        bs._LIBC = Libc(bs._LIBC)
    if bs._SYNC_FILE_RANGE is not None:
        real_range = bs._SYNC_FILE_RANGE

        def sync_file_range(*args):
            _count("sync_file_range")
            return real_range(*args)

        bs._SYNC_FILE_RANGE = sync_file_range

    real_batch = bs.BlobStore.batch

    @contextlib.contextmanager
    def batch(self):
        manager = real_batch(self)
        manager.__enter__()
        try:
            yield
        except BaseException:
            if not manager.__exit__(*sys.exc_info()):
                raise
        else:
            started = time.perf_counter()
            manager.__exit__(None, None, None)
            _count("batch_end_wait_s", time.perf_counter() - started)

    bs.BlobStore.batch = batch
    real_write = Index.write

    def write(self, *args, **kwargs):
        _count("index_writes")
        return real_write(self, *args, **kwargs)

    Index.write = write


@contextlib.contextmanager
def without_store(mode: str):
    """`nostore` / `hashonly` for the timed sweep only (the data set is stored before)."""
    import hashlib

    import n4afs_core.store.blobstore as bs
    from n4afs_core.store.ids import BlobId

    if mode == "normal":
        yield
        return
    real = bs.BlobStore.put, bs.BlobStore.put_parts
    serial = itertools.count()
    if mode == "nostore":

        def fake(self, source):
            return BlobId(hashlib.sha256(b"%d" % next(serial)).hexdigest())

        bs.BlobStore.put = bs.BlobStore.put_parts = fake
    elif mode == "hashonly":
        bs.BlobStore.put = lambda self, source: BlobId.of_bytes(source)
        bs.BlobStore.put_parts = lambda self, parts: BlobId.of_bytes(b"".join(parts))
    try:
        yield
    finally:
        bs.BlobStore.put, bs.BlobStore.put_parts = real


def proc_io() -> dict[str, int]:
    with open("/proc/self/io") as lines:
        return {k: int(v) for k, v in (line.split(":") for line in lines)}


def one_run(sweep, data, scratch: Path, profile: bool, mode: str) -> dict:
    import numpy as np
    from _bench_sweep import SNV, Sweep
    from n4afs_core.pipelines.operators import build, get_operator

    from n4afs.workspace import Workspace

    shutil.rmtree(scratch, ignore_errors=True)
    rng = np.random.default_rng(1)
    warm = Workspace(scratch / "warm")
    warm.add_arrays(rng.normal(size=(30, 40)) + 1.0, rng.normal(size=30), name="data")
    tiny = Sweep("tiny", ((SNV,),), range(1, 3))
    warm.run(templates=[tiny.template()], datasets=["data"], cv=5, name="warm", n_jobs=1)
    for alts in sweep.positions:  # imports excluded: every operator's class loaded
        for _, op, params in alts:
            build(get_operator(op), dict(params))
    ws = Workspace(scratch / "timed")
    ws.add_arrays(data.X, data.y, name="data")
    gc.collect()
    os.sync()
    COUNTS.clear()
    load = float(Path("/proc/loadavg").read_text().split()[0])
    io0, use0, t0 = proc_io(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    profiler = cProfile.Profile(time.thread_time) if profile else None
    if profiler:
        profiler.enable()
    with without_store(mode):
        ws.run(templates=[sweep.template()], datasets=["data"], cv=5, name="bench", n_jobs=1)
    if profiler:
        profiler.disable()
    t1, use1, io1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), proc_io()
    with ws.index.read() as conn:
        models = conn.execute("SELECT count(*) FROM models").fetchone()[0]
    stored = sum(f.stat().st_size for f in (scratch / "timed" / "objects").rglob("*/*"))
    shutil.rmtree(scratch, ignore_errors=True)
    row = {
        "wall_s": t1 - t0,
        "cpu_s": use1.ru_utime - use0.ru_utime + use1.ru_stime - use0.ru_stime,
        "user_s": use1.ru_utime - use0.ru_utime,
        "sys_s": use1.ru_stime - use0.ru_stime,
        "wchar_MB": (io1["wchar"] - io0["wchar"]) / 1e6,
        "write_bytes_MB": (io1["write_bytes"] - io0["write_bytes"]) / 1e6,
        "syncfs": 0,
        "syncfs_s": 0.0,
        "fsync": 0,
        "sync_file_range": 0,
        "batch_end_wait_s": 0.0,
        "index_writes": 0,
        **COUNTS,
        "models": models,
        "stored_MB": stored / 1e6,
        "load1": load,
    }
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(45)
        if os.environ.get("PROFILE_CALLERS"):  # who calls these (a pstats pattern)
            stats.print_callers(os.environ["PROFILE_CALLERS"])
        if os.environ.get("PROFILE_CALLEES"):  # what these call
            stats.print_callees(os.environ["PROFILE_CALLEES"])
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def main() -> int:
    from _bench_sweep import fermentation, synthetic
    from bench_peers import sweeps

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", choices=["fermentation", "big", "big-subset"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--mode", choices=["normal", "nostore", "hashonly"], default="normal")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--synthetic-size", default="1000,1000")
    parser.add_argument("--scratch-dir", type=Path, default=ROOT / ".sweep-cost-scratch")
    args = parser.parse_args()
    sweep = sweeps()[args.sweep]
    if args.sweep == "fermentation":
        data = fermentation()
    else:
        data = synthetic(*map(int, args.synthetic_size.split(",")))
    instrument()
    rows = []
    for _ in range(args.repeats):
        rows.append(one_run(sweep, data, args.scratch_dir, args.profile, args.mode))
        print(json.dumps({"sweep": args.sweep, "mode": args.mode, **rows[-1]}), flush=True)
    medians = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    print(json.dumps({"sweep": args.sweep, "mode": args.mode, "median_of": len(rows), **medians}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
