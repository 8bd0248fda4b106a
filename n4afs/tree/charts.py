"""Which charts a result folder holds, and the inputs each is drawn from.

Each entry is (file name, render function, input ids, shared inputs or None); the ids
(predictions blob, dataset blob) key the render memo, so `spectra.png` is drawn once per
dataset however many results show it. The target distribution and the fold assignment are
keyed by a result's predictions blob (what they are drawn from) but show only what every
result of one split of the dataset shares (its samples' targets and folds): their shared
inputs (`RenderMemo.get`) are those values, so they are drawn once per dataset and split,
not once per result. Nothing is read until a chart is rendered: listing `charts/` costs
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from n4afs_core.metrics.ranking import out_of_fold_predictions

from n4afs.tree import renderers

Chart = tuple[str, Callable[[], bytes], tuple, Callable[[], tuple] | None]
REGRESSION_CHARTS = ("predictions_scatter.png", "residuals.png")
CLASSIFICATION_CHARTS = ("confusion_matrix.png",)
COMMON_CHARTS = ("spectra.png", "y_distribution.png", "folds.png")
PLS_CHARTS = ("coefficients.png", "t2_q.png")  # a PLS model's, from its diagnostics


def chart_title(r: Any, dataset: Any) -> str:
    """`wheat / protein / 0042_snv-pls15_x9y8z7`: the dataset, the target modelled, the
    result."""
    return f"{dataset.name} / {r.target} / {r.label}"


def result_charts(
    files: Any,
    r: Any,
    dataset: Any,
    cv: dict[str, Any],
    diagnostics: Any = None,
    curves: Any = None,
) -> list[Chart]:
    """`diagnostics`: a loader of the result's PLS diagnostics (`ResultFiles.diagnostics`'s
    value) when its model is PLS: coefficients.png and t2_q.png join the charts. `curves`:
    a loader of its ROC curves when its model gives probabilities: roc.png joins them."""
    title = chart_title(r, dataset)
    pblob, dblob = r.predictions_blob, dataset.blob_id

    def parts() -> tuple[Any, Any]:
        table = files.predictions(pblob)
        oof = out_of_fold_predictions(table)
        test = table.filter((table["model"] == "final") & (table["partition"] == "test"))
        return oof, test

    def scatter() -> bytes:
        oof, test = parts()
        shown = oof.vstack(test) if test.height else oof
        labels = {"rmse": "RMSECV", "r2": "R² (cv)", "rpd": "RPD (cv)", "bias": "bias (cv)"}
        scores = {label: cv.get(k) for k, label in labels.items()}
        return renderers.scatter_chart(
            shown["y_true"].to_list(),
            shown["y_pred"].to_list(),
            shown["partition"].to_list(),
            title,
            scores,
            r.target,
        )

    def residuals() -> bytes:
        oof, _ = parts()
        return renderers.residuals_chart(
            oof["y_true"].to_list(),
            (oof["y_pred"] - oof["y_true"]).to_list(),
            f"{title}: out-of-fold residuals",
            r.target,
        )

    def confusion() -> bytes:
        oof, _ = parts()
        return renderers.confusion_chart(
            oof["y_true"].to_list(), oof["y_pred"].to_list(), f"{title}: out-of-fold", r.target
        )

    def distribution() -> bytes:
        oof, test = parts()
        values = {"cross-validation": oof["y_true"].to_list()}
        if test.height:
            values["test"] = test["y_true"].to_list()
        return renderers.distribution_chart(
            values, dataset.task, f"{dataset.name}: {r.target} by partition", r.target
        )

    def folds() -> bytes:
        oof, test = parts()
        return _folds(files, dataset, oof, test)

    def distribution_inputs() -> tuple:  # every value `distribution` draws
        oof, test = parts()
        values = (oof["y_true"].to_list(), test["y_true"].to_list())
        return ("y_distribution.png", dataset.task, dataset.name, r.target, values)

    def folds_inputs() -> tuple:  # every value `folds` draws
        oof, test = parts()
        split = (oof["sample_id"].to_list(), oof["fold"].to_list(), test["sample_id"].to_list())
        return ("folds.png", dblob, dataset.name, split)

    # every input a chart shows (its title names the result and the dataset) keys its memo
    shown = (pblob, r.label, dataset.name, r.target)
    drawn = {
        "predictions_scatter.png": (scatter, shown, None),
        "residuals.png": (residuals, shown, None),
        "confusion_matrix.png": (confusion, shown, None),
        "spectra.png": (lambda: _spectra(files, dataset), (dblob, dataset.name), None),
        "y_distribution.png": (
            distribution,
            (pblob, dataset.name, r.target),
            distribution_inputs,
        ),
        "folds.png": (folds, (pblob, dblob, dataset.name), folds_inputs),
    }
    if diagnostics is not None:

        def coefficients() -> bytes:
            got = diagnostics()
            if got is None:
                return renderers.note_chart("its final model is not a PLS pipeline", title)
            found, _, _, s = got
            return renderers.coefficients_chart(
                _x_values(s),
                found.coefficients,
                found.vip,
                found.intercept,
                dataset.wavelength_unit,
                f"{title}: regression coefficients",
            )

        def t2_q() -> bytes:
            got = diagnostics()
            if got is None:
                return renderers.note_chart("its final model is not a PLS pipeline", title)
            found, ids, partitions, _ = got
            return renderers.t2_q_chart(
                found.t2,
                found.q,
                found.t2_limit,
                found.q_limit,
                ids,
                partitions,
                f"{title}: Hotelling T² vs Q",
            )

        drawn["coefficients.png"] = (coefficients, ("pls", r.result_id, *shown), None)
        drawn["t2_q.png"] = (t2_q, ("pls", r.result_id, *shown), None)
    if curves is not None:
        drawn["roc.png"] = (
            lambda: renderers.roc_chart(curves(), f"{title}: ROC, out-of-fold"),
            ("roc", r.result_id, *shown),
            None,
        )
    names = chart_names(dataset.task, diagnostics is not None, curves is not None)
    return [(name, *drawn[name]) for name in names]


def chart_names(task: str, pls: bool = False, roc: bool = False) -> tuple[str, ...]:
    """The charts of a result on a dataset of `task`, in listing order: a listing needs
    the names alone; `pls`: its model is PLS (coefficients and T²/Q charts too); `roc`: its
    model gives class probabilities (roc.png too)."""
    if task == "regression":
        return (*REGRESSION_CHARTS, *(PLS_CHARTS if pls else ()), *COMMON_CHARTS)
    return (*CLASSIFICATION_CHARTS, *(("roc.png",) if roc else ()), *COMMON_CHARTS)


def _x_values(s: Any) -> Any:
    """The spectra's wavelengths when the feature names are numbers, else their positions."""
    from n4afs_core.data.datasets import wavelengths

    waves = wavelengths(s.feature_names)
    return waves if waves is not None else list(range(s.n_features))


def _spectra(files: Any, dataset: Any) -> bytes:
    from n4afs_core.data.datasets import wavelengths

    s = files.spectra(dataset.blob_id)
    waves = wavelengths(s.feature_names)
    x = waves if waves is not None else list(range(s.n_features))
    return renderers.spectra_chart(x, s.X, dataset.wavelength_unit, f"{dataset.name}: spectra")


def _folds(files: Any, dataset: Any, oof: Any, test: Any) -> bytes:
    s = files.spectra(dataset.blob_id)
    fold_of = dict(zip(oof["sample_id"].to_list(), oof["fold"].to_list(), strict=True))
    fold_of.update({sid: -1 for sid in test["sample_id"].to_list()})
    order = [sid for sid in s.sample_ids if sid in fold_of]
    order += [sid for sid in fold_of if sid not in set(order)]
    return renderers.folds_chart(order, fold_of, f"{dataset.name}: fold assignment")
