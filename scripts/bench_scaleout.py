"""Scale-out: the same sweep on local joblib, on a dask cluster, and with an S3 blob store.

One run measures, per data set, the same sweep with

(a) the local store and the local joblib backend, `n_jobs=1` (the reference: "× local joblib");
(b) the local store and a dask cluster of 1 worker process;
(c) the local store and a dask cluster of 2 worker processes (one thread each);
(d) an S3 store (moto's server on loopback) and the local joblib backend, `n_jobs=1`: the S3
    overhead against (a), same backend;
(e) only with `--s3-dask`: the S3 store and the 2-worker cluster.

Both clusters are real processes, as a user starts them: `dask scheduler` and `dask worker
--nthreads 1` (each with its nanny, dask's default worker environment) on 127.0.0.1; they and
the S3 server are created once, before anything is timed, and torn down at the end. A timed
run includes what `ws.run` does on a cluster: connecting a `Client`, scattering the data,
collecting the payloads.

On a cluster run the CPU seconds of every process are read from /proc (user + system, before
and after the run): the coordinator (this process: planning, receiving payloads, committing
rows), the scheduler, each nanny, each worker; and the scheduler's task stream gives each
worker's busy time, its tasks, the tail (how long the first worker to run out of tasks waited
for the last) and the bytes of the task results sent back. CPU seconds hold under load where
wall times do not: from them the report predicts the 2-worker speed-up on a quiet machine
with `os.cpu_count()` cores (`predicted_wall`).

Then reading back, on the workspaces of (a) and (d): a `Tree(ws)` walk of the data set's
folder (`runs/<dataset>/`: every result folder, RESULTS.csv, best_*.csv) reading every file
that is not a chart (charts are matplotlib renders, measured elsewhere), three ways:

- cold: a freshly opened workspace and a new `Tree`; the S3 store's local cache directory
  emptied first (every blob is fetched again), the local store's object files dropped from
  the page cache with `posix_fadvise(DONTNEED)` (best effort: the virtual disk's host may
  still cache them);
- warm, new Tree: the same again with the blob cache / page cache left as the cold pass left
  it (what a second process, e.g. the next CLI command, sees; rendered files are re-rendered);
- warm, same Tree: the walk repeated on the same `Tree` (rendered files memoized).

The sweep (default): SNV | MSC | detrend | standard | minmax | Savitzky-Golay 1st derivative
(window 15, order 2), then PLS 1..10 = 60 configs, 5-fold CV, on chemotools' fermentation
training set (21 x 1047, real spectra); with `--synthetic`, also on our own synthetic
NIRS-like set (`scripts/make_synthetic_nirs.py`, seed 0, 500 x 1000 unless `--synthetic-size`),
where fitting weighs more (about 5 more minutes: not in the default run, kept under ~8 min).

The S3 server is moto (`ThreadedMotoServer`), a Python S3 emulator running as a thread IN
THIS PROCESS on 127.0.0.1, reached through AWS_ENDPOINT_URL and dummy AWS_* credentials like
the tests do. Its per-request cost (Python HTTP server, GIL shared with the client) is not
real S3's: real S3 has more network latency per request and no CPU taken from the client.
The S3 requests each run and each read-back pass make are counted from the server's request
log (HEAD, GET, LIST = a GET of a listing, PUT including server-side copies).

Every time is the median of `--repeats` (default 3) repeats; each repeat uses fresh workspaces
(the data set added before the clock starts) and a fresh S3 prefix, rotates the order of the
variants, and runs `gc.collect()` + `os.sync()` before each timed step. Imports are warmed
first (a tiny sweep through every variant, worker processes included). BLAS is limited to
`--blas-threads` (default 1) in this process; dask's nanny gives its workers 1 BLAS thread.
The clusters run with dask's default worker environment (`distributed.nanny.pre-spawn-environ`,
which also sets MALLOC_TRIM_THRESHOLD_=65536; logged at start-up), as a user would get them.
All variants must give the same scores (checked; exit status 1 otherwise).

On a 2-core machine 2 dask workers share the cores with the coordinator, the scheduler and
the nannies, and the default sweep has only 6 groups (configs sharing their first step).

Index engines (a section of its own; `--no-engines` skips it): the same sweep on the first
data set, local store, joblib n_jobs=1, into a fresh DuckDB index and a fresh PostgreSQL
database (the server `--index URL` names, else one started like the tests start theirs:
loopback, fsync off), every index transaction the runner makes during the sweep timed: the
commit cost per result. Then `best` latency on both engines at `--engine-results` results
(default 10,000: scripts/_bench_workspace.py's synthetic workspace, its rows copied into
PostgreSQL), by scripts/bench_index.py's `best_latencies`. Goal: `best` < 0.5 s on both.

Run from a checkout: `.venv/bin/python scripts/bench_scaleout.py [--repeats 3]
[--synthetic] [--synthetic-size 500,1000] [--s3-dask] [--wide] [--blas-threads 1] [--out FILE]
[--quick] [--index URL] [--no-engines] [--engine-results N]`.
`--quick`: a smoke run (6 configs, 1 repeat, a 100 x 300 synthetic set included).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_measure import Measure, max_rel_diff, settle  # noqa: E402
from make_synthetic_nirs import make as make_synthetic  # noqa: E402

SAVGOL = {"deriv": 1, "window_length": 15, "polyorder": 2}
TEMPLATE = [
    {"_or_": ["snv", "msc", "detrend", "standard", "minmax", {"savgol": SAVGOL}]},
    {"pls": {"n_components": {"_range_": [1, 10]}}},
]
# `--wide` (#22's goal sweep): 10 preprocessings x PLS 1..20 = 200 configs
WIDE_TEMPLATE = [
    {
        "_or_": [
            "snv",
            "msc",
            "detrend",
            "standard",
            "minmax",
            {"savgol": SAVGOL},
            {"savgol": {"deriv": 2, "window_length": 15, "polyorder": 2}},
            {"savgol": {"deriv": 1, "window_length": 25, "polyorder": 2}},
            {"savgol": {"deriv": 0, "window_length": 11, "polyorder": 2}},
            {"savgol": {"deriv": 1, "window_length": 9, "polyorder": 3}},
        ]
    },
    {"pls": {"n_components": {"_range_": [1, 20]}}},
]
QUICK_TEMPLATE = [
    {"_or_": ["snv", "msc"]},
    {"pls": {"n_components": {"_range_": [1, 3]}}},
]
CV_FOLDS = 5
BUCKET = "n4a-bench"
REL_TOL = 1e-9

VARIANTS = {  # key: (label, S3 store?, backend, cluster workers)
    "joblib": ("local store, joblib n_jobs=1", False, "joblib", 0),
    "dask1": ("local store, dask 1 worker", False, "dask", 1),
    "dask2": ("local store, dask 2 workers", False, "dask", 2),
    "s3": ("S3 store (moto), joblib n_jobs=1", True, "joblib", 0),
    "s3_dask2": ("S3 store (moto), dask 2 workers", True, "dask", 2),
}
READ_PASSES = {
    "cold": "cold (new Tree, empty blob cache / page cache dropped)",
    "warm": "warm, new Tree (blobs cached, files re-rendered)",
    "hot": "warm, same Tree (rendered files memoized)",
}

_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f} s] {message}", file=sys.stderr, flush=True)


# -- data -----------------------------------------------------------------------------------
@dataclass
class Data:
    name: str
    shape: tuple[int, int]
    add: Callable[[Any], Any]  # adds the data set to a workspace (not timed)
    description: str


def load_data(synthetic_size: tuple[int, int] | None) -> list[Data]:
    from chemotools.datasets import load_fermentation_train

    X_f, _ = load_fermentation_train()
    data = [
        Data(
            "fermentation",
            X_f.shape,
            lambda ws: ws.add_dataset("chemotools:fermentation"),
            "chemotools fermentation training set (real)",
        )
    ]
    if synthetic_size is not None:
        n, p = synthetic_size
        X_s, y_s, wavelengths = make_synthetic(n, p, seed=0)
        data.append(
            Data(
                "synthetic",
                X_s.shape,
                lambda ws: ws.add_arrays(
                    X_s, y_s, name="synthetic", feature_names=wavelengths, wavelength_unit="nm"
                ),
                "ours, make_synthetic_nirs.make(seed=0)",
            )
        )
    return data


# -- the S3 server --------------------------------------------------------------------------
class RequestCounter(logging.Handler):
    """Counts the requests moto's (werkzeug) server logs, by kind."""

    PATTERN = re.compile(r"(GET|HEAD|PUT|POST|DELETE) (\S+)")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            match = self.PATTERN.search(record.getMessage())
            if match:
                method, target = match.groups()
                kind = "LIST" if method == "GET" and "list-type" in target else method
                self.counts[kind] += 1

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


