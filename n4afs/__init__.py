"""n4afs: NIRS experiment workspaces, stored once by content, browsable as a folder tree.

Nouns: a *workspace* is a directory holding the DuckDB index (`n4a.duckdb`) and the blob
store (`objects/`); a *dataset* is spectra + targets stored as one Parquet blob. The public
entry point is `Workspace`; heavy modules load only when used, so `n4afs --help` is fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Workspace", "__version__"]

if TYPE_CHECKING:
    from n4afs.workspace import Workspace


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from n4afs.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'n4afs' has no attribute {name!r}")
