"""Runs: templates x datasets, cross-validated, persisted result by result.

A run is planned before anything is fitted: the run row, its templates (before expansion)
and one `pending` results row per (dataset, config), each with its per-dataset sequence
number, all in one transaction. Execution then fits groups of configs (`core.pipelines.cv`) in
parallel with joblib, workers write blobs, and the coordinator commits each group's results
in one transaction (pending -> completed | failed). A crash leaves pending rows and no half
result; `execute_run` on the same run id finishes only what is still pending.

What can be checked without fitting is checked before the plan is written (options, enough
samples for the folds), so a refused run leaves nothing behind. A run that stops anyway
(an error, Ctrl-C, a full disk) releases its ownership: listings show it `interrupted`
(`core.index.liveness`), and every such error names `n4afs run --resume RUN`. Workers end when
their coordinator dies (`_exit_with_coordinator`): nobody would commit what they write.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from n4afs_core.data import datasets as ds
from n4afs_core.errors import DatasetError, RunError, full_path, is_disk_full
from n4afs_core.index.catalog import DatasetInfo, find_datasets, require_spectra
from n4afs_core.index.database import Index
from n4afs_core.index.names import checked_text
from n4afs_core.index.writes import (
    commit_payloads,
    insert_run,
    insert_run_dataset,
    insert_template,
    plan_results,
    record_owner,
    release_owner,
    set_run_status,
)
from n4afs_core.metrics.scores import get_metric, ranking_metric
from n4afs_core.pipelines.cv import FitContext, FitStats, fit_group, step_key
from n4afs_core.pipelines.persist import (
    Partitions,
    ResultPayload,
    short_id,
    store_fitted,
    store_outcome,
)
from n4afs_core.pipelines.templates import Template
from n4afs_core.pipelines.versions import library_versions
from n4afs_core.store.storage import Store
from n4afs_core.store.stores import open_store

DEFAULT_METRIC = {"regression": "rmse", "classification": "accuracy"}


# Finished groups are committed together when they finish within this long of the last
# commit: each index transaction costs ~25 ms, a small sweep's groups take less than that to
# fit, and a result is still committed whole (a crash loses at most this much work).
COMMIT_EVERY_S = 0.5


@dataclass(frozen=True)
class RunOptions:
    """Everything needed to reproduce (and resume) a run's splits and ranking."""

    cv: int = 5
    seed: int = 42
    metric: str | None = None  # default: rmse (regression) / accuracy (classification)
    test_size: float = 0.0  # fraction held out as a test set before CV
    test_dataset: str | None = None  # or a separate dataset (id) as the test set
    splitter: dict[str, Any] | None = None  # {"class": path, "params": {...}}; default K-fold
    n_jobs: int = 1
    backend: str = "joblib"  # or "dask": groups run on a dask.distributed cluster
    scheduler: str | None = None  # dask scheduler address, e.g. tcp://10.0.0.5:8786
    # the targets modelled on each dataset: names, "all", or None = each one's first target
    targets: list[str] | str | None = None
    # the metadata column naming each scan's physical sample, kept together in every split:
    # None = each dataset's own group column (if any), a column name, or False = none (scans
    # split independently)
    group: str | bool | None = None
    # where dask workers cache the store's objects: None = a folder in each worker's own
    # temporary directory (the coordinator's cache path means nothing on another machine)
    worker_cache: str | None = None

    def validate(self) -> None:
        if self.backend not in ("joblib", "dask"):
            raise RunError(f"unknown backend {self.backend!r}: use joblib or dask")
        if self.backend == "dask" and not self.scheduler:
            raise RunError("the dask backend needs a scheduler address (--scheduler tcp://...)")
        if self.test_size and self.test_dataset:
            raise RunError("give a test_size or a test dataset, not both")
        if self.cv < 2:
            raise RunError(f"cv must be at least 2 folds (got {self.cv})")
        if not 0.0 <= self.test_size < 0.9:
            raise RunError(f"test_size must be in [0, 0.9) (got {self.test_size})")
        if self.metric is not None:
            get_metric(self.metric)
        named = self.targets not in (None, ALL_TARGETS)
        if named and (isinstance(self.targets, str) or not self.targets):
            raise RunError(f"targets: a list of target names or {ALL_TARGETS!r}")
        if self.group is True or (isinstance(self.group, str) and not self.group.strip()):
            raise RunError("group: a metadata column name, None (the dataset's) or False (none)")


ALL_TARGETS = "all"
FIRST_TARGET = "each dataset's first target (the default: no target was asked for)"


def targets_asked(targets: Any) -> list[str] | str | None:
    """What a user gave as targets, as `RunOptions.targets` holds it: None (the default, each
    dataset's first target), "all", or the names in order without repeats."""
    if targets is None:
        return None
    names = [targets] if isinstance(targets, str) else [str(t) for t in targets]
    if not names:
        return None
    if ALL_TARGETS in names:
        if len(names) > 1:
            raise RunError(f"give target names or {ALL_TARGETS!r}, not both")
        return ALL_TARGETS
    return list(dict.fromkeys(names))


def targets_for(dataset: DatasetInfo, asked: list[str] | str | None) -> list[str]:
    """The targets a run models on `dataset`, in the dataset's order: its first one by
    default, all of them, or those asked for, each of which it must have."""
    known = list(dataset.target_names)
    if asked is None:
        return known[:1]
    if asked == ALL_TARGETS:
        return known
    for name in asked:
        if name not in known:
            raise RunError(
                f"dataset {dataset.name!r} has no target {name!r}; its targets: {', '.join(known)}"
            )
    return [t for t in known if t in asked]


