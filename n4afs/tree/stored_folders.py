"""A result folder, stored whole: every name, type, mtime and size below it, in one blob.

A cold `du` or `ls -la` of result folders had the tree build each folder from the index
(its dataset's model and score rows) and render every YAML file to learn its size: ~0.1 ms
a file, most of a cold `du` (BENCHMARKS.md, bench_mount). What a complete result's folder
shows never changes under the inputs its key names (`ResultFiles.folder_key`), so the
first process that stats a file in it stores the whole folder as one render (a blob and a
record in the render catalogue, dropped by gc with the result), and every later process
lists, sizes and reads it from that blob, loading no rows and rendering nothing:

    {"": [entry, ...], "models": [...], "models/final_<id>": [...], ...}

one list per folder, in listing order; an entry is `[name, mtime, kind, ...]`:

    "d"                              a folder
    "b", blob id, size               a whole blob (a step's `.pkl`, predictions.parquet)
    "s", steps, single               a composed pickle (`SegmentsContent`)
    "y", text                        a tiny YAML file rendered in memory (its bytes)
    "r", key, blob id | null, size | null
                                     a stored render (CSV, workbook, diagnostics): its
                                     render key, and where it is stored when it was drawn

Not stored: the files of `charts/` (stored renders, sized by their own records) and the
folder's REPORT.html (it shows the run's note, which may be set later): both are built by
the tree as before. The blob is zlib-compressed JSON (YAML text is ~90 % of it).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

from n4afs.tree.content import (
    BlobContent,
    BytesContent,
    FilesListing,
    LazyContent,
    Listing,
    Node,
    RenderMemo,
    SegmentsContent,
    TreePath,
    directory,
    plain,
)

FORMAT = 1  # bump when the layout above changes (it is part of the stored folder's key)
NOT_STORED = "charts"  # the folder of a result folder left to the tree (see above)
KINDS = {"d": 3, "b": 5, "s": 5, "y": 4, "r": 6}  # an entry's kind -> its length

# (path inside the folder, file name, its render key) -> the file's bytes, rendered by the
# tree as before
Resolve = Callable[[TreePath, str, tuple], bytes]


def encode(folders: dict[TreePath, Listing]) -> bytes | None:
    """The stored form of a result folder's listings (path inside it -> listing), or None
    when one of its files cannot be stored (a changing file, a render keyed by shared
    inputs): that folder is then always built by the tree."""
    out: dict[str, list[list[Any]]] = {}
    for path, listing in folders.items():
        entries = []
        for name, node in listing.items():
            entry = _entry(node)
            if entry is None:
                return None
            entries.append([name, node.mtime, *entry])
        out["/".join(path)] = entries
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False)
    try:
        return zlib.compress(text.encode("utf-8"), 6)
    except UnicodeEncodeError:  # a name no UTF-8 can hold: built by the tree
        return None


def _entry(node: Node) -> list[Any] | None:
    if node.mutable:
        return None
    if node.is_dir:
        return ["d"]
    content = node.content
    if isinstance(content, BlobContent):
        return ["b", content.blob_id, content.size]
    if isinstance(content, SegmentsContent):
        return ["s", [list(step) for step in content.steps], content.single]
    if isinstance(content, BytesContent):
        return _text(content.data)
    if isinstance(content, LazyContent) and content.shared is None and plain(content.key):
        if not content.persist:  # tiny YAML: its bytes
            return _text(content.data)
        found = content.memo.known(content.key)
        blob_id, size = found if found is not None else (None, None)
        return ["r", _listed(content.key), blob_id, size]
    return None


def _text(data: bytes) -> list[Any] | None:
    try:
        return ["y", data.decode("utf-8")]
    except UnicodeDecodeError:
        return None


def decode(data: bytes, memo: RenderMemo, resolve: Resolve) -> dict[TreePath, Listing]:
    """The listings `encode` stored. A folder of files only is a `FilesListing`, its nodes
    built on first need, as the tree builds them (a cold `find` lists every folder and
    stats none of their files). A stored render's node is a `LazyContent` under its own
    key (its size and bytes from the store, as the tree's would be), drawn by `resolve`
    only if its blob is gone. Raises ValueError on a blob not in this format."""
    stored = _parsed(data)
    if stored is None:
        raise ValueError("not a stored result folder")
    return {
        tuple(path.split("/")) if path else (): _listing(entries, path, memo, resolve)
        for path, entries in stored.items()
    }


def _parsed(data: bytes) -> dict[str, list[list[Any]]] | None:
    """The stored listings, checked whole (each entry named, of a known kind and length):
    None for a blob not in this format. Nodes are built later, from checked entries."""
    try:
        stored = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError):
        return None
    if not isinstance(stored, dict):
        return None
    for entries in stored.values():
        if not isinstance(entries, list):
            return None
        for e in entries:
            if not (isinstance(e, list) and len(e) >= 3 and isinstance(e[0], str)):
                return None
            if KINDS.get(e[2]) != len(e):
                return None
    return stored


def _listing(entries: list, path: str, memo: RenderMemo, resolve: Resolve) -> Listing:
    def nodes() -> dict[str, Node]:
        return {entry[0]: _node(entry, path, memo, resolve) for entry in entries}

    if any(entry[2] == "d" for entry in entries):
        return nodes()
    return FilesListing(tuple(entry[0] for entry in entries), nodes)


def complete(data: bytes) -> bool:
    """Whether a stored folder names where each of its renders is stored (one stored
    before they were drawn sizes them from their own records: `n4afs render` stores it
    again)."""
    stored = _parsed(data)
    if stored is None:
        return False
    return all(e[2] != "r" or e[4] is not None for entries in stored.values() for e in entries)


def _node(entry: list[Any], path: str, memo: RenderMemo, resolve: Resolve) -> Node:
    """Nodes built as `Node(...)`: a stored folder holds ~40 files, a `du` reads hundreds."""
    name, mtime, kind = entry[0], entry[1], entry[2]
    if kind == "d":
        return directory(name, mtime, mutable=False)
    if kind == "b":
        return Node(name, False, mtime, BlobContent(entry[3], entry[4]))
    if kind == "s":
        steps = tuple(map(tuple, entry[3]))
        return Node(name, False, mtime, SegmentsContent(steps, entry[4]))
    if kind == "y":
        return Node(name, False, mtime, BytesContent(entry[3].encode("utf-8")))
    if kind == "r":
        key, blob_id, size = _keyed(entry[3]), entry[4], entry[5]
        inside = tuple(path.split("/")) if path else ()
        if blob_id is not None:  # sized and read from the store, no record read
            memo.remember(key, (blob_id, size))
        return Node(
            name, False, mtime, LazyContent(memo, key, _render_of(resolve, inside, name, key))
        )
    raise KeyError(kind)


def _render_of(resolve: Resolve, path: TreePath, name: str, key: tuple) -> Callable[[], bytes]:
    return lambda: resolve(path, name, key)


def _listed(key: Any) -> Any:
    """A render key as JSON: tuples as lists (a key holds no lists, `content.plain`)."""
    return [_listed(k) for k in key] if isinstance(key, tuple) else key


def _keyed(value: Any) -> Any:
    """`_listed`'s inverse: the same key, so the same record and the same memo entry."""
    return tuple(_keyed(v) for v in value) if isinstance(value, list) else value
