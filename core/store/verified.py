"""Which blob files were hash-checked, and whether they are still the files that were.

Readers that serve a blob many times (the mount, fsspec, export) hash it once, then trust
it only while its file is the one they hashed: same inode, size, mtime and ctime. Any write
to the file moves its mtime and ctime; a `chmod` (needed before a write: objects are 0444)
or an `os.utime` back to the old mtime still moves its ctime, which no user call can set.
So one `os.stat` (~1-2 µs) per use stands for a re-hash, and a byte flipped after the first
read is found on the next one instead of being served for the rest of the session.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from n4afs_core.errors import BlobCorrupt, BlobUnreadable
from n4afs_core.store.ids import BlobId, hash_stream
from n4afs_core.store.storage import not_found

Stamp = tuple[int, int, int, int]  # st_size, st_mtime_ns, st_ctime_ns, st_ino


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class VerifiedBlobs:
    """Blob id -> the stamp of the file that hashed to it; `check` re-hashes on a change.

    `path_of` is the store's: a local object, or the local cache copy of a remote one.
    Safe to share between threads (an fsspec instance in a thread pool): two threads may
    both hash a changed blob, and the later stamp wins, which is still a verified one.
    """

    def __init__(self, path_of: Callable[[str], Any]) -> None:
        self.path_of = path_of
        # blob id -> (its file as a string, the stamp it had when it hashed right): the
        # path is kept so that the common case is one `os.stat` (`path_of` validates the id
        # and joins paths, ~4x a stat)
        self._verified: dict[str, tuple[str, Stamp]] = {}
        self._lock = threading.Lock()
        self.hashes = 0  # how many times a file was really hashed (tests and benchmarks)

    def check(self, blob_id: str) -> None:
        """Return if the blob's file is the one verified before, else hash it again.

        Raises BlobNotFound when the object is gone, BlobUnreadable when it cannot be read,
        BlobCorrupt when its bytes do not match its name (the blob then stays unverified:
        every later use checks again)."""
        known = self._verified.get(blob_id)
        if known is not None:
            try:
                if stamp_of(os.stat(known[0])) == known[1]:
                    return
            except OSError:
                pass  # gone (a remote copy evicted: `path_of` fetches it again) or unreadable
            self._verified.pop(blob_id, None)
        path = str(self.path_of(blob_id))
        try:
            with open(path, "rb") as stream:
                hashed = stamp_of(os.fstat(stream.fileno()))  # before reading: a write
                digest = hash_stream(stream)  # during it moves ctime
        except FileNotFoundError as exc:
            raise not_found(blob_id) from exc
        except OSError as exc:
            raise unreadable(blob_id, exc) from exc
        with self._lock:
            self.hashes += 1
        if digest != blob_id:
            raise BlobCorrupt(
                f"blob {BlobId(blob_id).short} does not match its sha256; run `n4afs verify`"
            )
        self._verified[blob_id] = (path, hashed)


def unreadable(blob_id: str, exc: OSError) -> BlobUnreadable:
    return BlobUnreadable(
        f"blob {BlobId(blob_id).short} cannot be read ({exc.strerror or exc}); "
        "check the store's permissions and disk, then run `n4afs verify`"
    )
