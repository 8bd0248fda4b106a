"""A blob store shared by several workspaces, each with its own private index.

Content addressing makes sharing the bytes safe (two writers of a name write the same
bytes); deleting them is what needs a protocol, since no index knows the others' references.

- **Who uses the store**: each workspace has an id (`workspace_id` in its `n4a.yaml`) and
  publishes `refs/<workspace id>` in the store: a JSON document with its id, host and path
  (to tell users whose it is), `published_at`, `spare_after` and the sorted blob ids its
  index references. A PUT (S3) or a rename (a folder) replaces it whole.
- **When**: when the workspace is created on a store outside its folder (an empty list: from
  then on the others know it exists), at the end of every run and import, and at the start
  of every `gc` (whichever store). Publishing more often only lets the others reclaim sooner.
- **What the others may delete**: an object is *held* by a workspace W when W's document
  lists it, or when it was last written or touched after W's `spare_after`, i.e. after W
  read its references (less `SLACK_S`) or after the start of a run W had in flight then.
  Everything W may reference since its last publication was put, or re-used (which touches
  it), after that instant, so it is held whatever W did since. A gc removes only objects
  that its own index does not reference and that no other workspace holds; an unreadable
  document holds everything (the gc refuses, one line).
- **A crashed or deleted workspace** keeps holding what its last document says, and every
  object newer than its `spare_after`, until someone proves it gone: `n4afs gc --forget ID`
  removes its document (gc lists each other workspace with its host, path and age).
- **Joining**: `init` on a store already holding objects or documents refuses unless told
  the store is shared (`--shared-store`); objects with no document at all belong to a
  workspace made before this protocol (or whose store is its own folder): running
  `n4afs gc --dry-run` there publishes its document first.

Design: docs/DESIGN.md, "Scale-out" (a shared store).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from n4afs_core.errors import SharedStoreError
from n4afs_core.store.storage import Store

# How far before its publication a workspace's `spare_after` lies: a blob put less than this
# before its index row was committed, outside a run (adding a dataset), stays held; it also
# absorbs the skew between this host's clock and the store's.
SLACK_S = 600.0
CONFIG_NAME = "n4a.yaml"
SHARED_OPTION = "--shared-store"


@dataclass(frozen=True)
class Published:
    """One workspace's document in `refs/`."""

    workspace_id: str
    host: str
    path: str
    published_at: float
    spare_after: float
    blobs: frozenset[str]

    def holds(self, blob_id: str, mtime: float) -> bool:
        return blob_id in self.blobs or mtime > self.spare_after


@dataclass
class Holds:
    """What the other workspaces of a store hold (`holds`), and who they are."""

    others: list[Published] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # documents that did not parse

    def holds(self, blob_id: str, mtime: float | Callable[[], float]) -> bool:
        """`mtime`: the object's, or what gives it (asked only when no document lists the
        object: a HEAD per object on S3)."""
        if self.unreadable or any(blob_id in p.blobs for p in self.others):
            return True
        if not self.others:
            return False
        when = mtime() if callable(mtime) else mtime
        return any(when > p.spare_after for p in self.others)

    def describe(self) -> list[str]:
        """One line per other workspace: id, where, age of its document."""
        now = time.time()
        lines = [
            f"{p.workspace_id} ({p.host}:{p.path}, {len(p.blobs)} blobs, published "
            f"{_age(now - p.published_at)} ago)"
            for p in self.others
        ]
        return lines + [f"{name} (unreadable document)" for name in self.unreadable]


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


# -- the workspace's id --------------------------------------------------------------------
def workspace_id(workspace: Path) -> str:
    """The workspace's id, from its `n4a.yaml`; given (and recorded) on first need."""
    config_path = workspace / CONFIG_NAME
    config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    config = config or {}
    if config.get("workspace_id"):
        return str(config["workspace_id"])
    config["workspace_id"] = new_workspace_id()
    write_config(workspace, config)
    return config["workspace_id"]


def new_workspace_id() -> str:
    return uuid.uuid4().hex


def write_config(workspace: Path, config: dict[str, Any]) -> None:
    """`n4a.yaml` replaced whole (a reader sees the old or the new)."""
    workspace.mkdir(parents=True, exist_ok=True)
    tmp = workspace / f".{CONFIG_NAME}.{os.getpid()}"
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, workspace / CONFIG_NAME)


# -- joining -------------------------------------------------------------------------------
def check_joining(store: Store, shared: bool) -> None:
    """Before a new workspace records `store`: refuse a store in use unless `shared`."""
    documents = store.read_refs()
    has_objects = next(iter(store.iter_ids()), None) is not None
    if not documents and not has_objects:
        return
    if not shared:
        whose = f"{len(documents)} other workspace(s)" if documents else "another workspace"
        raise SharedStoreError(
            f"the store {store.url} already holds objects of {whose}: give {SHARED_OPTION} "
            "to share it (each workspace's gc then spares what the others reference)"
        )
    if has_objects and not documents:
        raise SharedStoreError(
            f"the store {store.url} holds objects of a workspace that publishes no "
            "references (made before shared stores, or keeping its blobs in its own "
            "folder): run `n4afs gc --dry-run` in that workspace once, then init again"
        )


# -- publishing and reading ----------------------------------------------------------------
def publish(
    store: Store, workspace: Path, blobs: set[str], read_at: float, live_starts: list[float]
) -> Published:
    """Write this workspace's document: `blobs` as its index referenced them at `read_at`
    (the live runs' start times read before them)."""
    spare_after = min([read_at, *live_starts]) - SLACK_S
    doc = Published(
        workspace_id(workspace),
        socket.gethostname(),
        str(workspace.absolute()),
        time.time(),
        spare_after,
        frozenset(blobs),
    )
    body = {
        "workspace_id": doc.workspace_id,
        "host": doc.host,
        "path": doc.path,
        "published_at": doc.published_at,
        "spare_after": doc.spare_after,
        "blobs": sorted(doc.blobs),
    }
    store.put_ref(doc.workspace_id, json.dumps(body, indent=0).encode())
    return doc


def others(store: Store, workspace: Path) -> Holds:
    """The documents of every other workspace of the store."""
    own = workspace_id(workspace)
    found = Holds()
    for name, data in store.read_refs().items():
        if name == own:
            continue
        try:
            body = json.loads(data)
            found.others.append(
                Published(
                    str(body["workspace_id"]),
                    str(body.get("host", "?")),
                    str(body.get("path", "?")),
                    float(body["published_at"]),
                    float(body["spare_after"]),
                    frozenset(str(b) for b in body["blobs"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            found.unreadable.append(name)
    return found


def forget(store: Store, workspace: Path, gone: str) -> Published | None:
    """Remove another workspace's document (its user says it is gone); None when the
    store has no document of that id (prefix)."""
    held = others(store, workspace)
    matches = [p for p in held.others if p.workspace_id.startswith(gone)]
    matches += [
        Published(n, "?", "?", 0.0, 0.0, frozenset()) for n in held.unreadable if n.startswith(gone)
    ]
    if len(matches) > 1:
        raise SharedStoreError(
            f"{gone!r} names {len(matches)} workspaces of {store.url}: give more of the id"
        )
    if not matches:
        return None
    store.remove_ref(matches[0].workspace_id)
    return matches[0]


def publishes(store: Store, workspace: Path) -> bool:
    """Whether this workspace publishes after runs and imports: its store is outside its
    folder, or others publish in it."""
    if store.remote or Path(getattr(store, "root", workspace)).absolute() != workspace.absolute():
        return True
    return (workspace / "refs").is_dir()
