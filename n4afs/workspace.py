"""The Python API: `Workspace(path)` creates or opens a workspace and adds datasets to it.

A workspace directory holds `n4a.duckdb` (the index), `objects/` (the blobs) and the lock
files. Opening one checks the schema version with a read; only an older index takes the
write lock to migrate, so opening is cheap and never blocks a running sweep for long.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from n4afs_core.errors import DatasetError, N4AError, RunError, WorkspaceError
from n4afs_core.index import catalog, queries, writes
from n4afs_core.index.catalog import BlobStats, DatasetInfo
from n4afs_core.index.database import SCHEMA_DIR, migrations_in
from n4afs_core.index.engines import (
    INDEX_ENV,
    record_index,
    workspace_exists,
    workspace_index,
)
from n4afs_core.index.trust import untrusted_runs
from n4afs_core.store.ids import sha256_hex
from n4afs_core.store.shared import publishes
from n4afs_core.store.storage import Store
from n4afs_core.store.stores import recorded_store, store_url, workspace_store

from n4afs.runs import Result, Run, ranked_handles, undated

ENV_VAR = "N4AFS_WORKSPACE"
TreePath = str | Sequence[str]  # a path in the tree: `runs/wheat/0042_...` or its parts
PathLike = str | os.PathLike


@dataclass(frozen=True)
class Admitted:
    """A dataset added to the workspace, and what happened when its content was known."""

    info: DatasetInfo
    note: str | None = None  # None: a new dataset


def _kept_description(admitted: Admitted, meta: dict[str, Any]) -> Admitted:
    """Known content keeps the note and keys of its first add (its DATASET.yaml never
    changes under its name): a later add that says otherwise is told so."""
    info = admitted.info
    asked = (meta["note"], meta["keys"])
    if asked == (None, {}) or asked == (info.note, info.keys):
        return admitted
    kept = "note and keys of the first add are kept"
    if info.note is not None or info.keys:
        kept += f" (note {info.note!r}, keys {info.keys})"
    kept += "; this add's were not recorded"
    return Admitted(info, f"{admitted.note}; {kept}" if admitted.note else kept)


def _same_source(info: DatasetInfo, spectra: Any) -> bool:
    """A dataset imported without its spectra and spectra loaded from the file it recorded
    (same bytes), read the same way (same samples, wavelengths and targets)."""
    return (
        spectra.source_sha256 is not None
        and spectra.source_sha256 == info.source_sha256
        and (spectra.task, spectra.n_samples, spectra.n_features)
        == (info.task, info.n_samples, info.n_features)
        and list(spectra.target_names) == list(info.target_names)
    )


def _description(source_sha256: str | None, shape: Any) -> str:
    """'a file of sha256 1a2b3c4d5e6f…, 21 samples x 1047 wavelengths, targets glucose'."""
    source = f"a file of sha256 {source_sha256[:12]}…" if source_sha256 else "unknown data"
    return (
        f"{source}, {shape.n_samples} samples x {shape.n_features} wavelengths, targets "
        f"{', '.join(shape.target_names)}"
    )


def default_workspace_path() -> Path:
    """`$N4AFS_WORKSPACE`, else `~/.n4afs/workspace`."""
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".n4afs" / "workspace").expanduser()


class Workspace:
    """One experiment workspace: index + blob store."""

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        create: bool = True,
        store: str | None = None,
        shared_store: bool = False,
        index: str | None = None,
    ) -> None:
        """`store`: where blobs live, e.g. `s3://bucket/prefix` (default: inside the
        workspace directory); `index`: a shared index, `postgresql://user@host/db` (default:
        `$N4AFS_INDEX` for a new workspace, else its own DuckDB file). Both are remembered
        in `n4a.yaml`. A store that already holds another workspace's objects is refused
        unless `shared_store` (`core.store.shared`: each workspace's gc then spares what the
        others reference); the workspaces of one shared index share its store."""
        # absolute: a daemon serves from "/" (libfuse moves there), and must still find it
        self.path = Path(path if path is not None else default_workspace_path())
        self.path = self.path.expanduser().absolute()
        creating = not workspace_exists(self.path)
        if creating:
            if not create:
                raise WorkspaceError(
                    f"no workspace at {self.path}: create it with `n4afs init {self.path}`"
                )
            if self.path.exists() and not self.path.is_dir():
                raise WorkspaceError(f"{self.path} exists and is not a directory")
            index = index or os.environ.get(INDEX_ENV) or None
        self.index = workspace_index(self.path, index)
        self._store = None
        store = store_url(store) if store else None  # a folder path: its file:// URL
        if self.index.engine != "duckdb":
            self._ensure_schema()
            if creating or store is not None:  # a shared index says which store everyone uses
                store = self.index.shared_store(store or recorded_store(self.path))
                shared_store = True  # its workspaces share it by construction
        if creating or store is not None:
            self._store = workspace_store(self.path, store, shared=shared_store)
            self._store.create()
        record_index(self.path, self.index)
        if self.index.engine == "duckdb":
            self._ensure_schema()
        if creating and publishes(self._store, self.path):
            self.publish_refs()  # from now on the other workspaces of the store know it

    def publish_refs(self) -> None:
        """Publish what this workspace references in its store, for the other workspaces
        sharing it (`core.store.shared`); runs, imports and gc do it."""
        from n4afs_core.maintenance import publish_refs

        publish_refs(self.index, self.store)

    def _published(self) -> None:
        """After a run or an import: publish when the store is (or may be) shared."""
        if publishes(self.store, self.path):
            self.publish_refs()

    @property
    def store(self) -> Store:
        """The blob store, opened on first use: commands that read only the index (`runs`,
        `best`, listings, RESULTS.csv) never reach it, so they work while it is down. Opening
        contacts nothing; the first call that needs the store does, bounded by its
        timeouts (`StoreUnreachable`, one line, when it does not answer)."""
        if self._store is None:
            self._store = workspace_store(self.path)
            if not self._store.remote:  # a local folder: its shard folders, no network
                self._store.create()
        return self._store

    @store.setter
    def store(self, store: Store) -> None:
        self._store = store

    def _ensure_schema(self) -> None:
        latest = migrations_in(SCHEMA_DIR)[-1].version
        if not self.index.exists() or self.index.schema_version() != latest:
            self.index.migrate()

    @property
    def tree(self) -> Any:
        """This workspace's tree (one per Workspace object, so renders are memoized)."""
        if getattr(self, "_tree", None) is None:
            from n4afs.tree.tree import Tree

            self._tree = Tree(self)
        return self._tree

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # -- datasets ---------------------------------------------------------------------
    def add_dataset(self, source: Any, name: str | None = None, **options: Any) -> DatasetInfo:
        """Load, validate and store a dataset once; adding the same data again is a no-op.

        `source` is a CSV or spreadsheet path, `chemotools:fermentation` /
        `chemotools:coffee`, a pandas or polars frame (with `targets=[...]`), or a
        `core.data.datasets.Spectra`. Column roles (`core/data/columns.py`): `targets=[...]`,
        `sample_id=`, `meta=[...]`, `ignore=[...]`, `group=`; also `task`; for files
        `sheet=`, `encoding=`, and `references=FILE, on=COLUMN` to join reference values
        kept in a second file. `note="..."` and `keys={"instrument": "DS2500"}` describe the
        dataset (kept from its first add). Content already here under another name gains
        that name as an alias; the spectra of a dataset imported without them are attached
        (`admit_dataset` says which happened).
        """
        return self.admit_dataset(source, name, **options).info

    def admit_dataset(self, source: Any, name: str | None = None, **options: Any) -> Admitted:
        """`add_dataset`, with a sentence saying what it did when the content was known."""
        described = {"note": options.pop("note", None), "keys": options.pop("keys", None) or {}}
        if name is not None and not isinstance(source, (str, Path)):
            options["name"] = name
        from n4afs_core.data import datasets

        spectra = datasets.load_any(source, **options)
        if name:
            spectra.name = name
        return self._store_dataset(spectra, explicit_name=name is not None, **described)

    def add_arrays(self, X: Any, y: Any, name: str, **options: Any) -> DatasetInfo:
        """Spectra from numpy arrays (see `core.data.datasets.from_arrays` for options)."""
        from n4afs_core.data import datasets

        return self._store_dataset(datasets.from_arrays(X, y, name, **options)).info

    def _store_dataset(
        self,
        spectra: Any,
        explicit_name: bool = True,
        note: str | None = None,
        keys: dict[str, str] | None = None,
    ) -> Admitted:
        from n4afs_core.data import datasets

        meta = {**datasets.metadata(spectra), "note": note, "keys": writes.user_keys(keys or {})}
        data = datasets.to_parquet_bytes(spectra)
        known = self.known_content(spectra, sha256_hex(data))
        if known is not None:
            admitted = self._admit_known(known, spectra, data, explicit_name)
            return _kept_description(admitted, meta)
        self._refuse_other_spectra(spectra, explicit_name)
        blob_id = self.store.put(data)
        with self.index.write() as conn:
            writes.register_blob(conn, blob_id, len(data), "parquet")
            writes.add_dataset(conn, meta, blob_id, blob_id)
        return Admitted(self.dataset(blob_id))

    def known_content(self, spectra: Any, dataset_id: str) -> DatasetInfo | None:
        """The dataset already holding these spectra: the same id, the same content
        (`core.data.datasets.same_content`: rebuilt from a bundle's CSV, re-written by pandas),
        or, for one imported without its spectra, the same source file (sha256), samples,
        wavelengths and targets."""
        from n4afs_core.data import datasets

        with self.index.read() as conn:
            candidates = catalog.datasets_like(
                conn, dataset_id, spectra.task, spectra.n_samples, spectra.n_features
            )
        for info in candidates:
            if info.dataset_id == dataset_id:
                return info
            if info.blob_id is None:
                if _same_source(info, spectra):
                    return info
            elif datasets.same_content(spectra, self.load_dataset(str(info.dataset_id))):
                return info
        return None

    def _admit_known(
        self, known: DatasetInfo, spectra: Any, data: bytes, explicit_name: bool
    ) -> Admitted:
        """Known content: attach its spectra if it had none, record a new name as an alias
        (an implicit one, a file's stem, only when free), store nothing else."""
        what = f"dataset {known.name!r} ({known.short_id})"
        with self.index.read() as conn:
            taken = {d.dataset_id for d in catalog.find_datasets(conn, spectra.name)}
        new_name = spectra.name not in known.names and (explicit_name or not taken)
        blob_id = self.store.put(data) if known.blob_id is None else None
        with self.index.write() as conn:
            if blob_id is not None:
                writes.register_blob(conn, blob_id, len(data), "parquet")
                writes.attach_spectra(conn, known.dataset_id, blob_id)
            if new_name:
                writes.add_alias(conn, known.dataset_id, spectra.name)
        if blob_id is not None:
            note = f"spectra attached to {what}, which was imported without them"
        else:
            note = f"same content as {what}: nothing new stored"
        if new_name:
            note += f"; {spectra.name!r} is now another name for it"
        return Admitted(self.dataset(str(known.dataset_id)), note)

    def _refuse_other_spectra(self, spectra: Any, explicit_name: bool) -> None:
        """`--name wheat` on a dataset imported without spectra means "attach these": when
        they are not its spectra, say how they differ rather than add a second 'wheat'."""
        if not explicit_name:
            return
        with self.index.read() as conn:
            found = catalog.find_datasets(conn, spectra.name)
        for info in (d for d in found if d.blob_id is None):
            raise DatasetError(
                f"dataset {info.name!r} ({info.short_id}) has no spectra, and these are not "
                f"its own: it was made from {_description(info.source_sha256, info)}, "
                f"these from {_description(spectra.source_sha256, spectra)}; give another "
                "--name to add them as a new dataset"
            )

    def datasets(self) -> list[DatasetInfo]:
        with self.index.read() as conn:
            return catalog.list_datasets(conn)

    def dataset(self, key: str) -> DatasetInfo:
        """By name or id prefix; ambiguous or unknown keys get an error listing choices."""
        with self.index.read() as conn:
            found = catalog.find_datasets(conn, key)
            if len(found) == 1:
                return found[0]
            known = [d.name for d in catalog.list_datasets(conn)]
        if not found:
            raise DatasetError(f"no dataset {key!r} in {self.path}; known: {', '.join(known)}")
        ids = ", ".join(d.short_id for d in found)
        raise DatasetError(f"{key!r} names {len(found)} datasets ({ids}): use an id prefix")

    def load_dataset(self, key: str) -> Any:
        """The dataset's spectra as a `core.data.datasets.Spectra` (X, y, sample ids)."""
        from n4afs_core.data import datasets

        info = self.dataset(key)
        catalog.require_spectra(info)
        spectra = datasets.from_parquet_bytes(self.store.read(info.blob_id))
        spectra.name = info.name
        return spectra

    # -- runs -------------------------------------------------------------------------
    def run(
        self,
        templates: Sequence[Any],
        datasets: Sequence[Any],
        cv: int = 5,
        metric: str | None = None,
        name: str = "run",
        test_size: float = 0.0,
        test_dataset: Any = None,
        splitter: Any = None,
        seed: int = 42,
        n_jobs: int = 1,
        backend: str = "joblib",
        scheduler: Any = None,
        worker_cache: str | os.PathLike | None = None,
        on_result: Any = None,
        compute: bool = True,
        targets: str | Sequence[str] | None = None,
        group: str | bool | None = None,
        note: str | None = None,
    ) -> Run:
        """Run templates x datasets with K-fold CV; results are persisted as they finish.

        `templates`: an explicit list (YAML/JSON paths, step lists, `{name, steps}` dicts).
        `datasets`: names/ids already in the workspace, CSV paths, `chemotools:NAME`, or
        DataFrames. `metric` ranks results (default rmse / accuracy by task). The test set
        is either a held-out fraction (`test_size`) or a separate dataset (`test_dataset`);
        `splitter` is any scikit-learn CV splitter (default: shuffled K-fold, stratified
        for classification, seeded). `backend="dask"` with `scheduler` (an address such as
        tcp://host:8786, or a distributed Client / cluster) runs on a dask cluster; its
        workers cache the store's objects in `worker_cache` (default: their temp folder).
        `targets`: the target(s) modelled on each dataset, one result per config x target:
        names (each dataset must have them), "all", or None for each dataset's first target.
        `group`: the metadata column whose scans (replicates of one physical sample) stay
        together in every split: None (default) for each dataset's own group column, a
        column name, or False to split scans independently.
        `on_result` is called with each result's payload as it is stored. `compute=False`
        only plans: the run and its pending results are recorded (a metric or test set that
        does not fit is refused before that), and `Run.finish` computes them. `note`: what
        you want to remember about the run (RUN.yaml shows it; `note` replaces it later).
        """
        from n4afs_core.pipelines.runner import RunOptions, plan_run, splitter_spec, targets_asked
        from n4afs_core.pipelines.templates import load_templates

        loaded = load_templates(list(templates))
        infos = [self.resolve_dataset(d) for d in datasets]
        options = RunOptions(
            cv=splitter.get_n_splits() if splitter is not None else cv,
            seed=seed,
            metric=metric,
            test_size=test_size,
            n_jobs=n_jobs,
            test_dataset=self.resolve_dataset(test_dataset).dataset_id if test_dataset else None,
            splitter=splitter_spec(splitter) if splitter is not None else None,
            backend=backend,
            scheduler=getattr(scheduler, "scheduler_address", scheduler),
            worker_cache=str(worker_cache) if worker_cache is not None else None,
            targets=targets_asked(targets),
            group=group,
        )
        planned = Run(self, plan_run(self.index, loaded, infos, options, name, self.store, note))
        return planned.finish(on_result) if compute else planned

    def note(self, run: str, text: str) -> str:
        """Set a run's note (one line, replacing the one it had): RUN.yaml shows it. `run`
        is a run id, a unique prefix of one or its name. Returns the run id."""
        run_id = self._run_id(run)
        with self.index.write() as conn:
            if not writes.set_run_note(conn, run_id, text):
                raise RunError(f"no run {run!r} in {self.path}: list them with `n4afs runs`")
        return run_id

    def resume(self, run_id: str, on_result: Any = None, **execution: Any) -> Run:
        """Finish an interrupted run: only results still pending are computed. `execution`
        (`backend`, `scheduler`, `n_jobs`, `worker_cache`) moves it elsewhere: another
        dask scheduler, or `backend="joblib"` here."""
        return self.get_run(run_id).finish(on_result, **execution)

    def run_again(self, run_id: str, on_result: Any = None, compute: bool = True) -> Run:
        """A new run of a run's templates, datasets and options: the same fitted bytes,
        which is what recreates objects `verify --repair` quarantined. `compute=False`
        only plans it (as in `run`)."""
        from n4afs_core.pipelines.runner import plan_again

        planned = Run(self, plan_again(self.index, self._run_id(run_id), self.store))
        return planned.finish(on_result) if compute else planned

    def resolve_dataset(self, source: Any) -> DatasetInfo:
        if isinstance(source, str) and not source.startswith("chemotools:"):
            with self.index.read() as conn:
                found = catalog.find_datasets(conn, source)
            if len(found) == 1:
                return found[0]
        return self.add_dataset(source)

    def _run_id(self, key: str) -> str:
        """A full run id, or a unique prefix / name of one, or the id without its date."""
        matches = [
            r.run_id
            for r in self.runs()
            if key in (r.run_id, r.name) or r.run_id.startswith(key) or undated(r.run_id) == key
        ]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunError(f"no run {key!r} in {self.path}: list them with `n4afs runs`")
        raise RunError(f"{key!r} matches {len(matches)} runs: {', '.join(matches[:5])}")

    def runs(self) -> list[queries.RunRow]:
        with self.index.read() as conn:
            return queries.list_runs(conn)

    def get_run(self, key: str) -> Run:
        return Run(self, self._run_id(key))

    def results(
        self,
        dataset: str,
        metric: str | None = None,
        limit: int | None = None,
        target: str | None = None,
    ) -> list[Result]:
        """Every result on a dataset, across runs, best first.

        `metric`: rank by another metric than the runs' (pooled CV scores); it must fit the
        dataset's task, else `MetricError` names those that do. `target`: one target of a
        dataset with several; without it, each target's ranking in turn (results of two
        targets are never ranked against each other: `core.metrics.ranking.GroupKey`).
        """
        info = self.dataset(dataset)
        found: list[Result] = []
        for group in target_groups(info, target, every=True):
            found += self._ranked(group, metric, limit=limit)
        return found

    def best(self, dataset: str, metric: str | None = None, target: str | None = None) -> Result:
        """Best validation score across every run on that dataset (`metric` as in
        `results`); on a dataset with several targets, of the `target` named."""
        info = self.dataset(dataset)
        (group,) = target_groups(info, target)
        ranked = self._ranked(group, metric, limit=1, best_only=True)
        if not ranked:
            on = f" target {group.target!r} of" if target is not None else ""
            raise RunError(
                f"no completed result on{on} dataset {dataset!r} that may be best: run a "
                "sweep, or trust an imported bundle (`n4afs trust RUN`)"
            )
        return ranked[0]

    def _ranked(self, group: Any, metric: str | None, **options: Any) -> list[Result]:
        with self.index.read() as conn:
            ranking = queries.rank_results(conn, group, metric, **options)
        return ranked_handles(self, ranking)

    def compare(self, run_a: str, run_b: str) -> Any:
        """Two runs side by side (`core.metrics.compare`): per dataset and target either run
        modelled, the same configs (by config hash) with each run's score by the metric
        "best" means on both, which run does better on each, and which holds the best.
        run_a, run_b: run ids, unique prefixes or names. A `core.metrics.compare.Comparison`."""
        from n4afs_core.metrics import compare, ranking

        a_id, b_id = self._run_id(run_a), self._run_id(run_b)
        if a_id == b_id:
            raise RunError(f"{run_a!r} and {run_b!r} are the same run {a_id}: name two runs")
        found = []
        with self.index.read() as conn:
            untrusted = untrusted_runs(conn)
            rows = queries.run_results(conn, a_id) + queries.run_results(conn, b_id)
            groups: dict[Any, list[queries.ResultRow]] = {}
            for row in rows:
                groups.setdefault(ranking.group_of(row), []).append(row)
            for group, members in groups.items():
                metric = ranking.metric_of(members, untrusted)
                sides = []
                for run_id in (a_id, b_id):
                    ranked = queries.rank_results(conn, group, metric, run_id=run_id)
                    sides.append(
                        [
                            compare.Entry(r.config_hash, r.name, r.label, value)
                            for r, value in zip(ranked.rows, ranked.values, strict=True)
                        ]
                    )
                found.append(compare.side_by_side(members[0].dataset, group.target, metric, *sides))
        return compare.Comparison(a_id, b_id, found)

    # -- sharing ----------------------------------------------------------------------
    def import_bundle(
        self,
        source: str | os.PathLike,
        name: str | None = None,
        trust: bool = False,
        data: dict[str, str] | None = None,
        dry_run: bool = False,
        **limits,
    ) -> Any:
        """Import an n4afs export (zip or folder), a nirs4all workspace or a nirs4all `.n4a`
        bundle; see `n4afs.share.importer`. `data`: {nirs4all dataset name: CSV path} to
        attach the spectra nirs4all did not keep; `dry_run`: list what would come in (the
        summary's `dry_run` lines) and write nothing. `limits`: fields of
        `n4afs.share.bundle.Limits` (max_total_bytes, max_ratio ...) to override."""
        from n4afs.share.bundle import Limits
        from n4afs.share.importer import import_bundle
        from n4afs.share.references import import_references, is_references

        found = Path(source).expanduser()
        if is_references(found):  # by reference: rows and blob ids, the bytes in the store
            if data or limits:
                raise N4AError("--data and bundle limits apply to bundles, not to references")
            if dry_run:
                raise N4AError("--dry-run applies to bundles: a references file stores nothing")
            summary = import_references(self, found, name, trust)
            self._published()
            return summary
        summary = import_bundle(
            self, Path(source).expanduser(), name, trust, Limits(**limits), data, dry_run
        )
        if not dry_run:
            self._published()
        return summary

    def untrusted_runs(self) -> set[str]:
        """Imported runs whose results may not be best (`core.index.trust.UNTRUSTED_RUNS`)."""
        with self.index.read() as conn:
            return untrusted_runs(conn)

    def trust(self, key: str) -> str:
        """Trust an imported bundle, named by its run or by one of its results' tree paths
        (`runs/wheat/0047_...`): its results may then be best and its models loaded.
        Returns the import's run id."""
        from n4afs.tree.tree import parse_path

        run_id = None
        if "/" in key:
            found = self.tree.result_at(parse_path(key))
            if found is None:
                raise RunError(f"no result at {key!r}: give a result folder or an import run")
            run_id = found[0].run_id
        else:
            run_id = self._run_id(key)
        with self.index.write() as conn:
            if not writes.trust_import(conn, run_id):
                raise RunError(
                    f"{run_id} is not an imported bundle: results computed here are trusted"
                )
        return run_id

    def export(
        self,
        path: TreePath,
        out: PathLike,
        level: str = "default",
        link: bool = False,
        command: str | None = None,
        by_reference: bool = False,
    ) -> Any:
        """Write a folder of the tree (e.g. `runs/wheat/0042_snv-pls15_x9y8z7`, or its parts)
        to a zip or a folder of real files, with EXPORT.yaml and MANIFEST.yaml; see
        `n4afs.share.export`. `command`: what EXPORT.yaml records as having made the export.
        `by_reference`: write only the index rows and blob ids (a small YAML file at `out`),
        which a workspace on the same store imports without storing any byte
        (`n4afs.share.references`)."""
        from n4afs.share.export import export

        if by_reference:
            from n4afs.share.references import export_references

            return export_references(self, _tree_path(path), Path(out))

        if command is None:
            command = f"Workspace.export({path!r}, {str(out)!r}, level={level!r})"
        return export(self, _tree_path(path), Path(out), level=level, link=link, command=command)

    def predict(self, path: TreePath, new_csv: PathLike, model: str = "final", trust=False) -> Any:
        """Predict a CSV of new spectra with the model of the result folder at `path`
        (`runs/wheat/0042_...`); `model`: final, fold_<k> or avg. See `n4afs.share.prediction`
        (`predict_bundle` does the same for an exported bundle, without a workspace)."""
        from n4afs.share.prediction import predict_result

        return predict_result(self, _tree_path(path), Path(new_csv), model, trust)

    # -- serving ------------------------------------------------------------------------
    def mount(
        self, mountpoint: PathLike, foreground: bool = False, allow_other: bool = False
    ) -> Path | None:
        """Mount the tree read-only at `mountpoint` (FUSE), after the checks a user needs
        explained. In the background (a daemon; returns its log file once the mount is up)
        unless `foreground` (serves until unmounted or Ctrl-C; returns None). See
        `n4afs.surfaces.mount`; unmount with `n4afs.surfaces.mount.unmount`."""
        from n4afs.surfaces import mount

        where = Path(mountpoint).expanduser().absolute()
        mount.check_fuse()
        mount.check_mountpoint(where)
        if foreground:
            mount.serve(self, where, allow_other)
            return None
        return mount.start_background(self.path.absolute(), where, allow_other)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 4918,
        foreground: bool = False,
        user: str | None = None,
        password: str | None = None,
        token: bool = False,
        certfile: PathLike | None = None,
        keyfile: PathLike | None = None,
        announce: Callable[[Any], None] | None = None,
    ) -> Any:
        """Serve the tree read-only over WebDAV at http(s)://host:port/, after the checks a
        user needs explained. Anonymous on loopback; beyond it (or with `user`, `password`
        or `token`) every request authenticates, with a password generated when none is
        given. In the background (a daemon, stopped by `stop_serving`) unless `foreground`
        (serves until SIGTERM or Ctrl-C). `announce(served)` is called once it listens, with
        a `n4afs.surfaces.serve.Served` (its `password` set only when generated here);
        returns the same. See `n4afs.surfaces.serve`."""
        from n4afs.surfaces import serve

        user, password, generated = serve.credentials(host, user, password, token)
        certfile, keyfile = (None if f is None else str(f) for f in (certfile, keyfile))
        serve.check_tls(certfile, keyfile)
        if foreground:
            return serve.serve_foreground(
                self, host, port, user, password, generated, certfile, keyfile, announce
            )
        served = serve.start_background(
            self.path.absolute(), host, port, user, password, certfile, keyfile
        )
        if generated:
            served = replace(served, password=password)
        if announce is not None:
            announce(served)
        return served

    def stop_serving(self) -> Any:
        """Stop this workspace's background WebDAV server; the `Served` it was."""
        from n4afs.surfaces import serve

        return serve.stop(self.path.absolute())

    # -- queries ----------------------------------------------------------------------
    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """(column names, rows) of a read-only SQL query on a snapshot of the index.

        The query cannot change the workspace or touch other files (see `core.index.sql`);
        a failed or refused query raises `QueryError`.
        """
        from n4afs_core.index.sql import run_query

        return run_query(self.index, sql)

    # -- storage ----------------------------------------------------------------------
    def usage(self, path: TreePath = "/", top: int = 10) -> dict[str, Any]:
        """`core.maintenance.usage` of the results under a folder of the tree: the whole
        workspace (`/`, `runs`, `by-run`), `runs/<dataset>`, `by-run/<run>[/<dataset>]` or
        one result's folder. Any other path is refused, never answered for the workspace."""
        from n4afs_core.maintenance import usage

        parts = _tree_path(path)
        scope = self.tree.usage_scope(parts)
        if scope is None:
            shown = "/" + "/".join(parts)
            if self.tree.lookup(parts) is None:
                raise WorkspaceError(
                    f"no such path in the tree: {shown} (list what is there with `n4afs ls`)"
                )
            raise WorkspaceError(
                f"{shown} is not a folder du counts: give runs/<dataset>, by-run/<run>"
                "[/<dataset>], a result folder, or nothing for the whole workspace"
            )
        return usage(self.index, self.store, top=top, scope=scope)

    def blob_stats(self) -> BlobStats:
        with self.index.read() as conn:
            return catalog.blob_stats(conn)

    def gc(
        self, dry_run: bool = False, grace_s: float | None = None, forget: Sequence[str] = ()
    ) -> Any:
        """Delete stored objects the index no longer references, sparing those younger than
        `grace_s` (default an hour), those of runs in flight and, on a shared store, those
        other workspaces hold; see `core.maintenance.gc`. `forget`: ids of workspaces of
        the store that are gone (their published references are dropped first).
        Returns its `GcReport`."""
        from n4afs_core import maintenance

        from n4afs.tree.renderers import render_stamp

        grace = maintenance.DEFAULT_GRACE_S if grace_s is None else grace_s
        return maintenance.gc(
            self.index,
            self.store,
            dry_run=dry_run,
            grace_s=grace,
            forget=list(forget),
            current_renders=render_stamp(),
        )

    def render(self) -> dict[str, int]:
        """Draw and store now every rendered file not stored yet (charts, prediction
        tables and their workbooks, dataset tables), so that no process (a notebook's
        `n4a://` glob, the mount, `serve`, export) draws them on first read: see
        `Tree.store_renders`. Returns {"files", "drawn", "stored_before", "folders"}."""
        return self.tree.store_renders()

    def verify(self, repair: bool = False) -> Any:
        """Hash every referenced blob and check that index rows hang together; `repair`
        quarantines, evicts and marks broken (`core.maintenance.verify`). Returns its
        `VerifyReport` (`.ok` is False when something is damaged)."""
        from n4afs_core.maintenance import verify

        return verify(self.index, self.store, repair=repair)

    def remove(
        self,
        targets: Sequence[TreePath] = (),
        older_than_s: float | None = None,
        keep_best: int | None = None,
        metric: str | None = None,
        dry_run: bool = False,
        confirm: Callable[[Removal], bool] | None = None,
    ) -> Removal:
        """Remove results from the index: those of runs (a run id, prefix or name) and
        result folders (tree paths, `runs/wheat/0042_...`) in `targets`, of every run
        started more than `older_than_s` seconds ago, and, with `keep_best`, all but the N
        best per dataset (by `metric`, default the stored one). Runs left empty go too.

        Nothing is removed on a `dry_run`, or when `confirm(removal)`, asked before anything
        is removed, returns False. Bytes stay until `gc`; sequence numbers are never reused.
        """
        from n4afs_core import maintenance

        doomed: list[str] = []
        for target in targets:
            doomed += self._results_named(target)
        if older_than_s is not None:
            doomed += maintenance.results_older_than(self.index, older_than_s)
        if keep_best is not None:
            doomed += maintenance.results_beyond_best(self.index, keep_best, metric)
        doomed = list(dict.fromkeys(doomed))
        with self.index.read() as conn:
            rows = {r.result_id: r for r in queries.results_by_id(conn, doomed)}
        labels = [f"{rows[r].dataset}/{rows[r].label}" if r in rows else r for r in doomed]
        removal = Removal(doomed, labels)
        if dry_run or not doomed or (confirm is not None and not confirm(removal)):
            return removal
        return Removal(doomed, labels, maintenance.remove_results(self.index, doomed))

    def _results_named(self, target: TreePath) -> list[str]:
        """The results a `remove` target names: a result folder's, or a run's."""
        from n4afs_core import maintenance

        if not isinstance(target, str) or "/" in target:
            parts = _tree_path(target)
            found = self.tree.result_at(parts)
            if found is None or found[1] != len(parts):
                shown = target if isinstance(target, str) else "/".join(parts)
                raise N4AError(f"{shown} is not a result folder (runs/<dataset>/<NNNN_...>)")
            return [found[0].result_id]
        try:
            return maintenance.results_of_runs(self.index, [self._run_id(target)])
        except RunError as exc:
            hint = "results are given as paths (runs/<dataset>/<NNNN_...>)"
            raise N4AError(f"{exc}; {hint}") from exc


