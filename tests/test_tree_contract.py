"""The tree as a user sees it: one contract, run against every surface.

Modelled on fsspec's abstract test suites (`fsspec.tests.abstract`): `TreeContract` holds
the behaviour tests, written against a small adapter (`surface`) that each subclass provides
and that says how that surface lists a folder, stats a path, reads a whole file, reads a
byte range, and what "missing" and "read-only" look like there. The subclasses:

- `TestTreeObject`: the `Tree` itself (`list_dir`, `lookup`, `open`, `read`); missing is None.
- `TestFsspec`: `N4AFileSystem` (`ls`, `info`, `cat_file`, `open`); missing is
  FileNotFoundError (ENOENT), a write is PermissionError(EROFS).
- `TestMount`: a real FUSE mount read with plain `os` calls; missing is ENOENT, a write EROFS.
- `TestWebDAV`: a real `n4afs serve` read with webdav4's fsspec client; missing is 404
  (FileNotFoundError), a write 403/405. Three tests are restated for the protocol: WebDAV
  has no modes (kinds only), its dates are whole seconds, and `..` in a URL is resolved before
  the tree sees a path (by the client, else by WsgiDAV), as the kernel does for the mount.

A new surface gets the whole contract by adding one adapter and one subclass.
Every expected byte comes from the workspace's own `ws.tree`, the reference. The workspace
(a real sweep: chemotools fermentation with a held-out test set, chemotools coffee, a second
run on fermentation) is built once per module. Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from n4afs.surfaces.fs import N4AFileSystem
from n4afs.tree.content import DIR_MODE, FILE_MODE
from n4afs.tree.tree import Tree, parse_path
from n4afs.workspace import Workspace
from tests.mount_fixture import Mount
from tests.webdav_fixture import Server

REGRESSION = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [2, 3]}}}]
CLASSIFICATION = [{"_or_": ["snv", "msc"]}, "lda"]
AGAIN = ["snv", {"pls": {"n_components": 4}}]
TOP = {"README.txt", "runs", "by-run", "best", "datasets"}
TABLE_FORMS = ("csv", "xlsx", "parquet")  # RESULTS and best: one table, three files
# beside a ranking: its report, charts over its results (regression: RMSECV vs components)
GROUP_FILES = {"fermentation": {"charts", "REPORT.html"}, "coffee": {"REPORT.html"}}
LABEL = re.compile(r"^\d{4}_[a-z0-9-]+_[0-9a-f]{6}$")


# -- the workspace, built once -------------------------------------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    """Fermentation (regression, a test set) in two runs, coffee (classification) in one."""
    ws = Workspace(tmp_path_factory.mktemp("contract") / "ws")
    ws.run(
        templates=[REGRESSION],
        datasets=["chemotools:fermentation"],
        cv=3,
        test_size=0.2,
        name="sweep",
    )
    ws.run(templates=[CLASSIFICATION], datasets=["chemotools:coffee"], cv=3, name="coffee")
    ws.run(templates=[AGAIN], datasets=["fermentation"], cv=3, test_size=0.2, name="again")
    return ws


class Layout:
    """Names in the workspace's tree, read from the reference `ws.tree` and the API."""

    def __init__(self, ws: Workspace) -> None:
        self.tree = ws.tree
        self.datasets = ("fermentation", "coffee")
        self.results = {d: {r.row.label: r.row for r in ws.results(d)} for d in self.datasets}
        self.best = {d: ws.best(d).row.label for d in self.datasets}
        self.runs = sorted(self.tree.list_dir(("by-run",)))
        ferm = f"runs/fermentation/{self.best['fermentation']}"
        coffee = f"runs/coffee/{self.best['coffee']}"
        (final,) = [m for m in self.tree.list_dir(self._parts(f"{ferm}/models")) if "final" in m]
        self.result_folder, self.model_folder = ferm, f"{ferm}/models/{final}"
        # the files whose bytes every surface must serve alike, one of each kind of content
        self.files = [
            "README.txt",
            "runs/fermentation/RESULTS.csv",  # rendered, changing
            "runs/coffee/RESULTS.csv",
            f"runs/fermentation/best_{self.best['fermentation']}.csv",
            "best/coffee.csv",
            "runs/fermentation/DATASET.yaml",
            f"{ferm}/pipeline.yaml",
            f"{ferm}/scores.yaml",  # rendered from the score rows
            f"{coffee}/scores.yaml",
            f"{ferm}/predictions/cv.csv",
            f"{ferm}/predictions/test.csv",
            f"{ferm}/charts/predictions_scatter.png",  # drawn on first use
            f"{coffee}/charts/confusion_matrix.png",
            f"{self.model_folder}/pipeline.pkl",  # composed around the step blobs
            f"{self.model_folder}/pls_model.pkl",  # a whole blob
            f"{self.model_folder}/MANIFEST.yaml",
            f"{ferm}/logs/timing.yaml",
            f"by-run/{self.runs[0]}/RUN.yaml",
            "datasets/coffee/spectra.csv",
        ]
        self.folders = [
            "",
            "runs",
            "by-run",
            "best",
            "datasets",
            "runs/fermentation",
            ferm,
            f"{ferm}/models",
            self.model_folder,
            f"{ferm}/charts",
            f"by-run/{self.runs[0]}",
            f"by-run/{self.runs[0]}/templates",
            "datasets/coffee",
        ]
        self.missing = [
            "nosuch",
            "runs/nosuch",
            "runs/fermentation/0999_nothing_abcdef",
            f"{ferm}/nosuch.yaml",
            f"{ferm}/predictions/fold_99.csv",
            "best/nosuch.csv",
            "by-run/nosuch",
            f"by-run/{self.runs[0]}/coffee-or-not",
            "datasets/fermentation/nosuch.csv",
        ]

    @staticmethod
    def _parts(path: str) -> tuple[str, ...]:
        return tuple(p for p in path.split("/") if p)

    def node(self, path: str) -> Any:
        node = self.tree.lookup(self._parts(path))
        assert node is not None, f"the reference tree has no {path}"
        return node

    def bytes_of(self, path: str) -> bytes:
        node = self.tree.open(self.node(path))
        return bytes(self.tree.read(node))


