"""Benchmark reads under load: K concurrent readers (fsspec and the FUSE mount) while a run writes.

One workspace holds chemotools' fermentation set and a prior run of the reference sweep
(SNV / MSC / Savitzky-Golay 1st derivative x PLS 1..15 = 45 configs, 5-fold CV), so there is
something to read. Then, `--repeats` times (order alternated per repeat):

- **alone**: the same sweep again under a new run name, in a fresh subprocess, nothing else
  running (no mount, no readers). The subprocess imports everything first and times only the
  `ws.run(...)` call (wall clock, and the process's CPU time), which it prints as JSON. CPU
  time barely moving while wall time grows means the run waited (for a core or the lock).
- **loaded**: the workspace is mounted (`python -m n4afs.cli mount WS MNT --foreground`), K
  reader processes start (`--readers`, default 4: half read through fsspec
  `N4AFileSystem(workspace=WS)`, half through the mount with plain `os` calls). Once every
  reader has warmed up, they loop `--warmup-seconds` (default 1) unmeasured, then the readers
  alone are measured for `--idle-seconds` (default 2; reference throughput), then the same
  sweep runs (new name) in a fresh subprocess, timed the same way, while they keep reading.

Each reader first reads every file its loop may pick once (warm-up, not measured). A reader
iteration is: list `runs/fermentation` with details (fsspec `ls(detail=True)`; on the
mount `os.scandir` + `stat` of every entry), read `runs/fermentation/RESULTS.csv`, read
`best/fermentation.csv`, then read one random file of one random result folder of the current
listing (new results included): `pipeline.yaml`, `scores.yaml`, `predictions/cv.csv`, or a
random `models/<model>/pls_model.pkl` (after listing `models/`). Charts are left out (a PNG
renders with matplotlib on its first read). Every listing and every whole-file read counts as
one *read*. "reads/s" = reads completed inside the window (readers alone: the idle window; under
load: the `ws.run` call's own start..end, taken from the run subprocess; CLOCK_MONOTONIC is
system-wide on Linux), summed over the readers of one kind.

Failures are counted, never retried away:

- *errors*: any exception in a reader (message recorded, grouped), plus tracebacks or ERROR
  lines in the mount daemon's log and anything mentioning "locked" on the run's stderr;
- *inconsistent reads*: a CSV that does not parse into equal-length rows or lacks its final
  newline (a torn or size-truncated read), an empty model or YAML file, or a result count
  (listing or RESULTS.csv rows) lower than one the same reader saw earlier (a stale read after
  a fresh one);
- *freshness*: after the run ends, the parent writes the expected number of results; each
  reader keeps going until its listing and its RESULTS.csv show them all (or 15 s pass). The lag
  is the time from the end of `ws.run` to the first iteration that saw them (0 if already seen).

Every measured run (alone or loaded) gets its own copy of the base workspace (dataset + prior
run; blob files hard-linked, the index copied), so all repeats start from the same 45 results
and the readers' listings are the same size in every repeat. The measured run is an identical
re-run of the prior one (same template, seed and folds), so its blobs deduplicate: it fits
every model and writes index rows, but few new blob files; alone and loaded runs do the same
work. BLAS is pinned to `--blas-threads` threads (default 1) in every subprocess.

Scratch lives under the repository root (`.bench_load-*`) and is removed at the end; the mount
is unmounted (SIGTERM, then `fusermount3 -uz` if needed) and every child is stopped in `finally`.
`N4AFS_STATE` points into the scratch dir so the mount's registry does not touch `~/.n4afs`.

Run from a checkout: `.venv/bin/python scripts/bench_load.py [--readers 4] [--repeats 3]
[--idle-seconds 2] [--quick] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATASET = "fermentation"
TEMPLATE = [
    {"_or_": ["snv", "msc", {"savgol": {"deriv": 1, "window_length": 15, "polyorder": 2}}]},
    {"pls": {"n_components": {"_range_": [1, 15]}}},
]
RESULT_FILES = ("pipeline.yaml", "scores.yaml", "predictions/cv.csv", "model")
FRESH_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 120.0
MOUNT_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------------------------
# child: one measured run
# ---------------------------------------------------------------------------------------
def child_run(workspace: str, name: str) -> int:
    """Import everything, then time `ws.run` alone; print one JSON line."""
    import chemotools.derivative  # noqa: F401
    import chemotools.scatter  # noqa: F401
    import n4afs_core.pipelines.persist  # noqa: F401
    import n4afs_core.pipelines.runner  # noqa: F401
    import n4afs_core.pipelines.templates  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import sklearn.cross_decomposition  # noqa: F401
    import sklearn.model_selection  # noqa: F401

    from n4afs.workspace import Workspace

    ws = Workspace(workspace, create=False)
    c0, t0 = time.process_time(), time.monotonic()
    run = ws.run(templates=[TEMPLATE], datasets=[DATASET], cv=5, name=name)
    t1, c1 = time.monotonic(), time.process_time()
    statuses = Counter(r.status for r in run.results)
    total = len(ws.results(DATASET))
    print(
        json.dumps(
            {
                "wall": t1 - t0,
                "cpu": c1 - c0,
                "t0": t0,
                "t1": t1,
                "statuses": dict(statuses),
                "results_total": total,
            }
        ),
        flush=True,
    )
    return 0


# ---------------------------------------------------------------------------------------
# child: one reader
# ---------------------------------------------------------------------------------------
class FsspecSide:
    def __init__(self, workspace: str) -> None:
        from n4afs.surfaces.fs import N4AFileSystem

        self.fs = N4AFileSystem(workspace=workspace)

    def list(self, path: str) -> list[str]:
        return [e["name"].rsplit("/", 1)[-1] for e in self.fs.ls(path, detail=True)]

    def read(self, path: str) -> bytes:
        return self.fs.cat_file(path)


class MountSide:
    def __init__(self, mountpoint: str) -> None:
        self.root = mountpoint.rstrip("/")

    def list(self, path: str) -> list[str]:
        names = []
        with os.scandir(self.root + path) as entries:
            for entry in entries:
                entry.stat()
                names.append(entry.name)
        return names

    def read(self, path: str) -> bytes:
        with open(self.root + path, "rb") as f:
            return f.read()


def _csv_rows(data: bytes) -> int | None:
    """Data rows of a well-formed CSV, else None (torn, truncated or ragged)."""
    if not data.endswith(b"\n"):
        return None
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        return None
    return len(rows) - 1


class Reader:
    def __init__(self, side: Any, seed: int) -> None:
        self.side = side
        self.rng = random.Random(seed)
        self.times: list[float] = []  # completion time of every successful read
        self.durations: list[float] = []  # and how long it took
        self.nbytes = 0
        self.errors: Counter[str] = Counter()
        self.error_times: list[float] = []
        self.inconsistent: Counter[str] = Counter()
        self.max_listed = 0
        self.max_rows = 0
        self.seen_listing_at: dict[int, float] = {}
        self.seen_rows_at: dict[int, float] = {}

    def _op(self, what: str, fn: Any, path: str) -> Any:
        start = time.monotonic()
        try:
            value = fn(path)
        except Exception as exc:  # every failure counts, none is retried away
            self.errors[f"{what} {path}: {type(exc).__name__}: {exc}"] += 1
            self.error_times.append(time.monotonic())
            return None
        end = time.monotonic()
        self.times.append(end)
        self.durations.append(end - start)
        if isinstance(value, bytes):
            self.nbytes += len(value)
        return value

    def _odd(self, what: str) -> None:
        self.inconsistent[what] += 1

    def iteration(self) -> None:
        base = f"/runs/{DATASET}"
        names = self._op("list", self.side.list, base)
        if names is None:
            return
        results = sorted(n for n in names if n[:1].isdigit())
        if len(results) < self.max_listed:
            self._odd(f"listing shrank {self.max_listed} -> {len(results)}")
        self.max_listed = max(self.max_listed, len(results))
        self.seen_listing_at.setdefault(len(results), time.monotonic())

        data = self._op("read", self.side.read, f"{base}/RESULTS.csv")
        if data is not None:
            rows = _csv_rows(data)
            if rows is None:
                self._odd(f"RESULTS.csv malformed ({len(data)} bytes)")
            else:
                if rows < self.max_rows:
                    self._odd(f"RESULTS.csv rows shrank {self.max_rows} -> {rows}")
                self.max_rows = max(self.max_rows, rows)
                self.seen_rows_at.setdefault(rows, time.monotonic())

        data = self._op("read", self.side.read, f"/best/{DATASET}.csv")
        if data is not None and _csv_rows(data) is None:
            self._odd(f"best/{DATASET}.csv malformed ({len(data)} bytes)")

        if not results:
            return
        folder = f"{base}/{self.rng.choice(results)}"
        pick = self.rng.choice(RESULT_FILES)
        if pick == "model":
            models = self._op("list", self.side.list, f"{folder}/models")
            if not models:
                if models is not None:
                    self._odd("models/ listed empty")
                return
            path = f"{folder}/models/{self.rng.choice(sorted(models))}/pls_model.pkl"
        else:
            path = f"{folder}/{pick}"
        data = self._op("read", self.side.read, path)
        if data is None:
            return
        if not data:
            self._odd(f"empty {pick}")
        elif pick.endswith(".csv") and _csv_rows(data) is None:
            self._odd(f"{pick} malformed ({len(data)} bytes)")

    def warm_up(self) -> None:
        """Read every file the loop may pick once, so the loop measures warm reads (the
        measured runs' results render to the same bytes, which the tree memoizes)."""
        base = f"/runs/{DATASET}"
        self.iteration()
        for name in sorted(n for n in self.side.list(base) if n[:1].isdigit()):
            for pick in RESULT_FILES[:-1]:
                self.side.read(f"{base}/{name}/{pick}")
            for model in self.side.list(f"{base}/{name}/models"):
                self.side.read(f"{base}/{name}/models/{model}/pls_model.pkl")

    def fresh_at(self, expected: int) -> float | None:
        """When this reader first saw every expected result in both the listing and CSV."""
        listing = [t for n, t in self.seen_listing_at.items() if n >= expected]
        rows = [t for n, t in self.seen_rows_at.items() if n >= expected]
        if not listing or not rows:
            return None
        return max(min(listing), min(rows))


def child_reader(kind: str, target: str, control: str, index: int, seed: int) -> int:
    control_dir = Path(control)
    stop, expect = control_dir / "stop", control_dir / "expect"
    out = control_dir / f"reader-{index}.json"
    started = time.monotonic()
    side = FsspecSide(target) if kind == "fsspec" else MountSide(target)
    reader = Reader(side, seed)
    reader.warm_up()
    (control_dir / f"ready-{index}").write_text("1\n")
    fresh_lag = None
    expected = None
    deadline = None
    try:
        while not stop.exists():
            if expected is None and expect.exists():
                info = json.loads(expect.read_text())
                expected, t_end = info["results_total"], info["t1"]
                deadline = time.monotonic() + FRESH_TIMEOUT_S
            if expected is not None:
                seen = reader.fresh_at(expected)
                if seen is not None:
                    fresh_lag = max(0.0, seen - t_end)
                    break
                if time.monotonic() > deadline:
                    break
            reader.iteration()
    finally:
        out.write_text(
            json.dumps(
                {
                    "kind": kind,
                    "started": started,
                    "times": reader.times,
                    "durations": reader.durations,
                    "bytes": reader.nbytes,
                    "errors": dict(reader.errors),
                    "error_times": reader.error_times,
                    "inconsistent": dict(reader.inconsistent),
                    "expected": expected,
                    "fresh_lag": fresh_lag,
                    "max_listed": reader.max_listed,
                    "max_rows": reader.max_rows,
                }
            )
        )
    return 0


# ---------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------
def child_env(blas_threads: int, state_dir: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "N4AFS_STATE": str(state_dir)}
    if blas_threads > 0:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(blas_threads)
    return env


class Mount:
    def __init__(self, workspace: Path, mountpoint: Path, env: dict[str, str]) -> None:
        self.workspace, self.path, self.env = workspace, mountpoint, env
        self.log = mountpoint.parent / f"{mountpoint.name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.path.mkdir(exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "n4afs.cli", "mount", str(self.workspace), str(self.path)]
                + ["--foreground"],
                stdout=log,
                stderr=log,
                env=self.env,
                cwd=ROOT,
            )
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mount did not come up:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if os.path.ismount(self.path) or _stale(self.path):
            subprocess.run(["fusermount3", "-uz", str(self.path)], check=False)

    def problems(self) -> list[str]:
        lines = self.output().splitlines()
        return [ln for ln in lines if "Traceback" in ln or "ERROR" in ln or "locked" in ln]


