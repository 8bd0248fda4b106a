"""The FUSE adapter: kernel callbacks translated to the shared tree, nothing more.

Speed comes from doing little per call (measured on these machines: docs/PERF-NOTES.md): `open`
only checks the file's blobs (a `stat` each) and the kernel keeps pages across opens; no
xattr or `statfs` callbacks (mfusepy registers only what is implemented, the kernel stops
asking for what is missing, and libfuse answers the `statfs` that `du` sends per directory
without Python); `release` only drops the handle of a changing file; `readdir` yields
`(name, mode, 0)`, and READDIRPLUS adds the attributes of directories and
content-addressed files (`_KernelFuse`), so `find` and `ls -la` need no LOOKUP for them;
reads are `pread` on the blob file, and the tree answers from memory.
The mount runs single-threaded (`nothreads`), so what a callback reads is bounded: the
snapshot loaded before mounting holds the datasets, runs and per-dataset counts only; a
dataset's results load on the first look inside its folder (~0.26 s at 10,000 results), a
page of 256 results' model and score rows on the first `models/` among them (~0.14 s). The
index is polled and reloaded by a watcher thread, which also imports the chart libraries
once mounted and, after a refresh, loads again the datasets browsed before. Charts render
inside the first `stat` of their file (~50 ms).

Kernel caching and freshness: attributes and entries are cached for long (content never
changes under a name, except for the few mutable nodes) and when the index changes the
watcher asks libfuse to invalidate every mutable path it had served (listings,
RESULTS.csv, best_*.csv, best/<dataset>.csv, RUN.yaml) and every path gone from the tree (a
removed result's folder and all below it, whose entries the kernel would otherwise keep for
an hour), so nothing stale survives more than one poll interval. Negative lookups are not
cached, so a result folder created after someone looked for it appears at once. Listings
themselves are not cached by the kernel: libfuse 3.14's high-level API (Debian 12) drops the
`cache_readdir` an `opendir` sets (fixed in libfuse 3.16.1, libfuse PR #822; measured: a
`readdir` per `ls`), so each listing is asked for again and is always current. A reader
that opened a changing file reads the version it opened to its end (`open`).

Integrity: a blob is hash-checked on its first open or read in a mount session, then
re-hashed whenever its file changed since (size, mtime, ctime or inode: one `stat` per open
and per read, `core.store.verified`); a mismatch, a missing blob or an unreadable one is EIO in
every callback (`_eio`), never wrong bytes.

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import ctypes
import errno
import gc
import logging
import os
import threading
import time
from typing import Any

from n4afs_core.errors import MountError, N4AError

from n4afs.tree.content import (
    DIR_MODE,
    FILE_MODE,
    BlobContent,
    BytesContent,
    FilesListing,
    Node,
    SegmentsContent,
    kinds,
)
from n4afs.tree.tree import Tree

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # prefer libfuse 3: larger reads

import mfusepy  # noqa: E402  (after choosing the library)

log = logging.getLogger("n4afs.mount")
POLL_SECONDS = 0.2
# The watcher imports the chart libraries once callbacks pause this long (`until_idle`): a
# fresh mount's first listings, answered from stored renders, need none of them and ran ~3x
# slower beside the imports (the GIL); a busy mount's callbacks import what they need.
IDLE_SECONDS = 0.1
# While idle, the watcher stores the result folders looked into, this long at a time (a
# folder ~2 ms, most of it its blob's fsync): a callback arriving waits for one slice at most.
STORE_SLICE_SECONDS = 0.005
READDIR_PLUS = 1  # libfuse's FUSE_READDIR_PLUS: the kernel asked for READDIRPLUS
FILL_DIR_PLUS = 2  # libfuse's FUSE_FILL_DIR_PLUS: this entry carries its attributes
# The kernel-side levers in use; scripts/bench_mount.py --levers measures each alone.
# "readdirplus": READDIRPLUS answered with attributes (`_KernelFuse`); "readdirplus_files":
# the files of a `FilesListing` too (builds their nodes); "readdir_ino": libfuse's option
# (an inode number in plain READDIR entries already known to it); "readdirplus_once":
# attributes only the first time a listing object is sent (the kernel then holds them).
LEVERS = {"readdirplus", "readdirplus_once"}
# Contents whose size is known without rendering or reading anything (`plus_listing`).
_CHEAP_SIZE = (BlobContent, BytesContent, SegmentsContent)


class TreeOperations(mfusepy.Operations):
    use_ns = True

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.uid, self.gid = os.getuid(), os.getgid()
        self._fuse_ptr: int | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._gc = IdleCollector()
        self._open_files: dict[int, Node] = {}  # handle -> pinned changing file (`open`)
        self._last_fh = 0
        self._pinned_stats: set[tuple[str, ...]] = set()  # see `getattr`
        self._pinned_lock = threading.Lock()
        # paths whose listing went out with attributes in this generation: paths, not the
        # listings (holding those would keep every listing a walk built, past `_Listings`)
        self._plussed: set[tuple[str, ...]] = set()
        self.calls = 0  # callbacks begun (`_KernelFuse._wrapper`, `until_idle`)
        self.in_flight = 0  # callbacks begun and not ended

    # -- lifecycle ----------------------------------------------------------------------
    def init_with_config(self, conn: Any, config: Any) -> None:
        self._fuse_ptr = mfusepy._libfuse.fuse_get_context().contents.fuse
        self._watcher = threading.Thread(target=self._watch, name="n4afs-watch", daemon=True)
        self._watcher.start()

    def destroy(self, path: str) -> None:
        """Stop the watcher and wait for it: a process that exits while a thread is inside
        DuckDB aborts (SIGABRT) instead of exiting cleanly."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)

    def _watch(self) -> None:
        """Reload the tree when the index moves, invalidate what may have changed, read
        the new results' rows for `models/` and `predictions/`, so no callback waits, and
        collect cyclic garbage when the daemon is idle. Once the first callbacks pause, it
        imports what the first chart and report need (`Tree.prepare`). While no callback
        comes, it stores the result folders looked into (`_store_folders`)."""
        started = time.monotonic()
        try:
            if self.tree.prepare(self.until_idle):
                log.info(
                    "chart libraries imported, %.1f s after mounting", time.monotonic() - started
                )
        except Exception:  # a missing chart library fails the chart, not the mount
            log.exception("preparing the chart libraries failed")
        seen = self.calls
        while True:
            self._poll()
            if self.calls == seen and not self.in_flight:  # no callback since the last tick
                self._store_folders()
            seen = self.calls
            if self._stop.wait(POLL_SECONDS):
                return

    def _store_folders(self) -> None:
        """Store the result folders looked into (`Tree.store_looked_at`), in slices short
        enough that a callback arriving meanwhile waits little for the GIL."""
        seen = self.calls
        try:
            while self.calls == seen and not self.in_flight and not self._stop.is_set():
                if not self.tree.store_looked_at(STORE_SLICE_SECONDS):
                    return
        except Exception:  # storing is an optimization: never the mount's failure
            log.exception("storing result folders failed")

    def _poll(self) -> None:
        try:
            if self.tree.refresh():
                self._plussed = set()  # a changed listing goes out with attributes again
                time.sleep(0.05)  # let a callback still holding the old snapshot finish
                previous = self.tree.previous
                self._invalidate(
                    self.tree.mutable_paths(previous) + self.tree.removed_paths(previous)
                )
            self._invalidate(self._take_pinned_stats())
            self.tree.top_up()  # datasets browsed before, ranked again; a flag check otherwise
            self._gc.tick()
        except Exception:  # a failed reload keeps serving the last snapshot
            log.exception("reloading the index failed; serving the previous snapshot")

    def until_idle(self) -> bool:
        """Poll as the watcher does (`_poll`) until no callback came for `IDLE_SECONDS` and
        none is in progress (a fresh mount's first burst of listings is over): True; False
        on unmount (nothing left to prepare for)."""
        seen = -1
        while self.calls != seen or self.in_flight:
            seen = self.calls
            if self._stop.wait(IDLE_SECONDS):
                return False
            self._poll()
        return True

    def _take_pinned_stats(self) -> list[tuple[str, ...]]:
        with self._pinned_lock:
            paths, self._pinned_stats = list(self._pinned_stats), set()
        return paths

    def _invalidate(self, paths: list[tuple[str, ...]]) -> None:
        invalidate = mfusepy._libfuse.fuse_invalidate_path
        invalidate.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        for path in paths:
            invalidate(self._fuse_ptr, ("/" + "/".join(path)).encode("utf-8", "surrogateescape"))

    # -- metadata -----------------------------------------------------------------------
    def _node(self, path: str) -> Node:
        parts = _parts(path)
        try:
            node = self.tree.lookup(parts)
        except SERVING_ERRORS as exc:
            raise _eio("lookup", path, exc) from exc
        if node is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return node

    def getattr(self, path: str, fi: Any = None) -> dict[str, Any]:
        """`fstat` of an open changing file answers for the version it opened.

        The kernel caches that answer for the path, as if it were any `stat`: when the
        version opened is older than the tree's, that would show its size to every later
        `stat` for as long as the attribute timeout. So the watcher invalidates the path
        again on its next poll: the cache holds an outdated answer one poll at most."""
        pinned = self._open_files.get(fi.fh) if fi is not None else None
        if pinned is not None and self._outdated(pinned, path):
            with self._pinned_lock:
                self._pinned_stats.add(_parts(path))
        node = pinned or self._node(path)
        try:
            size = node.size  # renders a CSV or chart: reads its blobs
        except SERVING_ERRORS as exc:
            raise _eio("getattr", path, exc) from exc
        return self._attrs(node, size)

    def _outdated(self, pinned: Node, path: str) -> bool:
        """True when the tree now serves another version of this open file."""
        try:
            current = self.tree.lookup(_parts(path))
            return current is None or current.size != pinned.size
        except SERVING_ERRORS:
            return True

    def readdir(self, path: str, fh: Any) -> Any:
        try:
            entries = self.tree.list_kinds(_parts(path))
        except SERVING_ERRORS as exc:
            raise _eio("readdir", path, exc) from exc
        if entries is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        yield ".", DIR_MODE, 0
        yield "..", DIR_MODE, 0
        for name, is_dir in entries:
            yield name, DIR_MODE if is_dir else FILE_MODE, 0

    def plain_listing(self, path: str) -> list[tuple[str, int, None]]:
        """`readdir`'s entries as a list, without attributes (`_KernelFuse`)."""
        return [(name, mode, None) for name, mode, _ in self.readdir(path, 0)]

    def plus_listing(self, path: str) -> list[tuple[str, int, dict[str, Any] | None]]:
        """(name, mode, attributes or None) per entry, for READDIRPLUS (`_KernelFuse`).

        Attributes come only where they cost nothing and never change under the name:
        directories and content-addressed files of known size. A changing file
        (RESULTS.csv, ...) or a rendered one (a chart: ~50 ms) is left to a later
        `getattr`, and so are the files of a `FilesListing` (models/<id>/, predictions/):
        a names-only `find` never looks them up, and building their nodes here would
        cost a cold walk what that listing saves. The kernel then knows the entries that
        carry attributes without a LOOKUP each (`find` descends, `ls -la` stats)."""
        parts = _parts(path)
        try:
            entries = self.tree.list_dir(parts)
        except SERVING_ERRORS as exc:
            raise _eio("readdir", path, exc) from exc
        if entries is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        out: list[tuple[str, int, dict[str, Any] | None]] = [
            (".", DIR_MODE, None),
            ("..", DIR_MODE, None),
        ]
        sent = parts in self._plussed  # a generation's listing at a path never changes
        if "readdirplus_once" in LEVERS:
            self._plussed.add(parts)
        if sent or (isinstance(entries, FilesListing) and "readdirplus_files" not in LEVERS):
            out += [(name, DIR_MODE if d else FILE_MODE, None) for name, d in kinds(entries)]
            return out
        for name, node in entries.items():
            cheap = node.is_dir or (not node.mutable and isinstance(node.content, _CHEAP_SIZE))
            out.append((name, node.mode, self._attrs(node, node.size) if cheap else None))
        return out

    def _attrs(self, node: Node, size: int) -> dict[str, Any]:
        mtime_ns = int(node.mtime * 1e9)
        return {
            "st_mode": node.mode,
            "st_nlink": 2 if node.is_dir else 1,
            "st_size": size,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_mtime": mtime_ns,
            "st_ctime": mtime_ns,
            "st_atime": mtime_ns,
            "st_blksize": 256 * 1024,  # invite large reads
            "st_blocks": (size + 511) // 512,
        }

    # -- data ---------------------------------------------------------------------------
    def open(self, path: str, fi: Any) -> int:
        """Check the file's blobs on every open: one `stat` each while unchanged since
        they were hashed, a re-hash otherwise (`core.store.verified`); a mismatch is EIO here.
        The kernel keeps the file's pages across opens (`kernel_cache`), so without this
        callback (ENOSYS, the kernel's "no_open" mode, tried before) a blob changed on
        disk after its first read was never looked at again in the session.

        A changing file (`node.mutable`) is pinned: the handle keeps the version opened
        (`Tree.open`), every read of it is served from that, and it bypasses the page
        cache (`direct_io`): pages are per path, so a cached page of another version, or
        the size of another version, would tear the read. Other files never change under
        a name: handle 0, read by path, pages kept across opens."""
        node = self._node(path)
        try:
            opened = self.tree.open(node)
        except SERVING_ERRORS as exc:
            raise _eio("open", path, exc) from exc
        fi.fh = 0
        if node.mutable:
            self._last_fh += 1
            fi.fh, fi.direct_io = self._last_fh, 1
            self._open_files[fi.fh] = opened
        return 0

    def release(self, path: str, fi: Any) -> int:
        self._open_files.pop(fi.fh, None)
        return 0

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        node = self._open_files.get(fi.fh) or self._node(path)
        try:
            return self.tree.read(node, offset, size)  # blobs checked again: a `stat` each
        except SERVING_ERRORS as exc:
            raise _eio("read", path, exc) from exc


