"""`n4afs predict`: apply a stored pipeline to new spectra.

The model comes from an export bundle (zip or folder) or from a result of a workspace
(tree path or mounted path). Pickles run code when loaded, so trust is decided here, by the
person predicting: models of the local workspace are trusted; models from a bundle — or
imported from one without `--trust` — are loaded only with `trust=True`. Nothing inside a
bundle can vouch for itself (a hash next to the file proves nothing about who made it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from n4afs_core.data.datasets import PredictionInput, load_for_prediction
from n4afs_core.errors import N4AError, UntrustedArchive
from n4afs_core.metrics.ranking import (
    FOLD_PREFIX,
    fold_model,
    is_fold_model,
    is_out_of_fold_prediction,
)
from n4afs_core.pipelines.versions import version_warnings

from n4afs.share.importer import dataset_record

UNTRUSTED = (
    "{what} holds pickled models, which run code when loaded. Load them only if "
    "you trust whoever made it: pass --trust (Python: trust=True)"
)


@dataclass
class Prediction:
    """`table`: polars DataFrame of sample_id, y_pred (+ proba_<class>); with the model's
    target column in the new file, also y_true and residual (y_pred - y_true) or correct.
    `scores`: n4afs's metrics on the samples that have a reference value, else None."""

    table: Any
    warnings: list[str] = field(default_factory=list)
    target: str | None = None
    scores: dict[str, float | None] | None = None
    n_scored: int = 0


def predict_bundle(
    bundle_path: Path,
    new_csv: Path,
    model: str = "final",
    trust: bool = False,
    result: str | None = None,
) -> Prediction:
    from n4afs_core import pickles

    from n4afs.share.bundle import Bundle

    if not trust:
        raise UntrustedArchive(UNTRUSTED.format(what=f"bundle {bundle_path}"))
    with Bundle(bundle_path) as bundle:
        bundle.verify()
        entry = _choose(bundle.export_info.get("results") or [], result)
        features = dataset_record(bundle.export_info, entry).get("features")
        if not features:
            raise N4AError("the bundle does not record the wavelength columns of its dataset")
        targets = entry.get("targets") or [None]
        new = load_for_prediction(new_csv, features, targets[0], entry["task"])
        prefix = f"{entry['path']}/models/"
        pipelines = {}
        for name in bundle.sizes:
            if name.startswith(prefix) and name.endswith("/pipeline.pkl"):
                label = name[len(prefix) :].split("/")[0]
                pipelines[label] = name
        chosen = _pick_models(pipelines, model)
        loaded = [pickles.loads(bundle.read(pipelines[label])) for label in chosen]
    return _prediction(new, loaded, entry["task"], entry.get("versions_at_fit") or {})


def predict_result(
    ws: Any, tree_path: tuple[str, ...], new_csv: Path, model: str = "final", trust: bool = False
) -> Prediction:
    from n4afs.runs import Result

    tree = ws.tree
    found = tree.result_at(tree_path)
    if found is None:
        raise N4AError(
            f"/{'/'.join(tree_path)} is not a result folder (runs/<dataset>/<NNNN_name_hash>)"
        )
    row = found[0]
    if row.run_id in ws.untrusted_runs() and not trust:
        raise UntrustedArchive(UNTRUSTED.format(what=f"result {row.label} (imported)"))
    result = Result(ws, row)
    dataset = next(d for d in ws.datasets() if d.dataset_id == row.dataset_id)
    new = load_for_prediction(new_csv, _features_of(ws, row), dataset.target_names[0], dataset.task)
    folds = sorted(
        s["fold"] for s in result.scores if is_out_of_fold_prediction(s["model"], s["partition"])
    )
    labels = {"final": "final", **{fold_model(k): k for k in folds}}
    chosen = _pick_models(labels, model)
    loaded = [result.load_model(labels[label], trust=trust) for label in chosen]
    run = ws.get_run(row.run_id).info
    return _prediction(new, loaded, dataset.task, run.options.get("versions") or {})


def _prediction(
    new: PredictionInput, pipelines: list[Any], task: str, versions: dict[str, str]
) -> Prediction:
    """The table of predictions, with the reference values and their scores when the new
    file has them."""
    table = _predict_table(new.sample_ids, new.X, pipelines, task)
    done = Prediction(table, version_warnings(versions))
    if new.y_true is not None:
        done.table, done.scores, done.n_scored = _with_reference(table, new.y_true, task)
        done.target = new.target
    return done


