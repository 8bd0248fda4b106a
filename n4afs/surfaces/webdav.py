"""The WebDAV adapter: WsgiDAV's provider contract translated to the shared tree, nothing more.

`TreeProvider.get_resource_inst` is `Tree.lookup`; a folder's members are one `Tree.list_dir`;
a GET opens the file with `Tree.open` before any header is sent (its blobs are checked there,
and a changing file's bytes are kept for the whole response, so its size, ETag and body are
one version). Not-found (`None`) is 404; a serving error (`N4AError`, `OSError`: a blob
missing, corrupt or unreadable) is 500, never wrong bytes.

Read-only: the provider says so (`is_readonly`), so WsgiDAV answers PUT, DELETE, MKCOL,
MOVE, COPY, PROPPATCH, LOCK and UNLOCK with 405 and advertises DAV class 1 only (no lock
manager, no dead properties). `PROPFIND` with `Depth: infinity` (or no Depth, which means
infinity) is 403 with RFC 4918's `propfind-finite-depth` condition instead of walking the
workspace. The files desktops probe for in every folder (macOS `.DS_Store`, `._*`; Windows
`desktop.ini`, `Thumbs.db`, `folder.jpg`...) are 404 before the tree is asked.

ETags: the blob id for a file that is a whole blob, a hash of the blob ids and glue bytes
for a composed `pipeline.pkl` (both content-addressed: no byte is read), a hash of the bytes
for rendered files, so `RESULTS.csv` and `best_*.csv` carry a new ETag when their content
changes. Sizes are the tree's exact sizes; mtimes the tree's; byte ranges are served (206).

The server around it (`make_app`: WsgiDAV's middleware, its read-only HTML folder listing,
authentication) runs on cheroot: `n4afs/surfaces/serve.py`. Design: docs/DESIGN.md,
"Surfaces".
"""

from __future__ import annotations

import fnmatch
import io
import logging
from typing import Any

from n4afs_core.errors import N4AError
from n4afs_core.store.ids import sha256_hex
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    HTTP_INTERNAL_ERROR,
    DAVError,
    PRECONDITION_CODE_PropfindFiniteDepth,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.mw.base_mw import BaseMiddleware

from n4afs.surfaces import propfind
from n4afs.tree.content import BlobContent, BytesContent, LazyContent, Node, SegmentsContent
from n4afs.tree.pipeline_pickle import BlobSegment
from n4afs.tree.tree import Tree, parse_path

log = logging.getLogger("n4afs.serve")

# Names desktops ask for in every folder they show; none is in the tree (a dataset that a
# user named so would be listed but not served). Answered 404 before the tree is asked.
PROBES = (
    ".DS_Store",  # macOS Finder's folder settings
    "._*",  # macOS AppleDouble files (resource forks, extended attributes)
    ".Spotlight-V100",
    ".Trashes",
    ".metadata_never_index",
    ".localized",
    ".hidden",  # GNOME Files
    ".directory",  # KDE Dolphin
    "desktop.ini",  # Windows Explorer's folder settings
    "Thumbs.db",  # Windows image previews
    "folder.jpg",  # Windows folder pictures
    "folder.gif",
    "AlbumArt*.jpg",
    "autorun.inf",
)

TEXT_TYPES = {".yaml": "text/plain", ".txt": "text/plain", ".log": "text/plain"}

# What serving a path may raise when its bytes cannot be served (see fuse_ops.SERVING_ERRORS)
SERVING_ERRORS = (N4AError, OSError)


def is_probe(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in PROBES)


def _failed(what: str, path: str, exc: BaseException) -> DAVError:
    """The one translation of a serving error: 500, logged with its cause."""
    log.error("%s %s failed: %s", what, path, exc)
    return DAVError(HTTP_INTERNAL_ERROR, context_info=f"{what} failed", src_exception=exc)


def etag_of(node: Node) -> str:
    """Content-addressed files: the blob id (or a hash of a composition's blob ids and glue);
    rendered files: a hash of their bytes (renders first if needed)."""
    content = node.content
    if isinstance(content, BlobContent):
        return str(content.blob_id)
    if isinstance(content, SegmentsContent):
        pieces = (
            b"B" + str(segment.blob_id).encode()
            if isinstance(segment, BlobSegment)
            else b"G%d:" % len(segment) + bytes(segment)
            for segment in content.segments
        )
        return "c-" + sha256_hex(b"".join(pieces))[:40]
    if isinstance(content, (BytesContent, LazyContent)):
        return "r-" + sha256_hex(content.data)[:40]
    raise TypeError(f"no ETag for {type(content).__name__}")


