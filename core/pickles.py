"""Loading the models n4afs pickled, including those pickled under the engine's old name.

Before 0.2 the engine was installed as a top-level package named `core`, so PLS-DA models
pickled then name `core.operators.PLSDAClassifier`. A user's own `core` package shadowed
it, and loading failed. The engine is now installed under n4afs's own name; this unpickler
reads the old name as the new one. It also reads `pickle.loads` inside a composed
`pipeline.pkl` (n4afs.tree.pipeline_pickle) as its own `loads`, so an old composed file loads too.

Imports nothing heavy: `n4afs_core.pickles.loads` is what an old model's composed file calls.

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import IO, Any

LEGACY_PACKAGE = "core"
PACKAGE = __name__.rpartition(".")[0]  # the name this engine is installed under


def renamed(module: str) -> str:
    """`core.operators` -> this package's `operators`; any other module is unchanged."""
    if module == LEGACY_PACKAGE or module.startswith(LEGACY_PACKAGE + "."):
        return PACKAGE + module[len(LEGACY_PACKAGE) :]
    return module


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("pickle", "loads"):
            return loads  # a composed pipeline.pkl: its steps are read by this loader too
        return super().find_class(renamed(module), name)


def loads(data: bytes) -> Any:
    """`pickle.loads`, with the engine's old module name read as its new one."""
    return _Unpickler(io.BytesIO(data)).load()


def load(file: str | Path | IO[bytes]) -> Any:
    """Load a model file n4afs wrote (`pipeline.pkl`, a step's `.pkl`), old names included."""
    if isinstance(file, (str, Path)):
        with open(file, "rb") as handle:
            return _Unpickler(handle).load()
    return _Unpickler(file).load()


def names_legacy_module(class_path: str) -> bool:
    """True when a step's recorded class lives under the old name (its pickle says `core.`)."""
    return renamed(class_path) != class_path