def describe_targets(asked: list[str] | str | None) -> str:
    """RUN.yaml's `targets_chosen`: how the run's targets were chosen."""
    if asked is None:
        return FIRST_TARGET
    if asked == ALL_TARGETS:
        return "every target of each dataset (asked: all)"
    return "asked: " + ", ".join(asked)


ResultCallback = Callable[[ResultPayload], None]


def slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")[:40] or "run"


def metric_for(options: RunOptions, dataset: DatasetInfo) -> str:
    """The metric that ranks the run's results on `dataset`: the one asked for, which must
    fit the dataset's task (`core.metrics.scores.ranking_metric` refuses it otherwise, before
    anything is planned), else the task's default."""
    if options.metric:
        return ranking_metric(options.metric, dataset.task, f"dataset {dataset.name!r}").name
    return DEFAULT_METRIC[dataset.task]


# -- planning ---------------------------------------------------------------------------
# (pid, run id) of the runs this process is recorded as owning (`core.index.liveness`): a run
# planned here is executed without a second index write to say so. The pid makes a forked
# child record itself.
_OWNED: set[tuple[int, str]] = set()


def plan_run(
    index: Index,
    templates: Sequence[Template],
    datasets: Sequence[DatasetInfo],
    options: RunOptions,
    name: str,
    store: Store | None = None,
    note: str | None = None,
) -> str:
    """Record the run, its templates and every pending result; return the run id.

    `store`: where the datasets' data is, to count the groups of replicate scans before
    planning (without it a run with too few groups fails when it is executed). `note`:
    what the user says about the run (`run --note`), checked before anything is planned."""
    name = checked_text("run name", name)
    note = None if note is None else checked_text("run note", note)
    options.validate()
    if not templates or not datasets:
        raise RunError("a run needs at least one template and one dataset")
    test = _test_dataset(index, options)
    for dataset in [*datasets, *([test] if test is not None else [])]:
        require_spectra(dataset)  # a dataset imported without them: say how to attach them
    targets = [targets_for(dataset, options.targets) for dataset in datasets]
    groups = {d.dataset_id: group_column(options, d.name, *_group_facts(d)) for d in datasets}
    for dataset in datasets:
        check_folds(dataset.name, n_training(dataset.n_samples, options), options.cv)
        if test is not None:
            check_test_set(dataset, test)
        column = groups[dataset.dataset_id]
        if column is not None and store is not None and dataset.blob_id is not None:
            labels = _load_spectra(store, (dataset.blob_id, dataset.name)).labels(column)
            check_groups(dataset.name, column, labels)
            n_groups = len(set(labels.tolist()))
            check_group_folds(dataset.name, column, n_training(n_groups, options), options.cv)
    expanded = [t.expand(f"templates[{i}]") for i, t in enumerate(templates)]
    by_dataset = [
        [[c.for_task(d.task, d.name) for c in configs] for configs in expanded] for d in datasets
    ]
    metrics = [metric_for(options, dataset) for dataset in datasets]
    run_metric = ",".join(dict.fromkeys(metrics))  # two only when tasks mix with no --metric
    now = datetime.now().astimezone()  # an instant (aware); the run id's date is local
    identity = json.dumps(
        [
            name,
            [t.body for t in templates],
            [d.dataset_id for d in datasets],
            asdict(options),
            now.isoformat(),
            os.getpid(),
        ],
        default=str,
    )
    run_id = f"{now:%Y-%m-%d}_{slug(name)}_{short_id(identity, length=6)}"
    with index.write() as conn:
        insert_run(conn, run_id, name, run_metric, _run_options(options, groups), now, note)
        for position, (template, configs) in enumerate(zip(templates, expanded, strict=True)):
            insert_template(conn, run_id, position, template.name, template.body, len(configs))
        for position, (dataset, metric) in enumerate(zip(datasets, metrics, strict=True)):
            insert_run_dataset(conn, run_id, dataset.dataset_id, position)
            plan_results(conn, run_id, dataset, by_dataset[position], metric, targets[position])
    _OWNED.add((os.getpid(), run_id))
    return run_id


