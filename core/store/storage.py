"""The blob-store interface: the calls every store answers, and where an object lives.

Two stores implement it: `core.store.blobstore.BlobStore` (a local folder) and
`core.store.remote_store.RemoteBlobStore` (any fsspec URL, with a local read cache). Callers
(runner, persist, maintenance, the tree and its surfaces) type against `Store` and use
nothing else of a store; `tests/test_store_conformance.py` runs one suite against every
store, and a new store joins by passing it.

Every store keeps an object at the same relative place under its root, `object_path`:
`objects/ab/<sha256>`, sharded by the id's first two characters so no folder holds
millions of files.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO

from n4afs_core.errors import BlobNotFound, InvalidBlobId
from n4afs_core.store.ids import BlobId

OBJECTS = "objects"
REFS = "refs"  # the workspaces sharing a store publish what they reference here (`shared.py`)
# what `put` takes: bytes, a binary stream, or the path of a file
Source = bytes | bytearray | memoryview | BinaryIO | str | os.PathLike


# -- the layout ---------------------------------------------------------------------------
def object_path(blob_id: str) -> str:
    """Where an object lives under a store's root, '/'-separated: `objects/ab/<id>`.

    The id is validated first, so the path cannot escape the store."""
    blob_id = BlobId(blob_id)
    return f"{OBJECTS}/{blob_id.shard}/{blob_id}"


def shard_folders() -> list[str]:
    """Every folder `object_path` can name (`objects/00` ... `objects/ff`)."""
    return [f"{OBJECTS}/{shard:02x}" for shard in range(256)]


def blob_id_at(relative: str) -> BlobId | None:
    """The id of the object at `relative` (under a store's root, '/'-separated), or None
    when nothing but an object of that id may live there (a stray or temporary file)."""
    try:
        blob_id = BlobId(relative.rpartition("/")[2])
    except InvalidBlobId:
        return None
    return blob_id if object_path(blob_id) == relative else None


def ref_name(name: str) -> str:
    """A refs document's name (a workspace id): letters, digits, `-` and `_`, never a path."""
    if not name or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        raise ValueError(f"invalid refs name {name!r}")
    return name


def not_found(blob_id: str) -> BlobNotFound:
    """The error of a referenced object that no store holds."""
    return BlobNotFound(
        f"blob {BlobId(blob_id).short} is referenced but missing from the store; "
        "run `n4afs verify` to list affected results"
    )


# -- the interface ------------------------------------------------------------------------
class Store(ABC):
    """Immutable objects named by the sha256 of their bytes.

    A put is atomic: an object appears whole under its name or not at all, and the same
    bytes put twice are stored once. Reads of a missing object raise `BlobNotFound`, of an
    object whose bytes do not hash to its name `BlobCorrupt`; an invalid id raises
    `InvalidBlobId` before any path or key is built from it.
    """

    url: str  # where the objects live, as the user named it (messages show it)
    tmp_dir: Path  # local writes in progress: `temporaries` lists what crashes left there
    remote = False  # reached over a network: opened lazily, may be unreachable
    # `path_of` is the object file itself, one `stat` away (no fetch): what a caller may
    # check often (`core.store.renders` checks a stored render's size this way)
    local: bool = False

    # -- identity -------------------------------------------------------------------------
    @abstractmethod
    def create(self) -> None:
        """Make the store's folders (idempotent)."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """What a worker process needs to open the same store (`core.store.stores.open_store`)."""

    # -- writing --------------------------------------------------------------------------
    @abstractmethod
    def put(self, source: Source) -> BlobId:
        """Store bytes, a binary stream or a file path; return the content id. Bytes that
        are already stored are not written again (the object is touched instead), unless
        the stored object is visibly damaged (another size): then it is replaced."""

    def put_parts(self, parts: Sequence[bytes | memoryview]) -> BlobId:
        """Store the concatenation of `parts` (a pickle's frames and its arrays' memory,
        `core.pipelines.persist.PickleParts`); return its content id. A store that can
        hashes and writes them without joining them first; the parts must not change until
        the enclosing `batch` ends (or, outside one, until the call returns)."""
        return self.put(b"".join(parts))

    def batch(self) -> AbstractContextManager[None]:
        """Many puts made durable together; on exit every put of the block is stored.
        Stores whose single puts are durable already have nothing to group."""
        return nullcontext()

    @abstractmethod
    def touch(self, blob_id: str) -> bool:
        """Mark an existing object as just written (gc spares young objects). False when
        the object is gone or the store cannot: the caller writes it again."""

    @abstractmethod
    def remove(self, blob_id: str) -> None:
        """Delete the object (and any local copy); nothing happens when it is missing."""

    @abstractmethod
    def quarantine(self, blob_id: str, folder: Path) -> None:
        """Move the object's bytes into the local `folder` and off the store."""

    # -- reading --------------------------------------------------------------------------
    @abstractmethod
    def exists(self, blob_id: str) -> bool: ...

    @abstractmethod
    def size(self, blob_id: str) -> int: ...

    @abstractmethod
    def mtime(self, blob_id: str) -> float:
        """When the object was last written or touched (gc's grace period reads this)."""

    @abstractmethod
    def path_of(self, blob_id: str) -> Path:
        """A local, read-only file holding the object's bytes (readers `pread` it)."""

    def file_name(self, blob_id: str) -> str:
        """`path_of` as a string (a local store builds it without pathlib, ~10 µs a join)."""
        return str(self.path_of(blob_id))

    @abstractmethod
    def open(self, blob_id: str) -> BinaryIO: ...

    @abstractmethod
    def read(self, blob_id: str, verify: bool = True) -> bytes:
        """Whole content, hash-checked unless `verify=False`."""

    @abstractmethod
    def iter_ids(self) -> Iterator[BlobId]:
        """Every object of the store, in id order (files that are not objects skipped)."""

    # -- checking -------------------------------------------------------------------------
    @abstractmethod
    def verify(self, blob_id: str) -> bool:
        """True when the stored object exists and hashes to its name."""

    @abstractmethod
    def verify_copy(self, blob_id: str) -> bool:
        """True when the bytes readers get (`path_of`) hash to the name."""

    # -- documents beside the objects (the shared-store protocol, `core.store.shared`) ------
    @abstractmethod
    def put_ref(self, name: str, data: bytes) -> None:
        """Write `refs/<name>` whole (atomically: a reader sees the old or the new)."""

    @abstractmethod
    def read_refs(self) -> dict[str, bytes]:
        """Every `refs/<name>` document, by name."""

    @abstractmethod
    def remove_ref(self, name: str) -> None:
        """Delete `refs/<name>`; nothing happens when it is missing."""

    def temporaries(self) -> list[Path]:
        """Leftovers of interrupted writes: never objects, safe to delete when no put runs."""
        return sorted(self.tmp_dir.glob("put-*")) if self.tmp_dir.is_dir() else []

    def corrupt_cache_copies(self) -> list[BlobId]:
        """Local copies of objects whose bytes do not match their name (none without a
        cache: readers then get the objects themselves, which `verify` hashes)."""
        return []

    def evict(self, blob_id: str) -> None:
        """Drop the local copy of an object (none without a cache)."""
        BlobId(blob_id)  # an invalid id is refused by every call
