"""The operating system's lock on a whole file, shared or exclusive, tried without waiting.

`core.index.lock` builds the workspace's readers/writers protocol on two calls, `try_lock`
and `unlock`, of one backend chosen for the platform:

* `FlockLocks` (Linux, macOS, every POSIX system with `fcntl`): `flock(2)`.
* `WindowsLocks`: `LockFileEx`/`UnlockFileEx` on the whole file, through `ctypes` (no
  dependency). Like `flock`, a Windows lock belongs to the handle that took it: two handles
  of one process exclude each other, and a process that dies releases its locks.

Both give the semantics the protocol needs: several shared holders or one exclusive holder,
per open file, released by the kernel when the holder dies. POSIX record locks (`lockf`,
`fcntl(F_SETLK)`) do not: they belong to the process, so two threads would share a lock and
closing any descriptor of the file drops all of them. They are not used.

Design: docs/DESIGN.md, "Concurrency and failure".
"""

from __future__ import annotations

import os
from typing import Any

from n4afs_core.errors import N4AError

try:  # absent on Windows
    import fcntl
except ImportError:
    fcntl = None  # type: ignore[assignment]


class FileLocks:
    """Whole-file locks on open descriptors: try once, never wait (the caller polls)."""

    name = "none"

    def try_lock(self, fd: int, exclusive: bool) -> bool:
        """Take the lock; False when another holder prevents it now."""
        raise NotImplementedError

    def unlock(self, fd: int) -> None:
        raise NotImplementedError


class FlockLocks(FileLocks):
    name = "flock"

    def try_lock(self, fd: int, exclusive: bool) -> bool:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class WindowsLocks(FileLocks):
    """`LockFileEx` over the whole file (offset 0, length 2**64 - 1), fail-immediately."""

    name = "LockFileEx"
    FAIL_IMMEDIATELY = 0x1
    EXCLUSIVE = 0x2
    LOCK_VIOLATION = (33, 997)  # ERROR_LOCK_VIOLATION, ERROR_IO_PENDING: someone holds it

    def try_lock(self, fd: int, exclusive: bool) -> bool:
        flags = self.FAIL_IMMEDIATELY | (self.EXCLUSIVE if exclusive else 0)
        error = self._lock_file_ex(fd, flags)
        if error in self.LOCK_VIOLATION:
            return False
        if error:
            raise OSError(error, f"LockFileEx failed (Windows error {error})")
        return True

    def unlock(self, fd: int) -> None:
        error = self._unlock_file_ex(fd)
        if error:
            raise OSError(error, f"UnlockFileEx failed (Windows error {error})")

    # The two system calls, each returning 0 or the Windows error code.
    def _lock_file_ex(self, fd: int, flags: int) -> int:
        kernel32, handle, overlapped = self._win32(fd)
        ok = kernel32.LockFileEx(handle, flags, 0, 0xFFFFFFFF, 0xFFFFFFFF, overlapped)
        return 0 if ok else _last_error()

    def _unlock_file_ex(self, fd: int) -> int:
        kernel32, handle, overlapped = self._win32(fd)
        ok = kernel32.UnlockFileEx(handle, 0, 0xFFFFFFFF, 0xFFFFFFFF, overlapped)
        return 0 if ok else _last_error()

    @staticmethod
    def _win32(fd: int) -> tuple[Any, Any, Any]:
        import ctypes
        import msvcrt
        from ctypes import wintypes

        class Overlapped(ctypes.Structure):
            _fields_ = [
                ("Internal", ctypes.c_void_p),
                ("InternalHigh", ctypes.c_void_p),
                ("Offset", wintypes.DWORD),
                ("OffsetHigh", wintypes.DWORD),
                ("hEvent", wintypes.HANDLE),
            ]

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = wintypes.HANDLE(msvcrt.get_osfhandle(fd))
        return kernel32, handle, ctypes.byref(Overlapped())


def _last_error() -> int:
    import ctypes

    return ctypes.get_last_error() or 1


class NoLocks(FileLocks):
    """A platform with neither: say so at the first lock rather than risk a corrupt index."""

    def try_lock(self, fd: int, exclusive: bool) -> bool:
        raise N4AError(
            "this platform offers no whole-file locks (neither flock nor LockFileEx): "
            "n4afs cannot share a workspace safely here"
        )

    def unlock(self, fd: int) -> None:
        self.try_lock(fd, exclusive=False)


def platform_locks() -> FileLocks:
    if fcntl is not None:
        return FlockLocks()
    if os.name == "nt":
        return WindowsLocks()
    return NoLocks()


LOCKS: FileLocks = platform_locks()
