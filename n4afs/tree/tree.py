"""The browsable tree: a pure function of the index, built one directory at a time.

Nouns: a *path* is a tuple of components (strings only at the edges); a *node* is a file or
directory with its exact size and mtime (`n4afs.tree.content`). The tree answers three calls —
`list_dir(path)`, `lookup(path)`, `read(node, offset, size)` — plus `list_kinds(path)`, a
listing's names and types without its nodes; both surfaces (fsspec, FUSE) only translate
them. It never writes.

It holds a `Snapshot` of the index and a cache of built directories, both dropped when the
index's change token moves (one `stat`), so new results appear and `best_*` never goes
stale. Rendered bytes live in a memo keyed by content, which survives refreshes: a result
rendered once is never rendered again.

Layout (docs/DESIGN.md, "The tree"):
  README.txt
  runs/<dataset>/{DATASET.yaml, RESULTS.csv, best_<label>.csv, <label>/...}
  by-run/<run>/{RUN.yaml, templates/, <dataset>/<label>/...}
  best/<dataset>.csv
  datasets/<dataset>/{DATASET.yaml, spectra.csv, targets.csv[, metadata.csv]}
A dataset with several targets has one folder per target where a one-target dataset has its
results: runs/<dataset>/{DATASET.yaml, <target>/{RESULTS.csv, best_<label>.csv, <label>/}},
by-run/<run>/<dataset>/<target>/<label>/, best/<dataset>/<target>.csv.
"""

from __future__ import annotations

import errno
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from n4afs_core.errors import BlobNotFound, BlobUnreadable, N4AError
from n4afs_core.index.catalog import DatasetInfo
from n4afs_core.index.queries import ResultRow
from n4afs_core.maintenance import UsageScope
from n4afs_core.metrics import ranking
from n4afs_core.metrics.ranking import GroupKey
from n4afs_core.store.verified import VerifiedBlobs

from n4afs.tree import result_files, stored_folders
from n4afs.tree.content import (
    BlobContent,
    BytesContent,
    FilesListing,
    LazyContent,
    Listing,
    Node,
    RenderMemo,
    SegmentsContent,
    TreePath,
    directory,
    file_node,
    kinds,
    read_range,
)
from n4afs.tree.library_imports import importing_in_turns
from n4afs.tree.names import unique_names
from n4afs.tree.pipeline_pickle import BlobSegment
from n4afs.tree.snapshot import Snapshot, an_owner_died, load_snapshot

log = logging.getLogger(__name__)


