"""Which index a workspace uses: its own DuckDB file (default) or a shared PostgreSQL one.

Chosen once, when the workspace is created (`n4afs init --index postgresql://...`, or
`$N4AFS_INDEX` then), and remembered in `<workspace>/n4a.yaml` as `index:` beside `store:`
(the URL only: a password stays in libpq's `PGPASSWORD` or `~/.pgpass`). Several workspace
folders, on several machines, that name the same database share one index.

Design: docs/DESIGN.md, "Index engines".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from n4afs_core.errors import WorkspaceError
from n4afs_core.index.database import DB_NAME, Index
from n4afs_core.index.postgres import PostgresIndex, has_password, is_postgres_url

CONFIG_NAME = "n4a.yaml"  # shared with core.store.stores (the `store:` key)
INDEX_ENV = "N4AFS_INDEX"  # an index URL for workspaces created without --index


def recorded_index(workspace: Path) -> str | None:
    config_path = workspace / CONFIG_NAME
    if not config_path.exists():
        return None
    config = yaml.safe_load(config_path.read_text()) or {}
    return config.get("index")


def workspace_exists(workspace: Path) -> bool:
    """Whether `workspace` holds a workspace: its index file, or a recorded shared index."""
    return (workspace / DB_NAME).exists() or recorded_index(workspace) is not None


def workspace_index(workspace: Path, url: str | None = None) -> Any:
    """The index of `workspace`: the recorded one, else `url` (checked here, recorded by
    `record_index` once the workspace is agreed on: nothing is written before)."""
    recorded = recorded_index(workspace)
    if url is not None:
        url = url.strip()
        if not is_postgres_url(url):
            raise WorkspaceError(
                f"index {url!r}: give a PostgreSQL URL, postgresql://user@host:port/database"
            )
        if has_password(url):
            raise WorkspaceError(
                "index URL: leave the password out (it would be written into n4a.yaml); "
                "put it in PGPASSWORD or ~/.pgpass"
            )
        if recorded is not None and recorded != url:
            raise WorkspaceError(f"workspace {workspace} uses the index {recorded}, not {url}")
        if recorded is None and (workspace / DB_NAME).exists():
            raise WorkspaceError(
                f"workspace {workspace} has its own index ({DB_NAME}): a shared index is "
                "chosen when a workspace is created (`n4afs init NEW --index URL`)"
            )
    chosen = recorded or url
    return PostgresIndex(chosen, workspace) if chosen else Index(workspace)


def record_index(workspace: Path, index: Any) -> None:
    """Remember a shared index in `n4a.yaml` (the DuckDB default needs no record)."""
    if index.engine == "duckdb" or recorded_index(workspace) == index.url:
        return
    config_path = workspace / CONFIG_NAME
    config = (yaml.safe_load(config_path.read_text()) or {}) if config_path.exists() else {}
    config["index"] = index.url
    workspace.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
