"""n4afs: NIRS experiment workspaces, stored once by content, browsable as a folder tree.

Nouns: a *workspace* is a directory holding the DuckDB index (`n4a.duckdb`) and the blob
store (`objects/`); a *dataset* is spectra + targets stored as one Parquet blob. The public
entry point is `Workspace`; heavy modules load only when used, so `n4afs --help` is fast.

Design: docs/DESIGN.md, "Package map".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["N4AFileSystem", "Workspace", "predict", "__version__"]

if TYPE_CHECKING:
    from n4afs.surfaces.fs import N4AFileSystem
    from n4afs.workspace import Workspace


def predict(
    source: Any, new_csv: Any, model: str = "final", trust: bool = False, workspace: Any = None
) -> Any:
    """Predictions (polars DataFrame) of a bundle's or a workspace result's model on new
    spectra; `source` is a bundle path, or a tree path of `workspace`."""
    from pathlib import Path

    from n4afs.share import prediction as predicting
    from n4afs.tree.tree import parse_path
    from n4afs.workspace import Workspace

    path = Path(source)
    if workspace is None:
        return predicting.predict_bundle(path, Path(new_csv), model, trust).table
    ws = workspace if hasattr(workspace, "index") else Workspace(workspace, create=False)
    return predicting.predict_result(ws, parse_path(str(source)), Path(new_csv), model, trust).table


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from n4afs.workspace import Workspace

        return Workspace
    if name == "N4AFileSystem":
        from n4afs.surfaces.fs import N4AFileSystem

        return N4AFileSystem
    raise AttributeError(f"module 'n4afs' has no attribute {name!r}")
