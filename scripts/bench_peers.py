"""The same sweeps run by n4afs, by a plain scikit-learn loop and by nirs4all 1.4.10, in one run.

Sweeps (scripts/_bench_sweep.py builds every one of them from one description, so the three
tools get the same configs with every parameter stated: chemotools 0.5.0 SNV / MSC /
SavitzkyGolay(mode="interp", ...), sklearn PLSRegression(scale=True, max_iter=500, tol=1e-6),
KFold(5, shuffle=True, random_state=42), pooled out-of-fold RMSE (RMSECV), a final refit):

- `fermentation`: the PERF-NOTES reference sweep, SNV | MSC | SG1(w15) x PLS 1..15 = 45 configs
  on chemotools' fermentation training set (21 x 1047, real spectra);
- `big`: SNV | MSC, then SG 1st or 2nd derivative (polyorder 2) with windows 7, 9, .., 25, then
  PLS 1..25 = 2 x 20 x 25 = 1,000 configs on our synthetic 1000 x 1000 set
  (scripts/make_synthetic_nirs.py, seed 0; `--synthetic-size` to change);
- `big-subset`: SNV | MSC, then SG1 w11 | SG2 w21, then PLS 1..25 = 100 configs of `big`. The
  plain loop and nirs4all run THIS subset of the big sweep (the full one would take ~7 and
  ~30 min a repeat here) and their time for `big` is EXTRAPOLATED per config (x 10), which
  the report says; n4afs runs both (its subset time shows how per-config its cost is).
  `--full-loop` also runs the plain loop on the whole `big` sweep, once.

Tools, each timed sweep in a FRESH subprocess that first runs an untimed tiny sweep (imports,
first calls), then the timed one, at one core: OMP/MKL/OPENBLAS_NUM_THREADS=1 for every
process, n_jobs=1 everywhere:

1. n4afs: `ws.run(templates=[...], cv=5, n_jobs=1)` into a fresh workspace holding only the
   data set (added before the clock starts): fits, scores, persists every fold model, the
   final model and every prediction table (fsynced), indexes them.
2. plain: per config a `Pipeline`, `cross_val_predict(n_jobs=1)` on the same folds, a final
   refit, in memory: nothing is persisted (bench_run.py's "plain + files" variant prices that).
3. nirs4all 1.4.10 (`--with-nirs4all`; installed once into a throw-away venv OUTSIDE the
   repository, `--nirs4all-venv`, default /tmp/n4all-venv, shared with
   scripts/make_nirs4all_fixtures.py): `nirs4all.run` with its own generator keywords
   (`{"_or_": [...]}` per preprocessing position, `{"model": PLSRegression(...), "_range_":
   [1, K], "param": "n_components"}`), the chemotools and sklearn objects themselves, the
   same KFold, `save_artifacts=True` (its fold and refit models persisted), `refit=True`,
   `save_charts=False`, `verbose=0`, a fresh workspace a run.

Interleaved: each repeat runs every (tool, sweep) once, the order rotated from repeat to repeat.
Medians of `--repeats`. Import time: per tool, the modules a sweep loads (listed by a tiny
sweep in a subprocess) imported in a fresh process, median of 3, reported apart.

Checks: n4afs and the plain loop must give the same RMSECV config by config (configs keyed by
their expanded steps) within 1e-9 relative, and the same best config: else exit 1. nirs4all's
per-config scores are compared as sorted lists (its results are not keyed by parameters), and
its best RMSECV against the plain loop's; reported, not asserted (nirs4all computes in its own
dtype; measured ~1e-8 relative).

Run: `.venv/bin/python scripts/bench_peers.py [--with-nirs4all] [--repeats 3] [--quick]
[--synthetic-size 1000,1000] [--full-loop] [--out FILE]`. Scratch under the repository root,
removed at the end (n4afs's big sweep stores a few GB a repeat).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy: one core for every tool, here and in children

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

NIRS4ALL_PACKAGES = ["nirs4all==1.4.10", "chemotools==0.5.0"]
REL_TOL = 1e-9


def sweeps() -> dict[str, Any]:
    from _bench_sweep import MSC, REFERENCE, SNV, Sweep, savgol

    windows = range(7, 27, 2)
    return {
        "fermentation": REFERENCE,
        "big": Sweep(
            "big",
            ((SNV, MSC), tuple(savgol(w, d) for d in (1, 2) for w in windows)),
            range(1, 26),
        ),
        "big-subset": Sweep(
            "big-subset", ((SNV, MSC), (savgol(11, 1), savgol(21, 2))), range(1, 26)
        ),
    }


def describe(sweep: Any) -> dict[str, Any]:
    """What a child process (maybe in nirs4all's venv, without n4afs) needs to rebuild it."""
    return {
        "positions": [[list(alt) for alt in alts] for alts in sweep.positions],
        "components": [sweep.components.start, sweep.components.stop - 1],
    }


# -- children: one timed sweep a process ----------------------------------------------------
def child(job: dict[str, Any]) -> dict[str, Any]:
    """Runs an untimed tiny sweep, then the timed one; returns seconds and scores."""
    import numpy as np

    data = np.load(job["data"])
    X, y = data["X"], data["y"]
    tool, spec = job["tool"], job["sweep"]
    if job.get("list_modules"):
        runner = {"n4afs": run_n4afs, "plain": run_plain, "nirs4all": run_nirs4all}[tool]
        runner(X[:30, :40], y[:30], spec, Path(job["scratch"]) / "list", job)
        return {"modules": import_modules(tool)}
    rng = np.random.default_rng(1)
    tiny_X, tiny_y = rng.normal(size=(30, 40)) + 1.0, rng.normal(size=30)
    tiny = {"positions": warm_positions(spec), "components": [1, 2]}
    scratch = Path(job["scratch"])
    runner = {"n4afs": run_n4afs, "plain": run_plain, "nirs4all": run_nirs4all}[tool]
    runner(tiny_X, tiny_y, tiny, scratch / "warm", job)
    return runner(X, y, spec, scratch / "timed", job)


def warm_positions(spec: dict[str, Any]) -> list[list[list]]:
    """The tiny untimed sweep's steps: one alternative per operator of each position of the
    timed sweep, so every class it uses is imported before the clock starts (n4afs imports an
    operator's module on first use: chemotools' Savitzky-Golay brings scipy.signal, ~0.2 s,
    which the plain loop imports up front)."""
    positions = []
    for alts in spec["positions"]:
        firsts = {}
        for alt in alts:
            firsts.setdefault(alt[1], alt)
        positions.append(list(firsts.values()))
    return positions


def _settle() -> None:
    import gc

    gc.collect()
    os.sync()


def run_n4afs(X, y, spec, where: Path, job) -> dict[str, Any]:
    from _bench_sweep import Sweep

    from n4afs.workspace import Workspace

    sweep = Sweep(
        "job",
        tuple(tuple(tuple(a) for a in alts) for alts in spec["positions"]),
        range(spec["components"][0], spec["components"][1] + 1),
    )
    ws = Workspace(where)
    ws.add_arrays(X, y, name="data")
    data_bytes = ws.blob_stats().stored_bytes
    _settle()
    started = time.perf_counter()
    run = ws.run(templates=[sweep.template()], datasets=["data"], cv=5, name="bench", n_jobs=1)
    seconds = time.perf_counter() - started
    scores = {json.dumps(r.row.config, sort_keys=True): r.row.score for r in run.results}
    stored = ws.blob_stats().stored_bytes - data_bytes
    with ws.index.read() as conn:
        models = conn.execute("SELECT count(*) FROM models").fetchone()[0]
    return {"seconds": seconds, "scores": scores, "stored_bytes": stored, "models": models}


def run_plain(X, y, spec, where: Path, job) -> dict[str, Any]:
    from _bench_sweep import Data, Sweep, plain_memory

    sweep = Sweep(
        "job",
        tuple(tuple(tuple(a) for a in alts) for alts in spec["positions"]),
        range(spec["components"][0], spec["components"][1] + 1),
    )
    data = Data("data", X, y, [], lambda ws: None, "")
    configs = sweep.configs()
    _settle()
    started = time.perf_counter()
    scores, _ = plain_memory(data, configs)
    return {"seconds": time.perf_counter() - started, "scores": scores}


def run_nirs4all(X, y, spec, where: Path, job) -> dict[str, Any]:
    """Inside nirs4all's venv: its own generator keywords, the same objects and folds."""
    import nirs4all
    from chemotools.derivative import SavitzkyGolay
    from chemotools.scatter import MultiplicativeScatterCorrection, StandardNormalVariate
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import KFold

    classes = {
        "snv": StandardNormalVariate,
        "msc": MultiplicativeScatterCorrection,
        "savgol": SavitzkyGolay,
    }
    pls_params = {"copy": True, "max_iter": 500, "scale": True, "tol": 1e-06}
    pipeline: list[Any] = [
        {"_or_": [classes[op](**params) for _, op, params in alts]} for alts in spec["positions"]
    ]
    lo, hi = spec["components"]
    pipeline += [
        KFold(n_splits=5, shuffle=True, random_state=42),
        {"model": PLSRegression(**pls_params), "_range_": [lo, hi], "param": "n_components"},
    ]
    _settle()
    started = time.perf_counter()
    result = nirs4all.run(
        pipeline,
        {"name": "data", "train_x": X, "train_y": y},
        name="bench",
        workspace_path=str(where),
        verbose=0,
        random_state=0,
        save_charts=False,
        save_artifacts=True,
        refit=True,
    )
    seconds = time.perf_counter() - started
    frame = result.predictions.to_pandas()
    pooled = frame[(frame.fold_id == "avg") & (frame.partition == "val")]
    stored = sum(p.stat().st_size for p in where.rglob("*") if p.is_file())
    return {
        "seconds": seconds,
        "scores": sorted(float(v) for v in pooled.val_score),
        "stored_bytes": stored,
    }


def import_modules(tool: str) -> list[str]:
    """The modules of this tool's libraries a sweep loaded, in the order they were loaded."""
    keep = {
        "n4afs": (
            "n4afs",
            "n4afs_core",
            "sklearn",
            "chemotools",
            "duckdb",
            "pyarrow",
            "pandas",
            "scipy",
            "joblib",
        ),
        "plain": ("sklearn", "chemotools", "scipy", "pandas", "joblib"),
        "nirs4all": ("nirs4all", "sklearn", "chemotools", "scipy", "pandas", "joblib"),
    }[tool]
    return [m for m in sys.modules if m.split(".")[0] in keep]


# -- the parent -------------------------------------------------------------------------------
class Tools:
    def __init__(self, venv: Path | None) -> None:
        self.python = {"n4afs": sys.executable, "plain": sys.executable}
        if venv is not None:
            self.python["nirs4all"] = str(venv / "bin" / "python")

    def child(self, tool: str, job: dict[str, Any], scratch: Path) -> dict[str, Any]:
        job_file = scratch / "job.json"
        out = scratch / "out.json"
        job_file.write_text(
            json.dumps({**job, "tool": tool, "scratch": str(scratch), "out": str(out)})
        )
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        if tool == "nirs4all":
            env["NIRS4ALL_WORKSPACE"] = str(scratch / "n4all-home")
        subprocess.run(
            [self.python[tool], __file__, "--inner", str(job_file)],
            check=True,
            env=env,
            cwd=str(ROOT),
        )
        return json.loads(out.read_text())

    def import_seconds(
        self, tool: str, data: str, scratch: Path, rounds: int = 3
    ) -> tuple[float, int]:
        # every operator of the sweeps, as the untimed warm-up of a timed sweep imports them
        alts = [a for sweep in sweeps().values() for p in describe(sweep)["positions"] for a in p]
        tiny = {"positions": warm_positions({"positions": [alts]}), "components": [1, 2]}
        listed = self.child(tool, {"data": data, "sweep": tiny, "list_modules": True}, scratch)
        modules = listed["modules"]
        code = (
            "import importlib, sys, time\n"
            f"mods = {modules!r}\n"
            "t = time.perf_counter()\n"
            "for m in mods:\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "    except Exception:\n"
            "        pass\n"
            "print(time.perf_counter() - t)\n"
        )
        times = []
        for _ in range(rounds):
            done = subprocess.run(
                [self.python[tool], "-c", code],
                check=True,
                capture_output=True,
                text=True,
                cwd=str(ROOT),
            )
            times.append(float(done.stdout.strip()))
        return statistics.median(times), len(modules)


def ensure_nirs4all(venv: Path) -> Path:
    if ROOT in venv.resolve().parents:
        raise SystemExit("the nirs4all venv must live outside the repository")
    python = venv / "bin" / "python"
    if not python.exists():
        print(
            f"installing {' '.join(NIRS4ALL_PACKAGES)} into {venv} (a few minutes) ...",
            file=sys.stderr,
        )
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *NIRS4ALL_PACKAGES], check=True)
    return venv


