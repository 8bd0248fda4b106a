"""A prototype, not a product: what libfuse's LOW-LEVEL API (pyfuse3) brings to listings.

scripts/_floor_fs.py is the floor: mfusepy on libfuse's high-level API, the least a Python
FUSE layer can do there. The high-level API of libfuse 3.14 (Debian 12) cannot let the
kernel cache a listing (it drops the `cache_readdir` an `opendir` sets; fixed in 3.16.1)
and answers READDIRPLUS with attributes only in its offset mode. The low-level API can do
both: this serves the same disk copy as the floor (one walk held in memory, inode numbers
of our own), read-only, with `cache_readdir` + `keep_cache` on every `opendir`, READDIRPLUS
with every entry's attributes, entry and attribute timeouts of an hour. pyfuse3 3.5 does
not expose `cache_readdir` either: the prototype runs on a pyfuse3 built with two lines
added to its `opendir` handler (`c.fi.cache_readdir = 1`, `c.fi.keep_cache = 1`, and the
field declared in Include/fuse_common.pxd); unpatched, it measures READDIRPLUS alone. Measured by
`scripts/bench_mount.py --pyfuse3 DIR` on `find` and `ls -la` against the floor, to decide
whether porting the mount to the low-level API is worth it (it is not ported).

Needs pyfuse3 (and trio), built against libfuse3-dev: not a dependency of n4afs; run it
from a throw-away virtual environment.

Run: python scripts/_pyfuse3_proto.py DISK_ROOT MOUNTPOINT
"""

from __future__ import annotations

import errno
import os
import sys

import pyfuse3
import trio

TIMEOUT = 3600.0


class Proto(pyfuse3.Operations):
    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: ""}
        self.inodes: dict[str, int] = {"": pyfuse3.ROOT_INODE}
        self.stats: dict[int, os.stat_result] = {pyfuse3.ROOT_INODE: os.lstat(root)}
        self.listings: dict[int, list[tuple[bytes, int]]] = {}
        self._walk()

    def _walk(self) -> None:
        stack = [""]
        while stack:
            rel = stack.pop()
            ino = self.inodes[rel]
            parent = self.inodes[rel.rpartition("/")[0]] if rel else ino
            listing = [(b".", ino), (b"..", parent)]  # as the floor lists them
            with os.scandir(os.path.join(self.root, rel) if rel else self.root) as it:
                for item in sorted(it, key=lambda e: e.name):
                    child = f"{rel}/{item.name}" if rel else item.name
                    child_ino = len(self.paths) + 1
                    self.paths[child_ino], self.inodes[child] = child, child_ino
                    self.stats[child_ino] = item.stat(follow_symlinks=False)
                    listing.append((item.name.encode("utf-8", "surrogateescape"), child_ino))
                    if item.is_dir(follow_symlinks=False):
                        stack.append(child)
            self.listings[ino] = listing

    def _attr(self, ino: int) -> pyfuse3.EntryAttributes:
        st = self.stats[ino]
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = ino
        entry.st_mode = st.st_mode
        entry.st_nlink = st.st_nlink
        entry.st_size = st.st_size
        entry.st_uid, entry.st_gid = st.st_uid, st.st_gid
        entry.st_mtime_ns = entry.st_ctime_ns = entry.st_atime_ns = st.st_mtime_ns
        entry.st_blksize, entry.st_blocks = 256 * 1024, (st.st_size + 511) // 512
        entry.entry_timeout = entry.attr_timeout = TIMEOUT
        return entry

    async def lookup(self, parent_inode, name, ctx=None):
        parent = self.paths[parent_inode]
        rel = f"{parent}/{os.fsdecode(name)}" if parent else os.fsdecode(name)
        ino = self.inodes.get(rel)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(ino)

    async def getattr(self, inode, ctx=None):
        return self._attr(inode)

    async def opendir(self, inode, ctx):
        return inode

    async def readdir(self, fh, start_id, token):
        listing = self.listings[fh]
        for index in range(start_id, len(listing)):
            name, ino = listing[index]
            if not pyfuse3.readdir_reply(token, name, self._attr(ino), index + 1):
                return

    async def open(self, inode, flags, ctx):
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh, off, size):
        fd = os.open(os.path.join(self.root, self.paths[fh]), os.O_RDONLY)
        try:
            return os.pread(fd, size, off)
        finally:
            os.close(fd)


def main() -> None:
    root, mountpoint = sys.argv[1], sys.argv[2]
    ops = Proto(root)
    options = set(pyfuse3.default_options) | {"fsname=proto", "ro"}
    pyfuse3.init(ops, mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