class TreeProvider(DAVProvider):
    """One tree served at the share's root; a fresh snapshot whenever the index changed (the
    tree is built with `auto_refresh`, one `stat` of the change token per tree call)."""

    def __init__(self, tree: Tree) -> None:
        super().__init__()
        self.tree = tree
        self.propfinds = propfind.PropfindCache()

    def is_readonly(self) -> bool:
        return True

    def get_resource_inst(self, path: str, environ: dict) -> Any:
        """The resource at `path`, or None; asked again for the same path within a request
        (WsgiDAV's folder listing middleware, then its request server), answered once."""
        answered = environ.setdefault("n4afs.resources", {})
        if path not in answered:
            answered[path] = self._resource(path, environ)
        return answered[path]

    def _resource(self, path: str, environ: dict) -> Any:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name and is_probe(name):
            return None
        try:
            parts = parse_path(path)
        except FileNotFoundError:  # `..`: not a name in the tree
            return None
        try:
            node = self.tree.lookup(parts)
            if node is None:
                return None
            if node.is_dir:
                return TreeFolder(path, environ, self, parts, node)
            if environ.get("REQUEST_METHOD") in ("GET", "HEAD") and environ.get(
                "PATH_INFO", ""
            ).rstrip("/") == path.rstrip("/"):
                node = self.tree.open(node)  # blobs checked, a changing file's bytes kept
            return TreeFile(path, environ, self, node)
        except SERVING_ERRORS as exc:
            raise _failed("lookup", path, exc) from exc

    def custom_request_handler(self, environ: dict, start_response: Any, default: Any) -> Any:
        """`Depth: infinity` is refused; a PROPFIND without Depth (which RFC 4918 reads as
        infinity: webdav4 sends it to stat a folder) is answered as Depth 1, as sabre/dav
        does when infinity is off: the client gets the folder and its members, not the
        workspace."""
        if environ["REQUEST_METHOD"] != "PROPFIND":
            return default(environ, start_response)
        if environ.get("HTTP_DEPTH") is None:
            environ["HTTP_DEPTH"] = "1"
        elif environ["HTTP_DEPTH"].lower() == "infinity":
            raise DAVError(
                HTTP_FORBIDDEN,
                context_info="PROPFIND with Depth: infinity would walk the whole workspace; "
                "ask with Depth: 1",
                err_condition=PRECONDITION_CODE_PropfindFiniteDepth,
            )
        answer = self._propfind(environ, start_response)
        return default(environ, start_response) if answer is None else answer

    def _propfind(self, environ: dict, start_response: Any) -> list[bytes] | None:
        """`Depth: 0`/`1` in one pass, the finished answer kept while the listing is the
        same (n4afs/surfaces/propfind.py); None: WsgiDAV answers (404, `propname`, a body
        it refuses)."""
        try:
            asked = propfind.requested(propfind.read_body(environ))
        except ValueError:  # a Content-Length WsgiDAV refuses itself (400)
            return None
        path, depth = environ["PATH_INFO"], environ["HTTP_DEPTH"]
        res = self.get_resource_inst(path, environ) if asked is not None else None
        if res is None or depth not in ("0", "1"):
            return None
        if depth == "1" and res.is_collection:
            entries = res._entries()
            sources: tuple = (res.node, entries)
            members = lambda: [res, *res.members(entries)]  # noqa: E731
        else:
            sources, members = (res.node,), lambda: [res]
        data = self.propfinds.get(
            (path, depth, asked), sources, lambda: propfind.document(members(), asked)
        )
        return propfind.send(start_response, data)


class TreeFolder(DAVCollection):
    def __init__(
        self, path: str, environ: dict, provider: TreeProvider, parts: tuple, node: Node
    ) -> None:
        super().__init__(path, environ)
        self.provider, self.parts, self.node = provider, parts, node

    def get_creation_date(self) -> float:
        return self.node.mtime

    def get_last_modified(self) -> float:
        return self.node.mtime

    def get_display_info(self) -> dict:
        return {"type": "Directory"}

    def _entries(self) -> Any:
        try:
            entries = self.provider.tree.list_dir(self.parts)
        except SERVING_ERRORS as exc:
            raise _failed("list", self.path, exc) from exc
        return {} if entries is None else entries  # gone since the lookup: empty

    def get_member_names(self) -> list[str]:
        return list(self._entries())

    def get_member(self, name: str) -> Any:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def get_member_list(self) -> list[Any]:
        """One tree listing, not a lookup per member."""
        return self.members(self._entries())

    def members(self, entries: Any) -> list[Any]:
        """The resources of a listing's entries."""
        base = self.path.rstrip("/")
        members: list[Any] = []
        try:
            for name, node in entries.items():
                path, parts = f"{base}/{name}", (*self.parts, name)
                if node.is_dir:
                    members.append(TreeFolder(path, self.environ, self.provider, parts, node))
                else:
                    members.append(TreeFile(path, self.environ, self.provider, node))
        except SERVING_ERRORS as exc:
            raise _failed("list", self.path, exc) from exc
        return members


