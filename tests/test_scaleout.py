"""A shared S3 blob store (moto's server on loopback) and dask.distributed execution."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import urllib.request
import zipfile

import joblib
import pytest
import yaml
from n4afs_core import maintenance
from n4afs_core.errors import WorkspaceError
from n4afs_core.store.remote_store import RemoteBlobStore

from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.mount_fixture import Mount

SWEEP = [
    {"_or_": ["snv", "msc", "detrend", "standard"]},
    {"pls": {"n_components": {"_range_": [1, 4]}}},
]


@pytest.fixture(scope="module")
def s3():
    """An S3-compatible server on 127.0.0.1, reached through the standard AWS variables."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
        )
    }
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing-secret",
        AWS_DEFAULT_REGION="us-east-1",
    )
    import s3fs

    # moto's backends are per process, shared by every server in it: start from empty
    urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")
    ).close()
    s3fs.S3FileSystem.clear_instance_cache()  # one made for an earlier server's port
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir("n4a-bucket")
    yield fs
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


def s3_objects(fs, prefix: str) -> list[str]:
    fs.invalidate_cache()
    return (
        [k for k in fs.find(f"n4a-bucket/{prefix}/objects")]
        if fs.exists(f"n4a-bucket/{prefix}/objects")
        else []
    )


def test_sweep_on_s3_with_dask_then_browse_mount_export_and_gc(s3, cluster, tmp_path):
    ws = Workspace(tmp_path / "ws", store="s3://n4a-bucket/team")
    run = ws.run(
        templates=[SWEEP],
        datasets=["chemotools:fermentation"],
        cv=4,
        name="s3 dask",
        backend="dask",
        scheduler=cluster.scheduler_address,
    )
    assert run.status == "completed" and len(run.results) == 16
    objects = s3_objects(s3, "team")
    assert len(objects) == ws.blob_stats().n_blobs > 0
    assert not (tmp_path / "ws" / "objects").exists() or not any(
        (tmp_path / "ws" / "objects").iterdir()
    )
    config = yaml.safe_load((tmp_path / "ws" / "n4a.yaml").read_text())
    assert config["store"] == "s3://n4a-bucket/team"
    assert "testing-secret" not in (tmp_path / "ws" / "n4a.yaml").read_text()

    label = ws.best("fermentation").row.label
    tree = Tree(ws)
    files = dict(tree.walk_files(("runs", "fermentation", label)))
    assert all(len(tree.read(node)) == node.size for node in files.values())

    mount = Mount(ws.path, tmp_path / "mnt").start()
    try:
        models = mount.path / "runs" / "fermentation" / label / "models"
        final = next(p for p in models.iterdir() if p.name.startswith("final_"))
        pipeline = joblib.load(final / "pipeline.pkl")
        X = ws.load_dataset("fermentation").X
        assert (pipeline.predict(X) == ws.best("fermentation").load_model().predict(X)).all()
    finally:
        mount.stop()
    mount.assert_clean_log()

    bundle = tmp_path / "from-s3.zip"
    ws.export(f"runs/fermentation/{label}", bundle)
    with zipfile.ZipFile(bundle) as zf:
        assert any(n.endswith("pipeline.pkl") for n in zf.namelist())

    maintenance.remove_results(ws.index, maintenance.results_of_runs(ws.index, [run.run_id]))
    report = maintenance.gc(ws.index, ws.store, grace_s=0)
    # all but the dataset, and the renders of the removed results (the reads above stored
    # them: docs/DESIGN.md, "Rendered once, for every process"); the dataset's own renders
    # (spectra.png) stay with it
    assert len(report.removed) >= len(objects) - 1
    assert len(s3_objects(s3, "team")) == 1 + report.renders_kept
    assert maintenance.verify(ws.index, ws.store).ok


def test_killing_a_worker_mid_run_loses_no_result(s3, cluster, tmp_path):
    from distributed import Client

    ws = Workspace(tmp_path / "ws", store="s3://n4a-bucket/kill")
    ws.add_dataset("chemotools:fermentation")
    template = [
        {
            "_or_": [
                "snv",
                "msc",
                "detrend",
                "standard",
                "minmax",
                {"savgol": {"deriv": 1, "window_length": 11, "polyorder": 2}},
            ]
        },
        {"pls": {"n_components": {"_range_": [1, 8]}}},
    ]
    first_done = threading.Event()
    with Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)
        killer = threading.Thread(
            target=lambda: (
                first_done.wait(120) and os.kill(next(iter(pids.values())), signal.SIGKILL)
            )
        )
        killer.start()
        run = ws.run(
            templates=[template],
            datasets=["fermentation"],
            cv=5,
            name="kill",
            backend="dask",
            scheduler=cluster.scheduler_address,
            on_result=lambda payload: first_done.set(),
        )
        killer.join()
        assert first_done.is_set()
        assert set(client.run(os.getpid).values()) != set(pids.values())  # a worker was replaced
    assert run.status == "completed" and len(run.results) == 48
    assert maintenance.verify(ws.index, ws.store).ok


