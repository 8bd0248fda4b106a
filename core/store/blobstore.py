"""Content-addressed blob store: immutable objects named by the sha256 of their bytes.

Layout: `<root>/<object_path>` for objects (`core.store.storage`: `objects/ab/<sha256>`),
`<root>/tmp/` for writes in progress. A write goes to a temporary name, is length- and
hash-checked, fsynced, renamed into place and the directory fsynced, so a crash never
leaves a half object under a real name (only a temporary file that `verify` reports and
`gc` removes). The same content written twice is stored once: the rename target already
exists and the temporary is dropped.

The store is addressed by an fsspec URL so it can later live on `s3://`; a local directory
is the default and gets a fast path (plain `os` calls, zero-copy `path_of` for the mount).

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from n4afs_core.errors import BlobCorrupt, BlobNotFound
from n4afs_core.store.ids import BlobId, Sha256, chunks_of, hash_chunks, hash_stream
from n4afs_core.store.storage import (
    OBJECTS,
    REFS,
    Source,
    Store,
    blob_id_at,
    not_found,
    object_path,
    ref_name,
    shard_folders,
)

_TEMP_SERIAL = itertools.count()
Temporary = tuple[str, int]  # a written temporary's name and size


class BlobStore(Store):
    """A directory of immutable, content-addressed objects."""

    local = True  # `path_of` is the object file

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.objects_dir = self.root / OBJECTS
        self.tmp_dir = self.root / "tmp"
        # inside batch(): the objects to publish on exit, and the thread writing them
        self._pending: dict[BlobId, Temporary | Future[Temporary]] | None = None
        self._writer: ThreadPoolExecutor | None = None

    def create(self) -> None:
        """The store's folders, with all 256 shard folders made up front (as restic does):
        otherwise the first runs into a store create and fsync a shard folder for most of
        their objects (~0.1 ms each, 175 of the reference sweep's 323 objects)."""
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        shards = shard_folders()
        if not os.path.isdir(os.path.join(self.root, shards[-1])):
            for shard in shards:
                os.makedirs(os.path.join(self.root, shard), exist_ok=True)
            _fsync_dir(self.objects_dir)

    def spec(self) -> dict[str, str]:
        """What a worker process needs to open the same store (`core.store.stores.open_store`)."""
        return {"kind": "local", "root": str(self.root)}

    @property
    def url(self) -> str:
        return str(self.root)

    # -- naming -----------------------------------------------------------------------
    def path_of(self, blob_id: str) -> Path:
        """A local file holding the object (here: the object itself, read-only).

        The id is validated first, so the path cannot escape the store.
        """
        return self.root / object_path(blob_id)

    def _name(self, blob_id: BlobId) -> str:
        """`path_of` as a string: the write path builds a few names per blob, and pathlib
        costs ~10 µs a join."""
        return os.path.join(self.root, object_path(blob_id))

    file_name = _name

    # -- writing ----------------------------------------------------------------------
    def put(self, source: Source) -> BlobId:
        """Store bytes, a binary stream or a file path; return the content id."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            known = BlobId.of_bytes(source)
            if self._pending is not None and known in self._pending:
                return known  # this batch already holds it
            if self._reusable(known, len(source)):  # nothing to write
                return known
            return self._put_bytes(source, known)
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as stream:
                return self._put_stream(stream)
        return self._put_stream(source)

    def _put_bytes(self, data: bytes | bytearray | memoryview, blob_id: BlobId) -> BlobId:
        """Write bytes whose hash `put` just computed: hashing them twice doubled the cost.

        In a batch, immutable `bytes` are written by the batch's writer thread while the
        caller goes on (pickling, scoring): file creation, `write` and writeback release the
        GIL. The reference sweep with one worker: 0.47 s against 0.54 s written inline
        (medians of 12 alternating runs). Errors surface when the batch ends, which
        publishes nothing then.
        """
        if self._writer is not None and isinstance(data, bytes):
            self._pending[blob_id] = self._writer.submit(self._write_bytes, data)
            return blob_id
        tmp_name, written = self._write_bytes(data)
        return self._keep(tmp_name, blob_id, written)

    def put_parts(self, parts: Sequence[bytes | memoryview]) -> BlobId:
        """Store the concatenation of `parts` without joining them: hashed part by part,
        and written by one `writev` per temporary (a batch's writer thread does it, as for
        bytes). The caller keeps the parts unchanged until the batch ends (see `Store`)."""
        parts = [memoryview(part).cast("B") for part in parts]
        digest, size = hash_chunks(parts)
        known = BlobId(digest)
        if self._pending is not None and known in self._pending:
            return known
        if self._reusable(known, size):
            return known
        if self._writer is not None:
            self._pending[known] = self._writer.submit(self._write_parts, parts)
            return known
        tmp_name, written = self._write_parts(parts)
        return self._keep(tmp_name, known, written)

    def _write_parts(self, parts: Sequence[bytes | memoryview]) -> Temporary:
        return self._write_temporary(lambda fd: _writev_all(fd, parts))

    def _write_bytes(self, data: bytes | bytearray | memoryview) -> Temporary:
        return self._write_temporary(lambda fd: _write_all(fd, memoryview(data).cast("B")))

    def _put_stream(self, stream: BinaryIO) -> BlobId:
        tmp_name, (digest, written) = self._write_temporary(lambda fd: _copy_hashing(stream, fd))
        return self._keep(tmp_name, BlobId(digest), written)

    def _write_temporary(self, fill: Callable[[int], Any]) -> tuple[str, Any]:
        """A sealed temporary filled by `fill(fd)`, and what `fill` returned; nothing is
        left behind when it fails."""
        fd, tmp_name = self._temporary()
        try:
            filled = fill(fd)
            self._seal(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp_name)
            raise
        os.close(fd)
        return tmp_name, filled

    def _temporary(self) -> tuple[int, str]:
        """A new temporary file under tmp/ (recreated if something removed the folder).

        Named by process and serial number, created exclusively: `mkstemp`'s random names
        cost ~0.1 ms each. A name left by a crashed process of the same pid falls back to
        `mkstemp`.
        """
        name = os.path.join(self.tmp_dir, f"put-{os.getpid()}-{next(_TEMP_SERIAL)}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(name, flags, 0o600), name
        except FileNotFoundError:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            return tempfile.mkstemp(dir=self.tmp_dir, prefix="put-")

    def _seal(self, fd: int) -> None:
        """Read-only (objects are immutable; a stray write fails loudly), and outside a
        batch durable now. In a batch the disk starts writing the bytes at once, while the
        caller goes on computing, so the sync on exit finds most of them already written
        (measured: the first `syncfs` of a group waited ~15 ms for ~21 MB)."""
        os.fchmod(fd, 0o444)
        if self._pending is None:
            os.fsync(fd)
        else:
            _start_writeback(fd)

    def _keep(self, tmp_name: str, blob_id: BlobId, written: int) -> BlobId:
        """Publish the temporary now, or hold it for the batch (once per id)."""
        if self._pending is None:
            self._publish(tmp_name, blob_id, written)
        elif blob_id in self._pending:
            os.unlink(tmp_name)
        else:
            self._pending[blob_id] = (tmp_name, written)
        return blob_id

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many puts made durable together: one filesystem sync instead of one per object.

        Temporaries are written as usual; on exit they are synced (one `syncfs`), renamed
        into place, and the renames synced again (one more `syncfs`, which also covers new
        shard folders). So an object never appears under its name before its bytes are on
        disk — the same guarantee as a single put — and a run of small artifacts stops
        paying a journal commit each (measured: ~1.5 ms per blob). An error inside the
        block discards the batch's temporaries.
        """
        if self._pending is not None:
            yield
            return
        self._pending, self._writer = {}, ThreadPoolExecutor(1, thread_name_prefix="n4a-put")
        try:
            yield
            self._writer.shutdown(wait=True)
            written = {blob_id: _result(entry) for blob_id, entry in self._pending.items()}
            _sync_files([tmp for tmp, _ in written.values()], [self.tmp_dir])
            renamed_into = {str(self.objects_dir)}
            for blob_id, (tmp_name, size) in written.items():
                if self._publish(tmp_name, blob_id, size, sync_dirs=False):
                    renamed_into.add(os.path.dirname(self._name(blob_id)))
            _sync_files([], sorted(renamed_into))
        finally:
            # nothing may still be writing when we clean up; after an error, queued writes
            # are dropped rather than made
            self._writer.shutdown(wait=True, cancel_futures=True)
            for entry in self._pending.values():
                tmp_name = _tmp_name_of(entry)
                if tmp_name is not None and os.path.exists(tmp_name):
                    os.unlink(tmp_name)
            self._pending, self._writer = None, None

    def _publish(
        self, tmp_name: str, blob_id: BlobId, expected_size: int, sync_dirs: bool = True
    ) -> bool:
        """Rename the checked temporary into place, or drop it when the object exists.

        True when it was renamed. `sync_dirs=False` leaves syncing the new name (and a new
        shard folder) to the caller, which syncs once for many objects.
        """
        final = self._name(blob_id)
        if os.path.getsize(tmp_name) != expected_size:
            os.unlink(tmp_name)
            raise BlobCorrupt(f"short write for blob {blob_id.short}: retry the operation")
        if self._reusable(blob_id, expected_size):  # stored, and now marked re-used
            os.unlink(tmp_name)
            return False
        shard = os.path.dirname(final)
        if not os.path.isdir(shard):
            os.makedirs(shard, exist_ok=True)
            if sync_dirs:
                _fsync_dir(self.objects_dir)  # the new shard folder must survive a crash too
        os.replace(tmp_name, final)  # atomically replaces a damaged object too
        if sync_dirs:
            _fsync_dir(shard)
        return True

    def _reusable(self, blob_id: BlobId, size: int) -> bool:
        """Whether the stored object can stand for `size` new bytes of the same id; if
        so it is touched (marked re-used).

        Not when it is missing, of another size, or writable: objects are sealed 0444, so
        write bits mean someone chmodded it (through an `export --link` hard link, say),
        most likely to edit it. The caller then writes the new, hash-checked bytes and
        renames them over it. One `stat`, as cheap as the existence check it replaces;
        re-hashing the object on every put would cost as much as hashing the new bytes
        again (see BENCHMARKS.md). A same-size edit that restored the mode is left to
        `verify`, which hashes every object; `verify --repair` quarantines it, and the
        next put of its bytes then finds nothing and writes them fresh.
        """
        try:
            found = os.stat(self._name(blob_id))
        except FileNotFoundError:
            return False
        if found.st_size != size or found.st_mode & 0o222:
            return False
        return self.touch(blob_id)

    def touch(self, blob_id: str) -> bool:
        """Mark an existing object as just written: gc spares objects younger than its grace
        period, and a run that re-uses an old object has not committed its rows yet.
        False when the object vanished meanwhile (gc got there first): write it again."""
        try:
            os.utime(self._name(BlobId(blob_id)))
        except FileNotFoundError:
            return False
        return True

    # -- reading ----------------------------------------------------------------------
    def exists(self, blob_id: str) -> bool:
        if self._pending is not None and blob_id in self._pending:
            return True
        return self.path_of(blob_id).is_file()

    def mtime(self, blob_id: str) -> float:
        """When the object was last written or re-used (gc's grace period reads this)."""
        try:
            return self.path_of(blob_id).stat().st_mtime
        except FileNotFoundError as exc:
            raise not_found(blob_id) from exc

    def size(self, blob_id: str) -> int:
        try:
            return self.path_of(blob_id).stat().st_size
        except FileNotFoundError as exc:
            raise not_found(blob_id) from exc

    def open(self, blob_id: str) -> BinaryIO:
        try:
            return open(self.path_of(blob_id), "rb")
        except FileNotFoundError as exc:
            raise not_found(blob_id) from exc

    def read(self, blob_id: str, verify: bool = True) -> bytes:
        """Whole content; hash-checked by default so nothing corrupt reaches joblib."""
        with self.open(blob_id) as stream:
            data = stream.read()
        if verify and BlobId.of_bytes(data) != blob_id:
            raise BlobCorrupt(
                f"blob {BlobId(blob_id).short} is corrupt: its bytes do not match its sha256; "
                "run `n4afs verify` to find and repair affected results"
            )
        return data

    def verify(self, blob_id: str) -> bool:
        """True when the object exists and hashes to its name."""
        try:
            with self.open(blob_id) as stream:
                digest = hash_stream(stream)
        except BlobNotFound:
            return False
        return digest == blob_id

    def verify_copy(self, blob_id: str) -> bool:
        """Check the bytes readers will get (here: the object itself)."""
        return self.verify(blob_id)

    def iter_ids(self) -> Iterator[BlobId]:
        """Every object in the store (for gc and verify), skipping files that are not."""
        for path in sorted(self.objects_dir.glob("*/*")):
            blob_id = blob_id_at(path.relative_to(self.root).as_posix())
            if blob_id is not None:
                yield blob_id

    def remove(self, blob_id: str) -> None:
        self.path_of(blob_id).unlink(missing_ok=True)

    # -- refs (`core.store.shared`) ------------------------------------------------------
    def put_ref(self, name: str, data: bytes) -> None:
        folder = self.root / REFS
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".put-")
        try:
            _write_all(fd, memoryview(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, folder / ref_name(name))
        _fsync_dir(folder)

    def read_refs(self) -> dict[str, bytes]:
        folder = self.root / REFS
        if not folder.is_dir():
            return {}
        found = {}
        for path in sorted(folder.iterdir()):
            if not path.name.startswith("."):
                with suppress(FileNotFoundError):  # removed since listed
                    found[path.name] = path.read_bytes()
        return found

    def remove_ref(self, name: str) -> None:
        (self.root / REFS / ref_name(name)).unlink(missing_ok=True)

    def quarantine(self, blob_id: str, folder: Path) -> None:
        """Move a corrupt object into `folder` (kept for inspection): nothing serves it
        any more, and the next put of its true bytes writes them fresh."""
        folder.mkdir(parents=True, exist_ok=True)
        with suppress(FileNotFoundError):
            shutil.move(self.path_of(blob_id), folder / BlobId(blob_id))


def _result(entry: Temporary | Future[Temporary]) -> Temporary:
    """A batch entry's temporary; a background write's error is raised here."""
    return entry.result() if isinstance(entry, Future) else entry


def _tmp_name_of(entry: Temporary | Future[Temporary]) -> str | None:
    """The temporary to clean up, if this entry got as far as writing one."""
    if isinstance(entry, Future):
        if entry.cancelled() or entry.exception() is not None:
            return None  # a failed write removed its own temporary
        entry = entry.result()
    return entry[0]


def _copy_hashing(stream: BinaryIO, fd: int) -> tuple[str, int]:
    hashing, written = Sha256(), 0
    for chunk in hashing.feed(chunks_of(stream)):
        written += _write_all(fd, memoryview(chunk))
    return hashing.hexdigest(), written


def _write_all(fd: int, view: memoryview) -> int:
    """os.write until every byte is written (it may write fewer); returns the count."""
    total = len(view)
    while view:
        view = view[os.write(fd, view) :]
    return total


def _writev_all(fd: int, parts: Sequence[bytes | memoryview]) -> int:
    """`os.writev` of every part, in groups the kernel accepts, until every byte is
    written (a call may write fewer); returns the count."""
    views = [view for view in (memoryview(part).cast("B") for part in parts) if view.nbytes]
    total = sum(view.nbytes for view in views)
    if not hasattr(os, "writev"):  # Windows
        for view in views:
            _write_all(fd, view)
        return total
    while views:
        group = views[:_IOV_MAX]
        written = os.writev(fd, group)
        while written and written >= group[0].nbytes:
            written -= group[0].nbytes
            group.pop(0)
            views.pop(0)
        if written:
            views[0] = views[0][written:]
    return total


def _iov_max() -> int:
    """How many parts one `writev` may take (POSIX guarantees 16; Linux and macOS 1024)."""
    try:
        found = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):
        return 16
    return min(found, 1024) if found > 0 else 16


