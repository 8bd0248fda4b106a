"""Nodes of the tree and where their bytes come from.

A file's content is one of: a whole blob (artifacts: served straight from the object file,
zero copy), bytes rendered in memory (YAML, CSV, PNG; memoized by content), or segments
(`pipeline.pkl`: glue bytes around whole blobs). Each knows its exact size without reading.

Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import os
import re
import stat
from collections import OrderedDict
from collections.abc import Callable, ItemsView, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from operator import attrgetter
from typing import Any, NamedTuple

from n4afs.tree.pipeline_pickle import (
    BlobSegment,
    Segment,
    compose,
    segment_size,
    total_size,
    wrap_legacy,
)

TreePath = tuple[str, ...]

# The modes every surface shows (the mount's `stat`, fsspec's `info`, export's zip entries):
# those a copy should get. `cp -r` and `rsync -a` keep them, and a copy with 0555 folders
# could not be deleted by the user who made it. The tree is no less read-only for it: the
# mount is mounted `ro` (writes are EROFS whatever the mode) and fsspec refuses every write.
DIR_MODE = stat.S_IFDIR | 0o755
FILE_MODE = stat.S_IFREG | 0o644


class RenderMemo:
    """Rendered bytes by (render version, renderer, input ids), least recently used out.

    With `stored` (a `core.store.renders.RenderCatalogue`), a render is also a stored thing:
    its bytes are put in the blob store and recorded under its key the first time any
    process renders it, and every process after learns its size from the record and reads
    its bytes from the blob, without rendering (docs/DESIGN.md, "Rendered once, for every
    process"). Only keys made of plain values (text, numbers, None, tuples of them) are
    stored: their `repr` is the same in every process.
    """

    def __init__(self, max_bytes: int = 256 << 20, stored: Any = None) -> None:
        self.max_bytes = max_bytes
        self.stored = stored
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._found: dict[tuple, tuple[str, int]] = {}  # key -> (blob id, size), stored
        self.renders = 0  # how many times a renderer really ran (tests count it)
        self.stored_reads = 0  # renders served from the store instead

    def size(
        self,
        key: tuple,
        render: Callable[[], bytes],
        persist: bool = True,
        shared: Callable[[], tuple] | None = None,
    ) -> int:
        """The rendered file's size: from memory, else from its stored record (no render,
        no read), else rendered (and stored)."""
        data = self._items.get(key)
        if data is not None:
            return len(data)
        found = self._stored(key, shared) if persist else None
        if found is not None:
            return found[1]
        return len(self.get(key, render, persist, shared))

    def get(
        self,
        key: tuple,
        render: Callable[[], bytes],
        persist: bool = True,
        shared: Callable[[], tuple] | None = None,
    ) -> bytes:
        """`shared`, when given, returns what the bytes really depend on (cheaper to learn
        than drawing them): keys of different files with the same such inputs (a dataset's
        charts, shown in every result of the dataset) are drawn once and stored once."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        found = self._stored(key, shared) if persist else None
        data = self._read_stored(found) if found is not None else None
        if data is None:
            inner = self._inner(key, shared) if shared is not None else None
            data = self._items.get(inner) if inner is not None else None
            if data is None:
                data = render()
                self.renders += 1
                if inner is not None:
                    self._keep(inner, data)
            if found is not None and len(data) != found[1]:  # never serve a size it did not say
                from n4afs_core.errors import BlobCorrupt

                raise BlobCorrupt(
                    f"a rendered file's stored size ({found[1]}) differs from a new render "
                    f"({len(data)}); run `n4afs gc` and read it again"
                )
            if persist and self.stored is not None and plain(key):  # (again, if it was gone)
                put = self._put(key, data)
                if put is not None and inner is not None:
                    self._record(inner, put)
        self._keep(key, data)
        return data

    def known(self, key: tuple) -> tuple[str, int] | None:
        """(blob id, size) of `key`'s stored render when this process or a record knows it;
        None otherwise (never renders)."""
        return self._stored_record(key) if plain(key) else None

    def remember(self, key: tuple, found: tuple[str, int]) -> None:
        """Learn where `key`'s render is stored from elsewhere (a stored result folder
        names it): its size is then known without a record read. A wrong `found` costs a
        render, never a wrong byte: the blob is read hash-checked and sized."""
        self._remember(key, found)

    def stored_bytes(self, key: tuple) -> bytes | None:
        """The bytes stored under `key` (hash-checked), or None: not stored, gone or corrupt."""
        found = self.known(key) if self.stored is not None else None
        return self._read_stored(found) if found is not None else None

    def store(self, key: tuple, data: bytes) -> bool:
        """Store `data` as `key`'s render (a blob and a record naming `key`'s blob ids);
        False when the workspace cannot be written."""
        if self.stored is None or not plain(key):
            return False
        return self._put(key, data) is not None

    def _put(self, key: tuple, data: bytes) -> tuple[str, int] | None:
        """Put `data` and record it under `key` (remembered); None when not writable."""
        put = self.stored.put(self.stored.digest(key_text(key)), data, _record_inputs(key))
        if put is not None:
            self._remember(key, put)
        return put

    def _keep(self, key: tuple, data: bytes) -> None:
        self._items[key] = data
        self._bytes += len(data)
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old)

    @staticmethod
    def _inner(key: tuple, shared: Callable[[], tuple]) -> tuple:
        """The key of what a file's bytes depend on: (render version, "shared", inputs)."""
        from n4afs_core.store.ids import sha256_hex

        return (key[0], "shared", sha256_hex(key_text(shared()).encode("utf-8")))

    def _stored(self, key: tuple, shared: Callable[[], tuple] | None) -> tuple[str, int] | None:
        """The stored render of `key`; else, for a key with `shared` inputs, the render
        stored for those inputs (then recorded under `key` too, so the next process finds
        it without computing them)."""
        found = self._stored_record(key)
        if found is not None or shared is None or self.stored is None or not plain(key):
            return found
        found = self._stored_record(self._inner(key, shared))
        if found is not None:
            self._record(key, found)
        return found

    def _record(self, key: tuple, found: tuple[str, int]) -> None:
        self._remember(key, found)
        if self.stored.writable:
            try:
                self.stored.record(self.stored.digest(key_text(key)), *found, _record_inputs(key))
            except OSError:
                self.stored.writable = False

    def _stored_record(self, key: tuple) -> tuple[str, int] | None:
        found = self._found.get(key)
        if found is not None or self.stored is None or not plain(key):
            return found
        found = self.stored.lookup(self.stored.digest(key_text(key)))
        if found is not None:
            self._remember(key, found)
        return found

    def _remember(self, key: tuple, found: tuple[str, int]) -> None:
        if len(self._found) >= _MAX_FOUND:
            self._found.clear()
        self._found[key] = found

    def _read_stored(self, found: tuple[str, int]) -> bytes | None:
        """The stored render's bytes, hash-checked; None when gone or corrupt (the caller
        renders again: a render is re-creatable)."""
        from n4afs_core.errors import N4AError

        try:
            data = self.stored.store.read(found[0], verify=True)
        except (N4AError, OSError):
            return None
        if len(data) != found[1]:
            return None
        self.stored_reads += 1
        return data


