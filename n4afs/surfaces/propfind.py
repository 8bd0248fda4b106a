"""PROPFIND `Depth: 0`/`1` answered in one pass over a folder's listing.

WsgiDAV answers PROPFIND generically: every property of every member through
`get_property_value` (a dispatch, a reference URL and a quoting per property), then one
ElementTree element per value, serialized at the end. For a dataset folder of 1,005 entries
that was ~30 ms of server time for what the FUSE mount answers from the kernel's cache in
~7 ms (scripts/bench_serve.py). Here the same multistatus document is written as text,
one `<response>` per resource, each property computed once from the tree's node (the
resources' own getters: the same values WsgiDAV gives, tested property by property in
tests/test_serve_propfind.py).

Finished documents are kept per (path, depth, requested properties) for as long as the tree
serves the same listing object: a listing belongs to one snapshot generation of the tree, so
a new result (a new generation) is a new key, and a repeated listing of an unchanged folder
costs one lookup, as the kernel's cache makes it on the mount.

Only what a read-only share without dead properties needs: `allprop` (or an empty body) and
named properties (unknown ones answered in a 404 `propstat`, as WsgiDAV does); `propname`
and anything unparsable are left to WsgiDAV (`None`).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from wsgidav import util
from wsgidav.dav_error import DAVError, as_DAVError, get_http_status_string

DAV = "{DAV:}"
RESOURCETYPE = DAV + "resourcetype"
# WsgiDAV's `allprop` order (DAVResource.get_property_names): what clients have seen so far
FOLDER_ALLPROP = ("resourcetype", "creationdate", "getlastmodified", "displayname")
FILE_ALLPROP = (
    "resourcetype",
    "creationdate",
    "getcontentlength",
    "getcontenttype",
    "getlastmodified",
    "displayname",
    "getetag",
)
NOT_FOUND = "404 Not Found"
OK = "200 OK"
CACHED_DOCUMENTS = 64  # folders whose finished answer is kept (LRU)

LIVE: dict[str, Callable[[Any], str]] = {
    "creationdate": lambda res: util.get_rfc3339_time(res.get_creation_date()),
    "getlastmodified": lambda res: util.get_rfc1123_time(res.get_last_modified()),
    "displayname": lambda res: escape(res.get_display_name()),
    "getcontentlength": lambda res: str(res.get_content_length()),
    "getcontenttype": lambda res: escape(res.get_content_type()),
    "getetag": lambda res: escape(res.get_etag()),
}
FILE_ONLY = {"getcontentlength", "getcontenttype", "getetag"}


def requested(body: Any) -> tuple[str, ...] | None:
    """The property names (Clark notation) a PROPFIND body asks for; `()` for allprop;
    `None` for what WsgiDAV should answer itself (propname, a malformed body)."""
    if body is None:
        return ()
    if body.tag != DAV + "propfind" or len(body) != 1:
        return None
    ask = body[0]
    if ask.tag == DAV + "allprop":
        return ()
    if ask.tag == DAV + "prop" and len(ask) > 0:
        return tuple(str(child.tag) for child in ask)
    return None


def _element(name: str, value: str | None) -> str:
    """`<D:x>value</D:x>` for DAV: properties, a declared namespace for any other."""
    if name.startswith(DAV):
        tag, declare = "D:" + name[len(DAV) :], ""
    elif name.startswith("{"):
        namespace, local = name[1:].split("}", 1)
        tag, declare = "N:" + local, " xmlns:N=" + quoteattr(namespace)
    else:
        tag, declare = name, ""
    if not value:
        return f"<{tag}{declare}/>"
    return f"<{tag}{declare}>{value}</{tag}>"


def _value(res: Any, name: str) -> str:
    """One live property's XML text; DAVError 404 where the resource has none."""
    if name == RESOURCETYPE:
        return "<D:collection/>" if res.is_collection else ""
    local = name[len(DAV) :] if name.startswith(DAV) else None
    if local in LIVE and not (res.is_collection and local in FILE_ONLY):
        return LIVE[local](res)
    raise DAVError(404)


def response(res: Any, names: Iterable[str]) -> str:
    """One `<D:response>`: the values grouped by status, as WsgiDAV groups them."""
    by_status: dict[str, list[str]] = {}
    for name in names:
        try:
            value, status = _value(res, name), OK
        except DAVError as exc:
            value, status = None, get_http_status_string(exc)
        except Exception as exc:  # a serving error in one property: its status, not a 500 page
            value, status = None, get_http_status_string(as_DAVError(exc))
        by_status.setdefault(status, []).append(_element(name, value))
    stats = "".join(
        f"<D:propstat><D:prop>{''.join(props)}</D:prop>"
        f"<D:status>HTTP/1.1 {status}</D:status></D:propstat>"
        for status, props in by_status.items()
    )
    return f"<D:response><D:href>{escape(res.get_href())}</D:href>{stats}</D:response>"


def document(resources: Iterable[Any], asked: tuple[str, ...]) -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8" ?>\n<D:multistatus xmlns:D="DAV:">']
    for res in resources:
        if asked:
            names: Iterable[str] = asked
        else:
            names = (DAV + n for n in (FOLDER_ALLPROP if res.is_collection else FILE_ALLPROP))
        parts.append(response(res, names))
    parts.append("</D:multistatus>")
    return "".join(parts).encode("utf-8")


class PropfindCache:
    """Finished multistatus documents, valid while the tree serves the same listing."""

    def __init__(self, size: int = CACHED_DOCUMENTS) -> None:
        self.size = size
        self._documents: OrderedDict[tuple, tuple[Any, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, sources: tuple, build: Callable[[], bytes]) -> bytes:
        """`sources`: the tree objects the answer was built from (the folder's node and its
        listing), kept and compared by identity: the same objects are the same snapshot."""
        with self._lock:
            held = self._documents.get(key)
            if held is not None and all(a is b for a, b in zip(held[0], sources, strict=True)):
                self._documents.move_to_end(key)
                return held[1]
        data = build()
        with self._lock:
            self._documents[key] = (sources, data)
            self._documents.move_to_end(key)
            while len(self._documents) > self.size:
                self._documents.popitem(last=False)
        return data


def read_body(environ: dict) -> Any:
    """The request's XML body parsed by WsgiDAV's parser (`None` when empty); the bytes are
    put back, so WsgiDAV can still answer the request itself."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        return util.parse_xml_body(environ, allow_empty=True)
    finally:
        environ["wsgi.input"] = io.BytesIO(raw)
        environ.pop("wsgidav.all_input_read", None)


def send(start_response: Any, data: bytes) -> list[bytes]:
    start_response(
        "207 Multi-Status",
        [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Date", util.get_rfc1123_time()),
            ("Content-Length", str(len(data))),
        ],
    )
    return [data]
