"""nirs4all workspaces and `.n4a` bundles read as import plans; nothing here writes.

`n4afs import ~/old/workspace` and `n4afs import best.n4a` bring in what nirs4all 1.4.10
kept (facts: docs/DESIGN.md, "Import and bundles"). This module turns a nirs4all source into
`SourceBundle`s, in-memory bundles laid out like an n4afs export (EXPORT.yaml entries, a
`pipeline.yaml`, prediction CSVs and `logs/` per result), which `n4afs.share.import_plan`
parses and checks and `n4afs.share.importer` writes like any bundle: one import run per
nirs4all call, every row in one transaction, scores recomputed by n4afs's metrics.

- The store is read from a private copy of `store.sqlite` taken together with its `-wal`
  (a WAL store's last commits live there), opened `mode=ro`; the source is never opened for
  writing (SQLite would create a `-shm` next to it). `PRAGMA user_version` must be 5.
- nirs4all's runs table has one row per dataset of a `nirs4all.run()` call: rows with the
  same name and config, started within `CALL_GAP_S` of each other, are one call again.
- A pipeline is one result: its concrete config is `expanded_config` (legacy engine); the
  default engine stored the template there, so it is expanded again and the variant whose
  nirs4all hash (`sha256(json.dumps(steps, sort_keys=True, separators=(",", ":")))[:8]`) is
  the pipeline name's suffix is the config. The config is translated to n4afs's operators
  (SG with nirs4all's defaults made explicit: window 11, polyorder 3, mode interp). A step
  n4afs has no operator for (a nirs4all class it does not know, a y transform, SG with a
  delta on a derivative, another library's class) stays in the config as an `Unconverted`
  step holding nirs4all's text: the result is score-only and its `logs/import.txt` says why.
  Only scikit-learn and chemotools class paths are ever imported.
- Predictions: fold k → `fold_k.csv` (train/val/test), the folds' val rows pooled →
  `cv.csv`, `final` → `train.csv`/`test.csv`, `avg`/`w_avg` test rows → `avg.csv`/`w_avg.csv`.
  Sample ids are the dataset's when `--data` gives it, else nirs4all's row positions.
  nirs4all's own scores are kept in `nirs4all.yaml` (provenance), never used.
- The legacy engine fitted preprocessing once on all training rows before cross-validation:
  its cross-validated scores are not comparable with n4afs's per-fold fits. Such an import
  says so in EXPORT.yaml (`cv_comparable: false`), which `core.index.trust.origin_label`
  shows in RESULTS.csv's and scores.yaml's `origin`.
- Models: nirs4all's fitted models (dag-ml: the winning config's refit; legacy: each fold's
  model with the shared transformers, and the refit; a bundle's artifacts) are read and
  converted by `nirs4all_models` (a restricted unpickler, never nirs4all), checked against
  the training predictions nirs4all stored when `--data` gives the spectra, and laid out as
  an export's `models/<final|fold<k>>_<id>/`; a model that is not converted leaves its result
  score-only, and every model's fate is a line of the result's `logs/import.txt`. A bundle's
  config is its converted model's (its `pipeline.json` may name the model class only).

Design: docs/DESIGN.md, "Import and bundles".
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import re
import shutil
import sqlite3
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from n4afs_core.errors import BundleError, N4AError
from n4afs_core.index.names import result_name
from n4afs_core.pipelines.operators import UNCONVERTED
from n4afs_core.pipelines.templates import PipelineConfig, Step

from n4afs.share import nirs4all_models
from n4afs.share.bundle import DEFAULT_LIMITS, Archive, Limits, load_untrusted_yaml

STORE_VERSION = 5  # PRAGMA user_version of nirs4all 1.4.x stores
CALL_GAP_S = 600  # runs rows of one call start within this many seconds of each other
FORMAT = "n4afs-export/nirs4all"  # EXPORT.yaml's format for what this module builds
LEGACY_NOTE = (
    "nirs4all legacy engine: preprocessing fitted once on all training samples before "
    "cross-validation, so its cross-validated scores are not comparable with n4afs's"
)
_HIGHER = {"r2", "accuracy", "balanced_accuracy", "f1", "rpd", "pearson_r", "spearman_r"}

# nirs4all class paths -> (n4afs operator, explicit defaults that differ from n4afs's)
_OPERATORS = {
    "StandardNormalVariate": ("snv", {}),
    "MultiplicativeScatterCorrection": ("msc", {}),
    "SavitzkyGolay": (
        "savgol",
        {"window_length": 11, "polyorder": 3, "deriv": 0, "mode": "interp"},  # nirs4all's
    ),
    "PLSRegression": ("pls", {}),
    "PLSDA": ("plsda", {}),
}


# -- what is a nirs4all source -------------------------------------------------------------
def kind_of(source: Path) -> str | None:
    """'workspace', 'n4a', or None (then it is an n4afs export, or nothing)."""
    if source.is_dir():
        if (source / "store.sqlite").is_file():
            return "workspace"
        return None
    if source.suffix.lower() == ".n4a":
        return "n4a"
    if source.is_file() and zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return None
        if "manifest.json" in names and "EXPORT.yaml" not in names:
            return "n4a"
    return None


# -- the in-memory bundle the import plan reads ---------------------------------------------
class SourceBundle:
    """The `Bundle` interface (`sizes`, `manifest`, `export_info`, `read`, `chunks`, `yaml`,
    `verify`, `manifest_sha256`) over files built here. Its identity (`manifest_sha256`,
    what makes an import idempotent) is the sha256 of its file list, data files excepted."""

    def __init__(
        self, files: dict[str, bytes], export_info: dict, source: Path, limits: Limits
    ) -> None:
        self.files, self.export_info, self.source, self.limits = files, export_info, source, limits
        self.sizes = {name: len(data) for name, data in files.items()}
        self.manifest = {
            name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in files.items()
        }
        identity = sorted(
            (n, d) for n, (_, d) in self.manifest.items() if not n.startswith("data/")
        )
        self.manifest_sha256 = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        self.notes: list[str] = []

    def read(self, name: str) -> bytes:
        return self.files[name]

    def chunks(self, name: str):
        yield self.files[name]

    def yaml(self, name: str) -> Any:
        return load_untrusted_yaml(self.files[name], name)

    def verify(self) -> None:  # built here from checked inputs: nothing to compare against
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> SourceBundle:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _yaml_bytes(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")


def _csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    import csv

    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


# -- datasets given with --data -------------------------------------------------------------
@dataclass
class AttachedData:
    name: str
    path: Path
    spectra: Any  # core.data.datasets.Spectra


def load_data(data: dict[str, str] | None) -> dict[str, AttachedData]:
    from n4afs_core.data import datasets

    attached = {}
    for name, given in (data or {}).items():
        path, _, target = str(given).partition("#target=")  # a text target must be asked for
        options = {"targets": [target]} if target else {}
        spectra = datasets.load_any(str(Path(path).expanduser()), name=name, **options)
        attached[name] = AttachedData(name, Path(path), spectra)
    return attached


def nirs4all_data_hash(X: np.ndarray) -> str:
    """nirs4all 1.4.10's dataset hash (`SpectroDataset.content_hash` without xxhash): the
    sha256 of the float32 spectra, C order, rows as nirs4all ordered them (train, then test)."""
    return hashlib.sha256(
        np.ascontiguousarray(np.asarray(X, dtype=np.float32)).tobytes()
    ).hexdigest()


def _check_hash(attached: AttachedData, stored: str | None) -> str:
    if not stored:
        return "nirs4all stored no dataset hash: not checked"
    if len(stored) != 64:
        return f"nirs4all's dataset hash {stored[:12]}… is not a sha256 (xxhash): not checked"
    found = nirs4all_data_hash(attached.spectra.X)
    if found != stored:
        raise BundleError(
            f"--data {attached.name}={attached.path}: these spectra are not the ones nirs4all "
            f"ran on (hash {found[:12]}, nirs4all's {stored[:12]}); give the file in nirs4all's "
            "row order (train rows, then test rows)"
        )
    return f"checked against nirs4all's dataset hash {stored[:12]}"


def _data_files(name: str, spectra: Any) -> dict[str, bytes]:
    """The dataset as an n4afs export holds it (data/<name>/spectra.csv, targets.csv)."""
    ids = list(spectra.sample_ids)
    y = np.asarray(spectra.y)
    y = y.reshape(len(ids), -1)
    return {
        f"data/{name}/spectra.csv": _csv_bytes(
            ["sample_id", *spectra.feature_names],
            [[i, *map(repr, row)] for i, row in zip(ids, spectra.X.tolist(), strict=True)],
        ),
        f"data/{name}/targets.csv": _csv_bytes(
            ["sample_id", *spectra.target_names],
            [
                [i, *(repr(v) if isinstance(v, float) else v for v in row)]
                for i, row in zip(ids, y.tolist(), strict=True)
            ],
        ),
    }


# -- workspaces -----------------------------------------------------------------------------
class _Store:
    """A private, read-only copy of a nirs4all store (with its -wal)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = tempfile.TemporaryDirectory(prefix="n4afs-nirs4all-")
        copy = Path(self._tmp.name) / "store.sqlite"
        shutil.copyfile(root / "store.sqlite", copy)
        if (root / "store.sqlite-wal").exists():
            shutil.copyfile(root / "store.sqlite-wal", Path(self._tmp.name) / "store.sqlite-wal")
        try:
            self.conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
            self.conn.row_factory = sqlite3.Row
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise BundleError(
                f"{root}/store.sqlite is not a readable SQLite store ({exc})"
            ) from None
        if version != STORE_VERSION:
            self.close()
            raise BundleError(
                f"{root}/store.sqlite is a nirs4all store of schema version {version}; n4afs "
                f"reads version {STORE_VERSION} (nirs4all 1.4): refusing it"
            )

    def rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise BundleError(f"{self.root}/store.sqlite: {exc}") from None

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
            self.conn = None
        self._tmp.cleanup()


