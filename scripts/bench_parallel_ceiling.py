"""The machine's own parallel ceiling for a sweep's work, the floor for bench_scaleout's
"2 dask workers / 1 worker" line: the same plain scikit-learn PLS fits (1 to 25 components,
six times, on an 800 x 1000 synthetic set, one BLAS thread) in one process alone, then in
two processes at once, in turns. On a machine with two full cores the two at once finish in
the time of one (2.0x); a virtual machine whose cores share a physical core or its caches
gives less, and no scheduler of tasks can beat that figure.

Run: `.venv/bin/python scripts/bench_parallel_ceiling.py [--repeats 6]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def fits() -> None:
    """The work: print the seconds the fits took (CPU, wall)."""
    import numpy as np
    from sklearn.cross_decomposition import PLSRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 1000))
    y = x[:, :5].sum(axis=1) + rng.normal(size=800)
    cpu, wall = time.process_time(), time.perf_counter()
    for components in list(range(1, 26)) * 6:
        PLSRegression(n_components=components).fit(x, y)
    print(time.process_time() - cpu, time.perf_counter() - wall)


def processes(n: int) -> list[float]:
    """The fits' wall seconds in each of `n` processes started together."""
    env = {**os.environ, **ONE_THREAD}
    started = [
        subprocess.Popen(
            [sys.executable, __file__, "--fits"], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(n)
    ]
    return [float(p.communicate()[0].split()[1]) for p in started]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--fits", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fits:
        fits()
        return 0
    speedups = []
    for repeat in range(args.repeats):
        (alone,) = processes(1)
        together = processes(2)
        speedups.append(2 * alone / max(together))
        load = os.getloadavg()[0]
        print(
            f"repeat {repeat + 1}: alone {alone:.2f} s; two at once "
            f"{' + '.join(f'{t:.2f}' for t in together)} s; speed-up {speedups[-1]:.2f}x "
            f"(1-min load {load})",
            flush=True,
        )
    print(
        f"two processes at once / one alone: median {statistics.median(speedups):.2f}x "
        f"(range {min(speedups):.2f}-{max(speedups):.2f}x, {args.repeats} repeats)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