class _KernelFuse(mfusepy.FUSE):
    """mfusepy's FUSE with READDIRPLUS answered: entries carry their attributes.

    mfusepy 3.1 fills every entry with its mode only, so after a listing the kernel sends
    a LOOKUP per entry it then touches. Here, when the kernel asks for READDIRPLUS, each
    entry `TreeOperations.plus_listing` gives attributes for goes out with them
    (FUSE_FILL_DIR_PLUS; libfuse registers the node and the entry/attr timeouts apply):
    libfuse 3.14 keeps those attributes only in its offset mode (a non-zero offset per
    entry; in its buffered mode it drops them), so entries are numbered 1..n and the
    listing of the directory read last is kept for the next chunks of the same listing
    (offset > 0), asked for with READDIRPLUS or plain READDIR (the kernel's auto mode asks
    for attributes on the first chunk only). `LEVERS` without "readdirplus": mfusepy's
    answer (buffered, modes only)."""

    def __init__(self, operations: TreeOperations, *args: Any, **kwargs: Any) -> None:
        self._listed: tuple[str, list] | None = None  # (path, plus_listing) read last
        super().__init__(operations, *args, **kwargs)

    def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """mfusepy's entry to every callback: counted, for `TreeOperations.until_idle`
        (one callback thread: `nothreads`)."""
        operations = self.operations
        operations.calls += 1
        operations.in_flight += 1
        try:
            return super()._wrapper(func, *args, **kwargs)
        finally:
            operations.in_flight -= 1

    def readdir_fuse_3(
        self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int
    ) -> int:
        if "readdirplus" not in LEVERS or path is None:
            return super().readdir_fuse_3(path, buf, filler, offset, fip, flags)
        decoded = path.decode(self.encoding, self.errors)
        plus = flags & READDIR_PLUS
        listed = self._listed
        if offset == 0 or listed is None or listed[0] != decoded:
            # a new listing: with attributes when the kernel asks for them (in its auto
            # mode it asks on the first chunk); later chunks, READDIRPLUS or not, and the
            # empty one that ends the listing are served from it
            entries = (self.operations.plus_listing if plus else self.operations.plain_listing)(
                decoded
            )
            listed = self._listed = (decoded, entries)
        entries = listed[1]
        st = mfusepy.c_stat()
        for index in range(offset, len(entries)):
            name, mode, attrs = entries[index]
            ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
            st.st_mode = mode
            if plus and attrs is not None:
                mfusepy.set_st_attrs(st, attrs, use_ns=True)
                fill = FILL_DIR_PLUS
            else:
                fill = 0
            if filler(buf, name.encode(self.encoding, self.errors), st, index + 1, fill):
                break  # the kernel's buffer is full: it asks again from this offset
        return 0