class Views:
    """Lookups derived once per snapshot: folder names, groupings, the best per dataset and
    target (`core.metrics.ranking.GroupKey`: what is ranked together)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.dataset_dirs = unique_names(
            (d.dataset_id, d.name) for d in sorted(snapshot.datasets, key=lambda d: d.created_at)
        )
        self.datasets = {self.dataset_dirs[d.dataset_id]: d for d in snapshot.datasets}
        self.run_dirs = unique_names((r.run_id, r.run_id) for r in snapshot.runs)
        self.runs = {self.run_dirs[r.run_id]: r for r in snapshot.runs}
        self.datasets_by_id = {d.dataset_id: d for d in snapshot.datasets}
        self.runs_by_id = {r.run_id: r for r in snapshot.runs}
        # a dataset's results, grouped, on first use (`_DatasetView`): listing the root or
        # one dataset never loads the others
        self._dataset_views: dict[str, _DatasetView] = {}
        # dataset id -> {folder: target}, for the datasets shown one folder per target
        self.target_dirs = {
            d.dataset_id: {
                folder: t for t, folder in unique_names((t, t) for t in d.target_names).items()
            }
            for d in snapshot.datasets
            if d.several_targets
        }
        self._ranked: dict[GroupKey, list[ResultRow]] = {}
        # run id -> {dataset folder: dataset id}, for by-run/<run>/
        self.run_dataset_dirs = {
            run_id: {self.dataset_dirs[d]: d for d in dataset_ids}
            for run_id, dataset_ids in snapshot.run_datasets.items()
        }
        # the workspace's creation: the time of what never changes in it (README.txt) and
        # the least of any folder's, so nothing shows 1970, an empty workspace included
        self.created = _ts(snapshot.created)
        times = [_ts(latest) for _, latest in snapshot.shown.values()]
        times += [_ts(d.created_at) for d in snapshot.datasets]
        self.latest = max(times, default=self.created)

    # the mappings are made per use: held here they would make a reference cycle
    # (`_Generation` says why there must be none)
    @property
    def results_by_dataset(self) -> Mapping[str, list[ResultRow]]:
        """dataset id -> its results (in seq order)."""
        return _PerDataset(self, _itself, "results")

    @property
    def results_by_group(self) -> Mapping[GroupKey, list[ResultRow]]:
        """`GroupKey` -> the group's results (in seq order)."""
        return _PerDataset(self, _dataset_of_group, "by_group")

    @property
    def results_by_run(self) -> Mapping[tuple[str, str], list[ResultRow]]:
        """(run id, dataset id) -> the run's results on the dataset (in seq order)."""
        return _PerDataset(self, _dataset_of_run_key, "by_run")

    def dataset_view(self, dataset_id: str) -> _DatasetView:
        """The dataset's results by label, group and run, loaded on first use."""
        view = self._dataset_views.get(dataset_id)
        if view is None:
            rows = self.snapshot.rows_of(dataset_id)
            view = self._dataset_views.setdefault(dataset_id, _DatasetView(rows.results))
        return view

    def dataset_ids(self) -> list[str]:
        """Every dataset with results shown (what iterating a `_PerDataset` loads)."""
        return sorted({dataset_id for dataset_id, _ in self.snapshot.shown})

    def latest_of(
        self, dataset_id: str, target: str | None = None, *, group: bool = False
    ) -> float:
        """The newest shown result's time in a dataset (or in one of its groups), 0 if none:
        from the eager counts, so a folder's mtime never loads its results."""
        times = [
            _ts(latest)
            for (d, t), (_, latest) in self.snapshot.shown.items()
            if d == dataset_id and (not group or t == target)
        ]
        return max(times, default=0.0)

    def metric_of(self, results: list[ResultRow]) -> str:
        """What 'best' means on the dataset now (`core.metrics.ranking.metric_of`)."""
        return ranking.metric_of(results, self.snapshot.untrusted_runs)

    def groups(self, dataset: DatasetInfo) -> dict[str | None, GroupKey]:
        """target folder -> what it ranks, for a dataset with several targets; else
        {None: its one group}, its results showing in the dataset's own folder."""
        folders = self.target_dirs.get(dataset.dataset_id)
        if folders is None:
            first = dataset.target_names[0] if dataset.target_names else None
            return {None: GroupKey(dataset.dataset_id, first)}
        return {folder: GroupKey(dataset.dataset_id, t) for folder, t in folders.items()}

    def scope(self, dataset: DatasetInfo, rest: TreePath) -> tuple[GroupKey, int] | None:
        """The group shown at `rest` below the dataset's folder, and how many components
        name it (a target folder: 1; none for a one-target dataset); None: no such folder."""
        folders = self.groups(dataset)
        if None in folders:
            return folders[None], 0
        group = folders.get(rest[0]) if rest else None
        return None if group is None else (group, 1)

    def target_folder(self, group: GroupKey) -> str | None:
        """The folder of a group's target, None for a one-target dataset."""
        for folder, target in self.target_dirs.get(group.dataset_id, {}).items():
            if target == group.target:
                return folder
        return None

    def settled(self, results: list[ResultRow]) -> bool:
        """No run that is still running has results among `results`: a table of them is a
        state that lasts, worth storing for the next process (`_table_nodes`); while a run
        adds results, each state is seen once or not at all (storing each would fill the
        store with versions until gc)."""
        running = {r for r, run in self.runs_by_id.items() if run.status == "running"}
        return not running or not any(r.run_id in running for r in results)

    def ranked(self, group: GroupKey) -> list[ResultRow]:
        """A group's results, best first (`core.metrics.ranking.rank`); ranked on first use (one
        group per listing)."""
        ranked = self._ranked.get(group)
        if ranked is None:
            results = self.results_by_group.get(group, [])
            ranked = self._ranked[group] = self._rank(results) if results else []
        return ranked

    def _rank(self, results: list[ResultRow]) -> list[ResultRow]:
        snapshot = self.snapshot
        metric = self.metric_of(results)
        return ranking.rank(results, metric, snapshot.untrusted_runs, snapshot.cv_scores)

    def ranked_subset(self, results: list[ResultRow]) -> list[ResultRow]:
        """Some of a group's results (one run's), ranked among themselves by the metric
        they mean (`core.metrics.ranking.metric_of`)."""
        return self._rank(results)

    def best(self, group: GroupKey) -> ResultRow | None:
        """The top of the ranking when it may be best (`core.metrics.ranking.may_be_best`);
        of a dataset not loaded yet, the index's answer (`Snapshot.best_of`)."""
        if not self.snapshot.is_loaded(group.dataset_id):
            return self.snapshot.best_of(group)
        ranked = self.ranked(group)
        if not ranked:
            return None
        top = ranked[0]
        untrusted = top.run_id in self.snapshot.untrusted_runs
        return top if ranking.may_be_best(top.status, untrusted) else None

    def result(self, dataset_id: str, label: str) -> ResultRow | None:
        if dataset_id not in self.datasets_by_id:
            return None
        return self.dataset_view(dataset_id).by_label.get(label)


class _DatasetView:
    """One dataset's results: by folder label, by ranking group, by run (and group)."""

    def __init__(self, results: list[ResultRow]) -> None:
        self.results = results
        self.by_label = {r.label: r for r in results}
        self.by_group: dict[GroupKey, list[ResultRow]] = defaultdict(list)
        self.by_run: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
        # (run id, group) -> the run's results in the group: by-run/<run>/<dataset>/[<target>/]
        self.by_run_group: dict[tuple[str, GroupKey], list[ResultRow]] = defaultdict(list)
        for result in results:
            group = ranking.group_of(result)
            self.by_group[group].append(result)
            self.by_run[(result.run_id, result.dataset_id)].append(result)
            self.by_run_group[(result.run_id, group)].append(result)


def _itself(dataset_id: str) -> str:
    return dataset_id


def _dataset_of_group(group: GroupKey) -> str:
    return group.dataset_id


def _dataset_of_run_key(key: tuple[str, str]) -> str:
    return key[1]