@dataclass(frozen=True)
class Removal:
    """What `Workspace.remove` removed, or would remove (a dry run, or not confirmed)."""

    result_ids: list[str]
    labels: list[str]  # `dataset/0042_name_hash` per result, in the same order
    runs_removed: list[str] | None = None  # None: nothing was removed

    @property
    def done(self) -> bool:
        return self.runs_removed is not None


def target_groups(info: DatasetInfo, target: str | None, every: bool = False) -> list[Any]:
    """What a ranking of `info` covers (`core.metrics.ranking.GroupKey`s): its target `target`, its
    only target, or, with `every`, each of its targets; a dataset with several targets needs
    one named otherwise (a best across targets means nothing)."""
    from n4afs_core.metrics.ranking import GroupKey

    known = list(info.target_names)
    if target is not None:
        if target not in known:
            raise RunError(
                f"dataset {info.name!r} has no target {target!r}; its targets: {', '.join(known)}"
            )
        return [GroupKey(info.dataset_id, target)]
    if len(known) <= 1 or every:
        return [GroupKey(info.dataset_id, t) for t in known or [None]]
    raise RunError(
        f"dataset {info.name!r} has several targets ({', '.join(known)}): name one (--target)"
    )


def _tree_path(path: TreePath) -> tuple[str, ...]:
    """A tree path given as text (`runs/wheat`) or as its parts."""
    from n4afs.tree.tree import parse_path

    return parse_path(path) if isinstance(path, str) else tuple(path)
