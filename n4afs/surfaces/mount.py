"""Mounting and unmounting: the checks around the FUSE adapter, and the background daemon.

`n4afs mount` runs the checks a user needs explained (no /dev/fuse, no libfuse, mountpoint
busy, not empty, a stale mount left by a killed daemon) before anything starts; then it
starts `n4afs mount --foreground` as a detached process and waits until the kernel shows
the mount, so when the command returns the tree is there (or the daemon's error is shown).

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from n4afs_core.errors import MountError

from n4afs.surfaces.daemon import start_detached, state_dir


def check_fuse(platform: str = sys.platform) -> None:
    """FUSE needs the kernel device, libfuse 3, and (unless root) fusermount3 on Linux;
    on macOS, macFUSE or FUSE-T (neither has /dev/fuse: mfusepy finds their library);
    Windows has no FUSE n4afs can use: `n4afs serve` is the way there."""
    if platform == "win32":
        raise MountError(
            "Windows has no FUSE mount for n4afs: serve the tree with `n4afs serve` and map "
            "it as a network drive, or mount it inside WSL2 (see the README)"
        )
    if platform == "darwin":
        _load_libfuse(
            "install macFUSE (https://osxfuse.github.io) or FUSE-T (https://www.fuse-t.org)"
        )
        return
    if not os.path.exists("/dev/fuse"):
        raise MountError(
            "FUSE is unavailable: /dev/fuse does not exist; load the module (`modprobe fuse`) "
            "or, in a container, start it with `--device /dev/fuse --cap-add SYS_ADMIN`"
        )
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise MountError(
            "not permitted to use /dev/fuse: run as a user of the `fuse` group or as root"
        )
    _load_libfuse("install Debian's fuse3 (`sudo apt-get install fuse3`)")
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        raise MountError(
            "fusermount3 is missing: install Debian's fuse3 (`sudo apt-get install fuse3`)"
        )


def _load_libfuse(how: str) -> None:
    try:
        import n4afs.surfaces.fuse_ops  # noqa: F401  (loads libfuse through mfusepy)
    except OSError as exc:
        raise MountError(f"libfuse was not found ({exc}): {how}") from exc


def is_stale(path: str | os.PathLike) -> bool:
    """A mount whose daemon died: the kernel answers ENOTCONN for it.

    `stat` alone is not enough (the kernel may answer it from its attribute cache);
    reading the directory always needs the daemon.
    """
    try:
        with os.scandir(path) as entries:
            next(entries, None)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def check_mountpoint(path: Path) -> None:
    if is_stale(path):
        raise MountError(
            f"{path} holds a stale mount left by a stopped daemon: "
            f"clear it with `n4afs umount {path}`"
        )
    if not path.exists():
        path.mkdir(parents=True)
    if not path.is_dir():
        raise MountError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise MountError(
            f"mountpoint {path} is busy: something is already mounted there "
            f"(`n4afs umount {path}` if it is an n4afs mount)"
        )
    if any(path.iterdir()):
        raise MountError(f"mountpoint {path} is not empty: choose an empty directory")


def start_background(workspace: Path, mountpoint: Path, allow_other: bool) -> Path:
    """Start the daemon detached; return its log file once the mount is up."""
    log_path = workspace / "logs" / "mount.log"
    arguments = ["mount", str(workspace), str(mountpoint), "--foreground"]
    start_detached(
        arguments + (["--allow-other"] if allow_other else []),
        log_path,
        is_up=lambda daemon: os.path.ismount(mountpoint),
        error=MountError,
        what="mount daemon",
    )
    return log_path


def serve(ws: Any, mountpoint: Path, allow_other: bool) -> None:
    """Serve the workspace's tree at `mountpoint` until unmounted (the daemon's body).

    The mount keeps a tree of its own rather than `ws.tree`: one that does not check the
    change token on every call (`auto_refresh=False`: the FUSE layer refreshes it in the
    background), and whose snapshot is loaded before mounting. Libraries are imported by
    the watcher once mounted (`Tree.prepare`); a dataset's results load on the first look
    inside its folder.
    """
    import logging

    from n4afs.surfaces.fuse_ops import serve as serve_fuse
    from n4afs.tree.tree import Tree

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tree = Tree(ws, auto_refresh=False, store_folders_later=True)
    tree.refresh()  # the datasets and counts only: results load per dataset, when browsed
    record = register(mountpoint, ws.path.absolute())
    try:
        serve_fuse(tree, str(mountpoint), allow_other=allow_other)
    finally:
        record.unlink(missing_ok=True)


def unmount(mountpoint: Path) -> str:
    """Unmount an n4afs mount, stale or live; returns what was done."""
    stale = is_stale(mountpoint)
    if not stale and not os.path.ismount(mountpoint):
        raise MountError(f"{mountpoint} is not mounted")
    command = _unmount_command(mountpoint, lazy=stale)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip()
        raise MountError(
            f"could not unmount {mountpoint}: {reason} (close files and shells "
            "using it, then retry)"
        )
    return "cleared stale mount" if stale else "unmounted"


def _unmount_command(mountpoint: Path, lazy: bool, platform: str = sys.platform) -> list[str]:
    """Linux: fusermount3 (or umount as root); macOS: umount (macFUSE and FUSE-T let the
    user who mounted unmount); Windows has no n4afs mounts."""
    if platform == "win32":
        raise MountError(
            "Windows has no FUSE mount for n4afs; a server started by `n4afs serve` stops "
            "with `n4afs serve --stop`"
        )
    if platform == "darwin":
        return ["umount", *(["-f"] if lazy else []), str(mountpoint)]
    if shutil.which("fusermount3"):
        return ["fusermount3", "-u", *(["-z"] if lazy else []), str(mountpoint)]
    if os.geteuid() == 0:
        return ["umount", *(["-l"] if lazy else []), str(mountpoint)]
    raise MountError(
        "fusermount3 is missing: install Debian's fuse3 (`sudo apt-get install fuse3`)"
    )


# -- which workspace is mounted where ----------------------------------------------------
def registry_dir() -> Path:
    return state_dir() / "mounts"


def _record_path(mountpoint: Path) -> Path:
    import hashlib

    key = hashlib.sha256(str(mountpoint).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return registry_dir() / f"{key}.json"


def register(mountpoint: Path, workspace: Path) -> Path:
    """Written by the daemon while it serves, so a mounted path leads back to its workspace."""
    import json

    record = _record_path(mountpoint)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps({"mountpoint": str(mountpoint), "workspace": str(workspace), "pid": os.getpid()})
    )
    return record


def locate(path: Path) -> tuple[Path, tuple[str, ...]] | None:
    """(workspace, tree path) for a path inside a live n4afs mount, else None."""
    import json

    path = Path(os.path.abspath(path))
    for candidate in [path, *path.parents]:
        record = _record_path(candidate)
        if record.exists() and os.path.ismount(candidate):
            workspace = Path(json.loads(record.read_text())["workspace"])
            return workspace, path.relative_to(candidate).parts
    return None
