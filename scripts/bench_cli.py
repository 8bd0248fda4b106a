"""Start-up latency of the CLI's query commands on a workspace of 10,000 results.

A CLI that takes seconds to say which config won is not used. This builds a workspace with one
real sweep (chemotools fermentation, 45 configs) and then clones its result rows with SQL to
reach `--results` (default 10,000; the clones carry synthetic random scores, so ranking has
real work to do), and times each command in a fresh process, `--repeats` times, reporting
medians. References in the same run: an empty Python start and `import sklearn`, since a tool
that imports its ML stack before answering pays at least that.

Run: .venv/bin/python scripts/bench_cli.py [--results 10000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
N4AFS = [sys.executable, "-m", "n4afs.cli"]
SWEEP = REPO / "examples" / "regression_sweep.yaml"


def build_workspace(path: Path, n_results: int) -> None:
    import duckdb

    subprocess.run(
        [
            *N4AFS,
            "-w",
            str(path),
            "run",
            str(SWEEP),
            "-d",
            "chemotools:fermentation",
            "--name",
            "real",
        ],
        check=True,
        capture_output=True,
    )
    conn = duckdb.connect(str(path / "n4a.duckdb"))
    (dataset_id,) = conn.execute("SELECT dataset_id FROM datasets").fetchone()
    conn.execute(
        "INSERT INTO runs VALUES ('2026-11-25_synthetic_000000', 'synthetic', "
        "'completed', 'rmse', '{}', now(), now())"
    )
    conn.execute(
        "INSERT INTO results SELECT 'syn' || i, '2026-11-25_synthetic_000000', ?, 1000 + i, "
        "'snv-pls' || (i % 15), sha256(i::VARCHAR), '[]', '{}', 0, 'completed', 'rmse', "
        "5 + random() * 10, NULL, NULL, 0.1, now(), "
        "(SELECT any_value(target) FROM results) FROM range(?) t(i)",  # schema 007: the target
        [dataset_id, n_results - 45],
    )
    conn.execute(
        "INSERT INTO predictions SELECT 'syn' || i, 'cv', NULL, 'val', -1, 21, "
        "'{\"rmse\": ' || (5 + random() * 10) || ', \"r2\": ' || random() || '}' "
        "FROM range(?) t(i)",
        [n_results - 45],
    )
    conn.close()


def median_seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        ws = Path(tmp) / "ws"
        print(f"building a workspace of {args.results} results ...", flush=True)
        build_workspace(ws, args.results)
        rows = [
            ("python -c pass (reference)", [sys.executable, "-c", "pass"]),
            ("python -c 'import sklearn' (reference)", [sys.executable, "-c", "import sklearn"]),
            ("n4afs --help", [*N4AFS, "--help"]),
            ("n4afs runs", [*N4AFS, "-w", str(ws), "runs"]),
            ("n4afs best fermentation", [*N4AFS, "-w", str(ws), "best", "fermentation"]),
            (
                "n4afs best fermentation --metric r2",
                [*N4AFS, "-w", str(ws), "best", "fermentation", "--metric", "r2"],
            ),
        ]
        print(f"\n| command ({args.results} results) | median s ({args.repeats} runs) |")
        print("|---|---:|")
        for label, argv in rows:
            print(f"| {label} | {median_seconds(argv, args.repeats):.3f} |", flush=True)


if __name__ == "__main__":
    main()
