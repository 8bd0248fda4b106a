"""Reading needs only the index: with the S3 endpoint stopped, commands that read the index
answer at once; what needs a blob fails in one line (CLI exit 2, API `StoreUnreachable`,
mount EIO), fast, never a traceback or a 22 s wait."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
import urllib.request
import uuid

import mfusepy
import pytest
from n4afs_core.errors import StoreUnreachable

from n4afs.surfaces.fuse_ops import TreeOperations
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.cli_process import cli
from tests.mount_fixture import Mount

SWEEP = [{"_or_": ["snv", "detrend"]}, {"pls": {"n_components": 2}}]
# a stopped endpoint failed `n4afs runs` after 22-24 s before; a CLI process starts in ~1 s
FAST_S = 10.0


class StoppableS3:
    """A moto S3 server of its own on loopback, which a test may stop."""

    def __init__(self, monkeypatch) -> None:
        from moto.server import ThreadedMotoServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.running = True
        self.env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        self.bucket = f"b-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(skip_instance_cache=True).mkdir(self.bucket)

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.running = False
            with pytest.raises(OSError):  # really down: connections are refused
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2)


@pytest.fixture
def s3_down(monkeypatch, tmp_path):
    """A workspace on S3 with a small sweep, its local cache emptied, then the S3 server
    stopped: (workspace path, a model file's tree path, the server)."""
    s3 = StoppableS3(monkeypatch)
    ws = Workspace(tmp_path / "ws", store=s3.url("team"))
    run = ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=2, name="s3")
    assert run.status == "completed"
    label = ws.best("fermentation").row.label
    model = ("runs", "fermentation", label, "models")
    tree = Tree(ws)
    final = next(n for n, _ in tree.list_kinds(model) if n.startswith("final_"))
    shutil.rmtree(tmp_path / "ws" / "cache")  # nothing to read but the bucket
    s3.stop()
    yield ws.path, (*model, final, "pipeline.pkl"), s3
    s3.stop()


def timed_cli(*args: str):
    started = time.monotonic()
    done = cli(*args, env={k: os.environ[k] for k in os.environ if k.startswith("AWS_")})
    return done, time.monotonic() - started


def test_index_only_commands_answer_while_the_store_is_down(s3_down):
    path, _, _ = s3_down
    for args in (
        ("runs",),
        ("best", "fermentation"),
        ("results", "fermentation"),
        ("ls", "runs/fermentation"),
        ("cat", "runs/fermentation/RESULTS.csv"),
    ):
        done, took = timed_cli("-w", str(path), *args)
        assert done.returncode == 0, (args, done.stderr)
        assert took < FAST_S, (args, took)
    assert "snv" in timed_cli("-w", str(path), "cat", "runs/fermentation/RESULTS.csv")[0].stdout


def test_reading_a_model_with_the_store_down_fails_in_one_line(s3_down):
    path, model, _ = s3_down
    done, took = timed_cli("-w", str(path), "cat", "/".join(model))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: the blob store s3://") and "cannot be reached" in line
    assert took < FAST_S, took

    ws = Workspace(path)
    started = time.monotonic()
    with pytest.raises(StoreUnreachable, match="cannot be reached"):
        ws.best("fermentation").load_model()
    # the next call knows the store is down and does not wait again
    again = time.monotonic()
    with pytest.raises(StoreUnreachable):
        ws.best("fermentation").load_model()
    assert time.monotonic() - again < 0.5
    assert again - started < FAST_S


def test_fuse_operations_answer_eio_for_a_blob_they_cannot_fetch(s3_down):
    path, model, _ = s3_down
    ops = TreeOperations(Tree(Workspace(path)))
    file = "/" + "/".join(model)
    with pytest.raises(mfusepy.FuseOSError) as info:
        ops.read(file, 4096, 0, type("FileInfo", (), {"fh": 0})())
    assert info.value.errno == errno.EIO


def test_a_mount_reads_eio_when_the_store_is_down(s3_down, tmp_path):
    path, model, _ = s3_down
    mount = Mount(path, tmp_path / "mnt").start()
    try:
        assert "RESULTS.csv" in os.listdir(mount.path / "runs" / "fermentation")
        with pytest.raises(OSError) as info:
            mount.path.joinpath(*model).read_bytes()
        assert info.value.errno == errno.EIO
    finally:
        mount.stop()
    mount.assert_clean_log()


def test_a_server_that_never_answers_is_cut_off_at_the_deadline(monkeypatch, tmp_path):
    """A server that accepts connections and never answers (took 45 s per call before the
    deadline): one call waits `CALL_TIMEOUT_S`, the next ones fail at once."""
    from n4afs_core.store import remote_store

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections complete in the kernel; nobody reads them
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
    for key, value in (("AWS_ACCESS_KEY_ID", "t"), ("AWS_SECRET_ACCESS_KEY", "s")):
        monkeypatch.setenv(key, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    store = remote_store.RemoteBlobStore("s3://silent/prefix", tmp_path / "cache")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnreachable, match="cannot be reached"):
            store.size("a" * 64)
        assert time.monotonic() - started < remote_store.CALL_TIMEOUT_S + 5
        again = time.monotonic()
        with pytest.raises(StoreUnreachable):
            store.exists("b" * 64)
        assert time.monotonic() - again < 0.5
    finally:
        silent.close()