def read_workspace(
    root: Path, data: dict[str, str] | None = None, limits: Limits = DEFAULT_LIMITS
) -> list[SourceBundle]:
    """One SourceBundle per nirs4all call found in the workspace at `root`."""
    attached = load_data(data)
    store = _Store(root)
    try:
        calls = _calls(store)
        arrays = _Arrays(root, limits)
        bundles = [_call_bundle(store, arrays, call, attached, root, limits) for call in calls]
    finally:
        store.close()
    unused = set(attached) - {n for b in bundles for n in b.export_info["datasets_attached"]}
    if unused:
        raise BundleError(
            f"--data {sorted(unused)[0]}: no nirs4all run used a dataset of that name"
        )
    return bundles


def _json(text: Any, default: Any = None) -> Any:
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise BundleError(f"nirs4all store: {str(text)[:60]!r} is not JSON") from None


def _calls(store: _Store) -> list[list[sqlite3.Row]]:
    runs = store.rows("SELECT * FROM runs ORDER BY created_at, run_id")
    calls: list[list[sqlite3.Row]] = []
    for run in runs:
        last = calls[-1][-1] if calls else None
        if (
            last is not None
            and (last["name"], last["config"]) == (run["name"], run["config"])
            and _seconds(run["created_at"]) - _seconds(calls[-1][0]["created_at"]) <= CALL_GAP_S
        ):
            calls[-1].append(run)
        else:
            calls.append([run])
    return calls