_MAX_FOUND = 500_000  # stored records remembered per process (~100 bytes each)
_PLAIN = (str, int, float, bool, type(None))


def _record_inputs(key: tuple) -> tuple[str, ...]:
    """What a stored render's record names: the blob ids it was drawn from, and for a
    changing file's render, its slot (a key element `("slot", ...)` naming the file it is a
    version of; with the render's version and kind, as RESULTS.csv and RESULTS.xlsx of one
    dataset are two slots): gc keeps the newest record of a slot only."""
    from n4afs_core.store.renders import slot_input

    slot = next((k for k in key if isinstance(k, tuple) and k[:1] == ("slot",)), None)
    ids = _blob_ids(key)
    return ids if slot is None else (*ids, slot_input(key_text((key[:2], slot))))


def _blob_ids(key: Any) -> tuple[str, ...]:
    """The blob ids (64 lower-case hex) among a key's values: what its render was drawn
    from, recorded so gc drops the render once the index no longer holds them. A shared
    key's hex is a digest of its inputs, not a blob: `_inner` keys are recorded without;
    a slot's values name a file, not inputs (`_record_inputs`)."""
    if isinstance(key, tuple):
        if (len(key) == 3 and key[1] == "shared") or key[:1] == ("slot",):
            return ()
        return tuple(dict.fromkeys(i for k in key for i in _blob_ids(k)))
    if isinstance(key, str) and len(key) == 64 and _HEX.fullmatch(key):
        return (key,)
    return ()


_HEX = re.compile(r"[0-9a-f]{64}")


