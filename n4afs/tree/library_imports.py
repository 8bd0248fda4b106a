"""Importing libraries on a background thread without racing the threads that serve.

CPython imports each module under its own lock. A package whose `__init__` imports its own
submodules (scikit-learn: `sklearn/__init__` → `sklearn.base` → `sklearn.exceptions` →
`sklearn`) deadlocks when one thread imports the package while another asks for one of
those submodules first; the interpreter breaks the cycle by handing one of them a partially
initialized module (`cannot import name 'clone' from partially initialized module
'sklearn.base'`). The mount imports its chart libraries on its watcher while FUSE callbacks
run (`Tree.prepare`), so for that window another thread's import of anything not loaded yet
waits at `__import__` (before it holds any module's lock) until those imports are done;
an import of a module already loaded does not wait.
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_IMPORTING = threading.RLock()


@contextmanager
def importing_aside() -> Iterator[None]:
    """Within: this thread imports while the other threads' new imports wait for it."""
    with _IMPORTING:
        original = builtins.__import__
        builtins.__import__ = _waiting_import(original)
        try:
            yield
        finally:
            builtins.__import__ = original


def _waiting_import(original: Any) -> Any:
    def waiting_import(name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level == 0 and _already_loaded(name, fromlist or ()):
            return original(name, globals, locals, fromlist, level)
        with _IMPORTING:
            return original(name, globals, locals, fromlist, level)

    return waiting_import


def _already_loaded(name: str, fromlist: Iterable[str]) -> bool:
    """Whether `import name` / `from name import …` only reads finished modules."""
    module = sys.modules.get(name)
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return False
    return all(item == "*" or hasattr(module, item) for item in fromlist)
