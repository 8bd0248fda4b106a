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

    cache_dir = spec["cache_dir"] or worker_cache_dir(spec["url"])
    return RemoteBlobStore(
        spec["url"], cache_dir, spec["cache_bytes"], **spec.get("storage_options", {})
    )


def worker_cache_dir(url: str) -> Path:
    """A remote store's cache on a machine that has no workspace (a dask worker): in its
    temporary directory, per user and per store, so two stores never mix their copies and
    every worker process of one machine shares them (eviction tolerates the others)."""
    import getpass
    import hashlib
    import tempfile

    tag = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"n4afs-cache-{getpass.getuser()}" / tag


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


def store_url(given: str) -> str:
    """The URL a `--store` names: a folder path (`/data/blobs`, `blobs`, `C:\\blobs`: no
    `scheme://`) becomes its absolute `file://` URL, so it is a local store and the
    workspace remembers the folder itself, not a spelling relative to where it was typed."""
    given = given.strip()
    if "://" in given:
        return given.rstrip("/")
    return Path(given).expanduser().resolve().as_uri()


def recorded_store(workspace: Path) -> str | None:
    """The store URL `n4a.yaml` records, or None (the workspace's own `objects/`)."""
    config_path = workspace / CONFIG_NAME
    config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    return (config or {}).get("store")


def workspace_store(
    workspace: Path, url: str | None = None, cache_bytes: int | None = None, shared: bool = False
) -> Store:
    """The store of a workspace; `url` is recorded on first use and must match after.

    Recording it checks the store first: one that already holds objects or other
    workspaces' references is refused unless `shared` (`core.store.shared.check_joining`);
    nothing is written before that check. Opening contacts nothing."""
    from n4afs_core.store import shared as sharing

    config_path = workspace / CONFIG_NAME
    config = (yaml.safe_load(config_path.read_text()) if config_path.exists() else {}) or {}
    recorded = config.get("store")
    url = store_url(url) if url else None
    if url is not None and recorded is not None and url.rstrip("/") != recorded:
        raise WorkspaceError(f"workspace {workspace} keeps its blobs in {recorded}, not {url}")
    url = (url or recorded or "").rstrip("/") or None
    local = local_store_path(url) if url is not None else None  # refused before recorded
    if url is None or local is not None:
        store: Store = BlobStore(local or workspace)
    else:
        from n4afs_core.store.remote_store import DEFAULT_CACHE_BYTES, RemoteBlobStore

        budget = cache_bytes or config.get("cache_bytes") or DEFAULT_CACHE_BYTES
        store = RemoteBlobStore(url, workspace / "cache", budget)
    if url is not None and recorded is None:
        sharing.check_joining(store, shared)
        config["store"] = url
        if cache_bytes:
            config["cache_bytes"] = cache_bytes
        config.setdefault("workspace_id", sharing.new_workspace_id())
        sharing.write_config(workspace, config)
    return store