def key_text(key: Any) -> str:
    """A key's text for its record's digest: its `repr`, the same in every process for a
    `plain` key. A blob id's repr is its whole text (`BlobId` has no repr of its own: an
    abbreviated one made keys that differed past 8 hex digits one record, and the second
    was served the first's bytes), so a key read back from a stored result folder, where
    blob ids are plain text, names the same record."""
    return repr(key)


def plain(key: Any) -> bool:
    """A key whose text is the same in every process: plain values and tuples of them."""
    if isinstance(key, tuple):
        return all(plain(k) for k in key)
    return isinstance(key, _PLAIN)


class BlobContent(NamedTuple):
    """A whole blob. A named tuple, as `Node`: built by the hundred thousand per walk."""

    blob_id: str
    size: int


@dataclass(frozen=True)
class BytesContent:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class SegmentsContent:
    """A composed `pipeline.pkl`: (step name, blob id, size, legacy) per step; or, with
    `single`, one step's `.pkl` pickled under the engine's old name, wrapped to load under
    the new one. The segments are built on first stat or read, not when `models/<id>/` is
    listed (a cold `find` lists 120,000 of them at 10,000 results)."""

    steps: tuple[tuple[str, str, int, bool], ...]
    single: bool = False

    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        if self.single:
            _, blob_id, size, _ = self.steps[0]
            return tuple(wrap_legacy(blob_id, size))
        return tuple(compose(list(self.steps)))

    @cached_property
    def size(self) -> int:
        return total_size(list(self.segments))


class LazyContent:
    """Rendered on first need (a size or a read), then memoized by content key, and stored
    (`persist`, the default) so that no other process renders it again.

    Listing a folder never renders: only `stat` (size) and reads do, so a `find` over ten
    thousand results draws no chart; a stored render's `stat` reads one small record.
    A changing file's render is not stored (`file_node(..., mutable=True)` turns `persist`
    off): its key changes with every result, each version would be a blob read once.
    """

    __slots__ = ("memo", "key", "render", "persist", "shared")

    def __init__(
        self,
        memo: RenderMemo,
        key: tuple,
        render: Callable[[], bytes],
        persist: bool = True,
        shared: Callable[[], tuple] | None = None,
    ) -> None:
        """`shared`: see `RenderMemo.get`."""
        self.memo, self.key, self.render = memo, key, render
        self.persist, self.shared = persist, shared

    @property
    def data(self) -> bytes:
        return self.memo.get(self.key, self.render, self.persist, self.shared)

    @property
    def size(self) -> int:
        return self.memo.size(self.key, self.render, self.persist, self.shared)


Content = BlobContent | BytesContent | SegmentsContent | LazyContent


class Node(NamedTuple):
    """A directory or a file of the tree, with everything `stat` needs.

    `mutable` marks what may change while the index changes (listings, RESULTS.csv,
    best_*.csv, RUN.yaml); everything else is content-addressed and never changes.
    Immutable, as the views share nodes; a named tuple rather than a frozen dataclass
    because a cold walk of 10,000 results builds a million of them (~0.25 µs each
    instead of ~0.65 µs).
    """

    name: str
    is_dir: bool
    mtime: float
    content: Content | None = None
    mutable: bool = False

    @property
    def size(self) -> int:
        return self.content.size if self.content is not None else 0

    @property
    def mode(self) -> int:
        """`st_mode`: type and permission bits (`DIR_MODE`, `FILE_MODE`)."""
        return DIR_MODE if self.is_dir else FILE_MODE


class FilesListing(Mapping[str, "Node"]):
    """A folder of immutable files whose names are known before its nodes.

    A cold `find` lists every folder of every result (models/<id>/, predictions/, charts/,
    logs/: about 800,000 files at 10,000 results) and looks none of their files up, so
    building a node and a content object per file there was wasted work, and the larger
    part of the mount's cold `readdir`. `names` answers a listing; the nodes are built from
    `build` on the first lookup of a listed name or iteration of items, and checked then.
    """

    __slots__ = ("names", "_build", "_nodes")

    def __init__(self, names: tuple[str, ...], build: Callable[[], dict[str, Node]]) -> None:
        self.names = names
        self._build: Callable[[], dict[str, Node]] | None = build
        self._nodes: dict[str, Node] | None = None

    def nodes(self) -> dict[str, Node]:
        """Built once. Two threads (an fsspec instance shared by a thread pool) may both
        build; `_nodes` is set before `_build` is dropped, so a thread that finds `_build`
        gone finds `_nodes` set."""
        nodes = self._nodes
        if nodes is None:
            build = self._build
            if build is None:  # another thread has just built them
                return self._nodes
            nodes = build()
            if tuple(nodes) != self.names:
                raise RuntimeError(f"listing {self.names} built as {tuple(nodes)}")
            if any(n.is_dir or n.mutable for n in nodes.values()):
                raise RuntimeError(f"listing {self.names} holds a folder or a changing file")
            self._nodes, self._build = nodes, None  # the closure is not needed again
        return nodes

    @property
    def is_built(self) -> bool:
        return self._nodes is not None

    def __getitem__(self, name: str) -> Node:
        return self.nodes()[name]

    def get(self, name: str, default: Any = None) -> Node | Any:
        """A name not listed is answered without building (lookups of missing names are
        not cached by the kernel: the mount sets `negative_timeout=0`)."""
        if name not in self.names:
            return default
        return self.nodes()[name]

    def items(self) -> ItemsView[str, Node]:
        return self.nodes().items()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names