def _with_reference(table: Any, y_true: np.ndarray, task: str) -> tuple[Any, Any, int]:
    """y_true and residual (or correct) after sample_id; scores on rows with a reference."""
    import polars as pl
    from n4afs_core.metrics.scores import scores_for
    from n4afs_core.pipelines.persist import clean_scores

    y_pred = table["y_pred"].to_numpy()
    if task == "regression":
        known = ~np.isnan(y_true)
        truth = pl.Series("y_true", y_true).fill_nan(None)  # no reference: null, not NaN
        third = pl.Series("residual", y_pred - y_true).fill_nan(None)
    else:
        known = y_true != ""
        truth = pl.Series("y_true", y_true).replace("", None)
        pairs = zip(y_pred, y_true, known, strict=True)
        correct = [bool(p == t) if k else None for p, t, k in pairs]
        third = pl.Series("correct", correct, dtype=pl.Boolean)
    table = pl.concat(
        [table[:, :1], pl.DataFrame([truth]), table[:, 1:2], pl.DataFrame([third]), table[:, 2:]],
        how="horizontal",
    )
    n_scored = int(known.sum())
    scores = clean_scores(scores_for(task, y_true[known], y_pred[known])) if n_scored else None
    return table, scores, n_scored


def _features_of(ws: Any, row: Any) -> list[str]:
    info = next(d for d in ws.datasets() if d.dataset_id == row.dataset_id)
    if info.blob_id is not None:
        return ws.load_dataset(str(info.dataset_id)).feature_names
    import json

    exported = ws.index.fetchall("SELECT export_info FROM imports WHERE run_id = ?", [row.run_id])
    export_info = json.loads(exported[0][0])
    for entry in export_info["results"]:
        if entry["dataset_id"] == row.dataset_id:
            features = dataset_record(export_info, entry).get("features")
            if features:
                return features
    if str(export_info.get("format", "")).endswith("/nirs4all"):
        raise N4AError(
            f"{row.label} was imported from nirs4all, which keeps no spectra and no "
            "wavelengths, so n4afs cannot tell which columns of the new file its model reads: "
            "import the nirs4all workspace with --data DATASET=path.csv (the spectra it ran on)"
        )
    raise N4AError(f"the wavelength columns of {row.label} are unknown")


def _choose(entries: list[dict[str, Any]], result: str | None) -> dict[str, Any]:
    if result is not None:
        entries = [e for e in entries if result in (e["result"], e["path"])]
    if len(entries) != 1:
        names = ", ".join(e["path"] for e in entries) or "none"
        raise N4AError(
            f"the bundle holds {len(entries)} matching results ({names}): name one with --result"
        )
    return entries[0]


def _model_key(label: str) -> str:
    """Folder or model labels to one vocabulary: final_3f2a.. -> final, fold2_9c.. -> fold_2."""
    if label.startswith("final"):
        return "final"
    if is_fold_model(label):
        return label
    return FOLD_PREFIX + label[len("fold") :].split("_")[0]


def _pick_models(available: dict[str, Any], model: str) -> list[str]:
    """'final', 'fold_<k>', or 'avg' (every fold model, predictions averaged)."""
    by_key = {_model_key(label): label for label in available}
    if model == "avg":
        folds = [label for k, label in sorted(by_key.items()) if is_fold_model(k)]
        if folds:
            return folds
    elif model in by_key:
        return [by_key[model]]
    choices = ", ".join(sorted(by_key)) + (", avg" if len(by_key) > 1 else "")
    raise N4AError(f"no model {model!r} here; choose from: {choices}")


def _predict_table(ids: list[str], X: np.ndarray, pipelines: list[Any], task: str) -> Any:
    import polars as pl

    columns: dict[str, Any] = {"sample_id": ids}
    if task == "regression":
        preds = np.mean(
            [np.asarray(p.predict(X)).reshape(len(ids), -1)[:, 0] for p in pipelines], axis=0
        )
        columns["y_pred"] = preds
        return pl.DataFrame(columns)
    if len(pipelines) > 1:
        raise N4AError("averaging fold models is defined for regression only; use final")
    model = pipelines[0]
    columns["y_pred"] = [str(v) for v in model.predict(X)]
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        for i, label in enumerate(model.classes_):
            columns[f"proba_{label}"] = proba[:, i]
    return pl.DataFrame(columns)
