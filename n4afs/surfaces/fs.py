"""`n4a://`: the workspace tree as an fsspec filesystem (read-only).

URL form: `n4a:///abs/path/to/workspace/runs/wheat/RESULTS.csv` — the workspace is the
longest leading part of the path that is a workspace directory (it holds `n4a.duckdb`);
the rest is a path in its tree. Alternatively bind one workspace and use tree paths:
`N4AFileSystem(workspace="~/nirs-ws").open("/runs/wheat/RESULTS.csv")`. A path with no
workspace in it (`n4a:///runs/wheat/RESULTS.csv`) is a tree path in `$N4AFS_WORKSPACE`, as
for the CLI; with that variable unset too, it is refused with how to name one.

The class only translates: every listing, stat and read is the shared `Tree`'s (the FUSE
mount sits on the same tree). Listings are one tree call per directory, never per child.
Files open without fsspec's read-ahead cache (it cost ~40% on sequential reads here): a file
that is a whole blob is opened directly from the object store.

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import errno
import functools
import io
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.spec import AbstractBufferedFile, has_magic
from n4afs_core.errors import N4AError

from n4afs.tree.content import BlobContent, BytesContent, LazyContent, Node
from n4afs.tree.tree import Tree, parse_path

WORKSPACE_MARKER = "n4a.duckdb"


_KINDS_ONLY = "_n4a_kinds_only"  # find(detail=True) without sizes: what glob needs


def _kind(path: str, is_dir: bool) -> dict[str, str]:
    return {"name": path, "type": "directory" if is_dir else "file"}


def _read_only(path: str) -> PermissionError:
    return PermissionError(
        errno.EROFS, "n4a:// is read-only (the tree is a view of the index)", path
    )


def _eio(path: str, exc: Exception) -> OSError:
    """The one translation of a serving error: the path exists, its bytes cannot be served
    (a blob missing, corrupt or unreadable): EIO, as the mount says, never "not found"."""
    return OSError(errno.EIO, f"{os.strerror(errno.EIO)}: {exc}", path)


def _served(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filesystem call so that an `N4AError` from the tree leaves as `_eio`."""

    @functools.wraps(method)
    def wrapper(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, path, *args, **kwargs)
        except N4AError as exc:
            raise _eio(str(path), exc) from exc

    return wrapper


