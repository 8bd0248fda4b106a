"""Content-addressed blob store: immutable objects named by the sha256 of their bytes.

Layout: `<root>/objects/ab/<sha256>` for objects, `<root>/tmp/` for writes in progress. A
write goes to a temporary name, is length- and hash-checked, fsynced, renamed into place and
the directory fsynced, so a crash never leaves a half object under a real name (only a
temporary file that `verify` reports and `gc` removes). The same content written twice is
stored once: the rename target already exists and the temporary is dropped.

The store is addressed by an fsspec URL so it can later live on `s3://`; a local directory
is the default and gets a fast path (plain `os` calls, zero-copy `path_of` for the mount).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from core.errors import BlobCorrupt, BlobNotFound
from core.ids import BlobId

CHUNK = 1 << 20
Source = bytes | bytearray | memoryview | BinaryIO | str | os.PathLike


class BlobStore:
    """A directory of immutable, content-addressed objects."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.objects_dir = self.root / "objects"
        self.tmp_dir = self.root / "tmp"

    def create(self) -> None:
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    # -- naming -----------------------------------------------------------------------
    def path_of(self, blob_id: str) -> Path:
        """Where the object lives; the id is validated first so the path cannot escape."""
        blob_id = BlobId(blob_id)
        return self.objects_dir / blob_id.shard / blob_id

    # -- writing ----------------------------------------------------------------------
    def put(self, source: Source) -> BlobId:
        """Store bytes, a binary stream or a file path; return the content id."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            known = BlobId(hashlib.sha256(source).hexdigest())
            if self.exists(known):  # in memory we can hash first: a re-put writes nothing
                return known
            return self._put_stream(io.BytesIO(bytes(source)))
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as stream:
                return self._put_stream(stream)
        return self._put_stream(source)

    def _put_stream(self, stream: BinaryIO) -> BlobId:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp_dir, prefix="put-")
        try:
            digest, written = _copy_hashing(stream, fd)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp_name)
            raise
        os.close(fd)
        blob_id = BlobId(digest)
        self._publish(tmp_name, blob_id, written)
        return blob_id

    def _publish(self, tmp_name: str, blob_id: BlobId, expected_size: int) -> None:
        """Rename the checked temporary into place, or drop it when the object exists."""
        final = self.path_of(blob_id)
        if final.exists() or os.path.getsize(tmp_name) != expected_size:
            os.unlink(tmp_name)
            if not final.exists():
                raise BlobCorrupt(f"short write for blob {blob_id.short}: retry the operation")
            return
        final.parent.mkdir(exist_ok=True)
        os.chmod(tmp_name, 0o444)  # objects are immutable; a stray write fails loudly
        os.replace(tmp_name, final)
        _fsync_dir(final.parent)

    # -- reading ----------------------------------------------------------------------
    def exists(self, blob_id: str) -> bool:
        return self.path_of(blob_id).is_file()

    def size(self, blob_id: str) -> int:
        try:
            return self.path_of(blob_id).stat().st_size
        except FileNotFoundError as exc:
            raise _not_found(blob_id) from exc

    def open(self, blob_id: str) -> BinaryIO:
        try:
            return open(self.path_of(blob_id), "rb")
        except FileNotFoundError as exc:
            raise _not_found(blob_id) from exc

    def read(self, blob_id: str, verify: bool = True) -> bytes:
        """Whole content; hash-checked by default so nothing corrupt reaches joblib."""
        with self.open(blob_id) as stream:
            data = stream.read()
        if verify and hashlib.sha256(data).hexdigest() != blob_id:
            raise BlobCorrupt(
                f"blob {BlobId(blob_id).short} is corrupt: its bytes do not match its sha256; "
                "run `n4afs verify` to find and repair affected results"
            )
        return data

    def verify(self, blob_id: str) -> bool:
        """True when the object exists and hashes to its name."""
        try:
            with self.open(blob_id) as stream:
                digest, _ = _hash_stream(stream)
        except BlobNotFound:
            return False
        return digest == blob_id

    def iter_ids(self) -> Iterator[BlobId]:
        """Every object in the store (for gc and verify), skipping names that are not ids."""
        if not self.objects_dir.is_dir():
            return
        for shard in sorted(self.objects_dir.iterdir()):
            for entry in sorted(shard.iterdir()):
                if len(entry.name) == 64 and entry.name.startswith(shard.name):
                    yield BlobId(entry.name)

    def temporaries(self) -> list[Path]:
        """Leftovers of interrupted writes: never objects, safe to delete when no put runs."""
        return sorted(self.tmp_dir.glob("put-*")) if self.tmp_dir.is_dir() else []

    def remove(self, blob_id: str) -> None:
        self.path_of(blob_id).unlink(missing_ok=True)


def _copy_hashing(stream: BinaryIO, fd: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    written = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        written += len(chunk)
    return digest.hexdigest(), written


def _hash_stream(stream: BinaryIO) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _not_found(blob_id: str) -> BlobNotFound:
    return BlobNotFound(
        f"blob {BlobId(blob_id).short} is referenced but missing from the store; "
        "run `n4afs verify` to list affected results"
    )
