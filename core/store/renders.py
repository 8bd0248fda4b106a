"""The render catalogue: which stored blob holds the bytes rendered for a content key.

A rendered file (a chart, a predictions CSV, a workbook) is a pure function of its inputs
and of the code that draws it. Rendered once by any process (the mount, fsspec, `serve`,
export, `n4afs render`), its bytes are put in the blob store like any other object and a
small record says which blob answers which key:

    <workspace>/renders/<stamp>/<2 hex>/<sha256 of the key>    "<blob id> <size>\\n"

`stamp` names the renderers' version and the versions of the libraries that shape their
bytes (chosen by the caller: `n4afs.tree.renderers.render_stamp`); a change of either starts
a new folder, and gc drops the old ones (renders are re-creatable, never the source of truth).

Why records beside the index rather than rows in it: readers (the mount, fsspec, `serve`)
render, and readers never hold the index writer's turn; a record is written without any
lock by the first reader that renders. Correct with concurrent readers, a concurrent writer
and a crash at any point:

- the blob is put first (durable: `Store.put` fsyncs), the record second, through a
  temporary renamed over its name, so a record is whole or absent;
- a record is trusted only when its blob exists with the recorded size (local store: one
  `stat`); else it is a miss and the caller renders again;
- the bytes are read hash-checked (the blob id is their sha256), so a record can at worst
  name bytes that are gone or corrupt, never other bytes: the caller renders again.

A render of a changing file (a dataset's RESULTS.csv, its ranking's REPORT.html) is keyed by
the state it shows, and each new state is a new key: its record names a *slot* (`slot:<hex>`,
the file it renders, e.g. RESULTS.xlsx of one dataset and target) among its inputs, and gc
keeps only the newest record of each slot, so they do not pile up between states.

Two processes rendering one key write the same blob and the same record: last rename wins,
both right. A blob put whose record never landed (a crash between the two) is unreferenced:
gc sweeps it after its grace period like any other.

Design: docs/DESIGN.md, "Rendered once, for every process".
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from n4afs_core.errors import N4AError
from n4afs_core.store.ids import BlobId, sha256_hex
from n4afs_core.store.storage import Store

RENDERS = "renders"  # the catalogue's folder in the workspace
_TEMP_PREFIX = ".tmp-"
SLOT = "slot:"  # an input naming the file a changing render is a version of (see above)


def slot_input(name: str) -> str:
    """The slot input of a changing file named `name` (any text that names it for good)."""
    return SLOT + sha256_hex(name.encode("utf-8"))


def _input(token: str) -> str:
    """A record's input: a blob id, or a slot (`slot_input`); anything else is refused."""
    if token.startswith(SLOT):
        return SLOT + str(BlobId(token[len(SLOT) :]))
    return str(BlobId(token))