class _PerDataset(Mapping):
    """A read-only mapping whose values live in `_DatasetView`s: `dataset_of(key)` names the
    dataset a key belongs to, loaded on first use. Iterating it loads every dataset."""

    def __init__(self, views: Views, dataset_of: Callable[[Any], str], part: str) -> None:
        self._views, self._dataset_of, self._part = views, dataset_of, part

    def _table(self, dataset_id: str) -> Any:
        view = self._views.dataset_view(dataset_id)
        return view.results if self._part == "results" else getattr(view, self._part)

    def __getitem__(self, key: Any) -> list[ResultRow]:
        dataset_id = self._dataset_of(key)
        if dataset_id not in self._views.datasets_by_id:
            raise KeyError(key)
        if self._part == "results":
            return self._table(dataset_id)
        found = self._table(dataset_id).get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[Any]:
        for dataset_id in self._views.dataset_ids():
            table = self._table(dataset_id)
            yield from [dataset_id] if self._part == "results" else list(table)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Generation:
    """One snapshot's views and the directories built from them: replaced together.

    Nothing reachable from `views` may hold a built node: rendered files' closures refer to
    the views, so a node cached there would make a reference cycle, and the mount daemon
    frees a replaced generation by reference counting alone (its cyclic GC is off).
    """

    def __init__(self, views: Views) -> None:
        self.views = views
        self.dirs = _Listings()
        # (result id, path inside its folder) -> listing: a result's folder shows under
        # runs/ and by-run/ alike, built once for both (a cold walk built each twice)
        self.result_dirs = _Listings()
        # result id -> its folder as stored whole, or None when not stored (`_stored_folder`)
        self.folders = _Recent(_FOLDERS_KEPT)
        # results whose folder is not stored yet, by id: stored at the first file lookup
        self.unstored: dict[str, ResultRow] = {}
        # ... or, with `Tree.store_folders_later`, queued here at that lookup
        self.looked_at: dict[str, ResultRow] = {}
        self.topped_up = False  # `Tree.top_up` ran for this generation


_UNKNOWN = object()
_FOLDERS_KEPT = 2_000  # stored result folders a generation keeps decoded (~40 nodes each)