def test_writers_need_no_coordination_and_the_cache_is_bounded(s3, tmp_path):
    a = RemoteBlobStore("s3://n4a-bucket/shared", tmp_path / "cache-a", cache_bytes=3000)
    b = RemoteBlobStore("s3://n4a-bucket/shared", tmp_path / "cache-b", cache_bytes=3000)
    a.create()
    payloads = [os.urandom(1000) for _ in range(6)]
    threads = [threading.Thread(target=lambda s=s: [s.put(p) for p in payloads]) for s in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = sorted(a.iter_ids())
    assert len(ids) == 6 and sorted(b.iter_ids()) == ids
    reader = RemoteBlobStore("s3://n4a-bucket/shared", tmp_path / "cache-c", cache_bytes=2500)
    for blob_id in ids:
        assert len(reader.read(blob_id)) == 1000
    cached = sum(p.stat().st_size for p in (tmp_path / "cache-c").rglob("*") if p.is_file())
    assert cached <= 2500


def test_a_workspace_keeps_its_store(s3, tmp_path):
    Workspace(tmp_path / "ws", store="s3://n4a-bucket/keep")
    assert isinstance(Workspace(tmp_path / "ws").store, RemoteBlobStore)
    with pytest.raises(WorkspaceError, match="keeps its blobs in s3://n4a-bucket/keep"):
        Workspace(tmp_path / "ws", store="s3://n4a-bucket/other")


def test_cache_copies_are_read_only_and_verify_checks_and_evicts_them(s3, tmp_path):
    ws = Workspace(tmp_path / "ws", store="s3://n4a-bucket/cache-check")
    data = os.urandom(5000)
    blob_id = ws.store.put(data)  # cached as it is uploaded
    cached = ws.store.path_of(blob_id)
    assert cached.stat().st_mode & 0o777 == 0o444
    reader = RemoteBlobStore("s3://n4a-bucket/cache-check", tmp_path / "other-cache")
    assert reader.path_of(blob_id).stat().st_mode & 0o777 == 0o444  # fetched copies too
    os.chmod(cached, 0o644)
    cached.write_bytes(b"x" * len(data))  # the remote object is fine; readers get this
    found = maintenance.verify(ws.index, ws.store)
    assert found.corrupt_copies == [blob_id] and not found.corrupt and not found.ok
    maintenance.verify(ws.index, ws.store, repair=True)
    assert not cached.exists()  # evicted: the next read fetches and checks it again
    assert ws.store.read(blob_id) == data and maintenance.verify(ws.index, ws.store).ok


def test_putting_the_same_bytes_again_replaces_a_damaged_remote_object(s3, tmp_path):
    store = RemoteBlobStore("s3://n4a-bucket/heal", tmp_path / "cache")
    store.create()
    data = os.urandom(5000)
    blob_id = store.put(data)
    store.fs.pipe_file(store.key(blob_id), b"truncated")  # an overwrite, a cut upload
    store.put(data)
    assert store.verify(blob_id)
    store.fs.pipe_file(store.key(blob_id), b"x" * len(data))  # same size: verify's job
    assert not store.verify(blob_id)
    store.quarantine(blob_id, tmp_path / "quarantine")
    assert not store.exists(blob_id) and (tmp_path / "quarantine" / blob_id).exists()
    store.put(data)
    assert store.verify(blob_id) and store.read(blob_id) == data


# -- a cluster that parallelizes, and a run that outlives its cluster (#22) ----------------
def test_a_sweep_is_split_into_enough_tasks_to_keep_every_worker_busy():
    import json

    from n4afs_core.pipelines.runner import split_tasks

    def config(first: str, second: str, k: int) -> str:
        return json.dumps([{first: {}}, {second: {}}, {"pls": {"n_components": k}}])

    group = [(f"r{i}", config("snv", ["savgol", "detrend"][i % 2], i), 0) for i in range(12)]
    tasks = [(group, "rmse")]
    assert split_tasks(tasks, 1) == tasks  # one slot: each shared prefix fitted once
    split = split_tasks(tasks, 2)
    assert len(split) >= 4
    assert sorted(r for g, _ in split for r, _, _ in g) == sorted(r for r, _, _ in group)
    seconds = [{next(iter(json.loads(c)[1])) for _, c, _ in g} for g, _ in split]
    assert all(len(s) == 1 for s in seconds)  # configs sharing a second step stay together
    pls = [
        (f"p{k}", json.dumps([{"snv": {}}, {"pls": {"n_components": k}}]), 0) for k in range(1, 13)
    ]
    halves = split_tasks([(pls, "rmse")], 1 + 1)
    counts = [sorted(json.loads(c)[1]["pls"]["n_components"] for _, c, _ in g) for g, _ in halves]
    assert sorted(counts) == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]  # runs of counts
    single = [([("only", config("snv", "msc", 1), 0)], "rmse")]
    assert split_tasks(single, 8) == single  # nothing to split


ONE_GROUP = [{"snv": {}}, {"pls": {"n_components": {"_range_": [1, 8]}}}]  # cut into tasks