class S3Server:
    """moto's S3 server as a thread of this process on 127.0.0.1, plus the AWS_* variables."""

    ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")

    def __init__(self) -> None:
        self.server = None
        self.saved: dict[str, str | None] = {}
        self.counter = RequestCounter()
        self.fs = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        werkzeug = logging.getLogger("werkzeug")
        werkzeug.setLevel(logging.INFO)
        werkzeug.addHandler(self.counter)  # also keeps werkzeug from printing every request
        werkzeug.propagate = False
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.saved = {k: os.environ.get(k) for k in self.ENV}
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing-secret",
            AWS_DEFAULT_REGION="us-east-1",
        )
        import s3fs

        self.fs = s3fs.S3FileSystem(skip_instance_cache=True)
        self.fs.mkdir(BUCKET)

    def objects(self, prefix: str) -> int:
        self.fs.invalidate_cache()
        path = f"{BUCKET}/{prefix}/objects"
        return len(self.fs.find(path)) if self.fs.exists(path) else 0

    def remove(self, prefix: str) -> None:
        self.fs.invalidate_cache()
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(f"{BUCKET}/{prefix}", recursive=True)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        logging.getLogger("werkzeug").removeHandler(self.counter)


# -- the dask clusters -----------------------------------------------------------------------
def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ProcessCluster:
    """`dask scheduler` + `dask worker --nthreads 1` processes on loopback (each worker with
    its nanny, as the command starts it), and a client to read the scheduler's task stream."""

    def __init__(self, n_workers: int, scratch: Path) -> None:
        import subprocess

        from distributed import Client

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.scheduler_address = f"tcp://127.0.0.1:{port}"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
            + ["--port", str(port), "--dashboard-address", ":0"],
            **quiet,
        )
        self.nannies = [
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.scheduler_address]
                + ["--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]
                + ["--local-directory", str(scratch / f"dask-{n_workers}-{i}")],
                **quiet,
            )
            for i in range(n_workers)
        ]
        self.client = Client(self.scheduler_address, timeout="30s")
        self.client.wait_for_workers(n_workers, timeout=120)
        self.client.get_task_stream(start=time.time())  # installs the scheduler's recorder

    def workers(self) -> list[int]:
        return sorted(self.client.run(os.getpid).values())

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: the coordinator (this process), scheduler, nannies, workers."""
        cpu = {"coordinator": process_cpu(os.getpid())}
        cpu["scheduler"] = process_cpu(self.scheduler.pid)
        cpu["nannies"] = sum(process_cpu(n.pid) for n in self.nannies)
        for i, pid in enumerate(self.workers()):
            cpu[f"worker{i}"] = process_cpu(pid)
        return cpu

    def idle_rates(self, seconds: float = 5.0) -> dict[str, float]:
        """CPU seconds per second of each process while no run goes on (heartbeats, the
        nannies' memory monitor): what a run pays per second it lasts, so a loaded machine
        that makes runs longer also makes them cost more (`predicted_wall` takes it out)."""
        before = self.cpu()
        time.sleep(seconds)
        after = self.cpu()
        return {k: (after[k] - before[k]) / seconds for k in before if k != "coordinator"}

    def timeline(self, started: float, ended: float) -> dict[str, Any]:
        """From the task stream of a run (epoch seconds): tasks, busy seconds and last stop
        per worker, the tail, the idle seconds (run time minus busy, summed over workers)."""
        tasks = self.client.get_task_stream(start=started)
        busy: dict[str, float] = {}
        last: dict[str, float] = {}
        for task in tasks:
            for span in task["startstops"]:
                if span["action"] == "compute":
                    worker = task["worker"]
                    busy[worker] = busy.get(worker, 0.0) + span["stop"] - span["start"]
                    last[worker] = max(last.get(worker, 0.0), span["stop"])
        stops = sorted(last.values())
        return {
            "tasks": len(tasks),
            "busy": sorted(busy.values()),
            "tail": stops[-1] - stops[0] if stops else 0.0,
            "idle": sum(ended - started - b for b in busy.values()),
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        for process in [*self.nannies, self.scheduler]:
            process.terminate()
        for process in [*self.nannies, self.scheduler]:
            try:
                process.wait(timeout=30)
            except Exception:  # noqa: BLE001 - a stuck process is killed
                process.kill()


_RECEIVED: list[int] = []  # pickled bytes of each task result the coordinator received


def count_received() -> None:
    """Wrap the dask backend's result stream to count the bytes each task sent back (pickled
    again here: ~1 ms per task, on the coordinator's clock)."""
    import pickle

    from n4afs_core.pipelines import runner

    on_dask = runner._on_dask

    def counted(*args: Any, **kwargs: Any) -> Any:
        for item in on_dask(*args, **kwargs):
            _RECEIVED.append(len(pickle.dumps(item, protocol=5)))
            yield item

    runner._on_dask = counted


def predicted_wall(
    cpu: dict[str, float], cores: int, wall: float, idle_rates: dict[str, float]
) -> float:
    """The run's wall time on a quiet machine with `cores` cores, from its CPU seconds: the
    busiest worker, or all the CPU the run used (workers, coordinator, scheduler, nannies)
    spread over the cores, whichever is longer. What each process spends per second whatever
    it does (`idle_rates`) is counted for the predicted time, not for the measured one
    (solved by iteration; it converges at once, the rates are ~0.02 s/s). The seconds before
    the first task and after the last count only as CPU, not as time of their own."""
    predicted = wall
    for _ in range(20):
        quiet = {
            k: max(v - idle_rates.get(k, 0.0) * (wall - predicted), 0.0) for k, v in cpu.items()
        }
        workers = [v for k, v in quiet.items() if k.startswith("worker")]
        predicted = max(max(workers), sum(quiet.values()) / cores)
    return predicted


# -- measuring ------------------------------------------------------------------------------
def drop_page_cache(directory: Path) -> None:
    """Best effort: ask the kernel to forget the cached pages of every file below."""
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def read_folder(tree: Any, dataset: str) -> tuple[int, int]:
    """Walk `runs/<dataset>/` and read every non-chart file whole; (files, bytes)."""
    files = bytes_read = 0
    for rel, node in tree.walk_files(("runs", dataset)):
        if "charts" in rel[:-1]:
            continue
        data = tree.read(node)
        if len(data) != node.size:
            raise SystemExit(f"short read of runs/{dataset}/{'/'.join(rel)}")
        files += 1
        bytes_read += len(data)
    return files, bytes_read


def read_back(
    path: Path, remote: bool, dataset: str, m: Measure, prefix: str, s3: S3Server
) -> None:
    """The three read-back passes on the workspace at `path` (timed: Tree(ws) + walk + reads)."""
    from n4afs.tree.tree import Tree
    from n4afs.workspace import Workspace

    settle()
    if remote:
        shutil.rmtree(path / "cache" / "objects", ignore_errors=True)
    else:
        drop_page_cache(path / "objects")
    ws = Workspace(path, create=False)
    if remote != (type(ws.store).__name__ == "RemoteBlobStore"):
        raise SystemExit(f"unexpected store {ws.store!r} for {path}")
    for pass_ in ("cold", "warm"):
        if pass_ == "warm":
            ws = Workspace(path, create=False)
            gc.collect()
        s3.counter.take()
        started = time.perf_counter()
        tree = Tree(ws)
        files, size = read_folder(tree, dataset)
        m.time(f"{prefix}_{pass_}", time.perf_counter() - started)
        m.note(f"{prefix}_{pass_}_requests", s3.counter.take())
        m.note(f"{prefix}_files", files)
        m.note(f"{prefix}_bytes", size)
    gc.collect()
    started = time.perf_counter()
    read_folder(tree, dataset)
    m.time(f"{prefix}_hot", time.perf_counter() - started)
    m.note(f"{prefix}_hot_requests", s3.counter.take())


def measure_dataset(
    data: Data,
    template: list[Any],
    variants: list[str],
    repeats: int,
    scratch: Path,
    clusters: dict[int, Any],
    s3: S3Server,
) -> dict[str, Any]:
    from n4afs.workspace import Workspace

    m = Measure()
    scores: dict[str, dict[str, float]] = {}
    best: dict[str, tuple[str, float]] = {}
    for rep in range(repeats):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
        for key in order:
            _, remote, backend, workers = VARIANTS[key]
            where = scratch / f"{data.name}-{key}-{rep}"
            prefix = f"{data.name}-{key}-{rep}"
            ws = Workspace(where, store=f"s3://{BUCKET}/{prefix}" if remote else None)
            data.add(ws)
            before = ws.blob_stats()
            scheduler = clusters[workers].scheduler_address if workers else None
            settle()
            s3.counter.take()
            if workers:
                m.note(f"{key}_idle_rates", clusters[workers].idle_rates())
                _RECEIVED.clear()
            cpu_before = clusters[workers].cpu() if workers else {}
            epoch = time.time()
            started = time.perf_counter()
            run = ws.run(
                templates=[template],
                datasets=[data.name],
                cv=CV_FOLDS,
                name=f"bench-{key}",
                backend=backend,
                scheduler=scheduler,
            )
            m.time(key, time.perf_counter() - started)
            m.note(f"{key}_requests", s3.counter.take())
            if workers:
                cpu_after = clusters[workers].cpu()
                m.note(f"{key}_cpu", {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after})
                m.note(f"{key}_timeline", clusters[workers].timeline(epoch, time.time()))
                m.note(f"{key}_load", os.getloadavg()[0])
                m.note(f"{key}_received", sum(_RECEIVED))
            if run.status != "completed":
                raise SystemExit(f"{data.name} {key}: run {run.run_id} is {run.status}")
            after = ws.blob_stats()
            m.note(f"{key}_blobs", after.n_blobs - before.n_blobs)
            m.note(f"{key}_bytes", after.stored_bytes - before.stored_bytes)
            m.note(f"{key}_results", len(run.results))
            scores.setdefault(key, {}).update({r.row.name: r.row.score for r in run.results})
            top = run.best(data.name).row
            best[key] = (top.name, top.score)
            if remote:
                m.note(f"{key}_objects", s3.objects(prefix))
                m.note(f"{key}_index_blobs", after.n_blobs)
            log(f"  {data.name} repeat {rep + 1}/{repeats}: {key} {m.times[key][-1]:.2f} s")
            if key in ("joblib", "s3") and "s3" in variants:  # `--wide` times runs only
                del ws, run
                read_back(where, remote, data.name, m, f"read_{key}", s3)
                log(
                    f"  {data.name} repeat {rep + 1}/{repeats}: read-back {key} "
                    + ", ".join(f"{p} {m.times[f'read_{key}_{p}'][-1]:.2f} s" for p in READ_PASSES)
                )
            else:
                del ws, run
            gc.collect()
            shutil.rmtree(where)
            if remote:
                s3.remove(prefix)
    return {"m": m, "scores": scores, "best": best}


def warm_up(scratch: Path, variants: list[str], clusters: dict[int, Any], s3: S3Server) -> None:
    """Import and exercise everything once (this process and every cluster worker)."""
    from n4afs.tree.tree import Tree
    from n4afs.workspace import Workspace

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(30, 40)) + 1.0, rng.normal(size=30)
    template = [{"_or_": ["snv", "minmax"]}, {"pls": {"n_components": {"_range_": [1, 2]}}}]
    for key in variants:
        _, remote, backend, workers = VARIANTS[key]
        where = scratch / f"warmup-{key}"
        ws = Workspace(where, store=f"s3://{BUCKET}/warmup-{key}" if remote else None)
        ws.add_arrays(X, y, name="warmup")
        for n_workers in [workers] if workers else []:
            ws.run(
                templates=[template],
                datasets=["warmup"],
                cv=3,
                backend="dask",
                scheduler=clusters[n_workers].scheduler_address,
            )
        if not workers:
            ws.run(templates=[template], datasets=["warmup"], cv=3)
            read_folder(Tree(ws), "warmup")
        del ws
        shutil.rmtree(where)
        if remote:
            s3.remove(f"warmup-{key}")
    s3.counter.take()