class _Recent:
    """The `size` most recently put values by key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, default: Any = None) -> Any:
        return self._items.get(key, default)

    def put(self, key: Any, value: Any) -> None:
        """Safe from several threads (fsspec's): no step fails on a key another removed."""
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self.size:
            try:
                self._items.popitem(last=False)
            except KeyError:  # emptied by another thread meanwhile
                break


class _Listings:
    """A generation's built listings. Those holding a changing node (`Node.mutable`) are
    kept while the generation lives: after a refresh the mount invalidates every changing
    path they name (`Tree.mutable_paths`). The others hold content-addressed entries only,
    built the same when asked again, so only the `KEPT` most recently used stay: a walk
    over every folder of 10,000 results held ~150,000 listings (~0.9 GiB in the mount)."""

    KEPT = 20_000

    def __init__(self) -> None:
        self.changing: dict[Any, Listing] = {}
        self.fixed: OrderedDict[Any, Listing] = OrderedDict()

    def get(self, key: Any) -> Listing | None:
        found = self.changing.get(key)
        if found is None:
            found = self.fixed.get(key)
            if found is not None:
                self.fixed.move_to_end(key)
        return found

    def __getitem__(self, key: Any) -> Listing:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __setitem__(self, key: Any, listing: Listing) -> None:
        if not isinstance(listing, FilesListing) and any(n.mutable for n in listing.values()):
            self.changing[key] = listing
            return
        self.fixed[key] = listing
        while len(self.fixed) > self.KEPT:
            self.fixed.popitem(last=False)

    def with_changes(self) -> list[tuple[Any, Listing]]:
        """The listings that hold a changing node."""
        return list(self.changing.items())


def render_catalogue(workspace: Any) -> Any:
    """The workspace's stored renders of this code's stamp (`renderers.render_stamp`)."""
    from n4afs_core.store.renders import RenderCatalogue

    from n4afs.tree.renderers import render_stamp

    return RenderCatalogue(workspace.path, workspace.store, render_stamp())


def _ts(value: Any) -> float:
    return value.timestamp() if value is not None else 0.0


class Tree:
    """The read interface shared by the fsspec filesystem, the FUSE mount and export."""

    def __init__(
        self,
        workspace: Any,
        auto_refresh: bool = True,
        stored_renders: bool = True,
        store_folders_later: bool = False,
    ) -> None:
        """`auto_refresh`: check the change token on every call (fsspec, CLI). The mount
        turns it off and calls `refresh()` from a watcher thread instead, so no callback
        ever waits for a snapshot load. `stored_renders`: read and store renders in the
        workspace's render catalogue (`core.store.renders`); off, every render is drawn in
        this process (benchmarks measure drawing with it)."""
        self.ws = workspace
        self.auto_refresh = auto_refresh
        self.memo = RenderMemo(stored=render_catalogue(workspace) if stored_renders else None)
        self.files = result_files.ResultFiles(workspace, self.memo)
        self.verified = VerifiedBlobs(workspace.store.path_of)  # re-hashed when changed
        self._generation: _Generation | None = None
        self.previous: _Generation | None = None  # the one replaced by the last refresh
        self.refreshes = 0
        # a result folder looked into is stored by `store_looked_at` (the mount's watcher,
        # when idle), not inside the `stat` that found it unstored
        self.store_folders_later = store_folders_later

    # -- freshness --------------------------------------------------------------------
    def refresh(self) -> bool:
        """Reload the snapshot if the index changed since; one stat when it did not.

        Returns whether it reloaded. The new snapshot and an empty directory cache replace
        the old pair in one assignment, so a concurrent reader sees one or the other whole.
        """
        token = self.ws.index.change_token()
        current = self._generation
        unchanged = current is not None and current.views.snapshot.token == token
        if unchanged and not an_owner_died(current.views.snapshot):  # killed: `interrupted`
            return False
        self.previous = current
        old = current.views.snapshot if current is not None else None
        self._generation = _Generation(Views(load_snapshot(self.ws.index, previous=old)))
        self.refreshes += 1
        return True

    def prepare(self, first: Callable[[], bool] | None = None) -> bool:
        """Import the libraries the first reads would otherwise wait for: a result folder's
        REPORT.html embeds its charts and a PLS model's diagnostics, so its first `stat` (an
        `ls -l`, a WebDAV PROPFIND) would import matplotlib and scikit-learn inside the
        callback (seconds on a loaded machine: past a WebDAV client's timeout), and the
        first predictions CSV polars (~0.2 s). `serve` calls it before listening; the
        mount from its watcher once mounted (~3 s: before mounting, it kept the first `ls`
        waiting). No rows are read ahead: a dataset's results load on the first look
        inside its folder (`Snapshot.rows_of`), a page of their model rows on the first
        `models/` among them. Callbacks importing meanwhile wait for these imports
        (`importing_aside`): scikit-learn imported from two threads at once hands one of
        them a half-imported package. In two turns (`importing_in_turns`): what tables and
        charts need first, then scikit-learn (~2 s of the ~2.5 s), so a first `ls -la` or
        `find` waits for the first turn only: a callback's later import would wait for the
        second, so the first holds every module a dataset folder's listing, its tables'
        sizes and a result folder's files need (the heavy ones and the tree's own).
        `first`: see `importing_in_turns` (the mount's waits for its first callbacks to end,
        so the imports do not slow them: a stored listing needs none of these libraries).
        Returns whether it imported (not when `first` said no: an unmount)."""
        return importing_in_turns(self.prepare_turns(), first)

    @staticmethod
    def prepare_turns() -> list[Callable[[], None]]:
        """`prepare`'s turns, in order (a test runs the first alone)."""
        from n4afs.tree import renderers

        def tables_and_charts() -> None:  # what first listings, sizes and reads need
            import matplotlib  # noqa: F401
            import pandas  # noqa: F401  (pyarrow writes Parquet with pandas metadata)
            import polars  # noqa: F401
            import pyarrow.parquet  # noqa: F401  (RESULTS.parquet, best_*.parquet)
            import xlsxwriter  # noqa: F401  (RESULTS.xlsx, best_*.xlsx)
            from n4afs_core.data import datasets  # noqa: F401  (a result folder's listing)
            from n4afs_core.metrics import components, pls_diagnostics, replicates  # noqa: F401
            from n4afs_core.pipelines import templates  # noqa: F401  (RESULTS' columns)

            from n4afs.tree import charts, report  # noqa: F401

            renderers.warm_up()

        def models() -> None:  # a report's PLS diagnostics (~2 s): after the listings' turn
            import sklearn.pipeline  # noqa: F401

        return [tables_and_charts, models]

    def top_up(self) -> None:
        """After a refresh, load again the datasets the replaced snapshot had loaded and
        rank them, so no reader of a folder already browsed waits for its new results: the
        mount's watcher calls this after each poll (a flag check when nothing changed)."""
        generation = self._current()
        if generation.topped_up:
            return
        generation.topped_up = True
        previous = self.previous
        if previous is None:
            return
        views = generation.views
        for dataset_id in previous.views.snapshot.loaded_datasets:
            if dataset_id in views.datasets_by_id:
                for group in views.dataset_view(dataset_id).by_group:
                    views.ranked(group)

    def _current(self) -> _Generation:
        if self.auto_refresh or self._generation is None:
            self.refresh()
        return self._generation

    @property
    def views(self) -> Views:
        """The folder names, groupings and rankings of the snapshot the tree serves now (what
        benchmarks and diagnostics read; surfaces go through `list_dir`/`lookup`/`read`)."""
        return self._current().views

    def mutable_paths(self, generation: _Generation | None) -> list[TreePath]:
        """Paths served from `generation` whose content or listing may change."""
        if generation is None:
            return []
        paths: list[TreePath] = [()]
        for dir_path, entries in generation.dirs.with_changes():
            paths += [(*dir_path, name) for name, node in entries.items() if node.mutable]
        return paths

    def removed_paths(self, previous: _Generation | None) -> list[TreePath]:
        """Paths `previous` served that the current generation no longer has (a removed
        result, run or dataset, a `best_*.csv` renamed), each with every path below it: the
        kernel may still hold their entries and attributes, cached for long, so the mount
        invalidates them. Names only ever go from changing folders (`node.mutable`), so
        only those are compared; the ones a generation lists stay in its cache, and each
        is built once, when the generation is current."""
        if previous is None:
            return []
        current = self._current()
        gone: list[TreePath] = []
        stack: list[TreePath] = [()]
        while stack:
            path = stack.pop()
            old, new = self._listing(previous, path), self._listing(current, path)
            for name, node in (old or {}).items():
                now = None if new is None else new.get(name)
                if now is None or now.is_dir != node.is_dir:
                    gone += self._paths_below(previous, (*path, name), node.is_dir)
                elif node.is_dir and node.mutable:
                    stack.append((*path, name))
        return gone

    def _paths_below(self, generation: _Generation, path: TreePath, is_dir: bool) -> list[TreePath]:
        """`path` and, for a folder, every path under it as `generation` serves them."""
        found = [path]
        for name, child_is_dir in kinds(self._listing(generation, path) or {}) if is_dir else ():
            found += self._paths_below(generation, (*path, name), child_is_dir)
        return found

    # -- the three calls ----------------------------------------------------------------
    def list_dir(self, path: TreePath) -> Listing | None:
        return self._listing(self._current(), tuple(path))

    def _listing(self, generation: _Generation, path: TreePath) -> Listing | None:
        entries = generation.dirs.get(path)
        if entries is None:
            entries = self._build(generation, path)
            if entries is None:
                return None
            generation.dirs[path] = entries
        return entries

    def list_kinds(self, path: TreePath) -> Iterator[tuple[str, bool]] | None:
        """(name, is a directory) per entry: what a directory listing shows (readdir,
        a names-only `find`), without building the nodes of folders of files."""
        entries = self.list_dir(path)
        return None if entries is None else kinds(entries)

    def list_kinds_of(
        self, paths: list[TreePath]
    ) -> Iterator[tuple[TreePath, Iterator[tuple[str, bool]] | None]]:
        """`list_kinds` of several folders, from one snapshot: one freshness check for a
        whole level of a walk (fsspec's glob lists a thousand result folders at once)."""
        generation = self._current()
        for path in paths:
            entries = self._listing(generation, tuple(path))
            yield path, None if entries is None else kinds(entries)

    def lookup(self, path: TreePath) -> Node | None:
        generation = self._current()
        if not path:
            return directory("", self._root_mtime(generation.views))
        parent = self._listing(generation, tuple(path[:-1]))
        node = None if parent is None else parent.get(path[-1])
        if generation.unstored and node is not None and not node.is_dir:
            self._store_folder_of(generation, tuple(path))
        return node

    def result_at(self, path: TreePath) -> tuple[ResultRow, int] | None:
        """The result whose folder is at or above `path`, and that folder's depth."""
        return self._result_at(self._current().views, path)

    def _result_at(self, views: Views, path: TreePath) -> tuple[ResultRow, int] | None:
        if len(path) >= 3 and path[0] == "runs" and path[1] in views.datasets:
            result, depth = self._result_below(views, path[1], path[2:])
            return (result, 2 + depth) if result is not None else None
        if len(path) >= 4 and path[0] == "by-run" and path[2] in views.datasets:
            result, depth = self._result_below(views, path[2], path[3:])
            if result is not None and views.run_dirs.get(result.run_id) == path[1]:
                return result, 3 + depth
        return None

    @staticmethod
    def _result_below(views: Views, folder: str, rest: TreePath) -> tuple[ResultRow | None, int]:
        """The result whose folder is `rest` (or above it) inside the dataset's folder, and
        how many components name it: its label, after its target's folder if it has one."""
        dataset = views.datasets[folder]
        found = views.scope(dataset, rest)
        if found is None or len(rest) <= found[1]:
            return None, 0
        group, skip = found
        result = views.result(dataset.dataset_id, rest[skip])
        if result is None or ranking.group_of(result) != group:
            return None, 0
        return result, skip + 1

    def usage_scope(self, path: TreePath) -> UsageScope | None:
        """The results `du` counts for a folder of the tree: all of them for the root,
        runs/ and by-run/; a dataset's for runs/<dataset>; a run's for by-run/<run> (and
        its results on one dataset for by-run/<run>/<dataset>); one result for its folder.
        None for anything else (a file, best/, datasets/, a folder inside a result, or no
        such path): the caller says which."""
        path = tuple(path)
        shown = "/".join(path) or "/"
        if path in ((), ("runs",), ("by-run",)):
            return UsageScope(shown)
        found = self.result_at(path)
        if found is not None:
            result, depth = found
            return UsageScope(shown, result_id=result.result_id) if len(path) == depth else None
        views = self._current().views
        if path[0] == "runs" and len(path) in (2, 3) and path[1] in views.datasets:
            return self._dataset_usage(views, shown, views.datasets[path[1]], path[2:])
        run = views.runs.get(path[1]) if path[0] == "by-run" else None
        if run is None or len(path) > 4:
            return None
        if len(path) == 2:
            return UsageScope(shown, run_id=run.run_id)
        dataset_id = views.run_dataset_dirs.get(run.run_id, {}).get(path[2])
        if dataset_id is None:
            return None
        dataset = views.datasets_by_id[dataset_id]
        return self._dataset_usage(views, shown, dataset, path[3:], run.run_id)

    @staticmethod
    def _dataset_usage(
        views: Views, shown: str, dataset: DatasetInfo, rest: TreePath, run_id: str | None = None
    ) -> UsageScope | None:
        """A dataset's folder (`rest` empty), or one of its target folders."""
        if not rest:
            return UsageScope(shown, dataset_id=dataset.dataset_id, run_id=run_id)
        found = views.scope(dataset, rest)
        if found is None or found[1] != len(rest):
            return None
        target = found[0].target
        return UsageScope(shown, dataset_id=dataset.dataset_id, run_id=run_id, target=target)

    def dataset_named(self, folder: str) -> DatasetInfo | None:
        return self._current().views.datasets.get(folder)

    def dataset_folder(self, dataset_id: str) -> str:
        return self._current().views.dataset_dirs[dataset_id]

    def store_renders(self) -> dict[str, int]:
        """Render and store every rendered file that is stored (`LazyContent.persist`) and
        not stored yet: every result folder (under runs/: by-run/ shows the same ones) and
        every dataset folder; then store each result folder whole, its renders' places
        included (`stored_folders`). What `n4afs render` runs after a sweep."""
        files = drawn = 0
        before = self.memo.renders
        for top in (("runs",), ("datasets",)):
            for _, node in self.walk_files(top):
                content = node.content
                if isinstance(content, LazyContent) and content.persist:
                    files += 1
                    _ = content.size
        drawn = self.memo.renders - before
        views = self._current().views
        folders = sum(
            self.files.store_folder(views, r)
            for r in views.snapshot.results
            if not self.files.folder_complete(views, r)
        )
        return {"files": files, "drawn": drawn, "stored_before": files - drawn, "folders": folders}

    def walk_files(self, path: TreePath) -> list[tuple[TreePath, Node]]:
        """Every file at or below `path` (paths relative to it), in listing order."""
        node = self.lookup(path)
        if node is None:
            return []
        if not node.is_dir:
            return [((path[-1],), node)]
        found: list[tuple[TreePath, Node]] = []
        for name, child in (self.list_dir(path) or {}).items():
            if child.is_dir:
                found += [((name, *rel), n) for rel, n in self.walk_files((*path, name))]
            else:
                found.append(((name,), child))
        return found

    def read(self, node: Node, offset: int = 0, size: int = -1) -> bytes | bytearray:
        """Bytes of a file; the blobs behind it are checked first: hashed on first use, then
        one `stat` each while unchanged. Every failure to serve a blob is an `N4AError`
        (BlobCorrupt, BlobNotFound, BlobUnreadable), which the surfaces turn into EIO: an
        OSError here would read as "no such file" or "permission denied" for a path that
        exists and is readable."""
        if node.is_dir:
            raise IsADirectoryError(node.name)
        self.check(node)
        if size < 0:
            size = node.size
        try:
            return read_range(node, offset, size, self.ws.store.path_of)
        except FileNotFoundError as exc:  # removed since the check
            raise BlobNotFound(f"{node.name}: its blob vanished; run `n4afs verify`") from exc
        except OSError as exc:
            raise BlobUnreadable(
                f"{node.name}: its blob cannot be read ({exc.strerror or exc}); run `n4afs verify`"
            ) from exc

    def open(self, node: Node) -> Node:
        """The file as it is now, for a reader that reads it in several calls: every
        surface reads an open file from this node, never from its path again. A changing
        file (RESULTS.csv, best_*.csv, RUN.yaml...) is rendered once here and its bytes
        kept, so a result that lands mid-read cannot splice two versions; the other
        files are content-addressed and never change under a node. Blobs are checked."""
        self.check(node)
        if node.mutable and isinstance(node.content, LazyContent):
            return node._replace(content=BytesContent(bytes(node.content.data)))
        return node

    def check(self, node: Node) -> None:
        """Check every blob behind a file, so no surface (fsspec, FUSE, export) ever serves
        bytes that do not match their name: hashed once per tree, and again whenever the
        blob's file changed since (`core.store.verified`). Rendered files need no check: their
        inputs were verified when read from the store."""
        content = node.content
        if isinstance(content, BlobContent):
            self.verified.check(content.blob_id)
        elif isinstance(content, SegmentsContent):
            for segment in content.segments:
                if isinstance(segment, BlobSegment):
                    self.verified.check(segment.blob_id)

    def real_path(self, node: Node) -> str | None:
        """The blob file behind a node, for tools that want a path (read-only!)."""
        if isinstance(node.content, BlobContent):
            return str(self.ws.store.path_of(node.content.blob_id))
        return None

    # -- directory builders ---------------------------------------------------------------
    def _build(self, generation: _Generation, path: TreePath) -> Listing | None:
        views = generation.views
        if not path:
            return self._root(views)
        top, rest = path[0], path[1:]
        if top == "runs":
            return self._runs_view(generation, rest)
        if top == "by-run":
            return self._by_run_view(generation, rest)
        if top == "best":
            return self._best_view(views, rest)
        if top == "datasets":
            return self._datasets_view(views, rest)
        return None

    def _root_mtime(self, views: Views) -> float:
        return views.latest

    def _root(self, views: Views) -> dict[str, Node]:
        mtime = self._root_mtime(views)
        readme = BytesContent(result_files.README.encode("utf-8"))
        nodes = [file_node("README.txt", views.created, readme)]
        nodes += [directory(name, mtime) for name in ("runs", "by-run", "best", "datasets")]
        return {n.name: n for n in nodes}

    def _runs_view(self, generation: _Generation, rest: TreePath) -> Listing | None:
        views = generation.views
        if not rest:
            return {
                name: directory(name, self._dataset_mtime(views, d))
                for name, d in views.datasets.items()
            }
        dataset = views.datasets.get(rest[0])
        if dataset is None:
            return None
        if len(rest) == 1:
            return self._dataset_dir(views, dataset)
        found = views.scope(dataset, rest[1:])
        if found is None:
            return None
        group, skip = found
        if skip and len(rest) == 2:
            return self._group_dir(views, dataset, group)
        if rest[1 + skip] == GROUP_CHARTS:
            results = views.results_by_group.get(group, [])
            return self._group_charts(views, dataset, group, results, rest[2 + skip :])
        result = views.result(dataset.dataset_id, rest[1 + skip])
        if result is None or ranking.group_of(result) != group:
            return None
        return self._result_dir(generation, result, rest[2 + skip :])

    def _result_dir(
        self, generation: _Generation, result: ResultRow, rest: TreePath
    ) -> Listing | None:
        key = (result.result_id, rest)
        entries = generation.result_dirs.get(key)
        if entries is None:
            stored = self._stored_folder(generation, result, rest)
            if stored is not None:
                entries = stored.get(rest)
            else:
                entries = self.files.result_dir(generation.views, result, rest)
            if entries is not None:  # misses are not kept: a prober could grow them forever
                generation.result_dirs[key] = entries
        return entries

    def _stored_folder(
        self, generation: _Generation, result: ResultRow, rest: TreePath
    ) -> dict[TreePath, Listing] | None:
        """The result's folder as stored whole (`n4afs.tree.stored_folders`), read once per
        generation; None (built by `ResultFiles.result_dir`) for `charts/`, and for a folder
        not stored yet: then the first `lookup` of a file in it stores it."""
        if rest[:1] == (stored_folders.NOT_STORED,) or self.memo.stored is None:
            return None
        found = generation.folders.get(result.result_id, _UNKNOWN)
        if found is _UNKNOWN:
            found = self.files.stored_folder(generation.views, result)
            generation.folders.put(result.result_id, found)
            if found is None and self.memo.stored.writable:
                generation.unstored[result.result_id] = result
        return found

    def _store_folder_of(self, generation: _Generation, path: TreePath) -> None:
        """A file below a result folder not stored yet was looked up (a `stat`: `du`,
        `ls -la`, a read): store the folder whole, once, so the next process lists and
        sizes it without rows or renders. Best effort: a blob a YAML file needs that is
        missing or damaged fails that file's read (EIO, `n4afs verify`), never this lookup."""
        found = self._result_at(generation.views, path)
        if found is None or len(path) <= found[1]:
            return
        result = generation.unstored.pop(found[0].result_id, None)
        if result is None or not self.memo.stored.writable:  # not in a read-only workspace
            return
        if self.store_folders_later:
            generation.looked_at[result.result_id] = result
        else:
            self._store_folder(generation, result)

    def _store_folder(self, generation: _Generation, result: ResultRow) -> None:
        try:
            self.files.store_folder(generation.views, result)
        except (N4AError, OSError) as exc:
            log.debug("result folder %s not stored: %s", result.label, exc)

    def store_looked_at(self, seconds: float) -> int:
        """Store the result folders looked into since (`store_folders_later`), for about
        `seconds` at most: the mount's watcher calls this while no callback comes, so a
        first `du` costs what it did before folders were stored (~2 ms a folder: its YAML
        rendered, a blob put and fsynced). Returns how many it stored."""
        generation, stored = self._current(), 0
        deadline = time.monotonic() + seconds
        while generation.looked_at and time.monotonic() < deadline:
            _, result = generation.looked_at.popitem()
            self._store_folder(generation, result)
            stored += 1
        return stored

    def _dataset_mtime(self, views: Views, dataset: DatasetInfo) -> float:
        return max(_ts(dataset.created_at), views.latest_of(dataset.dataset_id))

    def _group_mtime(self, views: Views, dataset: DatasetInfo, group: GroupKey) -> float:
        latest = views.latest_of(dataset.dataset_id, group.target, group=True)
        return max(_ts(dataset.created_at), latest)

    def _dataset_dir(self, views: Views, dataset: DatasetInfo) -> dict[str, Node]:
        """DATASET.yaml, then its results (one target), or one folder per target."""
        nodes = [
            file_node(
                "DATASET.yaml",
                _ts(dataset.created_at),
                self.files.dataset_yaml(dataset),
                mutable=False,
            )
        ]
        groups = views.groups(dataset)
        if None in groups:
            entries = {n.name: n for n in nodes}
            return entries | self._group_dir(views, dataset, groups[None])
        nodes += [
            directory(folder, self._group_mtime(views, dataset, group))
            for folder, group in groups.items()
        ]
        return {n.name: n for n in nodes}

    def _group_dir(self, views: Views, dataset: DatasetInfo, group: GroupKey) -> dict[str, Node]:
        """The results of one dataset on one target: RESULTS.csv, best_*.csv, one folder
        each (in the dataset's folder, or in its target's)."""
        results = views.results_by_group.get(group, [])
        nodes = []
        if results:
            mtime = self._group_mtime(views, dataset, group)
            ranked = views.ranked(group)
            metric = views.metric_of(results)
            listing = self.files.results_tables(views, ranked, metric, (*group, None))
            settled = views.settled(results)
            nodes += _table_nodes("RESULTS", mtime, listing, keyed=settled)
            best = views.best(group)
            if best is not None:
                tables = self.files.best_tables(best, dataset, views)
                stem, shown = f"best_{best.label}", _ts(best.created_at)
                nodes += _table_nodes(stem, shown, tables, keyed=True)
            report = self.files.group_report(views, dataset, group.target, ranked, metric)
            noted = _noted_mtime(views, mtime, results)
            nodes.append(file_node(result_files.REPORT, noted, report, mutable=True, keyed=settled))
            if dataset.task == "regression":
                nodes.append(directory(GROUP_CHARTS, mtime))
        nodes += [directory(r.label, _ts(r.created_at), mutable=False) for r in results]
        return {n.name: n for n in nodes}

    def _group_charts(
        self,
        views: Views,
        dataset: DatasetInfo,
        group: GroupKey,
        results: list[ResultRow],
        rest: TreePath,
        run_id: str | None = None,
    ) -> dict[str, Node] | None:
        """`charts/` beside a ranking (a dataset's, or one run's on it): RMSECV against
        the number of components."""
        if rest or not results or dataset.task != "regression":
            return None
        title = (
            dataset.name
            if views.target_folder(group) is None
            else f"{dataset.name} / {group.target}"
        )
        if run_id is not None:
            title = f"{title} (run {run_id})"
        return self.files.group_charts(views, results, title, group.target)

    def _by_run_view(self, generation: _Generation, rest: TreePath) -> Listing | None:
        views = generation.views
        if not rest:
            return {name: directory(name, _ts(r.created_at)) for name, r in views.runs.items()}
        run = views.runs.get(rest[0])
        if run is None:
            return None
        by_dir = views.run_dataset_dirs.get(run.run_id, {})
        if len(rest) == 1:
            mtime = max([_ts(run.created_at), _ts(run.finished_at)])
            changed = max(mtime, _ts(run.noted_at))  # a note set later is a change
            nodes = [
                file_node("RUN.yaml", changed, self.files.run_yaml(views, run), mutable=True),
                directory("templates", _ts(run.created_at), mutable=False),
            ]
            nodes += [directory(name, mtime) for name in by_dir]
            return {n.name: n for n in nodes}
        if rest[1] == "templates" and len(rest) == 2:
            return self.files.templates_dir(views, run)
        dataset_id = by_dir.get(rest[1])
        if dataset_id is None:
            return None
        dataset = views.datasets_by_id[dataset_id]
        by_run_group = views.dataset_view(dataset_id).by_run_group
        found = views.scope(dataset, rest[2:])
        if len(rest) == 2 and (found is None or found[1]):  # a folder per target it modelled
            mtime = max([_ts(run.created_at), _ts(run.finished_at)])
            modelled = {group for run_id, group in by_run_group if run_id == run.run_id}
            return {
                folder: directory(folder, mtime)
                for folder, group in views.groups(dataset).items()
                if group in modelled
            }
        if found is None:
            return None
        group, skip = found
        shown = by_run_group.get((run.run_id, group), [])  # a dict: per result folder built
        if len(rest) == 2 + skip:
            if skip and not shown:  # a target the run did not model: not listed above
                return None
            return self._run_group_dir(views, dataset, group, shown)
        if rest[2 + skip] == GROUP_CHARTS:
            return self._group_charts(views, dataset, group, shown, rest[3 + skip :], run.run_id)
        result = views.result(dataset_id, rest[2 + skip])
        if result is not None and (
            result.run_id != run.run_id or ranking.group_of(result) != group
        ):
            result = None
        return None if result is None else self._result_dir(generation, result, rest[3 + skip :])

    def _run_group_dir(
        self, views: Views, dataset: DatasetInfo, group: GroupKey, shown: list[ResultRow]
    ) -> dict[str, Node]:
        """One run's results on a dataset's target: its own ranking (RESULTS.csv, same
        header as the dataset's), `charts/`, one folder per result (listed first, as
        before the ranking was shown here)."""
        nodes = [directory(r.label, _ts(r.created_at), mutable=False) for r in shown]
        if shown:
            mtime = max(_ts(r.created_at) for r in shown)
            ranked = views.ranked_subset(shown)
            metric, where = views.metric_of(shown), (*group, shown[0].run_id)
            tables = self.files.results_tables(views, ranked, metric, where)
            nodes += _table_nodes("RESULTS", mtime, tables, keyed=views.settled(shown))
            if dataset.task == "regression":
                nodes.append(directory(GROUP_CHARTS, mtime))
        return {n.name: n for n in nodes}

    def _best_view(self, views: Views, rest: TreePath) -> dict[str, Node] | None:
        if len(rest) > 1:
            return None
        if rest:  # best/<dataset>/: one file per target of a dataset with several
            dataset = views.datasets.get(rest[0])
            if dataset is None or None in views.groups(dataset):
                return None
            return self._best_files(views, dataset)
        nodes = {}
        for name, dataset in views.datasets.items():
            groups = views.groups(dataset)
            if None not in groups:
                files = self._best_files(views, dataset)
                if files:
                    mtime = max(node.mtime for node in files.values())
                    nodes[name] = directory(name, mtime)
                continue
            best = views.best(groups[None])
            if best is not None:
                tables = self.files.best_tables(best, dataset, views)
                table_nodes = _table_nodes(name, _ts(best.created_at), tables, keyed=True)
                nodes |= {n.name: n for n in table_nodes}
        return nodes

    def _best_files(self, views: Views, dataset: DatasetInfo) -> dict[str, Node]:
        """`<target>.csv` and `.xlsx` per target of the dataset that has a best result."""
        nodes = {}
        for folder, group in views.groups(dataset).items():
            best = views.best(group)
            if best is not None:
                tables = self.files.best_tables(best, dataset, views)
                table_nodes = _table_nodes(folder, _ts(best.created_at), tables, keyed=True)
                nodes |= {n.name: n for n in table_nodes}
        return nodes

    def _datasets_view(self, views: Views, rest: TreePath) -> dict[str, Node] | None:
        if not rest:
            return {
                name: directory(name, _ts(d.created_at), mutable=False)
                for name, d in views.datasets.items()
            }
        dataset = views.datasets.get(rest[0])
        if dataset is None or len(rest) > 1:
            return None
        return self.files.dataset_files(dataset)


def _noted_mtime(views: Views, mtime: float, results: list[ResultRow]) -> float:
    """A ranking report's mtime: its newest result's, or a note set later on one of its runs."""
    runs = {r.run_id for r in results}
    noted = [_ts(views.runs_by_id[run].noted_at) for run in runs if run in views.runs_by_id]
    return max([mtime, *noted])


GROUP_CHARTS = "charts"  # beside a ranking: charts over its results (never a result's label)


def _table_nodes(stem: str, mtime: float, tables: tuple, keyed: bool) -> list[Node]:
    """`<stem>.csv`, `<stem>.xlsx` and `<stem>.parquet`: one changing table (RESULTS, best)
    in each form. `keyed`: their render keys name everything they show, and they are worth
    storing (`file_node`): a best table always (keyed by its predictions blob and label),
    RESULTS once its results are settled (`Views.settled`)."""
    return [
        file_node(f"{stem}.{suffix}", mtime, content, mutable=True, keyed=keyed)
        for suffix, content in zip(("csv", "xlsx", "parquet"), tables, strict=False)
    ]


def parse_path(text: str) -> TreePath:
    """'/runs/wheat/' -> ('runs', 'wheat'); refuses '..' rather than resolving it."""
    parts = tuple(p for p in text.strip("/").split("/") if p and p != ".")
    if any(p == ".." for p in parts):  # ENOENT, like any other path the tree does not hold
        raise FileNotFoundError(errno.ENOENT, "not in the tree (no '..' in tree paths)", text)
    return parts