# What serving a path may raise when its blobs are missing (BlobNotFound), do not match
# their name (BlobCorrupt), or cannot be read (OSError): all mean "this file exists but its
# bytes cannot be served", EIO in every callback, never EINVAL or ENOENT.
SERVING_ERRORS = (N4AError, OSError)


def _eio(operation: str, path: str, exc: BaseException) -> mfusepy.FuseOSError:
    """The one translation of a serving error to errno, logged with its cause."""
    if isinstance(exc, mfusepy.FuseOSError):
        return exc
    log.error("%s %s failed: %s", operation, path, exc)
    return mfusepy.FuseOSError(errno.EIO)


def _parts(path: str) -> tuple[str, ...]:
    """'/runs/wheat/' -> ('runs', 'wheat'); the kernel never sends '.' or '..' here."""
    return tuple(filter(None, path.split("/")))


def _tune_gc() -> None:
    """Turn the daemon's automatic cyclic GC off; `IdleCollector` runs it when idle.

    A cold walk builds a million long-lived nodes, and automatic collections rescan them
    again and again, inside callbacks: in process, a cold walk of a 10,000-result tree took
    17.0 s with default thresholds, 4.1 s with rare ones (100000, 50, 100) and 3.5 s with
    none. The tree makes no reference cycles of its own: refcounting frees a replaced
    generation (tests/test_fuse_gc.py checks it). Only the daemon does this: it is our
    process, unlike a user's that uses fsspec."""
    gc.collect()
    gc.freeze()  # what exists now (modules, the first snapshot) is never rescanned
    gc.disable()