# -- report ---------------------------------------------------------------------------------
def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def requests_text(counts: list[Counter[str]]) -> str:
    if not counts or not any(counts):
        return "—"
    kinds = sorted({k for c in counts for k in c})
    medians = {k: statistics.median(c.get(k, 0) for c in counts) for k in kinds}
    total = statistics.median(sum(c.values()) for c in counts)
    return f"{total:.0f}: " + ", ".join(f"{k} {medians[k]:.0f}" for k in kinds)


def report(
    results: dict[str, dict[str, Any]], data: list[Data], variants: list[str], n_configs: int
) -> tuple[str, bool]:
    ok = True
    lines = [
        "| dataset | variant | median s | range s | × local joblib | blobs written | "
        "S3 requests (median) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    notes = []
    for d in data:
        r = results[d.name]
        m = r["m"]
        base = m.median("joblib")
        shape = f"{d.name} ({d.shape[0]} × {d.shape[1]})"
        for key in variants:
            blobs = statistics.median(m.values[f"{key}_blobs"])
            size = statistics.median(m.values[f"{key}_bytes"])
            lines.append(
                f"| {shape} | {VARIANTS[key][0]} | {m.median(key):.2f} | {m.span(key)} | "
                f"{m.median(key) / base:.2f}× | {blobs:.0f} ({mb(size)}) | "
                f"{requests_text(m.values[f'{key}_requests'])} |"
            )
        for key in variants:
            diff = max_rel_diff(r["scores"]["joblib"], r["scores"][key])
            same_best = r["best"][key][0] == r["best"]["joblib"][0]
            if diff > REL_TOL or not same_best:
                ok = False
                notes.append(
                    f"- **MISMATCH** {d.name}, {key}: max relative score difference {diff:.1e}, "
                    f"best {r['best'][key]} vs {r['best']['joblib']}"
                )
            if VARIANTS[key][1]:
                objects, rows = m.values[f"{key}_objects"], m.values[f"{key}_index_blobs"]
                if objects != rows:
                    ok = False
                    notes.append(
                        f"- **MISMATCH** {d.name}, {key}: S3 objects {objects} vs index blobs "
                        f"{rows}"
                    )
        counts = {len(s) for s in r["scores"].values()}
        name, score = r["best"]["joblib"]
        notes.append(
            f"- {d.name}: every variant scored the same {sorted(counts)} configs (expected "
            f"{n_configs}); max relative score difference to local joblib "
            f"{max(max_rel_diff(r['scores']['joblib'], r['scores'][k]) for k in variants):.1e}; "
            f"best {name} (score {score:.6g}) everywhere" + ("" if ok else " — see MISMATCH lines")
        )
    table = "\n".join(lines)

    read_lines = [
        "| dataset | files read (bytes) | pass | local store s | S3 store (moto) s | "
        "S3 × local | S3 requests (median) |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for d in data if "s3" in variants else ():
        m = results[d.name]["m"]
        files = statistics.median(m.values["read_joblib_files"])
        size = statistics.median(m.values["read_joblib_bytes"])
        for pass_, label in READ_PASSES.items():
            local, remote = m.median(f"read_joblib_{pass_}"), m.median(f"read_s3_{pass_}")
            read_lines.append(
                f"| {d.name} | {files:.0f} ({mb(size)}) | {label} | {local:.3f} "
                f"({m.span(f'read_joblib_{pass_}')}) | {remote:.3f} "
                f"({m.span(f'read_s3_{pass_}')}) | {remote / local:.2f}× | "
                f"{requests_text(m.values[f'read_s3_{pass_}_requests'])} |"
            )
    if "s3" not in variants:  # `--wide`: no read-back measured
        read_lines = []
    cpu_lines = cpu_report(results, data, variants)
    return (
        table
        + "\n\n"
        + "\n".join(read_lines)
        + "\n\n"
        + "\n".join(notes)
        + "\n"
        + ("\n" + "\n".join(cpu_lines) + "\n" if cpu_lines else ""),
        ok,
    )


def cpu_report(
    results: dict[str, dict[str, Any]], data: list[Data], variants: list[str]
) -> list[str]:
    """Where the CPU of each cluster run went (medians of the repeats), what the task stream
    saw, and the 2-worker speed-up a quiet machine would give (`predicted_wall`)."""
    cores = os.cpu_count() or 1
    dask = [k for k in variants if VARIANTS[k][3]]
    if not dask:
        return []
    lines = [
        "| dataset | variant | wall s (1-min load) | CPU s: coordinator | scheduler | nannies | "
        "workers (each) | tasks | busy s (each) | tail s | idle s | results sent | "
        f"predicted quiet wall s ({cores} cores) |",
        "|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    notes = []
    med = statistics.median
    for d in data:
        m = results[d.name]["m"]
        predicted = {}
        for key in dask:
            cpus, runs = m.values[f"{key}_cpu"], m.values[f"{key}_timeline"]
            workers = sorted(k for k in cpus[0] if k.startswith("worker"))
            each = " + ".join(f"{med([c[w] for c in cpus]):.2f}" for w in workers)
            busy = " + ".join(
                f"{med([t['busy'][i] for t in runs]):.2f}" for i in range(len(runs[0]["busy"]))
            )
            predicted[key] = med(
                [
                    predicted_wall(c, cores, wall, rates)
                    for c, wall, rates in zip(
                        cpus, m.times[key], m.values[f"{key}_idle_rates"], strict=True
                    )
                ]
            )
            cells = [
                d.name,
                VARIANTS[key][0],
                f"{m.median(key):.2f} ({med(m.values[f'{key}_load']):.1f})",
                *(
                    f"{med([c[k] for c in cpus]):.2f}"
                    for k in ("coordinator", "scheduler", "nannies")
                ),
                each,
                f"{med([t['tasks'] for t in runs]):.0f}",
                busy,
                f"{med([t['tail'] for t in runs]):.2f}",
                f"{med([t['idle'] for t in runs]):.2f}",
                mb(med(m.values[f"{key}_received"])),
                f"{predicted[key]:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if "dask1" in predicted and "dask2" in predicted:
            wall = m.median("dask1") / m.median("dask2")
            notes.append(
                f"- {d.name}: 2 workers / 1 worker, wall: {wall:.2f}x; predicted on a quiet "
                f"{cores}-core machine from the CPU seconds: "
                f"{predicted['dask1'] / predicted['dask2']:.2f}x"
            )
    return lines + [""] + notes


# -- index engines: DuckDB vs PostgreSQL (scripts/bench_index.py's machinery) ---------------
ENGINES = ("duckdb", "postgresql")
BEST_GOAL_S = 0.5  # #22: `best` at 10,000 results under 0.5 s on both engines


def sweep_commits(data: Data, template: list[Any], engine: str, where: Path, url: str | None):
    """The sweep (local store, joblib n_jobs=1) into a fresh index of `engine` (`url`: a
    PostgreSQL database, else DuckDB), every index transaction the runner makes timed
    (`runner._commit`: the writers' turn, the rows, the commit). Returns (Measure values)."""
    from n4afs_core.pipelines import runner

    from n4afs.workspace import Workspace

    store = f"file://{where}-store" if url else None
    ws = Workspace(where, store=store, index=url)
    data.add(ws)
    spent: list[tuple[float, int]] = []
    original = runner._commit

    def timed_commit(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append((time.perf_counter() - started, len(args[1])))

    settle()
    runner._commit = timed_commit
    started = time.perf_counter()
    try:
        run = ws.run(
            templates=[template], datasets=[data.name], cv=CV_FOLDS, name=f"bench-{engine}"
        )
    finally:
        runner._commit = original
    wall = time.perf_counter() - started
    if run.status != "completed":
        raise SystemExit(f"{data.name} {engine}: run {run.run_id} is {run.status}")
    top = run.best(data.name).row
    return {
        "wall": wall,
        "commit_s": sum(t for t, _ in spent),
        "commits": len(spent),
        "results": len(run.results),
        "scores": {r.row.name: r.row.score for r in run.results},
        "best": (top.name, top.score),
    }


def measure_engines(
    data: Data,
    template: list[Any],
    repeats: int,
    scratch: Path,
    index: str | None,
    n_results: int,
    best_repeats: int,
) -> dict[str, Any]:
    """Both engines: the sweep's commit cost (`repeats` times each, order alternated), then
    `best` at `n_results` results (`bench_index.best_latencies`). PostgreSQL: the server
    `index` names, else one started here (`bench_index.start_postgres`)."""
    import bench_index

    m = Measure()
    sweeps: dict[str, list[dict[str, Any]]] = {e: [] for e in ENGINES}
    server, url = bench_index.start_postgres(index)
    try:
        for rep in range(repeats):
            for engine in ENGINES if rep % 2 == 0 else ENGINES[::-1]:
                db = (
                    bench_index.fresh_database(url, f"n4a_bench_sweep_{rep}")
                    if engine == "postgresql"
                    else None
                )
                where = scratch / f"engines-{engine}-{rep}"
                done = sweep_commits(data, template, engine, where, db)
                sweeps[engine].append(done)
                m.time(f"sweep_{engine}", done["wall"])
                m.time(f"commit_{engine}", done["commit_s"])
                log(
                    f"  index {engine} repeat {rep + 1}/{repeats}: sweep {done['wall']:.2f} s, "
                    f"{done['commits']} commits {done['commit_s'] * 1000:.0f} ms"
                )
                shutil.rmtree(where, ignore_errors=True)
                shutil.rmtree(f"{where}-store", ignore_errors=True)
        (scratch / "engines-best").mkdir()
        summary, reads = bench_index.best_latencies(
            scratch / "engines-best", n_results, best_repeats, url
        )
    finally:
        bench_index.stop_postgres(server)
        shutil.rmtree(scratch / "engines-best", ignore_errors=True)
    shown_url = url.split("@")[-1] if server is None else "started by the script, fsync off"
    return {"m": m, "sweeps": sweeps, "summary": summary, "reads": reads, "server": shown_url}


def _engine_row(label: str, cell: Callable[[str], str]) -> str:
    """A table row: `label`, then one cell per index engine."""
    return f"| {label} | " + " | ".join(cell(e) for e in ENGINES) + " |"


def report_engines(r: dict[str, Any], data: Data, repeats: int) -> tuple[str, bool]:
    """The engines' section: commit cost during the sweep, then the read latencies."""
    import bench_index

    m, sweeps, reads = r["m"], r["sweeps"], r["reads"]
    ok = True
    per_result = {
        e: statistics.median(s["commit_s"] * 1000 / s["results"] for s in sweeps[e])
        for e in ENGINES
    }
    share = {e: statistics.median(s["commit_s"] / s["wall"] for s in sweeps[e]) for e in ENGINES}
    commits = {e: statistics.median(s["commits"] for s in sweeps[e]) for e in ENGINES}
    results = {e: statistics.median(s["results"] for s in sweeps[e]) for e in ENGINES}
    lines = [
        f"Index engines: the sweep above on {data.name} ({data.shape[0]} × {data.shape[1]}), "
        f"local store, joblib n_jobs=1, into a fresh DuckDB index and a fresh PostgreSQL "
        f"database (server: {r['server']}), medians of {repeats}; then `best` on "
        f"{r['summary']}.",
        "",
        "| measure | DuckDB | PostgreSQL |",
        "|---|---:|---:|",
        _engine_row(
            "sweep wall time (s)",
            lambda e: f"{m.median(f'sweep_{e}'):.2f} ({m.span(f'sweep_{e}')})",
        ),
        _engine_row(
            "index transactions during the sweep (results)",
            lambda e: f"{commits[e]:.0f} ({results[e]:.0f})",
        ),
        _engine_row(
            "commit time during the sweep, per result (ms)", lambda e: f"{per_result[e]:.2f}"
        ),
        _engine_row("share of the sweep's wall time spent committing", lambda e: f"{share[e]:.1%}"),
    ]
    for key, label in bench_index.READ_LABELS.items():
        lines.append(
            f"| {label} | " + " | ".join(f"{reads[e][key] * 1000:.2f}" for e in ENGINES) + " |"
        )
    worst = max(max(reads[e]["best_warm"], reads[e]["open_best"]) for e in ENGINES)
    met = worst < BEST_GOAL_S
    lines += [
        "",
        f"- `best` goal (< {BEST_GOAL_S} s on both engines, workspace open or newly opened): "
        + ("met" if met else "**NOT met**")
        + f" (slowest {worst * 1000:.0f} ms).",
    ]
    reference = sweeps["duckdb"][0]
    for engine in ENGINES:
        for s in sweeps[engine]:
            diff = max_rel_diff(reference["scores"], s["scores"])
            if diff > REL_TOL or s["best"][0] != reference["best"][0]:
                ok = False
                lines.append(
                    f"- **MISMATCH** index {engine}: max relative score difference {diff:.1e}, "
                    f"best {s['best']} vs {reference['best']}"
                )
    if ok:
        lines.append("- Both engines' sweeps scored the same and chose the same best.")
    return "\n".join(lines) + "\n", ok


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument(
        "--synthetic", action="store_true", help="also the synthetic set (about doubles the time)"
    )
    parser.add_argument("--synthetic-size", default=None, help="N,P (default 500,1000)")
    parser.add_argument(
        "--s3-dask", action="store_true", help="also run the S3 store on the 2-worker cluster"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 configs, 1 repeat")
    parser.add_argument(
        "--wide",
        action="store_true",
        help="#22's sweep: 200 configs (10 preprocessings x PLS 1..20) on a 1000 x 1000 "
        "synthetic set only, local store, joblib vs dask 1 vs 2 workers",
    )
    parser.add_argument("--out", help="also write the Markdown tables to this file")
    parser.add_argument(
        "--index", help="index engines: a PostgreSQL server's URL (default: start one)"
    )
    parser.add_argument(
        "--no-engines", action="store_true", help="skip the DuckDB vs PostgreSQL section"
    )
    parser.add_argument(
        "--engine-results",
        type=int,
        default=None,
        help="results of the workspace `best` is timed on (default 10,000; 1,000 with --quick)",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads in this process (default 1; 0 = the library's default)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    template = QUICK_TEMPLATE if args.quick else WIDE_TEMPLATE if args.wide else TEMPLATE
    n_configs = 6 if args.quick else 200 if args.wide else 60
    default_size = "100,300" if args.quick else "1000,1000" if args.wide else "500,1000"
    size_text = args.synthetic_size or default_size
    with_synthetic = args.synthetic or args.quick or args.wide or args.synthetic_size is not None
    synthetic = tuple(int(v) for v in size_text.split(",")) if with_synthetic else None
    variants = ["joblib", "dask1", "dask2", "s3"] + (["s3_dask2"] if args.s3_dask else [])
    if args.wide:
        variants = ["joblib", "dask1", "dask2"]

    load_before = os.getloadavg()[0]
    data = load_data(synthetic)
    if args.wide:
        data = data[1:]  # the synthetic set only
    scratch = Path(tempfile.mkdtemp(dir=".", prefix=".bench_scaleout-")).resolve()
    limits = contextlib.nullcontext()
    if args.blas_threads > 0:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=args.blas_threads, user_api="blas")
    s3 = S3Server()
    clusters: dict[int, ProcessCluster] = {}
    results: dict[str, dict[str, Any]] = {}
    engines: dict[str, Any] = {}
    try:
        with limits:
            log(f"starting moto S3 on loopback and 2 dask clusters; scratch {scratch}")
            s3.start()  # first: the cluster workers inherit the AWS_* variables
            for n_workers in (1, 2):
                clusters[n_workers] = ProcessCluster(n_workers, scratch)
                env = clusters[n_workers].client.run(
                    lambda: tuple(
                        os.environ.get(k)
                        for k in ("OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")
                    )
                )
                blas, trim = zip(*env.values(), strict=True)
                log(
                    f"  {n_workers}-worker cluster up; workers' OPENBLAS_NUM_THREADS="
                    f"{set(blas)}, MALLOC_TRIM_THRESHOLD_={set(trim)}"
                )
            count_received()
            log("warming up (tiny sweep through every variant) ...")
            warm_up(scratch, variants, clusters, s3)
            for d in data:
                log(f"{d.name} {d.shape[0]} × {d.shape[1]} ({d.description}): {n_configs} configs")
                results[d.name] = measure_dataset(
                    d, template, variants, repeats, scratch, clusters, s3
                )
            if not args.no_engines:
                log("index engines: DuckDB vs PostgreSQL ...")
                engines = measure_engines(
                    data[0],
                    template,
                    repeats,
                    scratch,
                    args.index,
                    args.engine_results or (1_000 if args.quick else 10_000),
                    3 if args.quick else 7,
                )
    finally:
        logging.getLogger("distributed").setLevel(logging.ERROR)  # quiet teardown
        for cluster in clusters.values():
            cluster.close()
        with contextlib.suppress(Exception):
            s3.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    text, ok = report(results, data, variants, n_configs)
    if not args.no_engines:
        engine_text, engines_ok = report_engines(engines, data[0], repeats)
        text, ok = text + "\n" + engine_text, ok and engines_ok
    import subprocess

    import distributed
    import moto
    import s3fs

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()

    header = (
        f"Medians of {repeats} repeats; {n_configs} configs × {CV_FOLDS} folds + final refit "
        f"per data set; BLAS threads in this process: {args.blas_threads or 'library default'}; "
        f"moto {moto.__version__}, s3fs {s3fs.__version__}, distributed "
        f"{distributed.__version__}; n4afs at `{commit or '?'}`; total script wall time "
        f"{time.perf_counter() - _T0:.0f} s; "
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after. "
        "S3 = moto's Python server, a thread of this process on 127.0.0.1 (not real S3). "
        "Read-back times include `Tree(ws)`, the walk and every non-chart read.\n\n"
    )
    print(header + text)
    if args.out:
        Path(args.out).write_text(header + text, encoding="utf-8")
    if not ok:
        print("!!! variants DISAGREE (scores, best config or S3 objects): see above !!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
