"""`n4afs serve`: the tree over read-only WebDAV, browsed with real clients.

The server is the CLI in its own process on 127.0.0.1 and a free port
(`tests/webdav_fixture.py`); the clients are webdav4's fsspec filesystem, rclone, davfs2 (a
kernel mount) and curl. Every expected byte comes from the workspace's own tree (or from
`n4afs export`). The workspace is a real sweep of chemotools' fermentation spectra with a
held-out test set; the last tests add a better result while the server runs.
Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest
from n4afs_core.store.ids import sha256_hex

from n4afs.surfaces.webdav import TreeProvider
from n4afs.workspace import Workspace
from tests.cli_process import cli
from tests.webdav_fixture import Server, answers, free_port

FIRST = ["snv", {"pls": {"n_components": 6}}]  # worse than BETTER on fermentation
BETTER = [{"pls": {"n_components": 1}}]
PROBES = [".DS_Store", "._pipeline.yaml", "desktop.ini", "Thumbs.db", "folder.jpg"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("webdav") / "ws")
    ws.run(templates=[FIRST], datasets=["chemotools:fermentation"], cv=3, test_size=0.2)
    return ws


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def server(ws, state):
    with Server(ws.path, state).serving() as running:
        yield running


def parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("/") if p)


def tree_bytes(ws: Workspace, path: str) -> bytes:
    tree = ws.tree
    return bytes(tree.read(tree.open(tree.lookup(parts(path)))))


def best_folder(ws: Workspace) -> str:
    return f"runs/fermentation/{ws.best('fermentation').row.label}"


def hrefs(multistatus: bytes) -> set[str]:
    """The hrefs of a PROPFIND answer, whatever prefix its XML gives the DAV: namespace."""
    return {e.text for e in ElementTree.fromstring(multistatus).iter("{DAV:}href")}


def curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of one curl request."""
    done = subprocess.run(
        ["curl", "-s", "-S", "-D", "-", "--max-time", "60", *args],
        capture_output=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    while body.startswith(b"HTTP/"):  # a challenge answered (--digest), a redirect: the last
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


# -- real clients ------------------------------------------------------------------------------
def test_webdav4_lists_stats_and_reads_every_file_of_a_result(ws, server):
    from webdav4.fsspec import WebdavFileSystem

    fs = WebdavFileSystem(server.url)
    folder = best_folder(ws)
    want = {"/".join(rel): node for rel, node in ws.tree.walk_files(parts(folder))}
    found = {p[len(folder) + 1 :] for p in fs.find(folder)}
    assert found == set(want) and len(want) > 20
    assert {i["name"].rsplit("/", 1)[-1] for i in fs.ls(folder)} == set(
        ws.tree.list_dir(parts(folder))
    )
    for rel, node in want.items():
        path = f"{folder}/{rel}"
        info = fs.info(path)
        assert info["type"] == "file" and info["size"] == node.size, path
        assert info["modified"].timestamp() == int(node.mtime), path  # HTTP dates: seconds
        assert fs.cat_file(path) == tree_bytes(ws, path), path
    assert fs.info(folder)["type"] == "directory"


def test_rclone_copy_of_a_result_equals_its_export(ws, server, tmp_path):
    folder = best_folder(ws)
    exported = tmp_path / "export"
    done = cli("-w", str(ws.path), "export", folder, "-o", f"{exported}/")
    assert done.returncode == 0, done.stderr
    copied = tmp_path / "rclone"
    done = subprocess.run(
        ["rclone", "copy", "--config", "/dev/null", "--webdav-url", server.url]
        + [f":webdav:{folder}", str(copied)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    label = folder.rsplit("/", 1)[-1]
    diff = subprocess.run(["diff", "-r", str(copied), str(exported / label)], capture_output=True)
    assert diff.returncode == 0, diff.stdout.decode()
    assert sum(1 for p in copied.rglob("*") if p.is_file()) > 20


def test_davfs2_mounts_and_copies_a_result_like_its_export(ws, server, tmp_path):
    """mount.davfs needs root (or an fstab entry): the suite runs as root here; anywhere
    else this fails rather than skip."""
    assert os.geteuid() == 0, "mount.davfs needs root: run this test as root"
    assert shutil.which("mount.davfs"), "davfs2 is missing: scripts/setup.sh installs it"
    folder = best_folder(ws)
    label = folder.rsplit("/", 1)[-1]
    exported = tmp_path / "export"
    assert cli("-w", str(ws.path), "export", folder, "-o", f"{exported}/").returncode == 0
    conf = tmp_path / "davfs2.conf"
    # buf_size 64: davfs2 1.6/1.7.1 readdir fails with EINVAL on Linux >= 6.16 with the
    # default buffer (alisarctl/davfs2#22; fixed in 1.7.2); locks: the server has none
    conf.write_text("use_locks 0\nbuf_size 64\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(
        ["mount.davfs", "-o", f"ro,conf={conf}", f"{server.url}runs/fermentation", str(mnt)],
        input="\n\n",  # no user name, no password (loopback: anonymous)
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    try:
        found = subprocess.run(["find", str(mnt / label)], capture_output=True, text=True)
        names = {Path(p).relative_to(mnt / label).as_posix() for p in found.stdout.split()}
        want = {"/".join(rel) for rel, _ in ws.tree.walk_files(parts(folder))}
        assert want <= names, want - names
        copied = tmp_path / "copied"
        subprocess.run(["cp", "-r", str(mnt / label), str(copied)], check=True)
        diff = subprocess.run(
            ["diff", "-r", str(copied), str(exported / label)], capture_output=True
        )
        assert diff.returncode == 0, diff.stdout.decode()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=120)
    assert not os.path.ismount(mnt)


# -- what curl sees ----------------------------------------------------------------------------
def test_writes_locks_and_property_changes_are_refused(ws, server):
    scores = f"{server.url}{best_folder(ws)}/scores.yaml"
    attempts = [
        ("PUT", scores, ["--data-binary", "x"]),
        ("PUT", f"{server.url}runs/new.txt", ["--data-binary", "x"]),
        ("DELETE", scores, []),
        ("DELETE", f"{server.url}runs/fermentation/", []),
        ("MKCOL", f"{server.url}runs/newdir/", []),
        ("MOVE", scores, ["-H", f"Destination: {server.url}runs/moved.yaml"]),
        ("COPY", scores, ["-H", f"Destination: {server.url}runs/copied.yaml"]),
        ("LOCK", scores, ["-H", "Content-Type: application/xml", "--data", LOCK_BODY]),
        ("UNLOCK", scores, ["-H", "Lock-Token: <opaquelocktoken:x>"]),
        ("PROPPATCH", scores, ["-H", "Content-Type: application/xml", "--data", PROPPATCH]),
    ]
    for method, url, extra in attempts:
        status, _, _ = curl("-X", method, *extra, url)
        assert status in (403, 405), (method, url, status)
    status, headers, _ = curl("-X", "OPTIONS", scores)
    assert status == 200 and headers["dav"] == "1"  # class 1: no locks
    assert set(headers["allow"].split(", ")) == {"OPTIONS", "HEAD", "GET", "PROPFIND"}
    assert curl(scores)[2] == tree_bytes(ws, f"{best_folder(ws)}/scores.yaml")


LOCK_BODY = (
    '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
    "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
)
PROPPATCH = (
    '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop>'
    "<Z:note>x</Z:note></D:prop></D:set></D:propertyupdate>"
)


def test_depth_infinity_is_refused_and_no_depth_is_one_level(ws, server):
    for path in ("", "runs/", "runs/fermentation/"):
        status, _, body = curl("-X", "PROPFIND", "-H", "Depth: infinity", server.url + path)
        assert status == 403 and b"propfind-finite-depth" in body, (path, body)
    status, _, body = curl("-X", "PROPFIND", f"{server.url}runs/")
    assert status == 207
    assert hrefs(body) == {"/runs/", "/runs/fermentation/"}  # the folder and its members only


def test_desktop_probes_are_not_found_without_asking_the_tree(ws, server):
    for folder in ("", "runs/", f"{best_folder(ws)}/"):
        for name in PROBES:
            for method in ("GET", "PROPFIND"):
                status, _, _ = curl("-X", method, "-H", "Depth: 0", server.url + folder + name)
                assert status == 404, (folder, name, method)

    class NoTree:  # any call would raise: the provider must answer before asking
        def __getattr__(self, name):
            raise AssertionError(f"the tree was asked ({name})")

    provider = TreeProvider(NoTree())
    for name in PROBES + ["DESKTOP.INI", "._x"]:
        assert provider.get_resource_inst(f"/runs/fermentation/{name}", {}) is None


def test_a_range_is_206_with_the_right_bytes(ws, server):
    folder = best_folder(ws)
    model = next(n for n in ws.tree.list_dir(parts(f"{folder}/models")) if "final" in n)
    for path in (
        f"{folder}/models/{model}/pipeline.pkl",  # composed around blobs
        f"{folder}/models/{model}/pls_model.pkl",  # a whole blob
        f"{folder}/predictions/cv.csv",  # rendered
        "runs/fermentation/RESULTS.csv",  # rendered, changing
    ):
        whole = tree_bytes(ws, path)
        size = len(whole)
        for spec, want in (
            ("0-0", whole[:1]),
            (f"7-{size // 2}", whole[7 : size // 2 + 1]),
            (f"{size - 5}-", whole[-5:]),
            ("-10", whole[-10:]),
            (f"10-{size + 100}", whole[10:]),
        ):
            status, headers, body = curl("-r", spec, server.url + path)
            assert status == 206 and body == want, (path, spec, status)
            assert int(headers["content-length"]) == len(want)
            assert headers["content-range"].endswith(f"/{size}")
        status, headers, body = curl(server.url + path)
        assert status == 200 and body == whole and int(headers["content-length"]) == size
        assert headers["accept-ranges"] == "bytes"
        status, _, _ = curl("-r", f"{size + 10}-{size + 20}", server.url + path)
        assert status == 416


def test_a_browser_gets_an_html_listing(ws, server):
    status, headers, _ = curl(f"{server.url}runs/fermentation")
    assert status == 301 and headers["location"].endswith("/runs/fermentation/")
    status, headers, body = curl("-H", "Accept: text/html", f"{server.url}runs/fermentation/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    for name in ws.tree.list_dir(("runs", "fermentation")):
        assert name.encode() in body, name
    assert b"read-only" in body


def test_a_corrupt_blob_is_a_server_error_never_its_bytes(ws, server):
    folder = best_folder(ws)
    model = next(n for n in ws.tree.list_dir(parts(f"{folder}/models")) if "final" in n)
    path = f"{folder}/models/{model}/pls_model.pkl"
    blob = Path(ws.tree.real_path(ws.tree.lookup(parts(path))))
    original = blob.read_bytes()
    os.chmod(blob, 0o644)
    try:
        blob.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])  # same size
        for args in ((), ("-r", "0-99")):
            status, _, body = curl(*args, server.url + path)
            assert status == 500 and original[1:50] not in body, status
    finally:
        blob.write_bytes(original)
        os.chmod(blob, 0o444)
    status, _, body = curl(server.url + path)
    assert status == 200 and body == original


# -- authentication and the daemon -----------------------------------------------------------------
def non_loopback_address() -> str | None:
    """An IPv4 address of this machine outside 127.0.0.0/8, if it has one."""
    if not shutil.which("ip"):
        return None
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    found = re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", shown.stdout)
    return next((a for a in found if not a.startswith("127.")), None)


def test_beyond_loopback_every_request_authenticates(ws, tmp_path):
    state = tmp_path  # a record of its own: the module's server serves this workspace too
    address = non_loopback_address()
    assert address, "this machine has no address beyond loopback to bind to"
    with Server(ws.path, state, host=address).serving() as running:
        shown = running.output()
        password = re.search(r"log in as user n4afs, password (\S+)", shown).group(1)
        assert "plain HTTP" in shown and "--certfile" in shown, shown
        propfind = ["-X", "PROPFIND", "-H", "Depth: 1", f"{running.url}runs/"]
        assert curl(*propfind)[0] == 401
        assert curl("-u", "n4afs:wrong", *propfind)[0] == 401
        assert curl("-u", f"n4afs:{password}", *propfind)[0] == 207
        assert curl("--digest", "-u", f"n4afs:{password}", *propfind)[0] == 207
        assert curl(f"{running.url}runs/.DS_Store")[0] == 401  # nothing before logging in
    log = (ws.path / "logs" / "serve.log").read_text() if (ws.path / "logs").exists() else ""
    assert password not in log


def test_loopback_with_a_user_and_password_authenticates(ws, tmp_path):
    state = tmp_path  # a record of its own: the module's server serves this workspace too
    env = {"N4AFS_SERVE_PASSWORD": "s3cret-pw"}
    with Server(ws.path, state, "--user", "alice", env=env).serving() as running:
        assert "s3cret-pw" not in running.output()
        url = f"{running.url}README.txt"
        assert curl(url)[0] == 401
        assert curl("-u", "alice:s3cret-pw", url)[0] == 200


def test_credentials_that_cannot_work_are_refused_in_one_line(ws, tmp_path):
    state = tmp_path  # a record of its own: the module's server serves this workspace too
    env = {"N4AFS_STATE": str(state)}
    for args, says in (
        (["--user", "alice"], "--user needs --password"),
        (["--token", "--password", "x"], "not both"),
        (["--certfile", str(ws.path / "n4a.duckdb")], "both --certfile and --keyfile"),
        (["--certfile", "/nonexistent.pem", "--keyfile", "/nonexistent.key"], "HTTPS"),
    ):
        done = cli("serve", str(ws.path), "--port", str(free_port()), *args, env=env)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_background_server_starts_refuses_a_second_and_stops(ws, tmp_path):
    state = tmp_path  # a record of its own: the module's server serves this workspace too
    env = {"N4AFS_STATE": str(state)}
    port = free_port()
    done = cli("serve", str(ws.path), "--port", str(port), env=env)
    try:
        assert done.returncode == 0, done.stderr
        url = f"http://127.0.0.1:{port}/"
        assert f"serving {ws.path} read-only at {url}" in done.stdout
        assert "n4afs serve --stop" in done.stdout
        assert curl(f"{url}README.txt")[2] == tree_bytes(ws, "README.txt")
        again = cli("serve", str(ws.path), "--port", str(free_port()), env=env)
        assert again.returncode == 2 and "already served at" in again.stderr, again.stderr
    finally:
        stopped = cli("serve", "--stop", str(ws.path), env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert not answers(url)
    assert not list((state / "servers").glob("*.json"))
    log = (ws.path / "logs" / "serve.log").read_text()
    assert "Traceback" not in log and "stopping" in log
    none = cli("serve", "--stop", str(ws.path), env=env)
    assert none.returncode == 2 and "no n4afs serve is running" in none.stderr


# -- while a run writes: last, it adds a result -------------------------------------------------
def test_a_better_result_changes_listing_and_etags_of_changing_files_only(ws, server):
    def etag(path: str) -> str:
        status, headers, _ = curl("-I", server.url + path)
        assert status == 200, path
        return headers["etag"].strip('"')

    old_best = ws.best("fermentation").row.label
    folder = f"runs/fermentation/{old_best}"
    model = next(n for n in ws.tree.list_dir(parts(f"{folder}/models")) if "final" in n)
    blob_path = f"{folder}/models/{model}/pls_model.pkl"
    blob_id = ws.tree.lookup(parts(blob_path)).content.blob_id
    changing = ["runs/fermentation/RESULTS.csv", "best/fermentation.csv"]
    before = {p: etag(p) for p in [blob_path, f"{folder}/scores.yaml", *changing]}
    assert before[blob_path] == blob_id  # content-addressed: the blob id
    assert etag(blob_path) == blob_id  # stable
    for path in changing:
        assert before[path] == "r-" + sha256_hex(tree_bytes(ws, path))[:40]

    def listed() -> set[str]:
        url = f"{server.url}runs/fermentation/"
        status, _, body = curl("-X", "PROPFIND", "-H", "Depth: 1", url)
        assert status == 207
        return {href.removeprefix("/runs/fermentation/").rstrip("/") for href in hrefs(body)}

    assert f"best_{old_best}.csv" in listed()  # the server keeps this answer
    ws.run(templates=[BETTER], datasets=["fermentation"], cv=3, test_size=0.2, name="better")
    new_best = ws.best("fermentation").row.label
    assert new_best != old_best, "the second run was meant to be better"

    names = listed()
    assert new_best in names and f"best_{new_best}.csv" in names
    assert f"best_{old_best}.csv" not in names
    assert curl(f"{server.url}runs/fermentation/best_{old_best}.csv")[0] == 404
    for path in changing:
        now = etag(path)
        assert now != before[path], path
        assert curl(server.url + path)[2] == tree_bytes(ws, path)
    assert etag(blob_path) == blob_id
    assert etag(f"{folder}/scores.yaml") == before[f"{folder}/scores.yaml"]


def test_the_server_stops_cleanly_on_ctrl_c(ws, tmp_path):
    state = tmp_path  # a record of its own: the module's server serves this workspace too
    running = Server(ws.path, state).start()
    started = time.monotonic()
    try:
        status = running.stop(signal.SIGINT)
    finally:
        running.stop(signal.SIGKILL)  # no-op when it has exited
    assert status == 0, running.output()
    assert time.monotonic() - started < 15
    assert "Traceback" not in running.output() and not answers(running.url)