class N4AFile(AbstractBufferedFile):
    """Random access into a rendered or composed file, no read-ahead."""

    def __init__(self, fs: N4AFileSystem, path: str, tree: Tree, node: Node, **kwargs: Any):
        self.tree, self.node = tree, node
        kwargs.setdefault("cache_type", "none")
        super().__init__(fs, path, mode="rb", size=node.size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        try:
            return self.tree.read(self.node, start, end - start)
        except N4AError as exc:
            raise _eio(self.path, exc) from exc


def local_path(parts: tuple[str, ...], windows: bool = os.name == "nt") -> str:
    """The local folder the leading parts of an `n4a://` path name: `/home/ana/ws` on
    POSIX; on Windows `n4a://C:/Users/ana/ws` (or `n4a:///C:/...`) names `C:\\Users\\ana\\ws`,
    where joining the parts under "/" would give `/C:/Users/...`, no path at all."""
    if windows:
        drive, *rest = parts
        if len(drive) == 2 and drive[1] == ":" and drive[0].isalpha():
            return str(PureWindowsPath(drive + "\\", *rest))
        return str(PureWindowsPath("\\", *parts))
    return "/" + "/".join(parts)


class N4AFileSystem(AbstractFileSystem):
    protocol = "n4a"
    root_marker = "/"

    def __init__(self, workspace: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = str(Path(workspace).expanduser().resolve()) if workspace else None
        self._trees: dict[str, Tree] = {}

    # -- resolving ----------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if os.name == "nt":  # `n4a://C:\\Users\\ana\\ws`, as Explorer copies a path
            path = path.replace("\\", "/")
        if path.startswith("n4a://"):
            path = path[len("n4a://") :]
        return "/" + path.strip("/")

    def _tree(self, root: str, named_by: str | None = None) -> Tree:
        """The tree of the workspace at `root`; `named_by` says where that came from, for
        the error when it holds none (a `WorkspaceError` here would leave as EIO)."""
        named_by = named_by or root
        if root not in self._trees:
            from n4afs.workspace import Workspace

            if not os.path.isfile(os.path.join(root, WORKSPACE_MARKER)):
                raise FileNotFoundError(
                    errno.ENOENT, f"{named_by} is not an n4afs workspace (no {WORKSPACE_MARKER})"
                )
            self._trees[root] = Workspace(root, create=False).tree
        return self._trees[root]

    def _resolve(self, path: str) -> tuple[Tree, tuple[str, ...]]:
        """Which workspace, and the tree path in it: the one bound at construction, else
        the longest leading part of `path` that is a workspace, else `$N4AFS_WORKSPACE`
        (what the CLI uses), read per call so a changed variable is followed."""
        path = self._strip_protocol(path)
        if self.workspace is not None:
            return self._tree(self.workspace, f"workspace={self.workspace!r}"), parse_path(path)
        from n4afs.workspace import ENV_VAR

        parts = parse_path(path)
        for cut in range(len(parts), 0, -1):
            root = local_path(parts[:cut])
            if os.path.isfile(os.path.join(root, WORKSPACE_MARKER)):
                return self._tree(root), parts[cut:]
        from_env = os.environ.get(ENV_VAR)
        if from_env:
            root = str(Path(from_env).expanduser().resolve())
            return self._tree(root, f"{ENV_VAR}={from_env}"), parts
        raise FileNotFoundError(
            errno.ENOENT,
            f"no n4afs workspace in this path and {ENV_VAR} is not set: use "
            f"n4a:///path/to/workspace{path}, set {ENV_VAR}, or N4AFileSystem(workspace=...)",
            path,
        )

    def _info(self, path: str, node: Node) -> dict[str, Any]:
        return {
            "name": path,
            "size": node.size,
            "type": "directory" if node.is_dir else "file",
            "mtime": node.mtime,
            "created": node.mtime,
            "mutable": node.mutable,
            "mode": node.mode,  # as the mount's `stat` shows it
        }

    # -- reading ------------------------------------------------------------------------
    @_served
    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        path = self._strip_protocol(path)
        tree, tree_path = self._resolve(path)
        entries = tree.list_dir(tree_path)
        if entries is None:
            node = tree.lookup(tree_path)
            if node is None:
                raise FileNotFoundError(errno.ENOENT, "not in the workspace tree", path)
            infos = [self._info(path, node)]
        else:
            base = path.rstrip("/")
            if not detail:  # names only: sizes would render charts and CSVs for nothing
                return [f"{base}/{name}" for name in entries]
            infos = [self._info(f"{base}/{name}", node) for name, node in entries.items()]
        return infos if detail else [i["name"] for i in infos]

    @_served
    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Without `detail`, walk names and node types only: nothing is rendered."""
        kinds_only = kwargs.pop(_KINDS_ONLY, False)
        if detail and not kinds_only:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=True)
        path = self._strip_protocol(path)
        tree, tree_path = self._resolve(path)
        top = tree.lookup(tree_path)
        if top is None:
            if kinds_only:  # as fsspec's find: a glob under a missing folder finds nothing
                return {}
            raise FileNotFoundError(errno.ENOENT, "not in the workspace tree", path)
        if not top.is_dir:
            return {path: _kind(path, False)} if kinds_only else [path]
        found: list[tuple[str, bool]] = []
        stack = [(path.rstrip("/"), tree_path, 0)]
        while stack:
            base, parts, depth = stack.pop()
            for name, is_dir in tree.list_kinds(parts) or ():
                child = f"{base}/{name}"
                if is_dir:
                    if withdirs:
                        found.append((child, True))
                    if maxdepth is None or depth + 1 < maxdepth:
                        stack.append((child, (*parts, name), depth + 1))
                else:
                    found.append((child, False))
        found.sort()
        if kinds_only:
            return {p: _kind(p, is_dir) for p, is_dir in found}
        return [p for p, _ in found]

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any) -> Any:
        """fsspec's glob, matched on names and types alone unless `detail` is asked: its
        own `find(detail=True)` would size every file under the pattern's root, and a
        rendered file's size is a render (or a stored render's record) for nothing. A
        pattern without `**` is expanded one component at a time (as DuckDB and Python's
        `glob` do): `runs/*/*/predictions/cv.csv` lists the folders its components name,
        never the models/ and charts/ folders fsspec's walk to that depth would list."""
        if kwargs.get("detail"):
            return super().glob(path, maxdepth=maxdepth, **kwargs)
        found = self._glob_components(path)
        if found is not None:
            return found
        return super().glob(path, maxdepth=maxdepth, **{**kwargs, _KINDS_ONLY: True})

    @_served
    def _glob_components(self, pattern: str) -> list[str] | None:
        """Matches of a pattern of `*`, `?` and `[...]` components below a workspace, or
        None for one this does not expand (`**`, magic in the workspace's own path, a
        trailing `/`): fsspec's walk answers those."""
        from fnmatch import fnmatchcase

        if "**" in pattern or str(pattern).endswith("/") or not has_magic(pattern):
            return None
        path = self._strip_protocol(pattern)
        parts = parse_path(path)
        first_magic = next(i for i, p in enumerate(parts) if has_magic(p))
        try:
            tree, tree_path = self._resolve("/" + "/".join(parts[:first_magic]))
        except FileNotFoundError:
            return None
        cut = first_magic - len(tree_path)  # components naming the workspace itself
        if cut < 0 or any(has_magic(p) for p in parts[:cut]):
            return None
        head = "/" + "/".join(parts[:cut]) if cut else ""
        matches: list[tuple[str, ...]] = [()]
        rest = parts[cut:]
        for depth, component in enumerate(rest):
            last, magic = depth == len(rest) - 1, has_magic(component)
            grown = []
            for parent, entries in tree.list_kinds_of(matches):
                for name, is_dir in entries or ():
                    if (is_dir or last) and (
                        fnmatchcase(name, component) if magic else name == component
                    ):
                        grown.append((*parent, name))
            matches = grown
        return sorted(head + "/" + "/".join(m) for m in matches)

    def exists(self, path: str, **kwargs: Any) -> bool:
        kwargs.pop(_KINDS_ONLY, None)
        return super().exists(path, **kwargs)

    @_served
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        tree, tree_path = self._resolve(path)
        node = tree.lookup(tree_path)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "not in the workspace tree", path)
        return self._info(path, node)

    def modified(self, path: str) -> datetime:
        return datetime.fromtimestamp(self.info(path)["mtime"], tz=UTC)

    def created(self, path: str) -> datetime:
        return self.modified(path)

    def _file_node(self, path: str) -> tuple[Tree, Node]:
        tree, tree_path = self._resolve(path)
        node = tree.lookup(tree_path)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "not in the workspace tree", path)
        if node.is_dir:
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        return tree, node

    @_served
    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise _read_only(path)
        tree, node = self._file_node(self._strip_protocol(path))
        node = tree.open(node)  # this version to the end, blobs hash-checked
        if isinstance(node.content, BlobContent):
            try:  # read straight from the object file
                return open(tree.ws.store.path_of(node.content.blob_id), "rb")  # noqa: SIM115
            except OSError as exc:  # removed or made unreadable since the check
                raise _eio(path, exc) from exc
        if isinstance(node.content, (BytesContent, LazyContent)):
            return io.BytesIO(node.content.data)
        kwargs.pop("autocommit", None)
        return N4AFile(self, path, tree, node, **kwargs)

    @_served
    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kw: Any):
        tree, node = self._file_node(self._strip_protocol(path))
        size = node.size
        start = 0 if start is None else (start + size if start < 0 else start)
        end = size if end is None else (end + size if end < 0 else min(end, size))
        return tree.read(node, start, max(end - start, 0))

    @_served
    def real_path(self, path: str) -> str | None:
        """The object file behind a plain-blob file (read-only), else None."""
        tree, node = self._file_node(self._strip_protocol(path))
        return tree.real_path(node)

    # -- writing: never -------------------------------------------------------------------
    def _refuse(self, path: Any = "", *args: Any, **kwargs: Any) -> None:
        raise _read_only(str(path))

    mkdir = makedirs = rm = _rm = rm_file = rmdir = touch = pipe_file = _refuse
    cp_file = mv = put_file = _refuse