def _stale(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError:
        return True
    return False


def clone_workspace(base: Path, dest: Path) -> Path:
    """A copy of the base workspace for one measured run: every run starts from the same
    state (the prior run's 45 results). Blob files are immutable, so they are hard-linked;
    the index and the rest are copied."""
    objects = base / "objects"

    def copy(src: str, dst: str) -> None:
        if Path(src).is_relative_to(objects):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(base, dest, copy_function=copy)
    return dest


def measured_run(ws: Path, name: str, env: dict[str, str], log: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--role", "run", str(ws), name],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    with open(log, "a") as f:
        f.write(f"== run {name} rc={done.returncode}\n{done.stdout}\n{done.stderr}\n")
    if done.returncode != 0:
        raise RuntimeError(f"run {name} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    info["stderr_problems"] = [
        ln for ln in done.stderr.splitlines() if "locked" in ln or "Traceback" in ln
    ]
    return info


def loaded_phase(
    ws: Path,
    scratch: Path,
    name: str,
    n_readers: int,
    warmup_s: float,
    idle_s: float,
    env: dict[str, str],
    log: Path,
    seed: int,
) -> dict[str, Any]:
    control = Path(tempfile.mkdtemp(dir=scratch, prefix="ctl-"))
    mount = Mount(ws, Path(tempfile.mkdtemp(dir=scratch, prefix="mnt-")), env)
    readers: list[subprocess.Popen] = []
    kinds = ["fsspec" if i < (n_readers + 1) // 2 else "mount" for i in range(n_readers)]
    try:
        if "mount" in kinds:
            mount.start()
        for i, kind in enumerate(kinds):
            target = str(ws) if kind == "fsspec" else str(mount.path)
            with open(control / f"reader-{i}.err", "wb") as err:
                readers.append(
                    subprocess.Popen(
                        [sys.executable, str(Path(__file__).resolve()), "--role", "reader"]
                        + [kind, target, str(control), str(i), str(seed * 100 + i)],
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                        env=env,
                        cwd=ROOT,
                    )
                )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all((control / f"ready-{i}").exists() for i in range(n_readers)):
            dead = [p.args for p in readers if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                errs = "\n".join(
                    (control / f"reader-{i}.err").read_text(errors="replace")[-2000:]
                    for i in range(n_readers)
                )
                raise RuntimeError(f"readers did not get ready (dead: {dead}):\n{errs}")
            time.sleep(0.05)
        time.sleep(warmup_s)  # first renders of the prior run's files, not measured
        idle0 = time.monotonic()
        time.sleep(idle_s)
        idle1 = time.monotonic()
        run = measured_run(ws, name, env, log)
        (control / "expect").write_text(json.dumps(run))
        for proc in readers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=FRESH_TIMEOUT_S + 30)
    finally:
        (control / "stop").write_text("1\n")
        for proc in readers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        mount.stop()
    stats = []
    for i, (kind, proc) in enumerate(zip(kinds, readers, strict=True)):
        path = control / f"reader-{i}.json"
        if path.exists():
            stats.append(json.loads(path.read_text()))
        else:  # a reader that died without its report still counts, as an error
            stats.append(
                {
                    "kind": kind,
                    "times": [],
                    "durations": [],
                    "errors": {f"reader {i} left no report (exit code {proc.returncode})": 1},
                    "inconsistent": {},
                    "fresh_lag": None,
                }
            )
    err_text = [(control / f"reader-{i}.err").read_text(errors="replace") for i in range(n_readers)]
    return {
        "run": run,
        "idle": (idle0, idle1),
        "readers": stats,
        "reader_stderr": [t for t in err_text if t.strip()],
        "mount_problems": mount.problems(),
        "rc": [p.returncode for p in readers],
    }


def summarize_phase(phase: dict[str, Any]) -> dict[str, Any]:
    run = phase["run"]
    t0, t1 = run["t0"], run["t1"]
    i0, i1 = phase["idle"]
    out: dict[str, Any] = {"wall": run["wall"], "cpu": run["cpu"]}
    for kind in ("fsspec", "mount"):
        rs = [r for r in phase["readers"] if r["kind"] == kind]
        out[f"{kind}_n"] = len(rs)
        out[f"{kind}_load"] = sum(sum(t0 <= t <= t1 for t in r["times"]) for r in rs) / (t1 - t0)
        out[f"{kind}_idle"] = sum(sum(i0 <= t <= i1 for t in r["times"]) for r in rs) / (i1 - i0)
        window = sorted(
            d for r in rs for t, d in zip(r["times"], r["durations"], strict=True) if t0 <= t <= t1
        )
        out[f"{kind}_p50"] = percentile(window, 0.5)
        out[f"{kind}_p99"] = percentile(window, 0.99)
        out[f"{kind}_max"] = window[-1] if window else None
        lags = [r["fresh_lag"] for r in rs]
        out[f"{kind}_lag"] = None if any(x is None for x in lags) else max(lags, default=0.0)
    errors: Counter[str] = Counter()
    inconsistent: Counter[str] = Counter()
    for r in phase["readers"]:
        errors.update({f"[{r['kind']}] {k}": v for k, v in r["errors"].items()})
        inconsistent.update({f"[{r['kind']}] {k}": v for k, v in r["inconsistent"].items()})
    for line in phase["mount_problems"]:
        errors[f"[mount log] {line}"] += 1
    for line in run["stderr_problems"]:
        errors[f"[run stderr] {line}"] += 1
    for text in phase["reader_stderr"]:
        errors[f"[reader stderr] {text.strip().splitlines()[-1]}"] += 1
    out["errors"] = errors
    out["inconsistent"] = inconsistent
    out["reads_total"] = sum(len(r["times"]) for r in phase["readers"])
    out["statuses"] = run["statuses"]
    return out


def percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:.1f}"


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def report(args: Any, alone: list[dict], loaded: list[dict], meta: dict) -> str:
    a_med = median([a["wall"] for a in alone])
    l_med = median([s["wall"] for s in loaded])
    n_fs, n_mt = loaded[0]["fsspec_n"], loaded[0]["mount_n"]
    errors = sum(sum(s["errors"].values()) for s in loaded)
    odd = sum(sum(s["inconsistent"].values()) for s in loaded)
    locked = sum(v for s in loaded for k, v in s["errors"].items() if "locked" in k.lower()) + sum(
        len(a["stderr_problems"]) for a in alone
    )

    def rng(vals: list[float]) -> str:
        return f"{min(vals):.2f}–{max(vals):.2f}"

    lines = [
        f"Reads under load: {args.readers} readers ({n_fs} fsspec, {n_mt} mount) while a "
        f"45-config sweep runs; medians of {args.repeats} repeats.",
        "",
        "| phase | run wall s (median) | range s | × alone | run CPU s | fsspec reads/s "
        "| mount reads/s | errors | inconsistent reads | freshness lag s (fsspec / mount, max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| run alone | {fmt(a_med)} | {rng([a['wall'] for a in alone])} | 1.00× "
        f"| {fmt(median([a['cpu'] for a in alone]))} | — | — "
        f"| {sum(len(a['stderr_problems']) for a in alone)} | — | — |",
        f"| readers alone ({args.idle_seconds:g} s window, no run) | — | — | — | — "
        f"| {fmt(median([s['fsspec_idle'] for s in loaded]), 0)} "
        f"| {fmt(median([s['mount_idle'] for s in loaded]), 0)} | — | — | — |",
        f"| run + {args.readers} readers | {fmt(l_med)} | {rng([s['wall'] for s in loaded])} "
        f"| {fmt(l_med / a_med if a_med and l_med else None)}× "
        f"| {fmt(median([s['cpu'] for s in loaded]))} "
        f"| {fmt(median([s['fsspec_load'] for s in loaded]), 0)} "
        f"| {fmt(median([s['mount_load'] for s in loaded]), 0)} | {errors} | {odd} "
        f"| {fmt(max_or_none([s['fsspec_lag'] for s in loaded]))} / "
        f"{fmt(max_or_none([s['mount_lag'] for s in loaded]))} |",
        "",
        "Read latency while the run writes (ms; median over repeats of p50 and p99, max of max): "
        + "; ".join(
            f"{kind} p50 {ms(median([s[kind + '_p50'] for s in loaded]))}, "
            f"p99 {ms(median([s[kind + '_p99'] for s in loaded]))}, "
            f"max {ms(max_or_none([s[kind + '_max'] for s in loaded]))}"
            for kind in ("fsspec", "mount")
        )
        + ".",
        "Per repeat (loaded): "
        + "; ".join(
            f"#{i + 1} run {s['wall']:.2f} s (CPU {s['cpu']:.2f} s), "
            f"fsspec {s['fsspec_load']:.0f}/s "
            f"(alone {s['fsspec_idle']:.0f}/s), mount {s['mount_load']:.0f}/s "
            f"(alone {s['mount_idle']:.0f}/s), {s['reads_total']} reads in all"
            for i, s in enumerate(loaded)
        )
        + ".",
        "Per repeat (alone): "
        + ", ".join(f"{a['wall']:.2f} s (CPU {a['cpu']:.2f} s)" for a in alone)
        + ".",
        f"Result statuses of the measured runs: {sorted({json.dumps(s['statuses']) for s in alone + loaded})}.",  # noqa: E501
        f"'database is locked' / 'locked' seen: {locked}.",
    ]
    all_errors: Counter[str] = Counter()
    all_odd: Counter[str] = Counter()
    for s in loaded:
        all_errors.update(s["errors"])
        all_odd.update(s["inconsistent"])
    if all_errors:
        lines.append("Errors (grouped, count):")
        lines += [f"- {v} × {k[:300]}" for k, v in all_errors.most_common(20)]
    if all_odd:
        lines.append("Inconsistent reads (grouped, count):")
        lines += [f"- {v} × {k[:300]}" for k, v in all_odd.most_common(20)]
    lines += ["", "Meta: " + ", ".join(f"{k} {v}" for k, v in meta.items())]
    return "\n".join(lines)


def max_or_none(values: list[float | None]) -> float | None:
    if any(v is None for v in values):
        return None
    return max(values, default=None)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=4, help="reader processes (default 4)")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--idle-seconds", type=float, default=None, help="default 2 (1 quick)")
    parser.add_argument(
        "--warmup-seconds", type=float, default=1.0, help="readers loop before the idle window"
    )
    parser.add_argument("--blas-threads", type=int, default=1, help="0: library default")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 readers, 1 repeat")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--out", help="also write the Markdown report to this file")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role:
        role, *rest = args.role
        if role == "run":
            return child_run(*rest)
        if role == "reader":
            kind, target, control, index, seed = rest
            return child_reader(kind, target, control, int(index), int(seed))
        parser.error(f"unknown role {role}")

    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.idle_seconds is None:
        args.idle_seconds = 1.0 if args.quick else 2.0
    if args.quick and "--readers" not in (argv or sys.argv):
        args.readers = 2
    if args.readers < 1:
        parser.error("--readers must be at least 1")

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(dir=ROOT, prefix=".bench_load-"))
    env = child_env(args.blas_threads, scratch / "state")
    log = scratch / "runs.log"
    ws = scratch / "ws"
    alone: list[dict] = []
    loaded: list[dict] = []
    try:
        print(f"scratch {scratch}; setting up the workspace and the prior run ...", flush=True)
        setup = subprocess.run(
            [sys.executable, "-c", SETUP, str(ws), json.dumps(TEMPLATE)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        if setup.returncode != 0:
            raise RuntimeError(f"setup failed:\n{setup.stderr[-3000:]}")
        print(setup.stdout.strip(), flush=True)
        counter = 0
        for rep in range(args.repeats):
            order = ["alone", "loaded"] if rep % 2 == 0 else ["loaded", "alone"]
            for what in order:
                counter += 1
                name = f"m{counter:02d}-{what}"
                target = clone_workspace(ws, scratch / f"ws-{name}")
                if what == "alone":
                    info = measured_run(target, name, env, log)
                    alone.append(info)
                    print(f"[{rep + 1}] alone: {info['wall']:.2f} s", flush=True)
                else:
                    phase = loaded_phase(
                        target,
                        scratch,
                        name,
                        args.readers,
                        args.warmup_seconds,
                        args.idle_seconds,
                        env,
                        log,
                        rep,
                    )
                    s = summarize_phase(phase)
                    loaded.append(s)
                    print(
                        f"[{rep + 1}] loaded: {s['wall']:.2f} s, fsspec {s['fsspec_load']:.0f}"
                        f"/s (idle {s['fsspec_idle']:.0f}/s), mount {s['mount_load']:.0f}/s "
                        f"(idle {s['mount_idle']:.0f}/s), errors {sum(s['errors'].values())}, "
                        f"inconsistent {sum(s['inconsistent'].values())}, lag fsspec "
                        f"{fmt(s['fsspec_lag'])} mount {fmt(s['mount_lag'])}",
                        flush=True,
                    )
                if not any(os.path.ismount(p) for p in scratch.glob("mnt-*")):
                    shutil.rmtree(target)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        elif any(os.path.ismount(p) for p in scratch.glob("mnt-*")):
            print(f"WARNING: a mount is still up under {scratch}; not removing it")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    import duckdb
    import sklearn

    meta = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "sklearn": sklearn.__version__,
        "load avg before/after": f"{load_before:.2f}/{os.getloadavg()[0]:.2f}",
        "wall": f"{time.monotonic() - started:.0f} s",
    }
    text = report(args, alone, loaded, meta)
    print()
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    bad = any(s["errors"] or s["inconsistent"] for s in loaded)
    return 1 if bad else 0


SETUP = """
import json, sys, time
from n4afs.workspace import Workspace
ws = Workspace(sys.argv[1])
ws.add_dataset("chemotools:fermentation")
t = time.monotonic()
run = ws.run(templates=[json.loads(sys.argv[2])], datasets=["fermentation"], cv=5, name="prior")
print(f"prior run: {len(run.results)} results in {time.monotonic() - t:.1f} s")
"""


if __name__ == "__main__":
    sys.exit(main())
