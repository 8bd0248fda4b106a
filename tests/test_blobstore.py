import hashlib
import io
import os
import signal
import subprocess
import sys
import time

import pytest
from n4afs_core.errors import BlobCorrupt, BlobNotFound, InvalidBlobId
from n4afs_core.store.blobstore import BlobStore


@pytest.fixture
def store(tmp_path):
    s = BlobStore(tmp_path / "store")
    s.create()
    return s


def object_files(store):
    return sorted(p for p in store.objects_dir.rglob("*") if p.is_file())


def test_put_bytes_stream_and_path_give_the_sha256(store, tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # spans several copy chunks
    expected = hashlib.sha256(data).hexdigest()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    assert store.put(data) == expected
    assert store.put(io.BytesIO(data)) == expected
    assert store.put(src) == expected
    assert store.read(expected) == data
    assert store.size(expected) == len(data)
    assert store.path_of(expected) == store.objects_dir / expected[:2] / expected


def test_same_content_twice_is_stored_once(store):
    first = store.put(b"one model")
    second = store.put(b"one model")
    assert first == second
    assert object_files(store) == [store.path_of(first)]
    assert store.temporaries() == []


def test_different_content_gets_different_objects(store):
    ids = {store.put(b"a"), store.put(b"b"), store.put(b"")}
    assert len(ids) == 3
    assert len(object_files(store)) == 3
    assert sorted(store.iter_ids()) == sorted(ids)


def test_objects_are_read_only_files(store):
    blob_id = store.put(b"immutable")
    assert not os.access(store.path_of(blob_id), os.W_OK) or os.geteuid() == 0
    assert store.path_of(blob_id).stat().st_mode & 0o222 == 0


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a" * 63, "Z" * 64, "/" + "a" * 63])
def test_names_are_validated_before_any_path_is_built(store, bad):
    for call in (store.path_of, store.exists, store.read, store.open, store.size):
        with pytest.raises(InvalidBlobId):
            call(bad)


def test_missing_blob_says_what_to_do(store):
    missing = "0" * 64
    with pytest.raises(BlobNotFound, match="n4afs verify"):
        store.read(missing)
    assert not store.exists(missing)
    assert store.verify(missing) is False


def test_corrupt_blob_is_detected_on_read(store):
    blob_id = store.put(b"good bytes")
    path = store.path_of(blob_id)
    os.chmod(path, 0o644)
    path.write_bytes(b"evil bytes")
    with pytest.raises(BlobCorrupt, match=blob_id[:8]):
        store.read(blob_id)
    assert store.verify(blob_id) is False
    assert store.read(blob_id, verify=False) == b"evil bytes"


SLOW_WRITER = r"""
import sys, time
from n4afs_core.store.blobstore import BlobStore

class Slow:
    def __init__(self): self.n = 0
    def read(self, size=-1):
        self.n += 1
        if self.n == 3:
            open(sys.argv[2], "w").write("started")
        if self.n > 3:
            time.sleep(0.2)
        return b"x" * 65536

BlobStore(sys.argv[1]).put(Slow())
"""


def test_writer_killed_mid_write_leaves_no_object(store, tmp_path):
    marker = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": str(os.getcwd())}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(store.root), str(marker)], env=env
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None, "writer exited before it started writing"
        assert time.monotonic() < deadline, "writer never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert object_files(store) == []
    leftovers = store.temporaries()
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    # the store keeps working after the crash
    assert store.read(store.put(b"after")) == b"after"


def test_re_putting_known_bytes_writes_no_temporary(store, monkeypatch):
    blob_id = store.put(b"shared prefix artifact")

    def no_write(*args, **kwargs):
        raise AssertionError("a known object must not be written again")

    monkeypatch.setattr(store, "_put_stream", no_write)
    assert store.put(b"shared prefix artifact") == blob_id


def test_batch_publishes_only_on_exit_and_dedups(store):
    with store.batch():
        first = store.put(b"artifact one")
        again = store.put(b"artifact one")
        second = store.put(io.BytesIO(b"artifact two"))
        assert first == again and store.exists(first)
        assert object_files(store) == []  # nothing under a real name before the sync
    assert sorted(object_files(store)) == sorted([store.path_of(first), store.path_of(second)])
    assert store.read(second) == b"artifact two" and store.temporaries() == []


def test_failed_batch_leaves_no_object_and_no_temporary(store):
    with pytest.raises(RuntimeError), store.batch():
        store.put(b"half a result")
        raise RuntimeError("the worker died")
    assert object_files(store) == [] and store.temporaries() == []


def damage(store, blob_id, data: bytes, keep_mode: bool = False) -> None:
    """Overwrite an object as an edit through a hard link would (chmod, write)."""
    path = store.path_of(blob_id)
    os.chmod(path, 0o644)
    path.write_bytes(data)
    if keep_mode:
        os.chmod(path, 0o444)


@pytest.mark.parametrize("how", ["bytes", "stream", "path", "batch"])
@pytest.mark.parametrize("edit", ["shorter", "same size, left writable"])
def test_putting_the_same_bytes_again_replaces_a_damaged_object(store, tmp_path, how, edit):
    data = b"a fitted model" * 100
    blob_id = store.put(data)
    inode = store.path_of(blob_id).stat().st_ino
    damage(store, blob_id, b"x" if edit == "shorter" else b"x" * len(data))
    source = tmp_path / "model.pkl"
    source.write_bytes(data)
    if how == "batch":
        with store.batch():
            store.put(data)
    else:
        store.put({"bytes": data, "stream": io.BytesIO(data), "path": source}[how])
    healed = store.path_of(blob_id)
    assert store.read(blob_id) == data and healed.stat().st_mode & 0o777 == 0o444
    assert healed.stat().st_ino != inode  # a new file renamed over it, not an edit in place
    assert not store.temporaries()


def test_a_quarantined_object_is_written_fresh_by_the_next_put(store, tmp_path):
    data = b"a fitted model" * 100
    blob_id = store.put(data)
    damage(store, blob_id, b"x" * len(data), keep_mode=True)  # no cheap signal: only a hash
    store.put(data)
    assert not store.verify(blob_id)  # put trusts a sealed object of the right size
    store.quarantine(blob_id, tmp_path / "quarantine")
    assert not store.exists(blob_id) and (tmp_path / "quarantine" / blob_id).exists()
    store.put(data)
    assert store.verify(blob_id)


def test_a_blob_already_queued_in_the_batch_is_not_written_again(tmp_path, monkeypatch):
    store = BlobStore(tmp_path / "store")
    store.create()
    writes = []
    original = store._put_bytes
    monkeypatch.setattr(
        store, "_put_bytes", lambda data, blob_id: writes.append(blob_id) or original(data, blob_id)
    )
    with store.batch():
        first = store.put(b"fitted snv")
        again = store.put(b"fitted snv")
    assert first == again and writes == [first]
    assert store.read(first) == b"fitted snv" and store.temporaries() == []


def test_every_shard_folder_exists_after_create(tmp_path):
    store = BlobStore(tmp_path / "store")
    store.create()
    shards = sorted(p.name for p in store.objects_dir.iterdir())
    assert shards == [f"{i:02x}" for i in range(256)]
    store.create()  # idempotent on an existing store


def test_a_batch_writes_in_the_background_and_raises_its_write_errors_on_exit(
    tmp_path, monkeypatch
):
    """Bytes put in a batch are written by the batch's thread; a write that fails there
    (a full disk) fails the batch when it ends: nothing published, no temporary left."""
    import errno
    import threading

    import n4afs_core.store.blobstore as blobstore
    import pytest

    store = BlobStore(tmp_path / "store")
    store.create()
    writers = set()
    original = blobstore._write_all

    def failing_write(fd, view):
        writers.add(threading.current_thread().name)
        if bytes(view) == b"second":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(fd, view)

    monkeypatch.setattr(blobstore, "_write_all", failing_write)
    with pytest.raises(OSError, match="No space left"), store.batch():
        store.put(b"first")
        store.put(b"second")
        store.put(b"third")
    assert all(name.startswith("n4a-put") for name in writers)
    assert store.temporaries() == []
    assert [p for p in store.objects_dir.rglob("*") if p.is_file()] == []