class TreeFile(DAVNonCollection):
    def __init__(self, path: str, environ: dict, provider: TreeProvider, node: Node) -> None:
        super().__init__(path, environ)
        self.provider, self.node = provider, node

    def _serving(self, what: str, call: Any) -> Any:
        try:
            return call()
        except SERVING_ERRORS as exc:
            raise _failed(what, self.path, exc) from exc

    def get_content_length(self) -> int:
        return self._serving("size", lambda: self.node.size)  # renders a CSV or chart

    def get_content_type(self) -> str:
        for suffix, kind in TEXT_TYPES.items():
            if self.name.endswith(suffix):
                return f"{kind}; charset=utf-8"
        return util.guess_mime_type(self.path, self.environ["wsgidav.config"])

    def get_creation_date(self) -> float:
        return self.node.mtime

    def get_last_modified(self) -> float:
        return self.node.mtime

    def get_etag(self) -> str:
        return self._serving("etag", lambda: etag_of(self.node))

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> Any:
        """A stream of the node opened by `get_resource_inst` (checked there, before the
        status line): a blob's own object file, rendered bytes, or a composed file read
        through the tree."""
        tree, node = self.provider.tree, self.node
        content = node.content
        if isinstance(content, BlobContent):
            real = tree.real_path(node)
            return self._serving("open", lambda: open(real, "rb"))  # noqa: SIM115
        if isinstance(content, (BytesContent, LazyContent)):
            return io.BytesIO(self._serving("render", lambda: content.data))
        return _TreeReader(tree, node)


class _TreeReader(io.RawIOBase):
    """Sequential and seekable reads of a composed file through `Tree.read`."""

    def __init__(self, tree: Tree, node: Node) -> None:
        self.tree, self.node, self.position = tree, node, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.node.size}
        self.position = base[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        data = bytes(self.tree.read(self.node, self.position, size))
        self.position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class MkcolRefusal(BaseMiddleware):
    """MKCOL where nothing exists is 403, RFC 4918's "the server does not allow the creation
    of collections at the given location" (WsgiDAV answers a read-only share's MKCOL with
    405, which RFC 4918 gives to "already exists": webdav4's `mkdir` then says so); MKCOL on
    an existing name stays 405. After authentication, before anything else."""

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "MKCOL":
            provider = environ["wsgidav.provider"]
            if (
                provider is not None
                and provider.get_resource_inst(environ["PATH_INFO"], environ) is None
            ):
                raise DAVError(HTTP_FORBIDDEN, context_info="read-only: nothing can be created")
        return self.next_app(environ, start_response)


def make_app(tree: Tree, user: str | None = None, password: str | None = None) -> Any:
    """The WSGI application: WsgiDAV over `TreeProvider`, read-only, with its HTML folder
    listing for browsers; with `user`/`password`, every request authenticates (Digest is
    offered first, Basic accepted: Windows refuses Basic over plain HTTP)."""
    from wsgidav.wsgidav_app import WsgiDAVApp

    if user is not None and password is not None:
        users: Any = {"*": {user: {"password": password}}}
    else:
        users = {"*": True}  # anonymous: loopback only (serve.py decides)
    from wsgidav.default_conf import DEFAULT_CONFIG
    from wsgidav.http_authenticator import HTTPAuthenticator

    stack = list(DEFAULT_CONFIG["middleware_stack"])
    stack.insert(stack.index(HTTPAuthenticator) + 1, MkcolRefusal)
    config = {
        "provider_mapping": {"/": TreeProvider(tree)},
        "middleware_stack": stack,
        "simple_dc": {"user_mapping": users},
        "http_authenticator": {
            "domain_controller": None,  # SimpleDomainController on `simple_dc`
            "accept_basic": True,
            "accept_digest": True,
            "default_to_digest": True,
        },
        "lock_storage": None,  # read-only: no LOCK (class 1)
        "property_manager": None,  # no dead properties: PROPPATCH has nothing to store
        "block_size": 1 << 20,  # GET bodies in 1 MiB pieces, not WsgiDAV's 8 KiB
        "verbose": 2,
        "logging": {"enable": False},  # serve.py configures logging
        "dir_browser": {
            "enable": True,
            "icon": False,
            "davmount": False,
            "ms_sharepoint_support": False,  # no "edit in Office" links: nothing is writable
            "libre_office_support": False,
            "show_user": False,
            "response_trailer": "n4afs (read-only)",
            "ignore": [],
        },
        "suppress_version_info": True,
    }
    return WsgiDAVApp(config)