def _seconds(stamp: str) -> float:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return 0.0


class _Arrays:
    """arrays/<dataset>.parquet, read once each: prediction id -> row."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root, self.limits, self.cache = root, limits, {}

    def rows(self, dataset: str) -> dict[str, dict]:
        if dataset not in self.cache:
            import pyarrow.parquet as pq

            path = self.root / "arrays" / f"{_sanitized(dataset)}.parquet"
            if not path.is_file():
                self.cache[dataset] = {}
            else:
                if path.stat().st_size > self.limits.max_table_bytes:
                    raise BundleError(f"{path} is larger than a table may be (--max-table-bytes)")
                columns = [
                    "prediction_id",
                    "y_true",
                    "y_true_shape",
                    "y_pred",
                    "y_pred_shape",
                    "sample_indices",
                ]
                table = pq.read_table(path, columns=columns)
                self.cache[dataset] = {r["prediction_id"]: r for r in table.to_pylist()}
        return self.cache[dataset]


def _sanitized(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


@dataclass
class _Result:
    folder: str
    entry: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


def _call_bundle(store, arrays, call, attached, root: Path, limits: Limits) -> SourceBundle:
    first = call[0]
    config = _json(first["config"], {})
    engine = config.get("engine") if isinstance(config, dict) else None
    engine = engine or "legacy"  # legacy runs record counts, not the engine
    files: dict[str, bytes] = {}
    entries: list[dict[str, Any]] = []
    described: dict[str, Any] = {}
    used: list[str] = []
    for run in call:
        pipelines = store.rows(
            "SELECT * FROM pipelines WHERE run_id = ? ORDER BY created_at, name", (run["run_id"],)
        )
        by_name = {p["name"]: p for p in pipelines}
        for pipeline in pipelines:
            if (
                pipeline["name"].endswith("_refit")
                and pipeline["name"][: -len("_refit")] in by_name
            ):
                continue  # its `final` rows join the pipeline it refits
            refit = by_name.get(pipeline["name"] + "_refit")
            result = _pipeline_result(
                store, arrays, pipeline, refit, engine, attached, len(entries)
            )
            if result is None:
                continue
            files.update({f"{result.folder}/{n}": b for n, b in result.files.items()})
            entries.append(result.entry)
            dataset = pipeline["dataset_name"]
            described.setdefault(result.entry["dataset_id"], _describe(pipeline, attached))
            if dataset in attached and dataset not in used:
                used.append(dataset)
                files.update(_data_files(dataset, _spectra_for(attached[dataset], result.entry)))
    if not entries:
        raise BundleError(f"{root}: nirs4all run {first['name']!r} holds no pipeline to import")
    info = {
        "format": FORMAT,
        "source": "nirs4all workspace",
        "nirs4all": {
            "engine": engine,
            "call": first["name"],
            "runs": [r["run_id"] for r in call],
            "created_at": str(first["created_at"]),
            "template": config.get("pipeline") if isinstance(config, dict) else None,
        },
        "cv_comparable": engine != "legacy",
        **({"cv_note": LEGACY_NOTE} if engine == "legacy" else {}),
        "results": entries,
        "datasets": described,
        "datasets_attached": used,
    }
    return SourceBundle(files, info, root, limits)


def _spectra_for(data: AttachedData, entry: dict) -> Any:
    data.spectra.name = entry["dataset"]
    return data.spectra


def _dataset_id(name: str, digest: str | None) -> str:
    """The id a dataset nirs4all ran on is filed under when its spectra are not given: the
    same nirs4all dataset gets the same id on every import."""
    return hashlib.sha256(f"nirs4all dataset\0{name}\0{digest or ''}".encode()).hexdigest()


def _describe(pipeline: sqlite3.Row, attached: dict) -> dict[str, Any]:
    return {
        "n_samples": 0,
        "n_features": 0,
        "source_path": f"nirs4all dataset {pipeline['dataset_name']}",
        "source_sha256": pipeline["dataset_hash"]
        if len(pipeline["dataset_hash"] or "") == 64
        else None,
    }


def _task(task_type: str | None) -> str:
    return "classification" if task_type and "classification" in task_type else "regression"


def _pipeline_result(store, arrays, pipeline, refit, engine, attached, position) -> _Result | None:
    chains = store.rows("SELECT * FROM chains WHERE pipeline_id = ?", (pipeline["pipeline_id"],))
    chain = chains[0] if chains else None
    predictions = store.rows(
        "SELECT * FROM predictions WHERE pipeline_id IN (?, ?) ORDER BY fold_id, partition",
        (pipeline["pipeline_id"], refit["pipeline_id"] if refit else ""),
    )
    if not predictions:
        return None
    task = _task(predictions[0]["task_type"] or (chain["task_type"] if chain else None))
    dataset = pipeline["dataset_name"]
    data = attached.get(dataset)
    notes = []
    if data is not None:
        notes.append(f"dataset {dataset}: {_check_hash(data, pipeline['dataset_hash'])}")
    # with --data, replaced by the content's id when the plan reads data/
    dataset_id = _dataset_id(dataset, pipeline["dataset_hash"])
    steps, choices, how = _concrete_config(pipeline)
    notes.append(how)
    translated, unconverted = translate(steps)
    config, name = config_of(translated)
    notes += [f"config: {reason}" for reason in unconverted]
    metric = "rmse" if task == "regression" else "balanced_accuracy"
    label = f"{position + 1:04d}_{name}_{config.hash6}"
    files = _prediction_files(arrays, dataset, predictions, task, data)
    files["pipeline.yaml"] = _yaml_bytes(
        {
            "name": name,
            "description": f"imported from nirs4all pipeline {pipeline['name']} ({engine} engine)",
            "steps": config.to_template(),
            "choices": choices,
            "nirs4all_steps": steps,
        }
    )
    files["nirs4all.yaml"] = _yaml_bytes(_provenance(pipeline, chain, predictions, engine))
    refit_chains = (
        store.rows("SELECT * FROM chains WHERE pipeline_id = ?", (refit["pipeline_id"],))
        if refit
        else []
    )
    model_files, model_notes = _models(
        store, arrays, [*chains, *refit_chains], predictions, task, data, dataset, unconverted
    )
    files.update(model_files)
    notes += model_notes
    if engine == "legacy":
        notes.append(LEGACY_NOTE)
    files["logs/import.txt"] = ("\n".join(notes) + "\n").encode("utf-8")
    target = "y"
    if data is not None:
        target = data.spectra.target_names[0]
    entry = {
        "path": f"results/{label}",
        "result": label,
        "result_id": pipeline["pipeline_id"],
        "dataset": _dataset_name(dataset),
        "dataset_id": dataset_id,
        "config_hash": config.hash,
        "task": task,
        "metric": metric,
        "target": target,
        "targets": [target],
        "nirs4all_pipeline": pipeline["name"],
        "nirs4all_dataset_hash": pipeline["dataset_hash"],
    }
    return _Result(entry["path"], entry, files)


# -- models ---------------------------------------------------------------------------------
def _models(
    store, arrays, chains, predictions, task, data, dataset, unconverted
) -> tuple[dict, list[str]]:
    """nirs4all's fitted models of one pipeline converted (`nirs4all_models`): dag-ml's refit
    (`final`), legacy's folds (shared transformers + each fold's model) and its refit. The
    files of the converted ones, and one line per model for logs/import.txt. A config with
    `unconverted` steps keeps no model, but its files are still read by the restricted
    loader: a pickle naming a hostile global refuses the import whatever the config."""
    wanted = []  # (role, fold, artifact ids in pipeline order, (fold id, partitions) checked)
    for chain in chains:
        folds = _json(chain["fold_artifacts"], {}) or {}
        shared = _json(chain["shared_artifacts"], {}) or {}
        prefix = [a for _, ids in sorted(shared.items(), key=lambda kv: int(kv[0])) for a in ids]
        for key, artifact in sorted(folds.items()):
            if key in ("final", "fold_final"):
                wanted.append(("final", None, [*prefix, artifact], ("final", ("train",))))
            elif key.startswith("fold_") and key[5:].isdigit():
                k = int(key[5:])
                wanted.append(("fold", k, [*prefix, artifact], (str(k), ("train", "val"))))
    if not wanted:
        return {}, [
            "model: nirs4all kept no fitted model for this config (its default engine keeps "
            "the refit of the winning config only): imported score-only"
        ]
    labels = (
        sorted({str(v) for v in np.asarray(data.spectra.y).ravel()})
        if (data is not None and task == "classification")
        else None
    )
    files: dict[str, bytes] = {}
    notes: list[str] = []
    for role, fold, artifact_ids, rows in wanted:
        what = "final model" if role == "final" else f"fold {fold} model"
        if unconverted:
            # read all the same: a hostile pickle refuses the import (UnsafePickle)
            with contextlib.suppress(nirs4all_models.NotConvertible):
                _read_model(store, artifact_ids)
            continue
        try:
            converted = _convert_model(store, artifact_ids, labels)
            checked = _check_model(
                converted, arrays, predictions, rows, task, data, dataset, labels
            )
        except nirs4all_models.NotConvertible as exc:
            notes.append(f"{what}: not converted ({exc}): imported score-only")
            continue
        files.update(nirs4all_models.model_files(converted, role, fold, [checked]))
        notes.append(f"{what}: converted to n4afs's classes; {checked}")
    if unconverted:
        notes.append(
            f"models ({len(wanted)} kept by nirs4all): not converted, the config holds steps "
            "n4afs has no operator for (above): imported score-only"
        )
    return files, notes


def _read_model(store, artifact_ids: list[str]) -> tuple[list[Any], list[str]]:
    """The fitted steps of a model's artifact files (restricted loader) and their names."""
    objects, sources = [], []
    for artifact_id in artifact_ids:
        name, data = _artifact_bytes(store, artifact_id)
        objects += nirs4all_models.estimator_of(nirs4all_models.load_restricted(data, name), name)
        sources.append(name)
    return objects, sources