class RenderCatalogue:
    """Records of one stamp (see the module docstring); `stamp=None` only for gc/verify,
    which look at every stamp."""

    def __init__(self, workspace: Path, store: Store, stamp: str | None = None) -> None:
        self.root = Path(workspace) / RENDERS
        self.store = store
        self.stamp = stamp
        self._local = store.local
        self._folder = os.path.join(self.root, stamp) if stamp is not None else ""
        self.writable = True  # turned off at the first failed write (a read-only workspace)

    @staticmethod
    def digest(key: str) -> str:
        return sha256_hex(key.encode("utf-8"))

    def _record_path(self, digest: str) -> str:
        """A string, not a Path: sizing 5,000 charts joined 20,000 Paths (~10 µs each)."""
        return f"{self._folder}/{digest[:2]}/{digest}"

    def lookup(self, digest: str) -> tuple[str, int] | None:
        """(blob id, size) recorded for `digest`, when its blob is there with that size."""
        try:
            with open(self._record_path(digest), "rb") as record:
                text = record.read(1000)
        except OSError:
            return None
        parts = text.split()
        if not text.endswith(b"\n") or len(parts) < 2 or not parts[1].isdigit():
            return None  # torn or foreign: a miss, overwritten by the next render
        try:
            blob_id = BlobId(parts[0].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return None
        size = int(parts[1])
        if self._local:
            try:
                if os.stat(self.store.file_name(blob_id)).st_size != size:
                    return None
            except OSError:
                return None
        return str(blob_id), size

    def put(self, digest: str, data: bytes, inputs: tuple[str, ...] = ()) -> tuple[str, int] | None:
        """Store `data` and record it under `digest`; None when the workspace cannot be
        written (the render is still served, from memory)."""
        if not self.writable:
            return None
        try:
            blob_id = str(self.store.put(data))
            self.record(digest, blob_id, len(data), inputs)
        except (OSError, N4AError):  # read-only, full, or a store that refuses: in memory
            self.writable = False
            return None
        return blob_id, len(data)

    def record(self, digest: str, blob_id: str, size: int, inputs: tuple[str, ...] = ()) -> None:
        """Write the record whole or not at all: a temporary renamed over its name. Not
        fsynced: a record torn by a power cut reads as a miss (`lookup` checks it), and the
        blob it names was made durable by `put` before."""
        path = self._record_path(digest)
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f"{_TEMP_PREFIX}{digest}.{os.getpid()}.{time.monotonic_ns()}")
        try:
            with open(temp, "wb") as out:
                ids = "".join(f" {_input(i)}" for i in inputs)
                out.write(f"{BlobId(blob_id)} {int(size)}{ids}\n".encode("ascii"))
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    # -- gc and verify ------------------------------------------------------------------
    def stamps(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def records(self, stamp: str) -> Iterator[tuple[Path, str, int]]:
        """(record path, blob id, size) of every whole record of `stamp`."""
        for path, blob_id, size, _ in self.records_with_inputs(stamp):
            yield path, blob_id, size

    def records_with_inputs(self, stamp: str) -> Iterator[tuple[Path, str, int, tuple[str, ...]]]:
        """(record path, blob id, size, its inputs: the blob ids its render was drawn from,
        and its slot if it renders a changing file)."""
        for shard in sorted((self.root / stamp).glob("??")):
            for path in sorted(shard.iterdir()):
                if path.name.startswith(_TEMP_PREFIX):
                    continue
                try:
                    parts = [p.decode("ascii") for p in path.read_bytes().split()]
                    inputs = tuple(_input(p) for p in parts[2:])
                    yield path, str(BlobId(parts[0])), int(parts[1]), inputs
                except (OSError, ValueError, IndexError, UnicodeDecodeError):
                    continue

    def blobs(self, stamps: list[str]) -> set[str]:
        return {blob_id for stamp in stamps for _, blob_id, _ in self.records(stamp)}

    def live_blobs(self, stamps: list[str], referenced: set[str], drop: bool) -> set[str]:
        """The blobs of `stamps`' records whose inputs the index still references (gc marks
        them). A record drawn from a blob the index no longer holds (its result was removed)
        is garbage, and so is a record without inputs (a render keyed by what several files
        share) whose blob no live record names, and a record of a slot that a newer record
        of the same slot replaced (an earlier state of a changing file); with `drop`, such
        records are removed."""
        live: set[str] = set()
        orphans: list[tuple[Path, str]] = []
        newest: dict[str, tuple[float, Path, str]] = {}  # slot -> its newest record
        for stamp in stamps:
            for path, blob_id, _, inputs in self.records_with_inputs(stamp):
                slots = [i for i in inputs if i.startswith(SLOT)]
                blobs = [i for i in inputs if not i.startswith(SLOT)]
                if not inputs:
                    orphans.append((path, blob_id))
                elif not all(i in referenced for i in blobs):
                    if drop:
                        os.unlink(path)
                elif slots:
                    replaced = self._newest(newest, slots[0], path, blob_id)
                    if replaced is not None and drop:
                        os.unlink(replaced)
                else:
                    live.add(blob_id)
        live |= {blob_id for _, _, blob_id in newest.values()}
        for path, blob_id in orphans:
            if blob_id not in live and drop:
                os.unlink(path)
        return live

    @staticmethod
    def _newest(
        newest: dict[str, tuple[float, Path, str]], slot: str, path: Path, blob_id: str
    ) -> Path | None:
        """Keep the newer of `path` and the slot's newest so far; the record it replaces."""
        try:
            written = path.stat().st_mtime
        except OSError:
            return None
        held = newest.get(slot)
        if held is not None and held[0] >= written:
            return path
        newest[slot] = (written, path, blob_id)
        return held[1] if held is not None else None

    def temporaries(self, stamp: str) -> list[Path]:
        return sorted((self.root / stamp).glob(f"??/{_TEMP_PREFIX}*"))

    def drop(self, stamp: str) -> None:
        """Remove a stamp's records (their blobs become unreferenced: gc's sweep takes them)."""
        shutil.rmtree(self.root / stamp, ignore_errors=True)
