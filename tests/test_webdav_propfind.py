"""The one-pass PROPFIND (n4afs/surfaces/propfind.py) gives what WsgiDAV's generic PROPFIND
gives, property by property, and a kept answer never outlives the listing it was built from.

Both answers come from the same WSGI application called in this process: once as served,
once with the one-pass path turned off, so WsgiDAV answers itself.
"""

from __future__ import annotations

import io
import sys
from xml.etree import ElementTree

import pytest

from n4afs.surfaces.webdav import TreeProvider, make_app
from n4afs.workspace import Workspace

FIRST = ["snv", {"pls": {"n_components": 6}}]
BETTER = [{"pls": {"n_components": 1}}]
NAMED = (
    "<D:propfind xmlns:D='DAV:' xmlns:Z='urn:schemas-microsoft-com:'><D:prop>"
    "<D:getcontentlength/><D:resourcetype/><D:getetag/><D:getlastmodified/>"
    "<Z:Win32FileAttributes/><D:displayname/></D:prop></D:propfind>"
)
BODIES = {
    "empty": b"",
    "allprop": b"<D:propfind xmlns:D='DAV:'><D:allprop/></D:propfind>",
    "named": NAMED.encode(),
    "propname": b"<D:propfind xmlns:D='DAV:'><D:propname/></D:propfind>",
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("propfind") / "ws")
    ws.run(templates=[FIRST], datasets=["chemotools:fermentation"], cv=3, test_size=0.2)
    return ws


def propfind(app, path: str, depth: str, body: bytes) -> tuple[str, bytes]:
    environ = {
        "REQUEST_METHOD": "PROPFIND",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "4918",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:4918",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_DEPTH": depth,
    }
    answer: dict[str, str] = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status

    data = b"".join(app(environ, start_response))
    return answer["status"], data


def properties(document: bytes) -> dict[str, dict[tuple[str, str], str]]:
    """href -> {(status, property): its value as canonical text}."""
    found: dict[str, dict[tuple[str, str], str]] = {}
    for response in ElementTree.fromstring(document).iter("{DAV:}response"):
        href = response.findtext("{DAV:}href")
        props = found.setdefault(href, {})
        for propstat in response.iter("{DAV:}propstat"):
            status = propstat.findtext("{DAV:}status")
            for prop in propstat.find("{DAV:}prop"):
                value = (prop.text or "") + "".join(child.tag for child in prop)
                props[(status, prop.tag)] = value
    return found


def generic(app, monkeypatch, path: str, depth: str, body: bytes) -> tuple[str, bytes]:
    with monkeypatch.context() as patched:
        patched.setattr(TreeProvider, "_propfind", lambda self, environ, start: None)
        return propfind(app, path, depth, body)


def sample_paths(ws: Workspace) -> list[str]:
    label = ws.best("fermentation").row.label
    return [
        "/",
        "/runs/fermentation/",
        f"/runs/fermentation/{label}/",
        f"/runs/fermentation/{label}/models/",
        "/runs/fermentation/RESULTS.csv",
        f"/runs/fermentation/{label}/scores.yaml",
    ]


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("depth", ["0", "1"])
def test_one_pass_answers_equal_wsgidavs_property_by_property(ws, monkeypatch, body, depth):
    app = make_app(ws.tree)
    for path in sample_paths(ws):
        status, ours = propfind(app, path, depth, BODIES[body])
        expected_status, theirs = generic(app, monkeypatch, path, depth, BODIES[body])
        assert status == expected_status == "207 Multi-Status", path
        assert properties(ours) == properties(theirs), (path, depth, body)
        assert len(properties(ours)) > (depth == "1" and path.endswith("/")), path


def test_quota_properties_are_not_found_rather_than_empty(ws):
    """WsgiDAV answers `quota-used-bytes` 200 with no value when a resource has none; RFC
    4331's value is a number, so the one-pass answer says 404 (the one deliberate
    difference)."""
    body = b"<D:propfind xmlns:D='DAV:'><D:prop><D:quota-used-bytes/></D:prop></D:propfind>"
    found = properties(propfind(make_app(ws.tree), "/", "0", body)[1])
    assert found == {"/": {("HTTP/1.1 404 Not Found", "{DAV:}quota-used-bytes"): ""}}


def test_a_kept_listing_changes_with_a_new_result(ws):
    app = make_app(ws.tree)
    before = properties(propfind(app, "/runs/fermentation/", "1", b"")[1])
    assert propfind(app, "/runs/fermentation/", "1", b"")[1]  # answered from the kept copy
    old_best = ws.best("fermentation").row.label
    ws.run(templates=[BETTER], datasets=["fermentation"], cv=3, test_size=0.2, name="better")
    new_best = ws.best("fermentation").row.label
    assert new_best != old_best, "the second run was meant to be better"

    after = properties(propfind(app, "/runs/fermentation/", "1", b"")[1])
    assert f"/runs/fermentation/{new_best}/" in after
    assert f"/runs/fermentation/best_{new_best}.csv" in after
    assert f"/runs/fermentation/best_{old_best}.csv" in before
    assert f"/runs/fermentation/best_{old_best}.csv" not in after
    etag = ("HTTP/1.1 200 OK", "{DAV:}getetag")
    results = "/runs/fermentation/RESULTS.csv"
    assert after[results][etag] != before[results][etag]


def test_a_missing_path_and_a_bad_body_are_left_to_wsgidav(ws):
    app = make_app(ws.tree)
    assert propfind(app, "/runs/nothing-here/", "1", b"")[0].startswith("404")
    assert propfind(app, "/runs/", "1", b"<not xml")[0].startswith("400")