def _convert_model(store, artifact_ids: list[str], labels) -> nirs4all_models.Converted:
    objects, sources = _read_model(store, artifact_ids)
    converted = nirs4all_models.convert(objects, labels)
    converted.sources = sources
    return converted


def _artifact_bytes(store, artifact_id: str) -> tuple[str, bytes]:
    """An artifact file of the workspace, inside its artifacts/ folder, with the sha256 the
    store recorded for it."""
    found = store.rows("SELECT * FROM artifacts WHERE artifact_id = ?", (artifact_id,))
    if not found:
        raise nirs4all_models.NotConvertible(f"artifact {artifact_id} is not in the store")
    relative = str(found[0]["artifact_path"])
    base = (store.root / "artifacts").resolve()
    path = (base / relative).resolve()
    name = f"artifacts/{relative}"
    if base not in path.parents:
        raise BundleError(f"{store.root}/store.sqlite names an artifact outside artifacts/: {name}")
    if not path.is_file():
        raise nirs4all_models.NotConvertible(
            f"nirs4all did not keep {name} (it writes the files of configs that improved its "
            "running best only)"
        )
    if path.stat().st_size > nirs4all_models.MAX_UNPICKLED_BYTES:
        raise nirs4all_models.NotConvertible(f"{name} is larger than n4afs reads")
    data = path.read_bytes()
    recorded = str(found[0]["content_hash"] or "").removeprefix("sha256:")
    if recorded and hashlib.sha256(data).hexdigest() != recorded:
        raise nirs4all_models.NotConvertible(f"{name} differs from the sha256 nirs4all recorded")
    return name, data


