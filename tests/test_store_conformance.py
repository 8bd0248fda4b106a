"""One suite every blob store passes (`core.store.storage.Store`): what callers may rely on.

`StoreContract` holds the tests; each store joins with a subclass that says how to open
it (`make`) and how to plant raw bytes under its root (`plant`, to damage an object or
leave a stray file), as fsspec's abstract test mixins do. Run against the local store and
the remote one on fsspec's in-memory filesystem, on local files (`file://`) and on S3
(moto's server). Store-specific behaviour (a local batch's single sync, a killed writer's
temporary, the remote cache's budget) stays in test_blobstore.py and test_scaleout.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from n4afs_core.errors import BlobCorrupt, BlobNotFound, InvalidBlobId
from n4afs_core.store.blobstore import BlobStore
from n4afs_core.store.ids import BlobId
from n4afs_core.store.remote_store import RemoteBlobStore
from n4afs_core.store.storage import OBJECTS, Store, blob_id_at, object_path
from n4afs_core.store.stores import open_store

from tests.test_scaleout import s3  # noqa: F401 - the moto S3 server fixture

BIG = 3 * (1 << 20) + 17  # spans several read chunks
BAD_IDS = ["../../etc/passwd", "a" * 63, "Z" * 64, "/" + "a" * 63]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def damage_copy(path: Path, data: bytes) -> None:
    """Overwrite a local read-only file as an edit through a hard link would."""
    os.chmod(path, 0o644)
    path.write_bytes(data)


class FailingStream(io.RawIOBase):
    """A source that dies after a few reads (a network drop, a killed producer)."""

    def __init__(self, reads: int = 3) -> None:
        self.left = reads

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.left -= 1
        if self.left < 0:
            raise OSError("the source went away")
        return b"x" * 65536


class StoreContract:
    """The tests; a subclass provides the `make` fixture and `plant`."""

    @pytest.fixture
    def make(self) -> Callable[[str], Store]:
        """`make(reader)`: a store at this test's location; another reader name opens
        another instance on the same objects (its own cache, where it has one)."""
        raise NotImplementedError

    def plant(self, store: Store, relative: str, data: bytes) -> None:
        """Write `data` at `relative` under the store's root, bypassing the store."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, make) -> Store:
        store = make("a")
        store.create()
        return store

    # -- identity -------------------------------------------------------------------------
    def test_a_store_implements_the_interface(self, store):
        assert isinstance(store, Store)
        assert isinstance(store.url, str) and store.url

    def test_create_is_idempotent(self, store):
        store.create()
        assert store.read(store.put(b"after a second create")) == b"after a second create"

    def test_a_worker_reopens_the_store_from_its_spec(self, store):
        worker = open_store(store.spec())
        mine = store.put(b"written by the coordinator")
        theirs = worker.put(b"written by a worker")
        assert worker.read(mine) == b"written by the coordinator"
        assert store.read(theirs) == b"written by a worker"

    # -- put and read ---------------------------------------------------------------------
    def test_bytes_a_stream_and_a_path_give_the_sha256(self, store, tmp_path):
        data = os.urandom(BIG)
        source = tmp_path / "source.bin"
        source.write_bytes(data)
        assert store.put(data) == sha(data)
        assert store.put(io.BytesIO(data)) == sha(data)
        assert store.put(source) == sha(data)
        assert store.put(str(source)) == sha(data)
        assert isinstance(store.put(bytearray(data)), BlobId)
        assert store.read(sha(data)) == data
        assert store.size(sha(data)) == len(data)
        assert store.exists(sha(data))
        assert store.verify(sha(data)) and store.verify_copy(sha(data))

    def test_the_empty_object(self, store):
        blob_id = store.put(b"")
        assert blob_id == sha(b"") and store.read(blob_id) == b"" and store.size(blob_id) == 0

    def test_path_of_is_a_read_only_local_file_of_the_bytes(self, store):
        blob_id = store.put(b"served by pread")
        path = store.path_of(blob_id)
        assert isinstance(path, Path) and path.read_bytes() == b"served by pread"
        assert path.stat().st_mode & 0o222 == 0

    def test_open_streams_the_bytes(self, store):
        blob_id = store.put(b"streamed")
        with store.open(blob_id) as stream:
            assert stream.read() == b"streamed"

    def test_the_same_bytes_are_stored_once(self, store):
        first = store.put(b"one model")
        assert store.put(b"one model") == first
        assert store.put(io.BytesIO(b"one model")) == first
        assert list(store.iter_ids()) == [first]
        assert store.temporaries() == []

    def test_mtime_is_when_the_object_was_written_or_touched(self, store):
        before = time.time()
        blob_id = store.put(b"aging")
        written = store.mtime(blob_id)
        assert before - 5 <= written <= time.time() + 5
        if store.touch(blob_id):  # else the store cannot: callers write it again
            assert store.mtime(blob_id) >= written - 1

    # -- iteration ------------------------------------------------------------------------
    def test_iter_ids_lists_every_object_in_id_order_and_nothing_else(self, store):
        ids = [store.put(data) for data in (b"a", b"b", b"", b"c" * 5000)]
        misplaced = sha(b"not under its shard")
        self.plant(store, f"{OBJECTS}/zz/{misplaced}", b"not under its shard")
        self.plant(store, f"{OBJECTS}/ab/not-an-id", b"stray")
        self.plant(store, f"{OBJECTS}/{ids[0][:2]}/{ids[0]}.part", b"stray")
        assert list(store.iter_ids()) == sorted(ids)

    def test_an_empty_store_lists_nothing(self, store):
        assert list(store.iter_ids()) == [] and store.temporaries() == []
        assert store.corrupt_cache_copies() == []

    # -- missing objects and invalid ids --------------------------------------------------
    def test_a_missing_object_says_what_to_do(self, store):
        missing = "0" * 64
        for call in (store.read, store.open, store.size, store.mtime):
            with pytest.raises(BlobNotFound, match="n4afs verify"):
                call(missing)
        assert not store.exists(missing)
        assert store.verify(missing) is False and store.verify_copy(missing) is False
        assert store.touch(missing) is False
        store.remove(missing)  # nothing to do, no error
        store.evict(missing)

    @pytest.mark.parametrize("bad", BAD_IDS)
    def test_ids_are_validated_before_any_path_is_built(self, store, bad, tmp_path):
        calls = [
            store.path_of,
            store.exists,
            store.read,
            store.open,
            store.size,
            store.mtime,
            store.verify,
            store.verify_copy,
            store.touch,
            store.remove,
            store.evict,
            lambda blob_id: store.quarantine(blob_id, tmp_path / "quarantine"),
        ]
        for call in calls:
            with pytest.raises(InvalidBlobId):
                call(bad)

    # -- damage and repair ----------------------------------------------------------------
    def test_read_never_returns_bytes_that_do_not_match_the_id(self, store):
        blob_id = store.put(b"good bytes")
        damage_copy(store.path_of(blob_id), b"evil bytes")  # what readers get
        with pytest.raises(BlobCorrupt, match=blob_id[:8]):
            store.read(blob_id)
        assert store.read(blob_id, verify=False) == b"evil bytes"
        assert store.verify_copy(blob_id) is False
        # and `n4afs verify` finds it: the object itself, or the store's local copy
        assert not store.verify(blob_id) or blob_id in store.corrupt_cache_copies()

    def test_verify_hashes_the_stored_object(self, store):
        data = b"a fitted model" * 100
        blob_id = store.put(data)
        self.plant(store, object_path(blob_id), b"x" * len(data))  # same size: a hash only
        assert store.verify(blob_id) is False
        # a store may still serve a copy it checked before; never the damaged bytes
        with contextlib.suppress(BlobCorrupt):
            assert store.read(blob_id) == data

    @pytest.mark.parametrize("how", ["bytes", "stream", "path"])
    def test_putting_the_bytes_again_replaces_a_shorter_object(self, store, tmp_path, how):
        data = b"a fitted model" * 100
        blob_id = store.put(data)
        self.plant(store, object_path(blob_id), b"truncated")  # a cut upload, an edit
        source = tmp_path / "model.pkl"
        source.write_bytes(data)
        store.put({"bytes": data, "stream": io.BytesIO(data), "path": source}[how])
        assert store.verify(blob_id) and store.read(blob_id) == data
        assert store.path_of(blob_id).stat().st_mode & 0o222 == 0
        assert store.temporaries() == []

    def test_a_quarantined_object_is_written_fresh_by_the_next_put(self, store, tmp_path):
        data = b"a fitted model" * 100
        blob_id = store.put(data)
        self.plant(store, object_path(blob_id), b"x" * len(data))
        store.quarantine(blob_id, tmp_path / "quarantine")
        assert not store.exists(blob_id)
        assert (tmp_path / "quarantine" / blob_id).read_bytes() == b"x" * len(data)
        assert blob_id not in list(store.iter_ids())
        store.put(data)
        assert store.verify(blob_id) and store.read(blob_id) == data

    def test_an_evicted_object_is_still_read(self, store):
        blob_id = store.put(b"cached or not")
        store.evict(blob_id)
        assert store.read(blob_id) == b"cached or not" and store.verify_copy(blob_id)

    # -- removal --------------------------------------------------------------------------
    def test_a_removed_object_is_gone_for_every_call(self, store):
        gone, kept = store.put(b"removed"), store.put(b"kept")
        store.path_of(gone)  # a local copy too, where the store keeps one
        store.remove(gone)
        assert not store.exists(gone) and list(store.iter_ids()) == [kept]
        with pytest.raises(BlobNotFound):
            store.read(gone)
        store.remove(gone)  # twice: no error
        assert store.read(kept) == b"kept"

    # -- refs: the shared-store documents (`core.store.shared`) ----------------------------
    def test_refs_are_replaced_whole_listed_by_name_and_never_objects(self, store, make):
        assert store.read_refs() == {}
        store.put_ref("ws-1", b"first")
        store.put_ref("ws-1", b"second")
        store.put_ref("ws_2", b"other")
        other = make("b")  # another process on the same store sees them
        assert other.read_refs() == {"ws-1": b"second", "ws_2": b"other"}
        assert list(store.iter_ids()) == []  # documents are not objects
        for bad in ("../x", "a/b", "", ".hidden"):
            with pytest.raises(ValueError):
                store.put_ref(bad, b"x")
        store.remove_ref("ws-1")
        store.remove_ref("ws-1")  # twice: no error
        assert store.read_refs() == {"ws_2": b"other"}

    # -- atomicity ------------------------------------------------------------------------
    def test_a_failed_put_leaves_no_object_and_no_temporary(self, store, tmp_path):
        with pytest.raises(OSError, match="went away"):
            store.put(FailingStream())
        with pytest.raises(FileNotFoundError):
            store.put(tmp_path / "no such file")
        assert list(store.iter_ids()) == [] and store.temporaries() == []

    def test_every_put_of_a_batch_is_stored_when_it_ends(self, store):
        with store.batch():
            first = store.put(b"artifact one")
            second = store.put(io.BytesIO(b"artifact two"))
            assert store.put(b"artifact one") == first
            assert store.exists(first) and store.exists(second)
        assert store.read(first) == b"artifact one" and store.read(second) == b"artifact two"
        assert sorted(store.iter_ids()) == sorted([first, second])
        assert store.temporaries() == []

    def test_writers_need_no_coordination(self, store, make):
        other = make("b")
        payloads = [os.urandom(1000) for _ in range(6)]
        threads = [
            threading.Thread(target=lambda s=s: [s.put(p) for p in payloads])
            for s in (store, other)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ids = sorted(sha(p) for p in payloads)
        assert list(store.iter_ids()) == ids and list(other.iter_ids()) == ids
        assert all(other.read(blob_id) == store.read(blob_id) for blob_id in ids)
        assert store.temporaries() == [] and other.temporaries() == []


def test_one_function_names_where_an_object_lives():
    blob_id = sha(b"layout")
    assert object_path(blob_id) == f"objects/{blob_id[:2]}/{blob_id}"
    assert blob_id_at(object_path(blob_id)) == blob_id
    assert blob_id_at(f"objects/zz/{blob_id}") is None
    assert blob_id_at("objects/ab/readme.txt") is None
    with pytest.raises(InvalidBlobId):
        object_path("../../etc/passwd")


# -- the stores ---------------------------------------------------------------------------
class TestLocalStore(StoreContract):
    @pytest.fixture
    def make(self, tmp_path):
        return lambda reader: BlobStore(tmp_path / "store")

    def plant(self, store, relative, data):
        path = store.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            os.chmod(path, 0o644)
        path.write_bytes(data)


class RemoteContract(StoreContract):
    """The remote store on some fsspec URL (the `url` fixture), caches under tmp_path."""

    options: dict = {}

    @pytest.fixture
    def url(self) -> Iterator[str]:
        raise NotImplementedError

    @pytest.fixture
    def make(self, url, tmp_path):
        return lambda reader: RemoteBlobStore(url, tmp_path / f"cache-{reader}", **self.options)

    def plant(self, store, relative, data):
        store.fs.pipe_file(f"{store.base}/{relative}", data)
        store.fs.invalidate_cache()


class TestRemoteStoreInMemory(RemoteContract):
    @pytest.fixture
    def url(self):
        import fsspec

        url = f"memory://n4a-{uuid.uuid4().hex}"
        yield url
        fs, base = fsspec.core.url_to_fs(url)
        if fs.exists(base):
            fs.rm(base, recursive=True)


class TestRemoteStoreOnLocalFiles(RemoteContract):
    """The remote code on fsspec's local filesystem (a workspace maps `file://` to the
    local store; this exercises the remote store on a second real filesystem)."""

    options = {"auto_mkdir": True}

    @pytest.fixture
    def url(self, tmp_path):
        return f"file://{tmp_path}/bucket"


class TestRemoteStoreOnS3(RemoteContract):
    @pytest.fixture
    def url(self, s3):  # noqa: F811
        return f"s3://n4a-bucket/conformance-{uuid.uuid4().hex}"