def plan_again(index: Index, run_id: str, store: Store | None = None) -> str:
    """A new run of `run_id`'s templates on its datasets with its options; its id.

    The one way to get the same fitted bytes again (what recreates an object `verify
    --repair` quarantined): the same seed gives the same folds and the same config groups
    share the same prefix fits. Fitting a single config alone pickles other bytes than the
    sweep did (measured: its PLS models differ), so a partial re-run does not heal.
    """

    with index.read() as conn:
        row = conn.execute("SELECT name, options FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise RunError(f"no run {run_id!r}: list them with `n4afs runs`")
        bodies = conn.execute(
            "SELECT name, body FROM templates WHERE run_id = ? ORDER BY position", [run_id]
        ).fetchall()
        dataset_ids = conn.execute(
            "SELECT dataset_id FROM run_datasets WHERE run_id = ? ORDER BY position", [run_id]
        ).fetchall()
        infos = [find_datasets(conn, dataset_id)[0] for (dataset_id,) in dataset_ids]
    imported = index.fetchall("SELECT 1 FROM imports WHERE run_id = ?", [run_id])
    if imported or not bodies:
        raise RunError(f"run {run_id} was imported, not fitted: import its bundle again")
    recorded = json.loads(row[1])
    fields = RunOptions.__dataclass_fields__
    options = RunOptions(**{k: v for k, v in recorded.items() if k in fields})
    templates = [Template(name, json.loads(body)) for name, body in bodies]
    return plan_run(index, templates, infos, options, row[0], store)


def _run_options(options: RunOptions, groups: dict[str, str | None]) -> dict[str, Any]:
    """Options plus where and with what they ran (MANIFEST.yaml and export cite these), and
    the group column each dataset's splits kept together (`groups`: dataset id -> column or
    None; RUN.yaml shows it)."""
    return {
        **asdict(options),
        "groups": groups,
        "host": socket.gethostname(),
        "versions": library_versions(),
    }


# -- splits -----------------------------------------------------------------------------
def n_training(n_samples: int, options: RunOptions) -> int:
    """Samples left for CV once the test fraction is held out (as train_test_split takes
    it: the test part rounded up); a separate test dataset takes none."""
    return n_samples - math.ceil(n_samples * options.test_size) if options.test_size else n_samples


def _test_dataset(index: Index, options: RunOptions) -> DatasetInfo | None:

    if not options.test_dataset:
        return None
    with index.read() as conn:
        found = find_datasets(conn, options.test_dataset)
    if len(found) != 1:
        raise RunError(f"no test dataset {options.test_dataset!r} in the workspace")
    return found[0]


def check_test_set(train: DatasetInfo, test: DatasetInfo) -> None:
    """Refuse, before planning, a test dataset the index already shows unfit: other
    targets, or other wavelengths (count and range). `with_test_set` compares every
    column name once the data are loaded."""
    if train.task != test.task or train.target_names != test.target_names:
        raise RunError(f"test dataset {test.name!r} has other targets than {train.name!r}")
    same_range = all(
        a == b or (a is not None and b is not None and ds.same_wavelength(a, b))
        for a, b in (
            (train.wavelength_min, test.wavelength_min),
            (train.wavelength_max, test.wavelength_max),
        )
    )
    if train.n_features != test.n_features or not same_range:
        raise RunError(
            f"test dataset {test.name!r} has other wavelength columns than {train.name!r}: "
            f"{test.n_features} from {test.wavelength_min} to {test.wavelength_max}, not "
            f"{train.n_features} from {train.wavelength_min} to {train.wavelength_max}"
        )


def check_folds(name: str, n_train: int, cv: int) -> None:
    """Refuse a dataset too small for the run's folds (planning asks before it writes)."""
    if n_train < cv:
        raise RunError(
            f"dataset {name!r}: {n_train} training samples cannot make {cv} folds; lower --cv"
        )


def _group_facts(dataset: DatasetInfo) -> tuple[list[str], str | None]:
    """A dataset's metadata column names and group column, as the index describes them."""
    columns = dataset.columns or {}
    return list(columns.get("metadata") or {}), columns.get("group")


def group_column(
    options: RunOptions, name: str, metadata: Sequence[str], own: str | None
) -> str | None:
    """The metadata column whose values keep scans together in the run's splits of dataset
    `name`: the one asked for (`--group`), which it must have, none (`--no-group`), or by
    default its own group column (`datasets add --group`, or a column named like one)."""
    if options.group is False:
        return None
    if options.group is None:
        return own
    if options.group not in metadata:
        has = ", ".join(metadata) if metadata else "none"
        raise RunError(
            f"dataset {name!r} has no metadata column {options.group!r} to group by; "
            f"its metadata columns: {has}"
        )
    return str(options.group)


def check_groups(name: str, column: str, labels: np.ndarray) -> None:
    """Every scan needs a group: a gap in the column would make its own group silently."""
    gaps = [i for i, v in enumerate(labels.tolist()) if v is None]
    if gaps:
        raise RunError(
            f"dataset {name!r}: column {column!r} has no value for {len(gaps)} scans "
            f"(row {gaps[0] + 1} first) to group by; fill it or use --no-group"
        )


def check_group_folds(name: str, column: str, n_groups: int, cv: int) -> None:
    """Refuse a dataset with fewer groups of replicate scans (for training) than folds."""
    if n_groups < cv:
        raise RunError(
            f"dataset {name!r}: {n_groups} groups of replicate scans (column {column!r}) "
            f"cannot make {cv} folds; lower --cv, or split scans independently with --no-group"
        )


def make_partitions(
    spectra: ds.Spectra, options: RunOptions, n_test: int = 0, column: int = 0
) -> Partitions:
    """Deterministic splits from the run's seed: test hold-out first, then K folds; `y` is
    target `column`.

    The splits of a regression dataset are the same for all its targets (they are drawn
    from the first target, which shuffled K-fold ignores), so its targets share fitted
    preprocessing; a classification target is stratified on its own classes.
    With a group column (`group_column`), every split keeps the scans of one physical
    sample together: the test hold-out draws whole groups (stratified on each group's
    class for classification), the folds are `GroupKFold` (shuffled with the run's seed) or
    `StratifiedGroupKFold`; a splitter of the user's gets the groups too.
    `n_test` > 0: the last rows are a separate test dataset appended to the training one.
    Data the run's options cannot split (sklearn's ValueError) is a `RunError` naming it.
    """
    try:
        return _partitions(spectra, options, n_test, column)
    except ValueError as exc:  # e.g. fewer members of every class than folds
        raise RunError(f"dataset {spectra.name!r} cannot be split for this run: {exc}") from exc


def split_column(task: str, column: int) -> int:
    """The target column a dataset's splits are drawn from when modelling `column`."""
    return column if task == "classification" else 0


def _partitions(spectra: ds.Spectra, options: RunOptions, n_test: int, column: int) -> Partitions:
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    y = spectra.target(split_column(spectra.task, column))
    rows = np.arange(spectra.n_samples)
    classify = spectra.task == "classification"
    groups = split_groups(spectra, options, n_test)
    if n_test:
        train_idx, test_idx = rows[:-n_test], rows[-n_test:]
    elif options.test_size > 0 and groups is not None:
        train_idx, test_idx = _group_test_split(rows, groups, y if classify else None, options)
    elif options.test_size > 0:
        train_idx, test_idx = train_test_split(
            rows,
            test_size=options.test_size,
            random_state=options.seed,
            stratify=y if classify else None,
        )
        train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    else:
        train_idx, test_idx = rows, rows[:0]
    check_folds(spectra.name, len(train_idx), options.cv)
    if groups is not None:
        column_name = str(split_group_name(spectra, options))
        check_group_folds(spectra.name, column_name, len(set(groups[train_idx])), options.cv)
    if options.splitter:
        splitter = build_splitter(options.splitter)
    elif groups is not None:
        splitter = _group_splitter(classify, options)
    else:
        splitter_cls = StratifiedKFold if classify else KFold
        splitter = splitter_cls(n_splits=options.cv, shuffle=True, random_state=options.seed)
    train_groups = None if groups is None else groups[train_idx]
    split = splitter.split(train_idx, y[train_idx], train_groups)
    folds = [(train_idx[a], train_idx[b]) for a, b in split]
    modelled = spectra.target(column)
    return Partitions(spectra.sample_ids, modelled, spectra.task, folds, test_idx, train_idx)


def split_group_name(spectra: ds.Spectra, options: RunOptions) -> str | None:
    """The group column of the run's splits of these (loaded) spectra."""
    return group_column(options, spectra.name, list(spectra.metadata), spectra.group_column)


def split_groups(spectra: ds.Spectra, options: RunOptions, n_test: int = 0) -> np.ndarray | None:
    """Each scan's group label for the run's splits, or None when scans split
    independently; the `n_test` rows of an appended test dataset get none (they are never
    split)."""
    column = split_group_name(spectra, options)
    if column is None:
        return None
    n_train = spectra.n_samples - n_test
    labels = spectra.labels(column)
    check_groups(spectra.name, column, labels[:n_train])
    labels[n_train:] = ""
    return labels


def _group_test_split(
    rows: np.ndarray, groups: np.ndarray, classes: np.ndarray | None, options: RunOptions
) -> tuple[np.ndarray, np.ndarray]:
    """The test hold-out as whole groups: `test_size` of the groups (rounded up, as
    `train_test_split` takes it), stratified on each group's class (its first scan's)."""
    from sklearn.model_selection import train_test_split

    names, first = np.unique(groups.astype(str), return_index=True)
    test_groups = train_test_split(
        names,
        test_size=options.test_size,
        random_state=options.seed,
        stratify=None if classes is None else classes[first],
    )[1]
    in_test = np.isin(groups.astype(str), test_groups)
    return rows[~in_test], rows[in_test]


def _group_splitter(classify: bool, options: RunOptions) -> Any:
    """K folds of whole groups: `StratifiedGroupKFold` for classes, else `GroupKFold`,
    both shuffled with the run's seed (`GroupKFold` shuffles since scikit-learn 1.6)."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    if classify:
        return StratifiedGroupKFold(n_splits=options.cv, shuffle=True, random_state=options.seed)
    return GroupKFold(n_splits=options.cv, shuffle=True, random_state=options.seed)


def splitter_spec(splitter: Any) -> dict[str, Any]:
    """An sklearn CV splitter as JSON (class path + constructor params), so resume rebuilds it."""
    import inspect

    cls = type(splitter)
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    params = {name: getattr(splitter, name) for name in names if hasattr(splitter, name)}
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "params": params}


def build_splitter(spec: dict[str, Any]) -> Any:
    import importlib

    module, _, name = spec["class"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**spec["params"])


def with_test_set(train: ds.Spectra, test: ds.Spectra) -> ds.Spectra:
    """The training spectra with a separate test set appended. Wavelengths match as numbers
    (`428` and `428.0` are one column, in any order: predict's rule, `ds.match_wavelength_
    columns`); a grid that differs is refused saying how."""
    if train.task != test.task or train.target_names != test.target_names:
        raise RunError(f"test dataset {test.name!r} has other targets than {train.name!r}")
    try:
        columns = ds.match_wavelength_columns(
            test.feature_names,
            range(len(test.feature_names)),
            list(train.feature_names),
            f"test dataset {test.name!r} against {train.name!r}",
        )
    except DatasetError as exc:
        raise RunError(str(exc)) from exc
    test_X = test.X[:, columns]
    taken = set(train.sample_ids)
    ids = [f"test:{s}" if s in taken else s for s in test.sample_ids]
    gaps = np.full(test.n_samples, None, dtype=object)
    return ds.Spectra(
        train.name,
        np.vstack([train.X, test_X]),
        np.concatenate([train.y, test.y]),
        train.sample_ids + ids,
        train.feature_names,
        train.target_names,
        train.task,
        metadata={k: np.concatenate([v.astype(object), gaps]) for k, v in train.metadata.items()},
        group_column=train.group_column,
    )


def fit_contexts(parts: Partitions) -> list[FitContext]:
    contexts = [
        FitContext(k, train, {"train": train, "val": val, "test": parts.test_idx})
        for k, (train, val) in enumerate(parts.folds)
    ]
    contexts.append(
        FitContext(-1, parts.train_idx, {"train": parts.train_idx, "test": parts.test_idx})
    )
    return contexts


# -- execution --------------------------------------------------------------------------
def build_step(op: str, params: dict[str, Any]) -> Any:
    from n4afs_core.pipelines.operators import build, get_operator

    return build(get_operator(op), dict(params))


def step_names(steps: list[tuple[str, dict]]) -> list[str]:
    """Semantic artifact names: snv, savgol, pls_model; repeats get _2, _3."""
    from n4afs_core.pipelines.operators import get_operator

    names, seen = [], {}
    for i, (op, _) in enumerate(steps):
        base = get_operator(op).label + ("_model" if i == len(steps) - 1 else "")
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


def _steps_of(config_json: str) -> list[tuple[str, dict[str, Any]]]:
    return [next(iter(step.items())) for step in json.loads(config_json)]


def run_group(
    store_spec: dict[str, Any],
    X: np.ndarray,
    parts: dict[int, Partitions],
    configs: list[tuple[str, str, int]],
    metric: str,
    coordinator: int | None = None,
) -> tuple[list[ResultPayload], FitStats]:
    """Worker: fit a group of configs on one dataset, write their blobs, return payloads.

    `parts`: target column -> its partitions (the same splits: `make_partitions`); each
    config is (result id, config JSON, the target column it models).
    `coordinator`: the PID of the process that will commit them; a worker it started ends
    when it dies.
    """
    _exit_with_coordinator(coordinator)
    with roomy_heap():
        return _run_group(store_spec, X, parts, configs, metric)


def _run_group(
    store_spec: dict[str, Any],
    X: np.ndarray,
    parts: dict[int, Partitions],
    configs: list[tuple[str, str, int]],
    metric: str,
) -> tuple[list[ResultPayload], FitStats]:
    from n4afs_core.pipelines.operators import fits_without_y

    started = time.perf_counter()
    steps = {result_id: _steps_of(config) for result_id, config, _ in configs}
    column_of = {result_id: column for result_id, _, column in configs}
    stats = FitStats()
    contexts = fit_contexts(next(iter(parts.values())))
    ys = {column: p.y for column, p in parts.items()}
    keyed = [(key, steps[key], column_of[key]) for key in steps]
    store = open_store(store_spec)
    payloads, stored = [], {}  # stored: shared fitted prefixes are pickled once
    with store.batch():  # durable together, before the coordinator commits their rows
        # each fold's models are stored as soon as it is fitted: the disk writes them while
        # the next fold fits (a config failing in a later fold leaves blobs no row names:
        # gc reclaims them)
        outcomes = fit_group(
            X, ys, contexts, keyed, build_step, stats, fits_without_y,
            lambda models: store_fitted(store, models, stored),
        )  # fmt: skip
        for outcome in outcomes:
            names = step_names(steps[outcome.key])
            part = parts[column_of[outcome.key]]
            payloads.append(store_outcome(store, outcome.key, outcome, part, names, metric, stored))
    elapsed = (time.perf_counter() - started) / max(len(payloads), 1)
    for payload in payloads:
        payload.duration_s = elapsed
    return payloads, stats


# PIDs of the worker processes already watching their coordinator (a fork copies the set).
_WATCHING: set[int] = set()
WATCH_EVERY_S = 0.2


def _exit_with_coordinator(coordinator: int | None) -> None:
    """In a worker process the coordinator started (joblib's loky workers are its
    children), a daemon thread that ends the worker as soon as the coordinator is gone.

    A coordinator killed with SIGKILL cannot stop its workers, and loky's would go on
    fitting queued groups and writing blobs nobody commits (measured: 113 -> 219 objects
    in the minute after a `kill -9`). The thread polls the parent PID: once the coordinator
    dies the worker is re-parented and the PID changes (no reuse can fake it), within
    `WATCH_EVERY_S`. A worker that is not the coordinator's child is left alone: joblib's
    sequential backend runs in the coordinator itself, dask workers belong to their cluster.
    """
    pid = os.getpid()
    if coordinator is None or pid in _WATCHING or os.getppid() != coordinator:
        return
    _WATCHING.add(pid)

    def watch() -> None:
        while os.getppid() == coordinator:
            time.sleep(WATCH_EVERY_S)
        os._exit(1)  # at once: a half-written blob stays a temporary, which gc removes

    threading.Thread(target=watch, name="n4afs-coordinator-watch", daemon=True).start()


# glibc's malloc tunables (mallopt(3)); `roomy_heap` sets them for the length of a task.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
ROOMY_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest on 64 bits: arrays stay on the heap
ROOMY_TRIM_THRESHOLD = 256 * 1024 * 1024  # a task keeps what it freed, for its next arrays
_GLIBC_MMAP_THRESHOLD = 128 * 1024  # the default, where it stays once a tunable is set
_HEAP_LOCK = threading.Lock()
_HEAP_TASKS = 0  # tasks of this process inside `roomy_heap`


@contextmanager
def roomy_heap() -> Iterator[None]:
    """For the length of a task, a heap that keeps its memory, in a process started with a
    fixed malloc trim threshold (dask's nanny sets `MALLOC_TRIM_THRESHOLD_=65536` for every
    worker, `distributed.nanny.pre-spawn-environ`).

    A fixed threshold also stops glibc from raising its mmap threshold, so every array over
    128 KiB was mapped, zeroed page by page and unmapped again: on the 200-config sweep a
    dask worker spent 1.7x the CPU seconds of a plain process on the same fits (10x the page
    faults; `tests/test_worker_heap.py`). Inside a task, arrays up to 32 MiB come from the
    heap and freed memory is kept for the next; when the worker's last running task ends,
    the operator's settings are put back and the heap is trimmed, so between tasks the
    worker holds no more than it asked for. A process without such a setting (glibc adapts
    its thresholds itself) or without glibc is left alone.
    """
    global _HEAP_TASKS
    trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    if trim is None or not trim.isdigit() or _libc() is None:
        yield
        return
    with _HEAP_LOCK:
        _HEAP_TASKS += 1
        if _HEAP_TASKS == 1:
            _mallopt(M_MMAP_THRESHOLD, ROOMY_MMAP_THRESHOLD)
            _mallopt(M_TRIM_THRESHOLD, ROOMY_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _HEAP_LOCK:
            _HEAP_TASKS -= 1
            if _HEAP_TASKS == 0:
                mmap = os.environ.get("MALLOC_MMAP_THRESHOLD_", "")
                _mallopt(M_TRIM_THRESHOLD, int(trim))
                _mallopt(M_MMAP_THRESHOLD, int(mmap) if mmap.isdigit() else _GLIBC_MMAP_THRESHOLD)
                _malloc_trim()


_LIBC: list[Any] = []  # [glibc or None], loaded once


def _libc() -> Any:
    if not _LIBC:
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            libc = None
        has = libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")
        _LIBC.append(libc if has else None)
    return _LIBC[0]


def _mallopt(option: int, value: int) -> None:
    _libc().mallopt(option, value)


def _malloc_trim() -> None:
    _libc().malloc_trim(0)


def _group_configs(pending: list[tuple[str, str, int]]) -> list[list[tuple[str, str, int]]]:
    """Configs sharing a first step go together, whatever target they model: every shared
    prefix is inside one group."""
    groups: dict[str, list[tuple[str, str, int]]] = {}
    for result_id, config, column in pending:
        steps = _steps_of(config)
        key = step_key(steps[:1]) if len(steps) > 1 else "model:" + steps[0][0]
        groups.setdefault(key, []).append((result_id, config, column))
    return list(groups.values())


# What may be changed when a run is finished elsewhere (`--resume RUN --backend ...`):
# where it executes, never what it computes.
EXECUTION_OPTIONS = ("backend", "scheduler", "n_jobs", "worker_cache")


class ClusterLost(Exception):
    """The dask scheduler cannot be reached, or went away mid-run (no result is wrong:
    what was committed stays, the rest is pending)."""


def execute_run(
    index: Index,
    store: Store,
    run_id: str,
    on_result: ResultCallback | None = None,
    execution: dict[str, Any] | None = None,
) -> FitStats:
    """Fit and persist every pending result of the run, then settle the run's status.

    `execution`: where to run it this time (`EXECUTION_OPTIONS`: backend, scheduler,
    n_jobs, worker_cache), over the options the run was planned with; the splits, metric
    and configs never change, so a run started on one cluster finishes on another or here.

    A full disk stops the run with a message saying how to go on; whatever committed before
    stays, and nothing half-written becomes visible (blobs are published before their rows,
    rows commit whole). Any exception (Ctrl-C included) releases this process's ownership
    first, so the run reads `interrupted` even while this process lives on.
    """
    if (os.getpid(), run_id) not in _OWNED:  # a resume: gc must see the run alive
        with index.write() as conn:
            record_owner(conn, run_id)
        _OWNED.add((os.getpid(), run_id))
    try:
        totals, settled = _execute(index, store, run_id, on_result, execution or {})
    except BaseException as exc:
        _release(index, run_id)
        if isinstance(exc, ClusterLost):
            raise RunError(
                f"{exc}; the results stored so far are kept: {resume_hint(run_id)} finishes "
                "the run (add `--backend joblib` to finish it on this machine)"
            ) from exc
        if is_disk_full(exc):
            raise RunError(disk_full_message(run_id, full_path(exc) or store.url)) from exc
        raise
    _OWNED.discard((os.getpid(), run_id))
    if not settled:  # nothing was pending, or a concurrent resume committed last
        _settle_status(index, run_id)
    return totals


def resume_hint(run_id: str) -> str:
    """What finishes a run that stopped: the one wording every message uses."""
    return f"`n4afs run --resume {run_id}`"


def disk_full_message(run_id: str, where: str) -> str:
    """The one message of a run stopped by a full disk, wherever it filled (blobs, cache,
    index); `where` is the file or store that could not be written."""
    return (
        f"disk full while storing results of run {run_id} ({where}): free some space "
        f"(`n4afs gc` reclaims removed results), then {resume_hint(run_id)}"
    )


def _release(index: Index, run_id: str) -> None:
    """This process no longer executes the run. Best effort: on a full disk or a stuck
    lock the row stays, and the run reads `interrupted` once this process exits."""
    _OWNED.discard((os.getpid(), run_id))
    try:
        with index.write() as conn:
            release_owner(conn, run_id)
    except Exception:  # noqa: BLE001 - already failing; the original error matters
        pass


def _execute(
    index: Index,
    store: Store,
    run_id: str,
    on_result: ResultCallback | None,
    execution: dict[str, Any],
) -> tuple[FitStats, bool]:
    """Fit and commit every pending group; also say whether the run's status is settled.

    The commit of the run's last group also settles the run's status: finishing a run then
    costs no index transaction of its own. (Committing in a background thread while the
    next group fits was measured slower on the reference sweep: 0.62 s against 0.52 s.)
    """
    options, pending, sources = _load_pending(index, run_id)
    unknown = set(execution) - set(EXECUTION_OPTIONS)
    if unknown:
        raise RunError(f"a run is finished with new {', '.join(EXECUTION_OPTIONS)} only")
    options = replace(options, **{k: v for k, v in execution.items() if v is not None})
    options.validate()
    totals, settled = FitStats(), False
    for position, (key, items) in enumerate(pending.items(), start=1):
        spectra = _load_spectra(store, sources[key[0]])
        metric = items[0][2]
        columns = [column for _, _, _, column in items]
        try:
            spectra, parts = _split(store, spectra, sources, options, set(columns))
        except RunError as exc:  # these data and options never split: every config fails
            results = iter(
                [([ResultPayload(r, "failed", error=str(exc)) for r, *_ in items], FitStats())]
            )
        else:
            configs = [(r, c, column) for (r, c, _, _), column in zip(items, columns, strict=True)]
            tasks = [(group, metric) for group in _group_configs(configs)]
            results = _parallel(store, spectra.X, parts, tasks, options)
        held: list[ResultPayload] = []
        last_commit = time.monotonic()
        for payloads, stats in results:  # however many tasks the backend cut the groups into
            held += payloads
            for name in asdict(stats):
                setattr(totals, name, getattr(totals, name) + getattr(stats, name))
            if time.monotonic() - last_commit < COMMIT_EVERY_S:
                continue
            _commit(index, held, None, on_result)
            last_commit, held = time.monotonic(), []
        if held or position == len(pending):  # the last one settles the run too
            state = _commit(index, held, run_id if position == len(pending) else None, on_result)
            settled = state is not None and state != "running"
    return totals, settled


def _commit(
    index: Index,
    held: list[ResultPayload],
    settle_run: str | None,
    on_result: ResultCallback | None,
) -> str | None:
    """One transaction: the payloads' rows, and the run's status when `settle_run` names it
    (returned); then each payload is announced."""
    state = None
    with index.write() as conn:
        commit_payloads(conn, held)
        if settle_run is not None:
            state = _settle(conn, settle_run)
    for payload in held:
        if on_result:
            on_result(payload)
    return state


def _split(
    store: Store, spectra: ds.Spectra, sources: dict, options: RunOptions, columns: set[int]
) -> tuple[ds.Spectra, dict[int, Partitions]]:
    """The dataset (with its separate test set appended) and, per target column modelled,
    its partitions; `RunError` when the run's options cannot split it (planning refused
    what it could foresee)."""
    n_test = 0
    if options.test_dataset:
        test = _load_spectra(store, sources[options.test_dataset])
        spectra, n_test = with_test_set(spectra, test), test.n_samples
    return spectra, {c: make_partitions(spectra, options, n_test, c) for c in sorted(columns)}


def _parallel(store, X, parts, tasks, options: RunOptions):
    """Groups in parallel, yielded as they finish: local joblib, or a dask cluster."""
    if options.backend == "dask":
        return _on_dask(store, X, parts, tasks, options)
    from joblib import Parallel, cpu_count, delayed

    slots = cpu_count() if options.n_jobs < 0 else options.n_jobs
    coordinator = os.getpid()
    jobs = (
        delayed(run_group)(store.spec(), X, parts, group, metric, coordinator)
        for group, metric in split_tasks(tasks, slots)
    )
    return Parallel(n_jobs=options.n_jobs, return_as="generator_unordered")(jobs)


# Each worker slot gets at least this many tasks, so one slow task does not leave the
# others idle at the end of a run (dask hands tasks out as slots free up).
TASKS_PER_SLOT = 2


def split_tasks(tasks: list, slots: int) -> list:
    """Tasks enough to keep `slots` workers busy: while there are fewer than
    `TASKS_PER_SLOT` per slot, the largest group is halved. Its configs are ordered by their
    shared steps first (a three-step config by its first two), then naturally by their
    numbers, so configs sharing a second step stay together, PLS component counts stay in
    runs (a half fits PLS once, to its own largest count), and a halved group refits only
    its first step (SNV, MSC...: the cheapest) once more per fold. One slot: the groups as
    they are, each shared prefix fitted once."""
    tasks = [(list(group), metric) for group, metric in tasks]
    while slots > 1 and len(tasks) < TASKS_PER_SLOT * slots:
        largest = max(range(len(tasks)), key=lambda i: len(tasks[i][0]))
        group, metric = tasks[largest]
        if len(group) < 2:
            break
        ordered = sorted(group, key=lambda item: _split_order(item[1]))
        half = len(ordered) // 2
        tasks[largest : largest + 1] = [(ordered[:half], metric), (ordered[half:], metric)]
    return tasks


def _split_order(config: str) -> tuple:
    """Shared steps, then the config's numbers as numbers (n_components 2 before 10)."""
    steps = _steps_of(config)
    shared = step_key(steps[: min(2, len(steps) - 1)])
    pieces = re.split(r"(\d+)", config)
    return shared, [int(p) if p.isdigit() else p for p in pieces[1::2]], pieces[::2]


def worker_store_spec(store: Store, options: RunOptions) -> dict[str, Any]:
    """The store as a dask worker opens it: a remote store's cache in the worker's own
    folder (`options.worker_cache`, else its temporary directory), never the
    coordinator's path, which another machine may not have or share."""
    spec = store.spec()
    if spec.get("kind") == "remote":
        spec = {**spec, "cache_dir": options.worker_cache}
    return spec


def _on_dask(store, X, parts, tasks, options: RunOptions):
    """Workers fit and write blobs to the shared store; results come back to be committed
    here. A worker that dies takes its tasks with it and dask runs them again elsewhere; a
    scheduler that cannot be reached, or goes away, ends the run (`ClusterLost`)."""
    from concurrent.futures import CancelledError

    from distributed import Client, as_completed
    from distributed.comm.core import CommClosedError

    scheduler = options.scheduler
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ClusterLost(f"cannot reach the dask scheduler {scheduler}: {exc}") from exc
    with client:
        try:
            slots = sum(client.nthreads().values()) or 1
            X_shared = client.scatter(X, broadcast=True)
            parts_shared = client.scatter(parts, broadcast=True)
            spec = worker_store_spec(store, options)
            futures = [
                client.submit(
                    run_group, spec, X_shared, parts_shared, group, metric, pure=False, retries=2
                )
                for group, metric in split_tasks(tasks, slots)
            ]
            for future in as_completed(futures):
                yield future.result()
        except (CancelledError, TimeoutError, CommClosedError) as exc:
            raise ClusterLost(f"lost the dask scheduler {scheduler} mid-run ({exc!r})") from exc


def _load_pending(index: Index, run_id: str):
    """The run's options, its pending results by dataset, and where each dataset's data is
    stored (name, blob): one read for everything execution needs from the index."""
    with index.read() as conn:
        row = conn.execute("SELECT options FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise RunError(f"no run {run_id!r}: list runs with `n4afs runs`")
        rows = conn.execute(
            "SELECT r.result_id, r.config, r.metric, r.dataset_id, r.target FROM results r "
            "JOIN run_datasets d USING (run_id, dataset_id) WHERE r.run_id = ? "
            "AND r.status = 'pending' ORDER BY d.position, r.seq",
            [run_id],
        ).fetchall()
        stored = json.loads(row[0])
        options = RunOptions(**{k: stored[k] for k in asdict(RunOptions()) if k in stored})
        wanted = {r[3] for r in rows}
        if wanted and options.test_dataset:
            wanted.add(options.test_dataset)
        found = conn.execute(
            "SELECT dataset_id, blob_id, name, task, target_names FROM datasets "
            "WHERE list_contains(?, dataset_id)",
            [sorted(wanted)],
        ).fetchall()
    sources = {dataset_id: (blob_id, name) for dataset_id, blob_id, name, _, _ in found}
    tasks = {dataset_id: task for dataset_id, _, _, task, _ in found}
    targets = {dataset_id: list(names) for dataset_id, _, _, _, names in found}
    # by dataset, and by target too where targets are split apart (classification: each
    # class column has its own stratified folds); a regression dataset's targets share
    # their splits, so one group fits their shared preprocessing once
    # (the column of a target: its place in the dataset's target names, as planned)
    pending: dict[tuple[str, str | None], list[tuple[str, str, str, int]]] = {}
    for result_id, config, metric, dataset_id, target in rows:
        key = (dataset_id, target if tasks.get(dataset_id) == "classification" else None)
        column = targets[dataset_id].index(target) if target in targets[dataset_id] else 0
        pending.setdefault(key, []).append((result_id, config, metric, column))
    return options, pending, sources


def _load_spectra(store: Store, source: tuple[str, str]) -> ds.Spectra:
    blob_id, name = source
    spectra = ds.from_parquet_bytes(store.read(blob_id))
    spectra.name = name
    return spectra


def _settle_status(index: Index, run_id: str) -> str:
    with index.write() as conn:
        return _settle(conn, run_id, force=True)


def _settle(conn: Any, run_id: str, force: bool = False) -> str:
    """The run's status from its results' (the caller holds the transaction).

    Written with the finish time once nothing is pending; `force` writes it even while
    results are still pending (another process may be resuming the run).
    """
    counts = dict(
        conn.execute(
            "SELECT status, count(*) FROM results WHERE run_id = ? GROUP BY status", [run_id]
        ).fetchall()
    )
    if counts.get("pending"):
        status = "running"
    elif not counts.get("failed"):
        status = "completed"
    else:
        status = "failed" if not counts.get("completed") else "partial"
    if force or status != "running":
        set_run_status(conn, run_id, status)
    return status