def _check_model(converted, arrays, predictions, rows, task, data, dataset, labels) -> str:
    """Predict the rows nirs4all stored for this model again; NotConvertible when they differ."""
    if data is None:
        return "not checked: nirs4all kept no spectra (give them with --data NAME=path.csv)"
    fold_id, partitions = rows
    by_id = arrays.rows(dataset)
    positions: list[int] = []
    stored: list[float] = []
    for prediction in predictions:
        if str(prediction["fold_id"]) != fold_id or prediction["partition"] not in partitions:
            continue
        row = by_id.get(prediction["prediction_id"])
        if row is None:
            continue
        values = _values(row, "y_pred")
        positions += list(row["sample_indices"] or range(len(values)))
        stored += values.tolist()
    if not stored:
        return "not checked: nirs4all stored no training predictions for it"
    X = np.asarray(data.spectra.X)[positions]
    result = nirs4all_models.check(converted, X, np.asarray(stored), task, labels)
    if not result.passed:
        raise nirs4all_models.NotConvertible(f"it does not reproduce nirs4all's: {result.line()}")
    return f"checked: {result.line()}"


def _dataset_name(name: str) -> str:
    return name


def _provenance(pipeline, chain, predictions, engine) -> dict[str, Any]:
    """What nirs4all said, kept as it said it (its SEP uses n, its f1 is weighted)."""
    scores: dict[str, Any] = {}
    for row in predictions:
        claimed = _json(row["scores"], {}) or {}
        part = claimed.get(row["partition"]) if isinstance(claimed, dict) else None
        if isinstance(part, dict):
            scores.setdefault(str(row["fold_id"]), {})[row["partition"]] = {
                k: v for k, v in part.items() if ":" not in k
            }
    return {
        "note": "nirs4all's own scores, for reference; n4afs recomputed its scores "
        "from the predictions",
        "engine": engine,
        "pipeline_id": pipeline["pipeline_id"],
        "pipeline": pipeline["name"],
        "metric": pipeline["metric"],
        "best_val": pipeline["best_val"],
        "best_test": pipeline["best_test"],
        "cv_val_score_mean_of_folds": chain["cv_val_score"] if chain else None,
        "fold_strategy": chain["fold_strategy"] if chain else None,
        "dataset": pipeline["dataset_name"],
        "dataset_hash": pipeline["dataset_hash"],
        "scores": scores,
    }


