"""Which blob store a workspace uses: a local directory (default) or any fsspec URL.

The choice is made once, when the workspace is created, and remembered in
`<workspace>/n4a.yaml` (the URL only: never credentials). Worker processes reopen the same
store from `store.spec()`.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from n4afs_core.errors import WorkspaceError
from n4afs_core.store.blobstore import BlobStore
from n4afs_core.store.storage import Store

CONFIG_NAME = "n4a.yaml"


def open_store(spec: dict[str, Any]) -> Store:
    if spec["kind"] == "local":
        return BlobStore(spec["root"])
    from n4afs_core.store.remote_store import RemoteBlobStore

    return RemoteBlobStore(
        spec["url"], spec["cache_dir"], spec["cache_bytes"], **spec.get("storage_options", {})
    )


def local_store_path(url: str) -> Path | None:
    """The folder a `file://` URL names, else None (a remote store).

    A folder on this machine is a local store, whatever the spelling: same layout, same
    atomic writes, and its folders made on `create()`; read through fsspec's local
    filesystem, the first put failed for want of its shard folder.
    """
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise WorkspaceError(
            f"store {url}: a file:// URL names an absolute folder, as file:///path/to/store"
        )
    return Path(unquote(parts.path))


def recorded_store(workspace: Path) -> str | None:
    """The store URL `n4a.yaml` records, or None (the workspace's own `objects/`)."""
    config_path = workspace / CONFIG_NAME
    config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    return (config or {}).get("store")


def workspace_store(
    workspace: Path, url: str | None = None, cache_bytes: int | None = None
) -> Store:
    """The store of a workspace; `url` is recorded on first use and must match after."""
    config_path = workspace / CONFIG_NAME
    config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    recorded = config.get("store")
    if url is not None and recorded is not None and url.rstrip("/") != recorded:
        raise WorkspaceError(f"workspace {workspace} keeps its blobs in {recorded}, not {url}")
    url = (url or recorded or "").rstrip("/") or None
    local = local_store_path(url) if url is not None else None  # refused before recorded
    if url is not None and recorded is None:
        config["store"] = url
        if cache_bytes:
            config["cache_bytes"] = cache_bytes
        workspace.mkdir(parents=True, exist_ok=True)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    if url is None or local is not None:
        return BlobStore(local or workspace)
    from n4afs_core.store.remote_store import DEFAULT_CACHE_BYTES, RemoteBlobStore

    budget = cache_bytes or config.get("cache_bytes") or DEFAULT_CACHE_BYTES
    return RemoteBlobStore(url, workspace / "cache", budget)
