"""The floor: the least a Python FUSE layer can do, serving a directory tree from a dict.

A yardstick, not a product. The mount's targets are "within 1.2x of the floor", the
floor being a minimal mfusepy filesystem built with the docs/PERF-NOTES.md recipe ("FUSE levers"):
libfuse 3 (`FUSE_LIBRARY_NAME=fuse3`), `nothreads`, `kernel_cache`, long `attr_timeout` /
`entry_timeout`, `negative_timeout=0` (as n4afs), and only `getattr`, `readdir` (yielding
`(name, mode, 0)`) and `read` implemented: no `open`, `release`, `statfs` or xattr callbacks,
so libfuse answers those without Python. scripts/bench_mount.py mounts it beside the n4afs
mount on the same tree, so "within 1.2x of the floor" is checked on the same names, in the
same run, under the same load.

It serves a copy of DISK_ROOT as it was when walked: every name, type, size (directories
too, so `du -sb` gives the disk's total) and mtime from one walk, held in a dict; the bytes
by `os.pread` on the disk file (opened and closed per request, as n4afs does), so the
floor reads the same page cache as the disk side. Getattr returns the same fields as
n4afs's.

`--no-open` adds the one lever PERF-NOTES does not list and n4afs uses: `open` answers
ENOSYS once, so the kernel stops sending OPEN and RELEASE (its "no_open" mode). Measured
with and without, it tells which part of a difference is that lever and which is n4afs.

`--index FILE` keeps the walk in FILE (marshal): the first start walks and writes it, later
starts load it (about 1 s for a million entries instead of a walk), which is what makes
the cold passes (a fresh mount before each) affordable.

Run: python scripts/_floor_fs.py DISK_ROOT MOUNTPOINT [--no-open] [--index FILE]
(foreground; unmount with `fusermount3 -u MOUNTPOINT`, or SIGINT / SIGTERM).
"""

from __future__ import annotations

import argparse
import errno
import gc
import marshal
import os
import stat
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # as n4afs: libfuse 3, larger reads

import mfusepy  # noqa: E402  (after choosing the library)

# path ("/" + relative path) -> (mode, size, mtime_ns, listing); listing is None for a
# file, else the readdir answer: [(name, mode, 0), ...] including "." and ".."
Entry = tuple[int, int, int, list | None]


def walk(root: str) -> dict[str, Entry]:
    """Every entry under `root`, by `lstat`, with each directory's listing."""
    entries: dict[str, Entry] = {}
    top = os.lstat(root)
    stack = [("/", top)]
    while stack:
        path, st = stack.pop()
        listing: list = [(".", st.st_mode, 0), ("..", st.st_mode, 0)]
        prefix = path if path == "/" else path + "/"
        with os.scandir(root + path) as it:
            for item in sorted(it, key=lambda e: e.name):
                child = item.stat(follow_symlinks=False)
                listing.append((item.name, child.st_mode, 0))
                name = prefix + item.name
                if stat.S_ISDIR(child.st_mode):
                    stack.append((name, child))
                else:
                    entries[name] = (child.st_mode, child.st_size, child.st_mtime_ns, None)
        entries[path] = (st.st_mode, st.st_size, st.st_mtime_ns, listing)
    return entries


def load(root: str, index: Path | None) -> dict[str, Entry]:
    """The walk, from `index` when it exists; written there otherwise. The objects are
    frozen out of the cyclic GC: a million long-lived tuples would be rescanned again
    and again otherwise (n4afs's daemon does the same)."""
    gc.disable()
    if index is not None and index.exists():
        entries = marshal.loads(index.read_bytes())
    else:
        entries = walk(root)
        if index is not None:  # whole or not at all: a second daemon may load it next
            partial = index.with_name(index.name + f".{os.getpid()}")
            partial.write_bytes(marshal.dumps(entries))
            partial.rename(index)
    gc.freeze()
    gc.enable()
    return entries


class FloorOperations(mfusepy.Operations):
    """getattr, readdir and read from the dict; mfusepy registers nothing else."""

    use_ns = True

    def __init__(self, root: str, entries: dict[str, Entry]) -> None:
        self.root, self.entries = root, entries
        self.uid, self.gid = os.getuid(), os.getgid()

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        entry = self.entries.get(path)
        if entry is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        mode, size, mtime_ns, listing = entry
        return {
            "st_mode": mode,
            "st_nlink": 1 if listing is None else 2,
            "st_size": size,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_mtime": mtime_ns,
            "st_ctime": mtime_ns,
            "st_atime": mtime_ns,
            "st_blksize": 256 * 1024,
            "st_blocks": (size + 511) // 512,
        }

    def readdir(self, path: str, fh: Any) -> list:
        entry = self.entries.get(path)
        if entry is None or entry[3] is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return entry[3]

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        fd = os.open(self.root + path, os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)


class NoOpenFloorOperations(FloorOperations):
    """The floor plus n4afs's `open` lever."""

    def open(self, path: str, flags: int) -> int:
        """ENOSYS once: the kernel stops sending OPEN and RELEASE for files."""
        raise mfusepy.FuseOSError(errno.ENOSYS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("disk_root", type=Path)
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--no-open", action="store_true", help="open answers ENOSYS (no_open)")
    parser.add_argument("--index", type=Path, help="keep the walk in this file (marshal)")
    args = parser.parse_args()
    root = str(args.disk_root.resolve())
    entries = load(root, args.index)
    operations = (NoOpenFloorOperations if args.no_open else FloorOperations)(root, entries)
    try:
        mfusepy.FUSE(
            operations,
            str(args.mountpoint),
            foreground=True,
            nothreads=True,
            ro=True,
            fsname="floor",
            subtype="floor",
            kernel_cache=True,
            entry_timeout=3600,
            attr_timeout=3600,
            negative_timeout=0,
        )
    except RuntimeError as exc:  # libfuse 3: a loop ended by a signal reports 8, unmounted
        if os.path.ismount(args.mountpoint) or str(exc) != "8":
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
