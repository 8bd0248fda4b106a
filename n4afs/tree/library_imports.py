"""Importing libraries on a background thread without racing the threads that serve.

CPython imports each module under its own lock. A package whose `__init__` imports its own
submodules (scikit-learn: `sklearn/__init__` → `sklearn.base` → `sklearn.exceptions` →
`sklearn`) deadlocks when one thread imports the package while another asks for one of
those submodules first; the interpreter breaks the cycle by handing one of them a partially
initialized module (`cannot import name 'clone' from partially initialized module
'sklearn.base'`). The mount imports its chart libraries on its watcher while FUSE callbacks
run (`Tree.prepare`), so for that window another thread's import of anything not loaded yet
waits at `__import__` (before it holds any module's lock) until those imports are done;
an import of a module already loaded does not wait. `importing_in_turns` imports in several
such windows and lets the callbacks waiting at the end of one import before the next starts:
a listing that needs polars waits for polars, not for scikit-learn behind it.
"""

from __future__ import annotations

import builtins
import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_IMPORTING = threading.RLock()
# While the turns import (CPU-bound, holding the GIL), a callback thread waiting for the GIL
# gets it after this long instead of Python's 5 ms: a cold `ls -la` asks ~100 `getattr`s in
# turn, each waiting a switch interval behind the imports (~70 ms at 5 ms).
SERVING_SWITCH_INTERVAL = 0.0005
_WAITING = [0]  # other threads waiting at `__import__` for the current window
_COUNT = threading.Lock()


@contextmanager
def importing_aside() -> Iterator[None]:
    """Within: this thread imports while the other threads' new imports wait for it."""
    with _IMPORTING:
        restore = _install()
        try:
            yield
        finally:
            restore()


def importing_in_turns(
    steps: Iterable[Callable[[], Any]], first: Callable[[], bool] | None = None
) -> bool:
    """Each step holding the lock; between two, the threads that waited for the first
    import theirs (they hold the lock in turn) before the next step starts. Other threads'
    imports go through the lock from the first step to the last, gaps included: a thread
    importing freely in a gap could hold a module's lock that the next step needs while
    waiting for this one (a deadlock).

    `first` runs before the first step, the lock not held but every other thread's new
    imports already going through it one thread at a time (the mount waits there for its
    first burst of callbacks to end: `TreeOperations.until_idle`); when it answers False,
    no step runs. Returns whether the steps ran."""
    with _IMPORTING:
        restore = _install()
    interval = sys.getswitchinterval()
    try:
        if first is not None and not first():
            return False
        sys.setswitchinterval(SERVING_SWITCH_INTERVAL)
        for i, step in enumerate(steps):
            if i:
                while _WAITING[0]:  # a waiting thread takes the lock before this one again
                    time.sleep(0.001)
            with _IMPORTING:
                step()
        return True
    finally:
        sys.setswitchinterval(interval)
        with _IMPORTING:
            restore()


def _install() -> Callable[[], None]:
    """Route every new import through the lock: `import` statements (`builtins.__import__`)
    and `importlib.import_module` (matplotlib loads its backend so: a thread inside that
    call holds the backend's module lock, and waiting for the window there while the window
    imports the same backend was a deadlock). Returns what puts the originals back."""
    original_import, original_module = builtins.__import__, importlib.import_module
    builtins.__import__ = _waiting_import(original_import)
    importlib.import_module = _waiting_import_module(original_module)

    def restore() -> None:
        builtins.__import__, importlib.import_module = original_import, original_module

    return restore


def _waiting_import(original: Any) -> Any:
    def waiting_import(name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if _already_loaded(_absolute(name, globals, level), fromlist or ()):
            return original(name, globals, locals, fromlist, level)
        if level == 0 and name.startswith("encodings."):  # a codec's first lookup (stdlib)
            return original(name, globals, locals, fromlist, level)
        _take_turn()
        try:
            return original(name, globals, locals, fromlist, level)
        finally:
            _IMPORTING.release()

    return waiting_import


def _waiting_import_module(original: Any) -> Any:
    def import_module(name: str, package: str | None = None) -> Any:
        absolute = importlib.util.resolve_name(name, package) if name[:1] == "." else name
        if _already_loaded(absolute, ()):
            return original(name, package)
        _take_turn()
        try:
            return original(name, package)
        finally:
            _IMPORTING.release()

    return import_module


def _take_turn() -> None:
    """Acquire the lock: at once when no window is open (or it is this thread's), else
    counted among the threads that wait for the window (`importing_in_turns`)."""
    if _IMPORTING.acquire(blocking=False):
        return
    with _COUNT:
        _WAITING[0] += 1
    try:
        _IMPORTING.acquire()
    finally:
        with _COUNT:
            _WAITING[0] -= 1


def _absolute(name: str, globals: dict | None, level: int) -> str:  # noqa: A002
    """The module a (relative) import names: `from .transforms import Bbox` inside
    matplotlib's functions is `matplotlib.transforms`, loaded: it must not wait."""
    if level == 0:
        return name
    package = (globals or {}).get("__package__") or ""
    base = package.rsplit(".", level - 1)[0] if level > 1 else package
    return f"{base}.{name}" if name and base else (name or base)


def _already_loaded(name: str, fromlist: Iterable[str]) -> bool:
    """Whether `import name` / `from name import …` only reads finished modules."""
    module = sys.modules.get(name)
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return False
    return all(item == "*" or hasattr(module, item) for item in fromlist)