@pytest.fixture(scope="module")
def layout(ws) -> Layout:
    return Layout(ws)


# -- what each surface says: the adapters ------------------------------------------------------
class Stat(NamedTuple):
    is_dir: bool
    size: int
    mode: int
    mtime: float


class Surface:
    """How one surface lists, stats and reads a tree path ("runs/wheat/RESULTS.csv", "" is
    the root) and what missing and read-only look like on it."""

    def listdir(self, path: str) -> list[str] | None:
        raise NotImplementedError

    def stat(self, path: str) -> Stat | None:
        raise NotImplementedError

    def read(self, path: str) -> bytes | None:
        raise NotImplementedError

    def read_range(self, path: str, start: int, length: int) -> bytes:
        raise NotImplementedError

    def assert_missing(self, call: Callable[[str], Any], path: str) -> None:
        """`call(path)` (listdir, stat or read) answers "no such path" as this surface does."""
        raise NotImplementedError

    def write_attempts(self, layout: Layout) -> list[Callable[[], Any]]:
        """Writes a user might try; each must be refused as read-only."""
        raise NotImplementedError

    def assert_read_only(self, attempt: Callable[[], Any]) -> None:
        raise NotImplementedError


class TreeSurface(Surface):
    """The `Tree` object: paths are tuples, missing is None, there is nothing to write with."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    @staticmethod
    def parts(path: str) -> tuple[str, ...]:
        return tuple(p for p in path.split("/") if p)  # '..' stays a component: no resolving

    def listdir(self, path: str) -> list[str] | None:
        entries = self.tree.list_dir(self.parts(path))
        return None if entries is None else list(entries)

    def stat(self, path: str) -> Stat | None:
        node = self.tree.lookup(self.parts(path))
        if node is None:
            return None
        return Stat(node.is_dir, 0 if node.is_dir else node.size, node.mode, node.mtime)

    def read(self, path: str) -> bytes | None:
        node = self.tree.lookup(self.parts(path))
        return None if node is None else bytes(self.tree.read(self.tree.open(node)))

    def read_range(self, path: str, start: int, length: int) -> bytes:
        node = self.tree.open(self.tree.lookup(self.parts(path)))
        return bytes(self.tree.read(node, start, length))

    def assert_missing(self, call: Callable[[str], Any], path: str) -> None:
        assert call(path) is None, path

    def write_attempts(self, layout: Layout) -> list[Callable[[], Any]]:
        return []  # the tree has no writing call: see TestTreeObject

    def assert_read_only(self, attempt: Callable[[], Any]) -> None:
        raise AssertionError("the tree has no writes to refuse")


class FsspecSurface(Surface):
    """`N4AFileSystem` bound to the workspace: `ls`, `info`, `cat_file`, `open`."""

    def __init__(self, fs: N4AFileSystem) -> None:
        self.fs = fs

    def listdir(self, path: str) -> list[str]:
        return [name.rsplit("/", 1)[-1] for name in self.fs.ls("/" + path, detail=False)]

    def stat(self, path: str) -> Stat:
        info = self.fs.info("/" + path)
        is_dir = info["type"] == "directory"
        return Stat(is_dir, 0 if is_dir else info["size"], info["mode"], info["mtime"])

    def read(self, path: str) -> bytes:
        whole = self.fs.cat_file("/" + path)
        with self.fs.open("/" + path, "rb") as handle:
            assert handle.read() == whole, f"open().read() and cat_file differ on {path}"
        return bytes(whole)

    def read_range(self, path: str, start: int, length: int) -> bytes:
        """Through `open` + `seek` + `read`, checked against `cat_file(start, end)`."""
        with self.fs.open("/" + path, "rb") as handle:
            handle.seek(start)
            got = handle.read(length)
        sliced = self.fs.cat_file("/" + path, start=start, end=start + length)
        assert bytes(sliced) == bytes(got), f"cat_file and open differ on {path}[{start}:]"
        return bytes(got)

    def assert_missing(self, call: Callable[[str], Any], path: str) -> None:
        with pytest.raises(FileNotFoundError) as info:
            call(path)
        assert info.value.errno == errno.ENOENT  # `..` included (parse_path)

    def write_attempts(self, layout: Layout) -> list[Callable[[], Any]]:
        fs, scores = self.fs, f"/{layout.result_folder}/scores.yaml"
        return [
            lambda: fs.open(scores, "wb"),
            lambda: fs.open("/runs/new.txt", "wb"),
            lambda: fs.pipe_file("/runs/new.txt", b"x"),
            lambda: fs.touch("/runs/new.txt"),
            lambda: fs.mkdir("/runs/newdir"),
            lambda: fs.rm(scores),
            lambda: fs.rm(f"/{layout.result_folder}", recursive=True),
            lambda: fs.mv(scores, "/runs/moved.yaml"),
        ]

    def assert_read_only(self, attempt: Callable[[], Any]) -> None:
        with pytest.raises(PermissionError) as info:
            attempt()
        assert info.value.errno == errno.EROFS


class MountSurface(Surface):
    """A real FUSE mount, read with `os.listdir`, `os.stat`, `open().read()`, `seek`."""

    def __init__(self, root: os.PathLike) -> None:
        self.root = root

    def at(self, path: str) -> str:
        return os.path.join(self.root, path) if path else str(self.root)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(self.at(path))

    def stat(self, path: str) -> Stat:
        st = os.stat(self.at(path))
        is_dir = stat.S_ISDIR(st.st_mode)
        return Stat(is_dir, 0 if is_dir else st.st_size, st.st_mode, st.st_mtime_ns / 1e9)

    def read(self, path: str) -> bytes:
        with open(self.at(path), "rb") as handle:
            return handle.read()

    def read_range(self, path: str, start: int, length: int) -> bytes:
        with open(self.at(path), "rb") as handle:
            handle.seek(start)
            return handle.read(length)

    def assert_missing(self, call: Callable[[str], Any], path: str) -> None:
        with pytest.raises(FileNotFoundError) as info:
            call(path)
        assert info.value.errno == errno.ENOENT

    def write_attempts(self, layout: Layout) -> list[Callable[[], Any]]:
        folder = self.at(layout.result_folder)
        scores = os.path.join(folder, "scores.yaml")
        return [
            lambda: open(scores, "wb").close(),  # noqa: SIM115
            lambda: open(scores, "ab").close(),  # noqa: SIM115
            lambda: open(self.at("runs/new.txt"), "wb").close(),  # noqa: SIM115
            lambda: os.mkdir(self.at("runs/newdir")),
            lambda: os.unlink(scores),
            lambda: os.chmod(scores, 0o600),
            lambda: os.rename(scores, self.at("runs/moved.yaml")),
            lambda: shutil.rmtree(os.path.join(folder, "logs")),
        ]

    def assert_read_only(self, attempt: Callable[[], Any]) -> None:
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.EROFS


class WebDAVSurface(FsspecSurface):
    """A real `n4afs serve`, read with webdav4's fsspec filesystem (`ls`, `info`,
    `cat_file`, `open`: reads, ranges - one HTTP Range request each - and not-found as for
    any fsspec filesystem); a write is an HTTP 403 or 405. WebDAV has no file modes (`mode`
    is None) and its dates are whole seconds."""

    def __init__(self, url: str) -> None:
        from webdav4.fsspec import WebdavFileSystem

        self.url = url
        self.fs = WebdavFileSystem(url)

    def listdir(self, path: str) -> list[str]:
        infos = self.fs.ls("/" + path, detail=True)
        return [info["name"].rstrip("/").rsplit("/", 1)[-1] for info in infos]

    def stat(self, path: str) -> Stat:
        info = self.fs.info("/" + path)
        is_dir = info["type"] == "directory"
        return Stat(is_dir, 0 if is_dir else info["size"], None, info["modified"].timestamp())

    def write_attempts(self, layout: Layout) -> list[Callable[[], Any]]:
        fs, scores = self.fs, f"/{layout.result_folder}/scores.yaml"
        return [
            lambda: fs.pipe_file(scores, b"x"),  # PUT over a file
            lambda: fs.pipe_file("/runs/new.txt", b"x"),
            lambda: fs.mkdir("/runs/newdir"),
            lambda: fs.rm(scores),
            lambda: fs.rm(f"/{layout.result_folder}", recursive=True),
            lambda: fs.mv(scores, "/runs/moved.yaml"),
            lambda: fs.cp_file(scores, "/runs/copied.yaml"),
        ]

    def assert_read_only(self, attempt: Callable[[], Any]) -> None:
        """403 or 405: webdav4 raises HTTPError with the status, or, for a MKCOL refused with
        403, ForbiddenOperation."""
        from webdav4.client import ForbiddenOperation, HTTPError

        with pytest.raises((HTTPError, ForbiddenOperation)) as info:
            attempt()
        assert isinstance(info.value, ForbiddenOperation) or info.value.status_code in (403, 405)


# -- the contract ---------------------------------------------------------------------------
def results_csv_labels(data: bytes) -> list[str]:
    return [row["result"] for row in csv.DictReader(io.StringIO(data.decode("utf-8")))]


class TreeContract:
    """Behaviour of the tree on a surface; a subclass provides the `surface` fixture."""

    @pytest.fixture
    def surface(self) -> Surface:
        raise NotImplementedError("a surface subclass provides its adapter")

    def test_top_level_folders(self, surface, layout):
        assert set(surface.listdir("")) == TOP
        assert {n for n in TOP if surface.stat(n).is_dir} == TOP - {"README.txt"}

    def test_a_dataset_folder_lists_its_results_results_csv_and_best(self, surface, layout):
        assert set(surface.listdir("runs")) == set(layout.datasets)
        for dataset in layout.datasets:
            names = set(surface.listdir(f"runs/{dataset}"))
            labels = {n for n in names if LABEL.match(n)}
            assert labels == set(layout.results[dataset]), dataset
            tables = {f"{stem}.{suffix}" for stem in ("RESULTS", f"best_{layout.best[dataset]}")
                      for suffix in TABLE_FORMS}  # fmt: skip
            assert names - labels == {"DATASET.yaml", *tables, *GROUP_FILES[dataset]}, dataset
            assert all(surface.stat(f"runs/{dataset}/{n}").is_dir for n in labels)
            ranked = results_csv_labels(surface.read(f"runs/{dataset}/RESULTS.csv"))
            assert sorted(ranked) == sorted(labels) and ranked[0] == layout.best[dataset]

    def test_same_bytes_as_the_tree(self, surface, layout):
        for path in layout.files:
            assert surface.read(path) == layout.bytes_of(path), path

    def test_stat_size_is_the_number_of_bytes_read(self, surface, layout):
        paths = list(layout.files)
        stack = [layout.result_folder]
        while stack:  # every file of a result folder, walked through the surface itself
            folder = stack.pop()
            for name in surface.listdir(folder):
                child = f"{folder}/{name}"
                (stack.append(child) if surface.stat(child).is_dir else paths.append(child))
        assert len(paths) > len(layout.files) + 15
        for path in paths:
            assert surface.stat(path).size == len(surface.read(path)), path

    def test_byte_ranges_are_slices_of_the_whole(self, surface, layout):
        for path in layout.files:
            whole = layout.bytes_of(path)
            size = len(whole)
            ranges = [(0, 1), (0, 64), (7, 100), (size // 2, 4096), (size - 5, 5)]
            ranges += [(size - 3, 100), (size, 10), (size + 10, 10), (0, size + 1000)]
            for start, length in ranges:
                start = max(start, 0)
                got = surface.read_range(path, start, length)
                assert got == whole[start : start + length], (path, start, length)

    def test_folders_and_files_have_their_kinds_and_modes(self, surface, layout):
        for path in layout.folders:
            st = surface.stat(path)
            assert st.is_dir and st.mode == DIR_MODE, (path, oct(st.mode))
        for path in layout.files:
            st = surface.stat(path)
            assert not st.is_dir and st.mode == FILE_MODE, (path, oct(st.mode))

    def test_mtimes_are_the_trees(self, surface, layout):
        for path in layout.folders + layout.files:
            want = layout.node(path).mtime
            assert surface.stat(path).mtime == pytest.approx(want, abs=1e-6), path
            assert want > 365 * 86400, path  # a creation time, never 1970

    def test_a_missing_path_is_missing(self, surface, layout):
        for path in layout.missing:
            for call in (surface.listdir, surface.stat, surface.read):
                surface.assert_missing(call, path)

    def test_dotdot_is_refused(self, surface, layout):
        """`..` is never resolved into another name of the tree."""
        for path in ("runs/..", "runs/../README.txt", "runs/fermentation/../../best"):
            for call in (surface.listdir, surface.stat, surface.read):
                surface.assert_missing(call, path)

    def test_best_csv_is_the_best_results_predictions(self, surface, layout):
        for dataset in layout.datasets:
            label = layout.best[dataset]
            best = surface.read(f"best/{dataset}.csv")
            assert best == surface.read(f"runs/{dataset}/best_{label}.csv"), dataset
            predictions = f"runs/{dataset}/{label}/predictions"
            files = surface.listdir(predictions)
            expected = surface.read(f"{predictions}/cv.csv")  # out of fold, then the test set
            if "test.csv" in files:
                expected += surface.read(f"{predictions}/test.csv").split(b"\n", 1)[1]
            assert best == expected, dataset
        forms = {f"{d}.{suffix}" for d in layout.datasets for suffix in TABLE_FORMS}
        assert set(surface.listdir("best")) == forms

    def test_by_run_shows_the_runs_result_folders(self, surface, layout):
        assert sorted(surface.listdir("by-run")) == layout.runs
        shown: dict[str, set[str]] = {d: set() for d in layout.datasets}
        for run in layout.runs:
            names = set(surface.listdir(f"by-run/{run}"))
            datasets = names - {"RUN.yaml", "templates"}
            assert datasets and datasets <= set(layout.datasets), run
            for dataset in datasets:
                names = set(surface.listdir(f"by-run/{run}/{dataset}"))
                labels = {n for n in names if LABEL.match(n)}
                want = {k for k, r in layout.results[dataset].items() if r.run_id == run}
                assert labels == want, (run, dataset)
                tables = {f"RESULTS.{suffix}" for suffix in TABLE_FORMS}  # the run's ranking
                assert names - labels == tables | GROUP_FILES[dataset] - {"REPORT.html"}
                shown[dataset] |= labels
                for label in labels:  # the same folder under both views
                    here, there = f"by-run/{run}/{dataset}/{label}", f"runs/{dataset}/{label}"
                    assert sorted(surface.listdir(here)) == sorted(surface.listdir(there))
                    assert surface.read(f"{here}/scores.yaml") == surface.read(
                        f"{there}/scores.yaml"
                    )
        for dataset in layout.datasets:
            in_runs = {n for n in surface.listdir(f"runs/{dataset}") if LABEL.match(n)}
            assert shown[dataset] == in_runs, dataset
        assert len(shown["fermentation"]) == 5 and len(layout.runs) == 3

    def test_writes_are_refused(self, surface, layout):
        attempts = surface.write_attempts(layout)
        assert attempts
        for attempt in attempts:
            surface.assert_read_only(attempt)
        assert surface.read(f"{layout.result_folder}/scores.yaml") == layout.bytes_of(
            f"{layout.result_folder}/scores.yaml"
        )


# -- the surfaces ------------------------------------------------------------------------------
class TestTreeObject(TreeContract):
    @pytest.fixture
    def surface(self, ws) -> Surface:
        return TreeSurface(Tree(ws))  # a tree of its own; `ws.tree` is the reference

    def test_dotdot_is_refused(self, surface, layout):
        """The tree has no `..` entry, and its one parser of text paths refuses `..`."""
        super().test_dotdot_is_refused(surface, layout)
        for text in ("/runs/../README.txt", "..", "runs/fermentation/../../best"):
            with pytest.raises(FileNotFoundError):
                parse_path(text)

    def test_writes_are_refused(self, surface, layout):
        """Read-only by construction: the tree offers no call that writes."""
        writers = {"write", "write_file", "mkdir", "remove", "rm", "unlink", "rename", "pipe"}
        assert not writers & set(dir(surface.tree))
        assert surface.write_attempts(layout) == []


class TestFsspec(TreeContract):
    @pytest.fixture
    def surface(self, ws) -> Surface:
        return FsspecSurface(N4AFileSystem(workspace=ws.path))


@pytest.fixture(scope="module")
def mnt(ws, tmp_path_factory):
    with Mount(ws.path, tmp_path_factory.mktemp("contract-mnt") / "nirs").serving() as mount:
        yield mount


class TestMount(TreeContract):
    @pytest.fixture
    def surface(self, mnt) -> Surface:
        return MountSurface(mnt.path)

    def test_dotdot_is_refused(self, surface, layout):
        """The kernel resolves `..` by its own dentries before the daemon sees a path (the
        daemon is never sent one): `runs/..` is the mount's root, and `..` of the root
        leaves the mount; no `..` turns into a name inside the tree."""
        root = os.stat(surface.root)
        for path in ("runs/..", "runs/fermentation/../.."):
            st = os.stat(surface.at(path))
            assert (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino), path
        assert os.stat(surface.at("..")).st_dev != root.st_dev
        assert surface.read("runs/../README.txt") == surface.read("README.txt")
        surface.assert_missing(surface.stat, "runs/../nosuch")


@pytest.fixture(scope="module")
def dav(ws, tmp_path_factory):
    with Server(ws.path, tmp_path_factory.mktemp("contract-dav-state")).serving() as server:
        yield server


class TestWebDAV(TreeContract):
    @pytest.fixture
    def surface(self, dav) -> Surface:
        return WebDAVSurface(dav.url)

    def test_folders_and_files_have_their_kinds_and_modes(self, surface, layout):
        """WebDAV has no modes (no property carries them): the kinds only."""
        for path in layout.folders:
            assert surface.stat(path).is_dir, path
        for path in layout.files:
            assert not surface.stat(path).is_dir, path

    def test_mtimes_are_the_trees(self, surface, layout):
        """HTTP dates (`getlastmodified`, RFC 1123) are whole seconds: the tree's, truncated."""
        for path in layout.folders + layout.files:
            want = layout.node(path).mtime
            assert surface.stat(path).mtime == int(want), path
            assert want > 365 * 86400, path

    def test_dotdot_is_refused(self, surface, layout):
        """`..` never reaches the tree: clients remove dot segments from a URL before sending
        it (RFC 3986; webdav4, browsers), and WsgiDAV does the same to a path sent raw
        (`curl --path-as-is`) before routing and authorizing it, as the kernel does for the
        mount: `runs/..` is the root, and a `..` above the root is refused (400)."""

        def raw(path: str, method: str = "GET") -> tuple[str, bytes]:
            done = subprocess.run(
                ["curl", "-s", "-w", "\n%{http_code}", "--path-as-is", "-X", method]
                + (["-H", "Depth: 1"] if method == "PROPFIND" else [])
                + [surface.url + path],
                capture_output=True,
            )
            body, _, status = done.stdout.rpartition(b"\n")
            return status.decode(), body

        assert raw("runs/../README.txt") == ("200", layout.bytes_of("README.txt"))
        assert raw("runs/fermentation/../../README.txt")[1] == layout.bytes_of("README.txt")
        assert raw("runs/..", "PROPFIND")[1] == raw("", "PROPFIND")[1]
        assert raw("runs/../nosuch")[0] == "404"
        for path in ("..", "../README.txt", "runs/../../README.txt"):
            assert raw(path)[0] == "400", path