def test_a_run_cut_into_more_tasks_than_groups_commits_every_result(tmp_path, monkeypatch):
    from n4afs_core.pipelines import runner

    monkeypatch.setattr(runner, "COMMIT_EVERY_S", 3600.0)  # one commit, at the end
    ws = Workspace(tmp_path / "ws")
    run = ws.run(templates=[ONE_GROUP], datasets=["chemotools:fermentation"], cv=3, n_jobs=2)
    assert run.status == "completed" and len(run.results) == 8
    alone = Workspace(tmp_path / "alone")
    one = alone.run(templates=[ONE_GROUP], datasets=["chemotools:fermentation"], cv=3)
    assert {r.label: r.score for r in run.results} == {r.label: r.score for r in one.results}


def test_a_single_group_sweep_runs_on_every_dask_worker(cluster, tmp_path):
    ws = Workspace(tmp_path / "ws")
    run = ws.run(
        templates=[ONE_GROUP],
        datasets=["chemotools:fermentation"],
        cv=3,
        backend="dask",
        scheduler=cluster.scheduler_address,
    )
    assert run.status == "completed" and len(run.results) == 8
    assert maintenance.verify(ws.index, ws.store).ok


def test_dask_workers_cache_the_store_in_their_own_folder(s3, cluster, tmp_path):
    from n4afs_core.store.stores import worker_cache_dir

    ws = Workspace(tmp_path / "ws", store="s3://n4a-bucket/worker-cache")
    worker_cache = tmp_path / "worker-cache"
    run = ws.run(
        templates=[SWEEP],
        datasets=["chemotools:fermentation"],
        cv=3,
        backend="dask",
        scheduler=cluster.scheduler_address,
        worker_cache=worker_cache,
    )
    assert run.status == "completed" and len(run.results) == 16
    cached = [p for p in (worker_cache / "objects").rglob("*") if p.is_file()]
    assert cached, "the workers cached nothing in --worker-cache"
    assert not (ws.store.cache_dir / "tmp").exists() or not any(
        p.name.startswith("put-") for p in (ws.store.cache_dir / "tmp").iterdir()
    )
    default = worker_cache_dir("s3://n4a-bucket/worker-cache")
    assert str(default).startswith(tempfile.gettempdir()) and "n4afs-cache-" in str(default)


def test_an_unreachable_scheduler_ends_the_run_in_one_line_and_it_finishes_here(tmp_path):
    from tests.cli_process import cli

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    ws_dir = tmp_path / "ws"
    template = tmp_path / "sweep.yaml"
    template.write_text(yaml.safe_dump(SWEEP))
    started = cli(
        "-w",
        str(ws_dir),
        "run",
        str(template),
        "-d",
        "chemotools:fermentation",
        "--cv",
        "3",
        "--backend",
        "dask",
        "--scheduler",
        closed,
    )
    assert started.returncode == 2, started.stderr
    assert "Traceback" not in started.stderr
    message = started.stderr.strip().splitlines()
    assert len(message) == 1 and "cannot reach the dask scheduler" in message[0], message
    assert "n4afs run --resume" in message[0] and "--backend joblib" in message[0]
    run_id = message[0].split("n4afs run --resume ")[1].split("`")[0]

    finished = cli("-w", str(ws_dir), "run", "--resume", run_id, "--backend", "joblib")
    assert finished.returncode == 0, finished.stderr
    ws = Workspace(ws_dir)
    run = ws.get_run(run_id)
    assert run.status == "completed" and len(run.results) == 16


def test_a_scheduler_lost_mid_run_keeps_what_landed_and_the_run_finishes_elsewhere(tmp_path):
    import subprocess
    import sys

    from n4afs_core.errors import RunError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            ":0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nthreads",
            "1",
            "--no-dashboard",
            "--local-directory",
            str(tmp_path / "dask"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ws = Workspace(tmp_path / "ws")
        template = [
            {"_or_": ["snv", "msc", "detrend", "standard", "minmax"]},
            {"pls": {"n_components": {"_range_": [1, 10]}}},
        ]
        landed = []

        def on_result(payload) -> None:
            landed.append(payload.result_id)
            if len(landed) == 1:
                scheduler.kill()

        with pytest.raises(RunError) as refused:
            ws.run(
                templates=[template],
                datasets=["chemotools:fermentation"],
                cv=5,
                backend="dask",
                scheduler=address,
                on_result=on_result,
            )
        message = str(refused.value)
        assert "\n" not in message and "lost the dask scheduler" in message, message
        assert "n4afs run --resume" in message
        run = ws.runs()[0]
        done = [r for r in ws.get_run(run.run_id).results if r.status == "completed"]
        assert len(done) >= 1  # what landed before the loss stays
        finished = ws.resume(run.run_id, backend="joblib")
        assert finished.status == "completed" and len(finished.results) == 50
        assert maintenance.verify(ws.index, ws.store).ok
    finally:
        for proc in (worker, scheduler):
            proc.kill()
            proc.wait(timeout=30)