def sweep_of(spec: dict[str, Any]) -> Any:
    from _bench_sweep import Sweep

    lo, hi = spec["components"]
    positions = tuple(tuple(tuple(alt) for alt in alts) for alts in spec["positions"])
    return Sweep("job", positions, range(lo, hi + 1))


def rel_diff(a: dict[str, float], b: dict[str, float]) -> float:
    keys = set(a) & set(b)
    if not keys:
        return float("inf")
    return max(abs(a[k] - b[k]) / abs(a[k]) for k in keys)


def sorted_diff(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return float("inf")
    return max(abs(x - y) / abs(x) for x, y in zip(sorted(a), sorted(b), strict=True))


JOBS = (
    ("fermentation", "n4afs"),
    ("fermentation", "plain"),
    ("fermentation", "nirs4all"),
    ("big", "n4afs"),
    ("big-subset", "n4afs"),
    ("big-subset", "plain"),
    ("big-subset", "nirs4all"),
)


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 100 else f"{seconds:.0f}"


def main() -> int:  # noqa: C901, PLR0912, PLR0915 - one linear script, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    parser.add_argument("--with-nirs4all", action="store_true", help="install and run nirs4all")
    parser.add_argument("--nirs4all-venv", type=Path, default=Path("/tmp/n4all-venv"))
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--synthetic-size", default=None, help="N,P (default 1000,1000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 x 200, 1 repeat")
    parser.add_argument("--full-loop", action="store_true", help="plain loop on all of big, once")
    parser.add_argument("--scratch-dir", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.inner:
        job = json.loads(Path(args.inner).read_text())
        result = child(job)
        Path(job["out"]).write_text(json.dumps(result))
        return 0
    repeats = args.repeats or (1 if args.quick else 3)
    n, p = (
        int(v)
        for v in (args.synthetic_size or ("100,200" if args.quick else "1000,1000")).split(",")
    )

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    import numpy as np
    from _bench_sweep import check_same_operators, fermentation, synthetic

    all_sweeps = sweeps()
    for sweep in all_sweeps.values():
        check_same_operators(sweep)
    tools = Tools(ensure_nirs4all(args.nirs4all_venv) if args.with_nirs4all else None)
    jobs = [j for j in JOBS if j[1] in tools.python]
    if args.full_loop:
        jobs.append(("big", "plain"))
    started, load_before = time.strftime("%Y-%m-%d %H:%M:%S"), os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix=".bench_peers-", dir=args.scratch_dir))
    times: dict[tuple[str, str], list[float]] = {}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    loads: list[float] = []
    try:
        data_files = {}
        for name, data in (("fermentation", fermentation()), ("big", synthetic(n, p))):
            data_files[name] = str(scratch / f"{name}.npz")
            np.savez(data_files[name], X=data.X, y=data.y)
        data_files["big-subset"] = data_files["big"]
        shapes = {k: np.load(v)["X"].shape for k, v in data_files.items()}
        imports = {}
        for tool in tools.python:
            where = scratch / f"imports-{tool}"
            where.mkdir()
            imports[tool] = tools.import_seconds(tool, data_files["fermentation"], where)
            log(f"import {tool}: {imports[tool][0]:.2f} s ({imports[tool][1]} modules)")
        for rep in range(repeats):
            order = jobs[rep % len(jobs) :] + jobs[: rep % len(jobs)]
            for sweep_name, tool in order:
                if sweep_name == "big" and tool == "plain" and rep > 0:
                    continue
                where = scratch / f"{sweep_name}-{tool}-{rep}"
                where.mkdir()
                job = {"data": data_files[sweep_name], "sweep": describe(all_sweeps[sweep_name])}
                loads.append(os.getloadavg()[0])
                out = tools.child(tool, job, where)
                times.setdefault((sweep_name, tool), []).append(out["seconds"])
                results[sweep_name, tool] = out
                took = f"{out['seconds']:.2f} s (load {loads[-1]:.2f})"
                log(f"repeat {rep + 1}/{repeats} {sweep_name} {tool}: {took}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_after = os.getloadavg()

    # -- checks ------------------------------------------------------------------------------
    ok = True
    checks = []
    for sweep_name in ("fermentation", "big-subset", "big"):
        n4a = results.get((sweep_name, "n4afs"), {}).get("scores")
        plain = results.get((sweep_name, "plain"), {}).get("scores")
        if sweep_name == "big":
            plain = results.get(("big-subset", "plain"), {}).get("scores")  # the subset's keys
        if n4a and plain:
            diff = rel_diff(plain, n4a)
            covered = len(set(plain) & set(n4a))
            same_best = min(plain, key=plain.get) == min(
                (k for k in n4a if k in plain), key=n4a.get
            )
            good = diff <= REL_TOL and same_best and covered == len(plain)
            ok = ok and good
            checks.append(
                f"- {sweep_name}: n4afs vs plain loop over {covered} configs: max relative "
                f"difference {diff:.1e} (must be <= {REL_TOL:g}), same best config: {same_best} "
                f"-> {'MATCH' if good else 'MISMATCH'}"
            )
        peer = results.get((sweep_name, "nirs4all"), {}).get("scores")
        if peer and plain:
            spread = sorted_diff(list(plain.values()), peer)
            checks.append(
                f"- {sweep_name}: nirs4all vs plain loop, sorted per-config RMSECV ({len(peer)} vs "
                f"{len(plain)} configs): max relative difference {spread:.1e}; "
                f"best RMSECV {min(peer):.9g} vs {min(plain.values()):.9g}"
            )

    # -- report ------------------------------------------------------------------------------
    sizes = {k: len(v) for k, v in all_sweeps.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    scale = sizes["big"] / sizes["big-subset"]
    estimated = {}
    for tool in ("plain", "nirs4all"):
        if ("big-subset", tool) in med and ("big", tool) not in med:
            estimated[tool] = med["big-subset", tool] * scale
    rows = [
        "| sweep | configs | data | tool | median s | range s | s / config | × plain loop "
        "| nirs4all / this | stored |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def line(sweep_name: str, tool: str, seconds: float, span: str, note: str = "") -> None:
        sweep_plain = med.get(
            (sweep_name, "plain"), estimated.get("plain") if sweep_name == "big" else None
        )
        sweep_peer = med.get(
            (sweep_name, "nirs4all"), estimated.get("nirs4all") if sweep_name == "big" else None
        )
        stored = results.get((sweep_name, tool), {}).get("stored_bytes")
        shape = "×".join(str(v) for v in shapes[sweep_name])
        vs_plain = f"{seconds / sweep_plain:.3f}×" if sweep_plain else "—"
        vs_peer = f"{sweep_peer / seconds:.1f}×" if sweep_peer else "—"
        stored_text = f"{stored / 1e6:,.0f} MB" if stored else "—"
        per_config = f"{seconds / sizes[sweep_name] * 1e3:.1f} ms"
        rows.append(
            f"| {sweep_name} | {sizes[sweep_name]:,} | {shape} | {tool}{note} | {fmt_s(seconds)} "
            f"| {span} | {per_config} | {vs_plain} | {vs_peer} | {stored_text} |"
        )

    for sweep_name in ("fermentation", "big", "big-subset"):
        for tool in ("n4afs", "plain", "nirs4all"):
            if (sweep_name, tool) in med:
                v = times[sweep_name, tool]
                line(sweep_name, tool, med[sweep_name, tool], f"{fmt_s(min(v))}–{fmt_s(max(v))}")
            elif sweep_name == "big" and tool in estimated:
                line(sweep_name, tool, estimated[tool], "—", " (EXTRAPOLATED: big-subset × 10)")
    import_rows = ["| tool | import s (median of 3 fresh processes) | modules |", "|---|---:|---:|"]
    for tool, (seconds, count) in imports.items():
        import_rows.append(f"| {tool} | {seconds:.2f} | {count} |")
    header = (
        f"bench_peers, started {started} UTC, {repeats} repeats, one core (OMP/MKL/OPENBLAS "
        f"threads 1, n_jobs=1); 1/5/15-min load {load_before[0]:.2f}/{load_before[1]:.2f}/"
        f"{load_before[2]:.2f} before, {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} "
        f"after; 1-min load at the start of the timed sweeps: median "
        f"{statistics.median(loads):.2f}, "
        f"range {min(loads):.2f}–{max(loads):.2f}. Times exclude imports (below).\n\n"
    )
    text = (
        header
        + "\n".join(rows)
        + "\n\n"
        + "\n".join(import_rows)
        + "\n\n"
        + "\n".join(checks)
        + "\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if not ok:
        print("!!! n4afs and the plain loop DISAGREE: see above !!!", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