class IdleCollector:
    """Collect cyclic garbage (a chart render's figures, for instance) when callbacks
    have allocated next to nothing since the last tick, or after very many new objects
    even when busy. Each collection freezes the survivors, so no object is scanned twice."""

    IDLE_OBJECTS = 100_000  # collect at the first idle tick past this many new objects
    BUSY_OBJECTS = 20_000_000  # collect anyway past this many (~2 GB of small objects)
    IDLE_SLACK = 1_000  # new objects per tick that still count as idle (the watcher's own)

    def __init__(self) -> None:
        self.last = gc.get_count()[0]
        self.collections = 0

    def tick(self) -> None:
        count = gc.get_count()[0]  # tracked objects allocated minus freed since the last
        idle = count - self.last < self.IDLE_SLACK
        if count > self.BUSY_OBJECTS or (idle and count > self.IDLE_OBJECTS):
            gc.collect()
            gc.freeze()
            self.collections += 1
            count = gc.get_count()[0]
        self.last = count


def serve(tree: Tree, mountpoint: str, allow_other: bool = False) -> None:
    """Mount and serve until unmounted or signalled (SIGINT/SIGTERM unmount cleanly)."""
    options = {
        "foreground": True,
        "nothreads": True,
        "ro": True,
        "fsname": "n4afs",
        "subtype": "n4afs",
        "kernel_cache": True,
        "entry_timeout": 3600,
        "attr_timeout": 3600,
        "negative_timeout": 0,
    }
    if "readdir_ino" in LEVERS:  # measured alone by scripts/bench_mount.py --levers
        options["readdir_ino"] = True
    if allow_other:
        options["allow_other"] = True
    _tune_gc()
    started = time.monotonic()
    log.info("serving %s on %s", tree.ws.path, mountpoint)
    try:
        _KernelFuse(TreeOperations(tree), mountpoint, raw_fi=True, **options)
    except RuntimeError as exc:
        # libfuse 3 reports a loop ended by SIGINT/SIGTERM as error 8 after it has already
        # unmounted cleanly; anything else (or a mount still present) is a real failure
        if os.path.ismount(mountpoint) or str(exc) != "8":
            raise MountError(f"the FUSE session on {mountpoint} failed (libfuse: {exc})") from exc
    log.info("unmounted %s after %.0f s", mountpoint, time.monotonic() - started)
