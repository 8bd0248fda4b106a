"""The name pickled models give n4afs's own estimator classes: `n4afs_core.operators.X`.

The operator registry and the classes moved to `n4afs_core.pipelines.operators`; every model
file ever written (and every template naming a class path) still says
`n4afs_core.operators.PLSDAClassifier`, and loads through this module, which hands back the
very class object the registry uses. Nothing else belongs here.

Design: docs/DESIGN.md, "Package map".
"""

from __future__ import annotations

from typing import Any

PICKLED_CLASSES = ("PLSDAClassifier",)


def __getattr__(name: str) -> Any:
    if name in PICKLED_CLASSES:
        from n4afs_core.pipelines import operators

        return getattr(operators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
