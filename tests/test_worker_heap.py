"""A task fits as cheaply in a dask worker as in the coordinator (#22: 2 workers >= 1.7x one).

dask's nanny starts every worker with `MALLOC_TRIM_THRESHOLD_=65536`
(`distributed.nanny.pre-spawn-environ`). Setting it also freezes glibc's mmap threshold at
128 KiB, so every array of a fit on a 1000-wavelength set (8 KB a spectrum, MB a matrix) was
mapped fresh and zeroed page by page, then unmapped: measured on the 200-config sweep, fits
took 1.7x the CPU seconds they take in a plain process (system time 2.1 -> 5.6 s), the
same in every worker. Page faults count that cost whatever else the machine runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# A group of 10 PLS configs after SNV on 300 x 1000 spectra, 3 folds, fitted by the
# worker's entry point; prints the minor page faults its fitting and storing cost.
TASK = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from sklearn.model_selection import KFold
    from n4afs_core.pipelines.persist import Partitions
    from n4afs_core.pipelines.runner import run_group
    from n4afs_core.store.blobstore import BlobStore

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 1000)).cumsum(axis=1)
    y = X[:, 100] + rng.normal(size=300)
    rows = np.arange(300)
    folds = list(KFold(3).split(rows))
    parts = {0: Partitions([f"s{i}" for i in rows], y, "regression", folds,
                           np.array([], dtype=int), rows)}
    configs = [(f"r{k}", json.dumps([{"snv": {}}, {"pls": {"n_components": k}}]), 0)
               for k in range(1, 11)]
    store = BlobStore(sys.argv[1])
    store.create()
    run_group(store.spec(), X[:20], {0: Partitions([f"s{i}" for i in range(20)], y[:20],
              "regression", list(KFold(3).split(rows[:20])), np.array([], dtype=int),
              rows[:20])}, configs[:2], "rmse")  # imports and first-use costs, not counted
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    payloads, _ = run_group(store.spec(), X, parts, configs, "rmse")
    assert all(p.status == "completed" for p in payloads), payloads
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def page_faults(tmp_path, name: str, environ: dict[str, str]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", TASK, str(tmp_path / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc tunables")
def test_a_task_in_a_dask_worker_environment_costs_no_more_page_faults(tmp_path):
    plain = page_faults(tmp_path, "plain", {})
    dask_worker = page_faults(tmp_path, "dask", {"MALLOC_TRIM_THRESHOLD_": "65536"})
    # measured before the fix: ~10x (6,400 -> 64,000)
    assert dask_worker < 2 * plain, (plain, dask_worker)


def test_the_workers_heap_settings_are_restored_after_a_task(monkeypatch):
    """Between tasks a worker trims its heap as its operator asked (dask's memory monitor
    counts what the heap keeps): the settings a task changes are put back, nested tasks
    (several threads of one worker) restore once the last ends."""
    from n4afs_core.pipelines import runner

    calls = []
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(runner, "_mallopt", lambda option, value: calls.append((option, value)))
    monkeypatch.setattr(runner, "_malloc_trim", lambda: calls.append(("trim", 0)))
    with runner.roomy_heap():
        with runner.roomy_heap():
            assert calls == [
                (runner.M_MMAP_THRESHOLD, runner.ROOMY_MMAP_THRESHOLD),
                (runner.M_TRIM_THRESHOLD, runner.ROOMY_TRIM_THRESHOLD),
            ]
        assert len(calls) == 2  # the other task still runs
    assert calls[2:] == [
        (runner.M_TRIM_THRESHOLD, 65536),
        (runner.M_MMAP_THRESHOLD, 128 * 1024),
        ("trim", 0),
    ]
    calls.clear()
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    with runner.roomy_heap():  # glibc adapts its thresholds itself: left alone
        pass
    assert calls == []