# -- configs --------------------------------------------------------------------------------
def nirs4all_hash(steps: Any) -> str:
    """nirs4all's `PipelineConfigs.get_display_hash` of an expanded config."""
    text = json.dumps(steps, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(text).hexdigest()[:8]


def _concrete_config(pipeline: sqlite3.Row) -> tuple[list, list, str]:
    """(concrete nirs4all steps, generator choices, how they were found)."""
    stored = _json(pipeline["expanded_config"], [])
    choices = _json(pipeline["generator_choices"], []) or []
    suffix = pipeline["name"].removesuffix("_refit").rsplit("_", 1)[-1]
    if not _has_generator(stored):
        return stored, choices, "config: nirs4all's expanded_config"
    for variant, chosen in expand_nirs4all(stored):
        if nirs4all_hash(variant) == suffix:
            return variant, chosen, f"config: the template's variant with nirs4all hash {suffix}"
    raise BundleError(
        f"nirs4all pipeline {pipeline['name']}: no variant of its template has hash {suffix}; "
        "n4afs cannot tell which config it ran"
    )


_GENERATORS = ("_or_", "_range_")


def _has_generator(node: Any) -> bool:
    if isinstance(node, dict):
        return any(k in node for k in _GENERATORS) or any(_has_generator(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_generator(v) for v in node)
    return False


def expand_nirs4all(node: Any) -> list[tuple[Any, list]]:
    """nirs4all's expansion of the two generator forms its stored templates hold: `_or_`
    (alternatives) and `{model: X, _range_: [a, b(, step)], param: p}` (inclusive range,
    giving `{model: {class: X, params: {p: v}}}`), with the choices as nirs4all records them."""
    if isinstance(node, list):
        options = [expand_nirs4all(item) for item in node]
        return [
            ([v for v, _ in combo], [c for _, cs in combo for c in cs])
            for combo in itertools.product(*options)
        ]
    if isinstance(node, dict):
        if "_or_" in node and len(node) == 1:
            out = []
            for alternative in node["_or_"]:
                for value, chosen in expand_nirs4all(alternative):
                    out.append((value, [{"_or_": value}, *chosen]))
            return out
        if "_range_" in node and "param" in node:
            bounds = node["_range_"]
            start, stop = int(bounds[0]), int(bounds[1])
            step = int(bounds[2]) if len(bounds) > 2 else 1
            key = next(k for k in node if k not in ("_range_", "param"))
            base = node[key]
            cls, params = (
                (base, {})
                if isinstance(base, str)
                else (base["class"], dict(base.get("params", {})))
            )
            return [
                ({key: {"class": cls, "params": {**params, node["param"]: v}}}, [{"_range_": v}])
                for v in range(start, stop + 1, step)
            ]
        keys = list(node)
        options = [expand_nirs4all(node[k]) for k in keys]
        return [
            (
                dict(zip(keys, [v for v, _ in combo], strict=True)),
                [c for _, cs in combo for c in cs],
            )
            for combo in itertools.product(*options)
        ]
    return [(node, [])]


def translate(steps: list) -> tuple[list[tuple[str, dict]], list[str]]:
    """nirs4all's concrete steps as n4afs's (operator, params), and why the config is not
    n4afs's own (one reason per step it has no operator for). Splitters are dropped (the
    folds are in the predictions); known operators become their n4afs name; scikit-learn and
    chemotools classes stay class paths; anything else (a nirs4all class n4afs does not know,
    a y transform, another library's class, a keyword step) is kept as an `Unconverted` step
    holding the step as nirs4all wrote it, so the result says what ran, and makes the result
    score-only. Nothing named here is imported but scikit-learn and chemotools modules."""
    out: list[tuple[str, dict]] = []
    reasons: list[str] = []

    def unconverted(raw: Any, reason: str) -> None:
        out.append((UNCONVERTED, {"nirs4all": raw}))
        reasons.append(reason)

    for raw in steps:
        step = raw["model"] if isinstance(raw, dict) and "model" in raw else raw
        if isinstance(step, dict) and set(step) == {"step"} and str(step["step"]).startswith("<"):
            continue  # a runtime object's repr (legacy bundles: the refit's fold splitter)
        if isinstance(step, str) and step.startswith("<"):
            continue  # the same, as legacy refit pipelines store it
        if isinstance(step, str):
            cls, params = step, {}
        elif isinstance(step, dict) and isinstance(step.get("class"), str):
            cls, params = step["class"], dict(step.get("params") or {})
        elif isinstance(step, dict) and len(step) == 1 and "y_processing" in step:
            what = _short(step["y_processing"])
            unconverted(
                raw,
                f"nirs4all transformed y before fitting (y_processing: {what}); n4afs fits on "
                "y as given and has no y transform",
            )
            continue
        else:
            keyword = next(iter(step)) if isinstance(step, dict) and step else type(step).__name__
            unconverted(raw, f"nirs4all step {keyword!r} has no n4afs equivalent")
            continue
        if cls.startswith("sklearn.model_selection."):
            continue
        short = cls.rsplit(".", 1)[-1]
        if short in _OPERATORS:
            op, defaults = _OPERATORS[short]
            params = {**defaults, **params}
            if op == "savgol" and "delta" in params:
                delta = params.pop("delta")
                if _number(delta) != 1.0 and _number(params.get("deriv")) != 0.0:
                    unconverted(
                        raw,
                        f"nirs4all Savitzky-Golay with delta {delta} (derivative divided by "
                        f"delta**{params.get('deriv')}); n4afs's savgol (chemotools) has no delta",
                    )
                    continue  # deriv 0: delta changes nothing, dropped
            out.append((op, params))
        elif cls.startswith(("sklearn.", "chemotools.")) and _known_class(cls):
            out.append((cls, params))
        elif cls.startswith("nirs4all."):
            unconverted(raw, f"nirs4all operator {short} ({cls}) has no n4afs equivalent")
        else:
            unconverted(
                raw, f"{cls}: n4afs reads scikit-learn and chemotools classes only (not imported)"
            )
    if not out:
        raise BundleError("a nirs4all pipeline without steps n4afs reads")
    return out, reasons


def _short(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("class", json.dumps(value, sort_keys=True)[:60])
    return str(value).rsplit(".", 1)[-1]


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _known_class(class_path: str) -> bool:
    """A scikit-learn or chemotools class n4afs can name (its module imports)."""
    from n4afs_core.errors import UnknownOperator
    from n4afs_core.pipelines.operators import get_operator

    try:
        get_operator(class_path)
    except UnknownOperator:
        return False
    return True


def config_of(translated: list[tuple[str, dict]]) -> tuple[PipelineConfig, str]:
    """The n4afs config of translated steps and its readable name: each step's n4afs label,
    an unconverted step by its nirs4all class (`gaussian-pls3`, `snv-y_minmaxscaler-pls3`)."""
    config = PipelineConfig(tuple(Step(op, params) for op, params in translated))
    labels = []
    for step in config.steps:
        if step.op == UNCONVERTED:
            raw = step.params["nirs4all"]
            if isinstance(raw, dict) and "y_processing" in raw:
                labels.append("y" + _short(raw["y_processing"]))
            elif isinstance(raw, dict) and "model" in raw:
                labels.append(_short(raw["model"]))
            else:
                labels.append(_short(raw) if isinstance(raw, (str, dict)) else "step")
        else:
            labels.append(PipelineConfig((step,)).name)
    return config, result_name("-".join(labels))


# -- predictions ----------------------------------------------------------------------------
def _values(row: dict, key: str) -> np.ndarray:
    values = np.asarray(row[key] or [], dtype=float)
    shape = row.get(f"{key}_shape")
    if shape:
        values = values.reshape(shape)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        elif values.ndim == 2:
            raise BundleError("several targets in one nirs4all prediction: not imported yet")
    return values


def _prediction_files(
    arrays, dataset, predictions, task, data: AttachedData | None
) -> dict[str, bytes]:
    rows_by_id = arrays.rows(dataset)
    ids = list(data.spectra.sample_ids) if data is not None else None
    classes = (
        sorted({str(v) for v in np.asarray(data.spectra.y).ravel()})
        if (data is not None and task == "classification")
        else None
    )
    tables: dict[str, list[list[Any]]] = {}
    for prediction in predictions:
        row = rows_by_id.get(prediction["prediction_id"])
        if row is None:
            raise BundleError(
                f"nirs4all prediction {prediction['prediction_id']} has no arrays in "
                f"arrays/{_sanitized(dataset)}.parquet"
            )
        fold, partition = str(prediction["fold_id"]), prediction["partition"]
        y_true, y_pred = _values(row, "y_true"), _values(row, "y_pred")
        positions = row["sample_indices"] or list(range(len(y_true)))
        if not (len(y_true) == len(y_pred) == len(positions)):
            raise BundleError(f"nirs4all prediction {prediction['prediction_id']}: lengths differ")
        if fold.isdigit():
            files = [(f"fold_{fold}", fold)]
            if partition == "val":
                files.append(("cv", fold))
        elif fold == "final":
            files = (
                [("train" if partition == "train" else "test", "final")]
                if partition in ("train", "test")
                else []
            )
        elif fold in ("avg", "w_avg") and partition == "test":
            files = [(fold, fold)]
        else:
            continue
        for stem, fold_label in files:
            table = tables.setdefault(stem, [])
            for p, t, q in zip(positions, y_true.tolist(), y_pred.tolist(), strict=True):
                sample = ids[p] if ids is not None and 0 <= p < len(ids) else str(p)
                table.append(_prediction_row(sample, t, q, partition, fold_label, task, classes))
    header3 = "residual" if task == "regression" else "correct"
    return {
        f"predictions/{stem}.csv": _csv_bytes(
            ["sample_id", "y_true", "y_pred", header3, "partition", "fold"], rows
        )
        for stem, rows in sorted(tables.items())
    }


def _prediction_row(sample, t, q, partition, fold, task, classes) -> list[Any]:
    if task == "regression":
        return [sample, repr(float(t)), repr(float(q)), repr(float(q) - float(t)), partition, fold]
    labels = [_label(v, classes) for v in (t, q)]
    return [sample, labels[0], labels[1], str(labels[0] == labels[1]).lower(), partition, fold]


def _label(value: float, classes: list[str] | None) -> str:
    code = int(round(value))
    if classes is not None and 0 <= code < len(classes):
        return classes[code]
    return str(code)


# -- .n4a bundles -----------------------------------------------------------------------------
def read_n4a(source: Path, name: str | None, limits: Limits = DEFAULT_LIMITS) -> SourceBundle:
    """A nirs4all bundle, recognised by its manifest: `dagml_native` or `prediction`
    (RunResult.export) or a chain export (WorkspaceStore.export_chain); anything else refused."""
    with Archive(source, limits) as archive:
        if "manifest.json" not in archive.sizes:
            raise BundleError(f"{source} has no manifest.json: not a nirs4all .n4a bundle")
        manifest = _json_member(archive, "manifest.json")
        flavour = _flavour(manifest, source)
        members = {n: archive.read(n) for n in sorted(archive.sizes)}  # checked sizes, safe names
    pipeline = _json_bytes(members.get("pipeline.json", b"{}"), "pipeline.json")
    integrity = manifest.get("artifact_integrity") or {}
    for member, digest in integrity.items():
        if (
            member not in members
            or "sha256:" + hashlib.sha256(members[member]).hexdigest() != digest
        ):
            raise BundleError(f"{source}: {member} differs from its manifest's sha256")
    model_class = manifest.get("model_class") or _model_class(pipeline) or "unknown"
    task = (
        "classification"
        if any(
            k in model_class
            for k in ("PLSDA", "Classifier", "Discriminant", "LogisticRegression", "SVC")
        )
        else "regression"
    )
    label_name = name or Path(source).stem
    steps = _bundle_steps(pipeline, model_class)
    model_files, model_notes, fitted = _bundle_models(members)
    declared = _declared_unconverted(steps)
    if fitted is not None and declared:
        # a step without fitted files (a stateless one) would be missing from the model
        model_files, fitted = {}, None
        model_notes = [
            "model: not converted, the bundle's pipeline.json holds steps n4afs has no "
            "operator for (above): imported score-only"
        ]
    if fitted is not None:  # what was fitted, whatever pipeline.json says
        translated, unconverted = fitted.config(), []
    else:
        try:
            translated, unconverted = translate(steps)
        except BundleError:
            translated, unconverted = translate(
                [model_class if "." in model_class else f"nirs4all.{model_class}"]
            )
    config, config_name = config_of(translated)
    label = f"0001_{config_name}_{config.hash6}"
    digest = hashlib.sha256(
        b"".join(hashlib.sha256(members[n]).digest() for n in sorted(members))
    ).hexdigest()
    dataset_id = _dataset_id(f"bundle {label_name}", digest)
    notes = [
        f"imported from the nirs4all bundle {Path(source).name} ({flavour})",
        "a nirs4all bundle holds no predictions: the result is unscored (ranks last)",
    ]
    notes += [f"config: {reason}" for reason in unconverted] + model_notes
    files = {
        "pipeline.yaml": _yaml_bytes(
            {"name": config_name, "steps": config.to_template(), "nirs4all_steps": steps}
        ),
        "nirs4all.yaml": _yaml_bytes({"flavour": flavour, "manifest": manifest}),
        "logs/import.txt": ("\n".join(notes) + "\n").encode(),
    }
    files.update({f"nirs4all/{n}": b for n, b in members.items()})
    files.update(model_files)
    entry = {
        "path": f"results/{label}",
        "result": label,
        "result_id": digest[:16],
        "dataset": label_name,
        "dataset_id": dataset_id,
        "config_hash": config.hash,
        "task": task,
        "metric": "rmse" if task == "regression" else "balanced_accuracy",
        "target": "y",
        "targets": ["y"],
    }
    info = {
        "format": FORMAT,
        "source": f"nirs4all bundle ({flavour})",
        "nirs4all": {"flavour": flavour, "version": manifest.get("nirs4all_version")},
        "cv_comparable": flavour != "legacy",
        "results": [entry],
        "datasets": {dataset_id: {"n_samples": 0, "n_features": 0}},
        "datasets_attached": [],
    }
    return SourceBundle({f"{entry['path']}/{n}": b for n, b in files.items()}, info, source, limits)


def _declared_unconverted(steps: list) -> list[str]:
    """Why the concrete steps a bundle's pipeline.json lists are not all n4afs's (none when it
    names its model class only, or does not read)."""
    try:
        return translate(steps)[1]
    except BundleError:
        return []


_BUNDLE_STEP = re.compile(r"artifacts/step_(\d+)_(?:fold(\d+|final)(?:_.*)?|.*)\.joblib")


def _bundle_models(members: dict[str, bytes]) -> tuple[dict, list[str], Any]:
    """A bundle's model: its shared transformers (`step_<i>_<Class>…`) in step order, then
    each fold's model (`step_<i>_fold<k>_…`, `…_foldfinal…`). One fold file is the refit
    (`final`); several are fold models. Nothing to check against: not checked. Returns the
    files, the log lines and the last converted model (None when none converted)."""
    shared, folds = [], {}
    for name in sorted(members):
        found = _BUNDLE_STEP.fullmatch(name)
        if found is None:
            continue
        step, fold = int(found.group(1)), found.group(2)
        if fold is None:
            shared.append((step, name))
        else:
            folds[fold] = name
    if not folds:
        return {}, ["model: the bundle holds no fitted model: imported score-only"], None
    prefix = [name for _, name in sorted(shared)]
    wanted = (
        [("final", None, [*prefix, *folds.values()])]
        if len(folds) == 1
        else [("fold", int(k), [*prefix, n]) for k, n in sorted(folds.items()) if k.isdigit()]
    )
    files: dict[str, bytes] = {}
    notes: list[str] = []
    fitted = None
    for role, fold, names in wanted:
        what = "final model" if role == "final" else f"fold {fold} model"
        try:
            objects = []
            for name in names:
                loaded = nirs4all_models.load_restricted(members[name], name)
                objects += nirs4all_models.estimator_of(loaded, name)
            converted = nirs4all_models.convert(objects, None)
        except nirs4all_models.NotConvertible as exc:
            notes.append(f"{what}: not converted ({exc}): imported score-only")
            continue
        converted.sources, fitted = names, converted
        checked = "not checked: a nirs4all bundle holds no predictions to compare with"
        files.update(nirs4all_models.model_files(converted, role, fold, [checked]))
        notes.append(f"{what}: converted to n4afs's classes; {checked}")
    return files, notes, fitted


def _json_member(archive: Archive, name: str) -> Any:
    return _json_bytes(archive.metadata(name), name)


def _json_bytes(data: bytes, name: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{name} is not JSON ({exc})") from None


def _flavour(manifest: Any, source: Path) -> str:
    if not isinstance(manifest, dict):
        raise BundleError(f"{source}: manifest.json is not an object")
    kind = manifest.get("source_type")
    if manifest.get("bundle_format_version") == "1.0" and kind == "dagml_native":
        return "dag-ml export"
    if manifest.get("bundle_format_version") == "1.0" and kind == "prediction":
        return "legacy"
    if "bundle_format_version" not in manifest and {"chain_id", "fold_strategy"} <= set(manifest):
        return "chain export"
    raise BundleError(
        f"{source}: a .n4a bundle of a kind n4afs does not know (bundle_format_version "
        f"{manifest.get('bundle_format_version')!r}, source_type {kind!r}): refusing it"
    )


def _model_class(pipeline: Any) -> str | None:
    if isinstance(pipeline, dict):
        for key in ("model_class", "model"):
            if isinstance(pipeline.get(key), str):
                return pipeline[key]
    return None


def _bundle_steps(pipeline: Any, model_class: str) -> list:
    steps = pipeline.get("steps") if isinstance(pipeline, dict) else pipeline
    if isinstance(steps, list) and steps and not _has_generator(steps):
        return [s for s in steps if isinstance(s, (str, dict))]
    return [model_class]


def read_source(
    source: Path, kind: str, name: str | None, data: dict[str, str] | None, limits: Limits
) -> list[SourceBundle]:
    try:
        if kind == "workspace":
            return read_workspace(source, data, limits)
        if data:
            raise BundleError("--data applies to nirs4all workspaces, not to .n4a bundles")
        return [read_n4a(source, name, limits)]
    except N4AError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OSError) as exc:
        raise BundleError(
            f"{source}: not a nirs4all source n4afs can read "
            f"({type(exc).__name__}: {str(exc)[:120]})"
        ) from exc