Listing = dict[str, Node] | FilesListing


def kinds(entries: Listing) -> Iterator[tuple[str, bool]]:
    """(name, is a directory) per entry, without building the nodes of a `FilesListing`.

    Iterators made of builtins (zip, map): a generator here added a Python frame per entry
    to every `readdir`, ~20 % of a warm walk's listing time."""
    if isinstance(entries, FilesListing):
        return zip(entries.names, repeat(False))
    return zip(entries.keys(), map(_IS_DIR, entries.values()), strict=True)


_IS_DIR = attrgetter("is_dir")


def directory(name: str, mtime: float, mutable: bool = True) -> Node:
    return Node(name, True, mtime, None, mutable)


def file_node(
    name: str, mtime: float, content: Content, mutable: bool = False, keyed: bool = False
) -> Node:
    """`keyed`: a changing file whose render key names every input it shows (a new result
    is a new key), so its renders are stored like any other's; other changing files are
    rendered per process, never stored."""
    if mutable and not keyed and isinstance(content, LazyContent):
        content.persist = False
    return Node(name, False, mtime, content, mutable)


def read_range(
    node: Node, offset: int, size: int, path_of: Callable[[str], Any]
) -> bytes | bytearray:
    """Bytes [offset, offset + size) of a file node; blobs are read with pread, no copy.

    A read of 1 MiB or more of a composed file comes back as the `bytearray` it was
    assembled in (copying 200 MiB into `bytes` once more costs as much as reading it);
    smaller reads, which is every FUSE read, are `bytes`."""
    content = node.content
    if content is None:
        raise IsADirectoryError(node.name)
    end = min(offset + size, content.size)
    if offset >= end:
        return b""
    if isinstance(content, (BytesContent, LazyContent)):
        return content.data[offset:end]
    if isinstance(content, BlobContent):
        return _pread(path_of(content.blob_id), offset, end - offset)
    return _read_segments(content.segments, offset, end, path_of)


def _pread(path: Any, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def _read_segments(segments, offset: int, end: int, path_of) -> bytes | bytearray:
    """Fill one preallocated buffer: joining per-segment `bytes` copied every byte twice
    (a 200 MiB `pipeline.pkl` read at half of `open()`'s speed). A range inside one blob
    (most chunks of a streamed big model) is one `pread`, with no zero-filled buffer."""
    position = 0
    for segment in segments:
        length = segment_size(segment)
        if position <= offset and end <= position + length and isinstance(segment, BlobSegment):
            return _pread(path_of(segment.blob_id), offset - position, end - offset)
        if position + length > offset:
            break
        position += length
    out = bytearray(end - offset)
    view, position, filled = memoryview(out), 0, 0
    for segment in segments:
        length = segment_size(segment)
        lo, hi = max(offset, position), min(end, position + length)
        if lo < hi:
            target = view[filled : filled + hi - lo]
            if isinstance(segment, BlobSegment):
                _preadinto(path_of(segment.blob_id), target, lo - position)
            else:
                target[:] = segment[lo - position : hi - position]
            filled += hi - lo
        position += length
        if position >= end:
            break
    return bytes(out) if len(out) < (1 << 20) else out


def _preadinto(path: Any, target: memoryview, offset: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        while len(target):
            got = os.preadv(fd, [target], offset)
            if not got:
                raise OSError(f"{path}: blob shorter than the index says")
            target, offset = target[got:], offset + got
    finally:
        os.close(fd)