_IOV_MAX = _iov_max()


def _sync_files(paths: list[str], directories: list[str | Path]) -> None:
    """Make `paths` and `directories` durable: one syncfs(2) where Linux offers it, else an
    fsync of each file and each directory."""
    fd = os.open(directories[0], os.O_RDONLY)
    try:
        if _LIBC is not None and _LIBC.syncfs(fd) == 0:
            return
    finally:
        os.close(fd)
    for path in paths:
        file_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(file_fd)
        finally:
            os.close(file_fd)
    for directory in directories:
        _fsync_dir(directory)


def _start_writeback(fd: int) -> None:
    """Ask the kernel to start writing the file's dirty pages, without waiting (Linux
    sync_file_range, SYNC_FILE_RANGE_WRITE). Not durability: only an earlier start."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def _load_libc():
    """glibc by its soname first: `ctypes.util.find_library` runs `ldconfig -p` in a
    subprocess on Linux (~0.1-0.3 s), which every fresh process importing the store paid (a
    notebook's first `n4a://` glob among them)."""
    import ctypes
    import ctypes.util

    for name in ("libc.so.6", None):
        try:
            libc = ctypes.CDLL(name or ctypes.util.find_library("c"), use_errno=True)
        except (OSError, TypeError):
            continue
        return libc if hasattr(libc, "syncfs") else None
    return None


def _load_sync_file_range():
    import ctypes

    function = getattr(_LIBC, "sync_file_range", None)
    if function is not None:
        function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return function


_LIBC = _load_libc()
_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
