"""The files inside the tree's folders: what each one shows and how it is rendered.

`Tree` decides where folders are; this module decides what is in them. Every rendered file
goes through the tree's `RenderMemo`, keyed by RENDER_VERSION, the file's kind and the ids of
what it shows (blob ids are content hashes, result ids never change), so the same bytes are
produced once per process however many views show them.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from typing import Any

from n4afs_core.errors import BlobCorrupt
from n4afs_core.index.catalog import DatasetInfo
from n4afs_core.index.queries import ResultRow, RunRow
from n4afs_core.metrics import ranking
from n4afs_core.metrics.scores import METRICS
from n4afs_core.pickles import names_legacy_module

from n4afs.tree import renderers, stored_folders
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
)
from n4afs.tree.names import safe_name
from n4afs.tree.renderers import RENDER_VERSION, shown_time

README = """\
n4afs workspace — how to read this tree
========================================

Everything here is a view of one workspace, built on demand from its index. The same
result appears under several folders without being stored twice. The tree is read-only.

runs/<dataset>/                 one folder per dataset (start here)
    DATASET.yaml                what the dataset is: shape, targets, column roles,
                                wavelengths, source, note
    RESULTS.csv                 every result on it, best first (metric and direction inside);
                                RESULTS.xlsx for spreadsheets, RESULTS.parquet typed
    best_<NNNN>_<name>_<h>.csv  predictions of the best result (exactly one such file)
    charts/                     RMSECV (and RMSEC) against the number of components, one
                                curve per preprocessing: .png, and its numbers as .csv
    REPORT.html                 the ranking as a page, linked to each result's REPORT.html
    <NNNN>_<name>_<hash6>/      one result: one pipeline config on this dataset
        pipeline.yaml           the concrete pipeline; `n4afs run pipeline.yaml` re-runs it
        scores.yaml             scores per fold and partition; cv = pooled out-of-fold
        per_class.csv           classification: precision, recall, F1 per class (cv, test)
        roc.csv                 a classifier with probabilities: ROC points and AUC per class
                                (pooled out-of-fold; charts/roc.png draws them)
        REPORT.html             one printable page: dataset, pipeline, scores, charts,
                                diagnostics, provenance, run notes (images inside)
        predictions/            cv.csv (out-of-fold), fold_<k>.csv, train.csv, test.csv,
                                avg.csv, w_avg.csv (fold ensembles on the test set);
                                cv_by_group.csv: out-of-fold, one row per physical
                                sample when the run kept replicate scans together;
                                predictions.parquet: every prediction, typed, as stored
        charts/                 PNG charts (PLS: coefficients.png, t2_q.png too)
        diagnostics/            a PLS model: coefficients.csv (b per wavelength, intercept,
                                VIP), diagnostics.csv (leverage, Hotelling T², Q residuals
                                per sample, 95 % limits, outliers by sample id)
        models/<role>_<id>/     <step>.pkl per fitted step, pipeline.pkl (the whole chain:
                                joblib.load(...).predict(X)), MANIFEST.yaml
        logs/                   timing.yaml, or error.log for a failed result
by-run/<date>_<name>_<hash6>/   the same results grouped by run: RUN.yaml, templates/,
                                <dataset>/RESULTS.csv (the ranking within the run), charts/
best/<dataset>.csv              the best predictions of every dataset (.xlsx, .parquet)
datasets/<dataset>/             DATASET.yaml, spectra.csv, targets.csv, and metadata.csv
                                (sample_id + metadata columns) when it has metadata

A dataset with several targets (protein, moisture...) has one folder per target where the
others have their results: runs/<dataset>/<target>/ holds that target's RESULTS.csv,
best_*.csv and result folders; by-run/<run>/<dataset>/<target>/; best/<dataset>/<target>.csv.
Each target is its own calibration: results are ranked per target, never across targets.

NNNN is the result's number on its dataset (never reused); hash6 identifies its config.
CSV files: comma separated, '.' decimal point, UTF-8, one row per sample. residual is
y_pred - y_true. Pickle files run code when loaded: only load those you trust.
"""


PREDICTIONS_PARQUET = "predictions.parquet"  # a result's predictions blob, shown as stored
REPORT = "REPORT.html"  # a result's page, and a ranking's
ROC = "roc.csv"  # a classifier with probabilities: its ROC curves' points, AUC per class
PER_CLASS = "per_class.csv"  # a classification result's precision and recall per class
DIAGNOSTICS_FILES = ("coefficients.csv", "diagnostics.csv")  # a PLS result's diagnostics/


class ResultFiles:
    def __init__(self, workspace: Any, memo: RenderMemo) -> None:
        self.ws = workspace
        self.memo = memo
        self._last_results: tuple[tuple, tuple] | None = None  # `results_columns`
        self._last_shown: tuple[list, Any, tuple] | None = None  # `_shown`
        self.parts = ResultParts()

    # -- loading inputs (cached: each blob parsed once) ---------------------------------
    @lru_cache(maxsize=64)  # noqa: B019 - one ResultFiles per Tree, lives as long
    def predictions(self, blob_id: str) -> Any:
        import polars as pl

        return pl.read_parquet(io.BytesIO(self.ws.store.read(blob_id)))

    @lru_cache(maxsize=8)  # noqa: B019
    def spectra(self, blob_id: str) -> Any:
        from n4afs_core.data.datasets import from_parquet_bytes

        return from_parquet_bytes(self.ws.store.read(blob_id))

    @lru_cache(maxsize=8)  # noqa: B019
    def metadata(self, blob_id: str) -> renderers.Metadata:
        """A dataset's metadata columns and each sample's values, for prediction CSVs."""
        s = self.spectra(blob_id)
        columns = [s.metadata[m].tolist() for m in s.metadata]
        values = dict(zip(s.sample_ids, zip(*columns, strict=True), strict=True))
        return tuple(s.metadata), values

    def _metadata_of(self, d: DatasetInfo) -> tuple[str | None, Any]:
        """(the dataset blob whose metadata prediction CSVs show, a loader of it), or
        (None, None) for a dataset without metadata (or without its data): its CSVs render
        as they did before metadata existed."""
        if d.blob_id is None or not (d.columns or {}).get("metadata"):
            return None, lambda: None
        return d.blob_id, lambda: self.metadata(d.blob_id)

    @staticmethod
    def group_column(views: Any, r: ResultRow) -> str | None:
        """The group column the result's run kept scans together by on its dataset."""
        run = views.runs_by_id.get(r.run_id)
        recorded = run.options.get("groups") if run is not None else None
        if not isinstance(recorded, dict) or not isinstance(recorded.get(r.dataset_id), str):
            return None
        return recorded[r.dataset_id]

    def by_group(self, views: Any, r: ResultRow) -> Any:
        """The result's pooled out-of-fold predictions per group (`core.metrics.replicates`),
        or None when its run kept no groups on its dataset (or the data is not here)."""
        from n4afs_core.metrics.replicates import by_group

        column = self.group_column(views, r)
        d = views.datasets_by_id[r.dataset_id]
        if column is None or d.blob_id is None or r.predictions_blob is None:
            return None
        s = self.spectra(d.blob_id)
        if column not in s.metadata:
            return None
        group_of = dict(zip(s.sample_ids, s.labels(column).tolist(), strict=True))
        oof = ranking.out_of_fold_predictions(self.predictions(r.predictions_blob))
        if oof.height == 0:
            return None
        ids = oof["sample_id"].to_list()
        return by_group(
            d.task,
            [group_of.get(i) for i in ids],
            oof["y_true"].to_list(),
            oof["y_pred"].to_list(),
            oof["fold"].to_list(),
        )

    def _render(self, key: tuple, render, shared=None) -> LazyContent:
        """A rendered file: `key` = (kind, input ids...) names it in every process, so it is
        rendered once and stored (`LazyContent`), unless its kind is tiny YAML
        (`renderers.IN_MEMORY_KINDS`) or its node is a changing file (`file_node`).
        `shared`: what its bytes depend on, when other keys share it (`RenderMemo.get`)."""
        persist = key[0] not in renderers.IN_MEMORY_KINDS
        return LazyContent(self.memo, (RENDER_VERSION, *key), render, persist, shared)

    def _tables(
        self, key: tuple, table, about=(), parquet: dict[str, str] | None = None
    ) -> tuple[LazyContent, ...]:
        """One table, two files: CSV for machines, `.xlsx` for spreadsheets (numbers right
        in every locale); and a third, Parquet with typed columns for the data stack, when
        `parquet` is given (the types of the columns it names; the others are inferred).
        `table()` gives (header, rows); the renders share its key, and the workbook's and
        the Parquet file's keys hold their about notes too (results sharing a predictions
        blob share the table, not the notes, which name their result)."""
        table = _shared(table, 2 if parquet is None else 3)
        as_csv = self._render(("csv", *key), lambda: renderers.csv_bytes(*table()))
        about_key = tuple(tuple(pair) for pair in about)
        as_xlsx = self._render(
            ("xlsx", *key, about_key), lambda: renderers.xlsx_bytes(*table(), about)
        )
        if parquet is None:
            return as_csv, as_xlsx
        as_parquet = self._render(
            ("parquet", *key, about_key),
            lambda: renderers.parquet_bytes(*table(), about, parquet),
        )
        return as_csv, as_xlsx, as_parquet

    # -- dataset-level files ------------------------------------------------------------
    def dataset_yaml(self, d: DatasetInfo) -> LazyContent:
        """Columns, note and keys appear when the dataset has them (datasets added before
        schema 006 render as they did)."""

        def render() -> bytes:
            doc: dict[str, Any] = {
                "name": d.name,
                "id": str(d.dataset_id),
                "task": d.task,
                "n_samples": d.n_samples,
                "n_features": d.n_features,
                "targets": d.target_names,
            }
            if d.columns:
                doc["columns"] = d.columns
            doc["target_stats"] = d.target_stats
            doc["wavelengths"] = {
                "min": d.wavelength_min,
                "max": d.wavelength_max,
                "unit": d.wavelength_unit,
            }
            doc["source"] = {
                "path": d.source_path,
                "sha256": d.source_sha256,
                "size": d.source_size,
            }
            if d.note is not None:
                doc["note"] = d.note
            if d.keys:
                doc["keys"] = d.keys
            doc["added"] = shown_time(d.created_at)
            return renderers.yaml_bytes(doc)

        return self._render(("dataset.yaml", d.dataset_id, d.name, d.blob_id), render)

    def results_tables(
        self, views: Any, ranked: list[ResultRow], metric: str, where: tuple
    ) -> tuple[LazyContent, ...]:
        """RESULTS.csv, RESULTS.xlsx and RESULTS.parquet: `results_columns`' table.
        `where`: which RESULTS they are (dataset id, target, run id or None), their slot
        (`_record_inputs`): each state of a ranking is a new key, gc keeps the newest."""
        key = ("results", metric, self._shown(views, ranked), ("slot", "RESULTS", *where))
        about = results_about(metric)
        table = lambda: self.results_columns(views, ranked, metric)  # noqa: E731
        as_csv = self._render(("csv", *key), lambda: renderers.csv_columns_bytes(*table()))
        about_key = tuple(tuple(pair) for pair in about)
        as_xlsx = self._render(
            ("xlsx", *key, about_key),
            lambda: renderers.xlsx_bytes(table()[0], zip(*table()[1], strict=True), about),
        )
        as_parquet = self._render(
            ("parquet", *key, about_key),
            lambda: renderers.parquet_columns_bytes(*table(), about, RESULTS_TYPES),
        )
        return as_csv, as_xlsx, as_parquet

    def results_columns(self, views: Any, ranked: list[ResultRow], metric: str) -> tuple:
        """`results_columns` of a ranking, the last one built kept: `ls -la` sizes RESULTS'
        three files and the ranking's REPORT.html, one build for the four (one ranking's
        table held, not every table a listing could render)."""
        key = (metric, self._shown(views, ranked))
        last = self._last_results
        if last is not None and last[0] == key:
            return last[1]
        table = results_columns(views, ranked, metric, self.parts)
        self._last_results = (key, table)
        return table

    def _shown(self, views: Any, ranked: list[ResultRow]) -> tuple:
        """(result id, status, origin) of each result of a ranking: what its files show
        (their render keys); the last ranking's kept (its four files ask in turn)."""
        last = self._last_shown
        if last is not None and last[0] is ranked and last[1] is views.snapshot:
            return last[2]
        shown = tuple((r.result_id, r.status, views.snapshot.origin(r)) for r in ranked)
        self._last_shown = (ranked, views.snapshot, shown)
        return shown

    def group_charts(
        self, views: Any, results: list[ResultRow], title: str, target: str | None
    ) -> dict[str, Node]:
        """`charts/` of a dataset's (or a run's) results on one target: RMSECV against the
        number of components (`core.metrics.components`), as a chart and as CSV."""
        from n4afs_core.metrics import components

        shown = tuple(
            r
            for r in results
            if r.status == "completed" and r.run_id not in views.snapshot.untrusted_runs
        )
        # the results' ids name what is shown; their predictions blobs keep a stored render
        # alive in gc exactly while every result it shows is (`RenderCatalogue.live_blobs`)
        key = (
            "components",
            tuple(r.result_id for r in shown),
            tuple(r.predictions_blob for r in shown),
            title,
            target,
        )

        def points() -> list[Any]:
            return components.curves(self._component_points(views, shown))

        as_csv = self._render(
            ("csv", *key),
            lambda: renderers.csv_bytes(components.COLUMNS, (p.row() for p in points())),
        )
        as_png = self._render(
            ("png", *key),
            lambda: renderers.components_chart(points(), target, f"{title}: RMSECV vs components"),
        )
        mtime = max((r.created_at.timestamp() for r in results), default=0.0)
        return {  # keyed by the result ids shown: a stored render is never stale
            name: file_node(name, mtime, content, mutable=True, keyed=True)
            for name, content in (
                ("rmsecv_vs_components.csv", as_csv),
                ("rmsecv_vs_components.png", as_png),
            )
        }

    def _component_points(self, views: Any, results: tuple[ResultRow, ...]) -> list[Any]:
        """A point per result with a number of components: its configuration's curve, its
        RMSEC, RMSECV and RMSEP (`ResultParts`: built with RESULTS', or for them)."""
        from n4afs_core.metrics.components import Point, curve_name

        snapshot = views.snapshot
        described, choices, finals = self.parts.of(snapshot, results)
        train, test = finals["rmse", CALIBRATION], finals["rmse", TEST]
        return [
            Point(
                curve_name(preprocessing, model, chosen),
                preprocessing,
                model,
                k,
                train[i],
                snapshot.cv_scores(r.result_id).get("rmse"),
                test[i],
                r.label,
                r.run_id,
            )
            for i, (r, (preprocessing, model, k), chosen) in enumerate(
                zip(results, described, choices, strict=True)
            )
            if k is not None
        ]

    def best_tables(
        self, best: ResultRow, dataset: DatasetInfo, views: Any
    ) -> tuple[LazyContent, ...]:
        """The best result's predictions as CSV, .xlsx and Parquet, one row per sample:
        out-of-fold predictions, plus the final model on the test set."""
        about = [
            ("table", "predictions of the best result: pooled out-of-fold, then test"),
            ("result", best.label),
            ("target", best.target),
            ("metric", best.metric),
            ("direction", f"{METRICS[best.metric].direction} is better"),
        ]
        imported = (  # only an import's results have files of their own (and asking loads
            views.snapshot.imported_files(best.result_id)  # the dataset: `best/` does not)
            if views.snapshot.origin(best) != "workspace"
            else None
        )
        if imported is not None:

            def imported_table() -> tuple[list[str], list[list[Any]]]:
                return renderers.typed_csv_rows(self._imported_best(imported, dataset.task))

            as_csv = self._render(
                ("best.csv", "imported", best.result_id),
                lambda: self._imported_best(imported, dataset.task),
            )
            as_xlsx = self._render(
                ("best.xlsx", "imported", best.result_id),
                lambda: renderers.xlsx_bytes(*imported_table(), about),
            )
            as_parquet = self._render(
                ("best.parquet", "imported", best.result_id),
                lambda: renderers.parquet_bytes(*imported_table(), about),
            )
            return as_csv, as_xlsx, as_parquet

        meta_blob, metadata = self._metadata_of(dataset)

        def table() -> tuple[tuple[str, ...], list[tuple]]:
            predictions = self.predictions(best.predictions_blob)
            chosen = predictions.filter(
                ranking.out_of_fold_mask(predictions)
                | ((predictions["model"] == "final") & (predictions["partition"] == "test"))
            )
            return renderers.predictions_table(chosen, dataset.task, metadata())

        key = ("best", best.predictions_blob, dataset.task, meta_blob, best.label, best.metric)
        return self._tables(key, table, about, parquet={})

    def _imported_best(self, files: dict[str, tuple[str, int]], task: str) -> bytes:
        """cv.csv then the rows of test.csv, as exported (header once)."""
        parts = [
            self.ws.store.read(files[p][0])
            for p in ("predictions/cv.csv", "predictions/test.csv")
            if p in files
        ]
        if not parts:
            header = (
                renderers.PREDICTION_COLUMNS
                if task == "regression"
                else ("sample_id", "y_true", "y_pred", "correct", "partition", "fold")
            )
            return renderers.csv_bytes(header, [])
        return parts[0] + b"".join(p.split(b"\r\n", 1)[1] for p in parts[1:])

    def dataset_files(self, d: DatasetInfo) -> dict[str, Node]:
        t = d.created_at.timestamp()
        if d.blob_id is None:  # imported without its data: only the description
            return {"DATASET.yaml": file_node("DATASET.yaml", t, self.dataset_yaml(d))}

        def spectra_csv() -> bytes:
            s = self.spectra(d.blob_id)
            return renderers.csv_bytes(
                ["sample_id", *s.feature_names],
                ([sid, *row] for sid, row in zip(s.sample_ids, s.X.tolist(), strict=True)),
            )

        def targets_csv() -> bytes:
            s = self.spectra(d.blob_id)
            return renderers.csv_bytes(
                ["sample_id", *s.target_names],
                ([sid, *row] for sid, row in zip(s.sample_ids, s.y.tolist(), strict=True)),
            )

        def metadata_csv() -> bytes:
            s = self.spectra(d.blob_id)
            columns = [s.metadata[m].tolist() for m in s.metadata]
            return renderers.csv_bytes(
                ["sample_id", *s.metadata],
                ([sid, *values] for sid, *values in zip(s.sample_ids, *columns, strict=True)),
            )

        nodes = [
            file_node("DATASET.yaml", t, self.dataset_yaml(d)),
            file_node("spectra.csv", t, self._render(("spectra.csv", d.blob_id), spectra_csv)),
            file_node("targets.csv", t, self._render(("targets.csv", d.blob_id), targets_csv)),
        ]
        if d.columns.get("metadata"):  # the index says so: no blob read to list the folder
            key = ("metadata.csv", d.blob_id)
            nodes.append(file_node("metadata.csv", t, self._render(key, metadata_csv)))
        return {n.name: n for n in nodes}

    # -- run-level files ----------------------------------------------------------------
    def run_yaml(self, views: Any, run: RunRow) -> BytesContent:
        from n4afs_core.pipelines.runner import describe_targets

        dataset_ids = views.snapshot.run_datasets.get(run.run_id, [])
        datasets = [views.dataset_dirs[d] for d in dataset_ids]
        templates = [name for _, name, _ in views.snapshot.templates.get(run.run_id, [])]
        targets = {
            views.dataset_dirs[d]: [
                t
                for t in views.datasets_by_id[d].target_names
                if t in views.snapshot.run_targets.get((run.run_id, d), ())
            ]
            for d in dataset_ids
        }
        data: dict[str, Any] = {"run": run.run_id, "name": run.name}
        if run.note is not None:  # runs without one render as before notes existed
            data["note"] = run.note
        data |= {
            "status": run.status,
            "metric": run.metric,
            "results": run.n_results,
            "failed": run.n_failed,
            "pending": run.n_pending,
            "started": shown_time(run.created_at),
            "finished": shown_time(run.finished_at),
            "datasets": datasets,
            "targets": targets,
            "targets_chosen": "as in the bundle"
            if "imported_from" in run.options
            else describe_targets(run.options.get("targets")),
            "templates": templates,
            "options": run.options,
        }
        recorded = run.options.get("groups")
        if isinstance(recorded, dict):  # runs from before groups were recorded say nothing
            data["groups"] = {views.dataset_dirs[d]: recorded.get(d) for d in dataset_ids}
        return BytesContent(renderers.yaml_bytes(data))  # small and changing: not memoized

    def templates_dir(self, views: Any, run: RunRow) -> dict[str, Node]:
        t = run.created_at.timestamp()
        nodes = {}
        for position, name, body in views.snapshot.templates.get(run.run_id, []):
            file_name = safe_name(f"{position + 1:02d}_{name}.yaml")  # whatever the index holds
            content = BytesContent(renderers.yaml_bytes(body))
            nodes[file_name] = file_node(file_name, t, content)
        return nodes

    # -- one result ---------------------------------------------------------------------
    def result_dir(self, views: Any, r: ResultRow, rest: TreePath) -> Listing | None:
        """A result's folder, or a folder inside it. What it lists is stored whole after
        its first stat (`stored_folders`, keyed by `folder_key`): a change to what a
        result folder lists bumps RENDER_VERSION."""
        t = r.created_at.timestamp()
        imported = views.snapshot.imported_files(r.result_id)
        if imported is not None:
            nodes = self.imported_dir(imported, rest, t)
            if not rest and nodes is not None:  # its scores as recomputed, not as claimed
                nodes["scores.yaml"] = file_node("scores.yaml", t, self.scores_yaml(views, r))
            return nodes
        if not rest:
            nodes = [
                file_node("pipeline.yaml", t, self.pipeline_yaml(r)),
                directory("logs", t, mutable=False),
            ]
            if r.status == "completed":
                nodes += [file_node("scores.yaml", t, self.scores_yaml(views, r))]
                nodes += [
                    directory(n, t, mutable=False) for n in ("predictions", "charts", "models")
                ]
                if self.is_pls(views, r):
                    nodes.append(directory("diagnostics", t, mutable=False))
                if views.datasets_by_id[r.dataset_id].task == "classification":
                    nodes.append(file_node(PER_CLASS, t, self.per_class(r)))
                if self.has_roc(views, r):
                    nodes.append(file_node(ROC, t, self.roc_csv(views, r)))
                nodes.append(self.report_node(views, r))
            return {n.name: n for n in nodes}
        if r.status != "completed" and rest[0] != "logs":
            return None
        builder = {
            "predictions": self.predictions_dir,
            "charts": self.charts_dir,
            "models": self.models_dir,
            "logs": self.logs_dir,
            "diagnostics": self.diagnostics_dir if self.is_pls(views, r) else None,
        }.get(rest[0])
        return builder(views, r, rest[1:]) if builder else None

    def report_node(self, views: Any, r: ResultRow) -> Node:
        """A complete result's REPORT.html. Its run's note shows in it, and a note may be
        set later: a changing file, keyed by everything it shows (`result_report`), so
        stored like the charts; never part of a stored result folder."""
        t = _noted(views, r, r.created_at.timestamp())
        return file_node(REPORT, t, self.result_report(views, r), mutable=True, keyed=True)

    # -- a result folder, stored whole (`n4afs.tree.stored_folders`) ----------------------
    def folder_key(self, views: Any, r: ResultRow) -> tuple | None:
        """The key of a result folder stored whole: every input a file below it shows
        besides the result's own rows (which never change under its id): its target, its
        origin and group column, its dataset's data (attached later to an imported
        dataset), and the times it shows in this process's zone (timing.yaml). What the
        folder lists is code: RENDER_VERSION names it. The predictions blob lets gc drop it
        with its result (`content._blob_ids`). None for a folder always built: an imported
        result's, or one not complete."""
        if r.status != "completed" or r.predictions_blob is None:
            return None
        if views.snapshot.imported_files(r.result_id) is not None:
            return None
        run = views.runs_by_id.get(r.run_id)
        shown = (shown_time(run.created_at) if run else None, shown_time(r.created_at))
        dataset_blob = views.datasets_by_id[r.dataset_id].blob_id
        origin, column = views.snapshot.origin(r), self.group_column(views, r)
        inputs = (r.result_id, r.predictions_blob, r.target, origin, column, dataset_blob)
        return (RENDER_VERSION, "result-folder", stored_folders.FORMAT, *inputs, *shown)

    def stored_folder(self, views: Any, r: ResultRow) -> dict[TreePath, Listing] | None:
        """The result's folder as stored by an earlier stat (`store_folder`), or None."""
        data = self._stored_folder_bytes(views, r)
        if data is None:
            return None
        try:
            folders = stored_folders.decode(
                data, self.memo, lambda p, n, key: self._drawn(views, r, p, n, key)
            )
        except ValueError:  # not in this format: built, and stored again at the next stat
            return None
        root = folders.get(())
        if root is not None:
            folders[()] = {**dict(root.items()), REPORT: self.report_node(views, r)}
        return folders

    def store_folder(self, views: Any, r: ResultRow) -> bool:
        """Store the result's folder whole (every listing below it but `charts/`'s files);
        its YAML files are rendered to be stored, nothing else is drawn. False when it is
        not stored (see `folder_key`, `stored_folders.encode`) or cannot be written."""
        key = self.folder_key(views, r)
        if key is None:
            return False
        folders: dict[TreePath, Listing] = {}
        stack: list[TreePath] = [()]
        while stack:
            path = stack.pop()
            listing = self.result_dir(views, r, path)
            if listing is None:
                return False
            if not path:
                listing = {name: node for name, node in listing.items() if name != REPORT}
            folders[path] = listing
            for name, is_dir in kinds(listing):
                if is_dir and (path or name != stored_folders.NOT_STORED):
                    stack.append((*path, name))
        data = stored_folders.encode(dict(sorted(folders.items())))
        return data is not None and self.memo.store(key, data)

    def folder_complete(self, views: Any, r: ResultRow) -> bool:
        """The result's folder is stored, with the place of each of its renders."""
        data = self._stored_folder_bytes(views, r)
        return data is not None and stored_folders.complete(data)

    def _stored_folder_bytes(self, views: Any, r: ResultRow) -> bytes | None:
        key = self.folder_key(views, r)
        return self.memo.stored_bytes(key) if key is not None else None

    def _drawn(self, views: Any, r: ResultRow, path: TreePath, name: str, key: tuple) -> bytes:
        """A stored folder's render drawn again (its stored blob was gone): the tree's own
        render of the same file, under the same key. Another key (a folder stored by other
        code, or an input `folder_key` misses) is refused: its bytes are not recorded
        under the stored key."""
        listing = self.result_dir(views, r, path)
        node = listing.get(name) if listing is not None else None
        content = node.content if node is not None else None
        if not isinstance(content, LazyContent) or content.key != key:
            raise BlobCorrupt(
                f"{r.label}/{'/'.join((*path, name))}: the stored result folder differs "
                "from what the index shows; remove the workspace's renders/ folder "
                "(re-created as files are read)"
            )
        return content.render()

    def imported_dir(
        self, files: dict[str, tuple[str, int]], rest: TreePath, mtime: float
    ) -> dict[str, Node] | None:
        """An imported result's folder: the files it was exported with (`result_dir`
        replaces its scores.yaml with the scores n4afs recomputed)."""
        prefix = "/".join(rest) + "/" if rest else ""
        nodes: dict[str, Node] = {}
        for path, (blob_id, size) in files.items():
            if not path.startswith(prefix):
                continue
            head, _, tail = path[len(prefix) :].partition("/")
            if tail:
                nodes.setdefault(head, directory(head, mtime, mutable=False))
            else:
                nodes[head] = file_node(head, mtime, BlobContent(blob_id, size))
        return nodes or None

    def pipeline_yaml(self, r: ResultRow) -> LazyContent:
        def render() -> bytes:
            choices = ", ".join(f"{k}={v}" for k, v in r.choices.items())
            return renderers.yaml_bytes(
                {
                    "name": r.name,
                    "description": f"result {r.label} of run {r.run_id}, modelling target "
                    f"{r.target}" + (f"; generator choices: {choices}" if choices else ""),
                    "steps": r.config,
                }
            )

        return self._render(("pipeline.yaml", r.result_id, r.target), render)

    def scores_yaml(self, views: Any, r: ResultRow) -> LazyContent:
        origin = views.snapshot.origin(r)
        column = self.group_column(views, r)
        meta_blob = views.datasets_by_id[r.dataset_id].blob_id if column else None

        def render() -> bytes:
            rows = views.snapshot.scores_of(r.result_id)
            by_model: dict[str, dict[str, Any]] = {}
            for row in rows:
                scores = {k: v for k, v in row.items() if k not in ("model", "partition", "fold")}
                by_model.setdefault(row["model"], {})[row["partition"]] = scores
            return renderers.yaml_bytes(
                {
                    "result": r.label,
                    "target": r.target,
                    "metric": r.metric,
                    "direction": METRICS[r.metric].direction,
                    "score": r.score,
                    "score_is": "pooled out-of-fold (cv/val) when cross-validated, else final/test",
                    "models": by_model,
                    "directions": {m: spec.direction for m, spec in METRICS.items()},
                    **self._by_group_scores(views, r, column),
                    **(
                        {}
                        if origin == "workspace"
                        else {
                            "origin": origin,
                            "origin_note": "imported: scores recomputed by n4afs from the "
                            "bundle's prediction tables; only trusted imports can be best",
                        }
                    ),
                }
            )

        key = ("scores.yaml", r.result_id, origin, column, meta_blob)
        return self._render(key, render)

    def _by_group_scores(self, views: Any, r: ResultRow, column: str | None) -> dict[str, Any]:
        """scores.yaml's `cv_by_group:` block: the per-group scores of a run that kept
        replicate scans together (none otherwise). Never ranked."""
        from n4afs_core.metrics.replicates import HOW
        from n4afs_core.pipelines.persist import clean_scores

        grouped = self.by_group(views, r) if column is not None else None
        if grouped is None:
            return {}
        task = views.datasets_by_id[r.dataset_id].task
        return {
            "cv_by_group": {
                "group_column": column,
                "n_groups": len(grouped.groups),
                "predictions": "predictions/cv_by_group.csv: pooled out-of-fold, " + HOW[task],
                "scores": clean_scores(grouped.scores()),
                "directions": {m: s.direction for m, s in METRICS.items() if s.task == task},
                "ranked": False,
            }
        }

    def predictions_dir(self, views: Any, r: ResultRow, rest: TreePath) -> Listing | None:
        """Which files exist comes from the index (score rows); the blob is read on demand."""
        if rest:
            return None
        present = views.snapshot.prediction_sets(r.result_id)
        wanted = [
            ("cv.csv", *ranking.OUT_OF_FOLD),
            ("train.csv", "final", "train"),
            ("test.csv", "final", "test"),
            ("avg.csv", "avg", "test"),
            ("w_avg.csv", "w_avg", "test"),
        ]
        folds = sorted({m for m, _ in present if ranking.is_fold_model(m)}, key=_fold_number)
        wanted += [(f"{m}.csv", m, None) for m in folds]
        wanted = [w for w in wanted if w[2] is None or (w[1], w[2]) in present]

        dataset = views.datasets_by_id[r.dataset_id]
        column = self.group_column(views, r)
        by_group = column is not None and dataset.blob_id is not None
        by_group = by_group and ranking.OUT_OF_FOLD in present
        names = tuple(name for name, _, _ in wanted)
        if by_group:
            names = (names[0], "cv_by_group.csv", *names[1:]) if names else names
        names = tuple(n for name in names for n in (name, *_spreadsheet_twin(name)))
        size = views.snapshot.predictions_size(r)
        if size is not None:  # every prediction above, typed: the stored blob as it is
            names += (PREDICTIONS_PARQUET,)

        def build() -> dict[str, Node]:
            task = dataset.task
            t = r.created_at.timestamp()
            meta_blob, metadata = self._metadata_of(dataset)
            nodes = {}
            for name, model, partition in wanted:
                table = self._predictions_table(
                    r.predictions_blob, model, partition, task, metadata
                )
                key = ("predictions", r.predictions_blob, name, task, meta_blob)
                about = [("table", f"predictions of {r.label}: {name}"), ("target", r.target)]
                self._add_tables(nodes, name, t, self._tables(key, table, about))
            if by_group:

                def table_by_group() -> tuple[Any, list]:
                    from n4afs_core.metrics.replicates import COLUMNS

                    grouped = self.by_group(views, r)
                    return COLUMNS[task], grouped.rows() if grouped else []

                key = ("cv_by_group", r.predictions_blob, dataset.blob_id, column, task)
                about = [("table", f"pooled out-of-fold predictions of {r.label} per {column}")]
                tables = self._tables(key, table_by_group, about)
                self._add_tables(nodes, "cv_by_group.csv", t, tables)
            if size is not None:
                content = BlobContent(r.predictions_blob, size)
                nodes[PREDICTIONS_PARQUET] = file_node(PREDICTIONS_PARQUET, t, content)
            return {name: nodes[name] for name in names}

        return FilesListing(names, build)

    @staticmethod
    def _add_tables(nodes: dict, name: str, mtime: float, tables: tuple) -> None:
        """`name` (a CSV) and, where a spreadsheet user opens it, its `.xlsx` twin."""
        nodes[name] = file_node(name, mtime, tables[0])
        for twin in _spreadsheet_twin(name):
            nodes[twin] = file_node(twin, mtime, tables[1])

    def _predictions_table(
        self, blob_id: str, model: str, partition: str | None, task: str, metadata: Any
    ):
        def table() -> tuple[tuple[str, ...], list[tuple]]:
            predictions = self.predictions(blob_id)
            meta = metadata()
            if (model, partition) == ranking.OUT_OF_FOLD:  # the fold models' val rows, pooled
                oof = ranking.out_of_fold_predictions(predictions)
                return renderers.predictions_table(oof, task, meta)
            if partition is None:
                mask = predictions["model"] == model
            else:
                mask = (predictions["model"] == model) & (predictions["partition"] == partition)
            return renderers.predictions_table(predictions.filter(mask), task, meta)

        return table

    def per_class(self, r: ResultRow) -> LazyContent:
        """per_class.csv: precision, recall and F1 per class, pooled out-of-fold (`cv`)
        and on the test set (`test`, when there is one): `core.metrics.scores.per_class_scores`."""
        from n4afs_core.metrics.scores import PER_CLASS_COLUMNS, per_class_scores

        def render() -> bytes:
            table = self.predictions(r.predictions_blob)
            oof = ranking.out_of_fold_predictions(table)
            test = table.filter((table["model"] == "final") & (table["partition"] == "test"))
            rows = []
            for name, part in (("cv", oof), ("test", test)):
                if part.height:
                    found = per_class_scores(part["y_true"].to_list(), part["y_pred"].to_list())
                    rows += [(name, *row) for row in found]
            return renderers.csv_bytes(("partition", *PER_CLASS_COLUMNS), rows)

        return self._render(("per_class", r.predictions_blob), render)

    # -- REPORT.html ----------------------------------------------------------------------
    def result_report(self, views: Any, r: ResultRow) -> LazyContent:
        """A result's REPORT.html (`n4afs.tree.report`): dataset, pipeline, scores, charts,
        diagnostics, provenance, run notes; the charts are the tree's own renders."""
        run = views.runs_by_id.get(r.run_id)
        note = run.note if run is not None else None
        dataset = views.datasets_by_id[r.dataset_id]

        def render() -> bytes:
            from n4afs.tree import report

            title = f"{dataset.name} / {r.target} / {r.label}"
            charts = self.charts_dir(views, r, ()) or {}
            images = [report.Image(name, bytes(node.content.data)) for name, node in charts.items()]
            sections = [
                report.Section(
                    "Dataset", [report.Table(("", ""), _dataset_rows(dataset, r.target))]
                ),
                report.Section("Pipeline", self._pipeline_parts(r)),
                report.Section("Scores", [self._scores_table(views, r, dataset.task)]),
                report.Section("Charts", images),
                report.Section("Diagnostics", self._diagnostics_parts(views, r, dataset)),
                report.Section("Provenance", [self._provenance_table(views, r, run, dataset)]),
                report.Section(
                    "Run notes",
                    [report.Note(note) if note else f"no note on run {r.run_id}"],
                ),
            ]
            return report.page(title, sections)

        # Keyed by every input it shows that may change under the result's id: the run's note
        # (set later), the dataset's name, and its data and description with their target
        # name (attached later to a dataset imported without them: `blob_id`, `r.target`);
        # the rest (config, scores, models, charts' inputs, origin, versions) never changes
        # under a result id. So it is stored and a fresh process sizes and reads it without
        # drawing (a stat would import the chart libraries and unpickle the final model); its
        # predictions blob in the key lets gc drop it with its result (`_blob_ids`).
        # Its provenance shows times in this process's zone: a reader elsewhere renders its own.
        shown = (shown_time(run.created_at) if run else None, shown_time(r.created_at))
        key = ("REPORT.html", r.result_id, r.predictions_blob, r.target, note, *shown) + (
            dataset.name,
            dataset.blob_id,
        )
        return self._render(key, render)

    def _pipeline_parts(self, r: ResultRow) -> list[Any]:
        from n4afs_core.pipelines.templates import describe_config

        from n4afs.tree import report

        preprocessing, model, k = describe_config(r.config)
        rows = [("preprocessing", preprocessing), ("model", model), ("components", k)]
        rows += [(f"choice {name}", value) for name, value in r.choices.items()]
        text = bytes(self.pipeline_yaml(r).data).decode("utf-8")
        return [
            report.Table(("", ""), rows),
            "pipeline.yaml (re-run it with n4afs run):",
            report.Pre(text),
        ]

    @staticmethod
    def _scores_table(views: Any, r: ResultRow, task: str) -> Any:
        from n4afs.tree import report

        snapshot = views.snapshot
        columns = [
            (
                "calibration (final model, train)",
                snapshot.final_scores(r.result_id, ranking.CALIBRATION[1]),
            ),
            ("cross-validation (pooled out-of-fold)", snapshot.cv_scores(r.result_id)),
            ("test (final model)", snapshot.final_scores(r.result_id, ranking.TEST[1])),
        ]
        names = {"rmse": "RMSE: RMSEC / RMSECV / RMSEP", "r2": "R²", "sep": "SEP", "rpd": "RPD",
                 "rpiq": "RPIQ", "bias": "bias", "slope": "slope", "offset": "offset"}  # fmt: skip
        rows = [("samples (n)", *(scores.get("n") for _, scores in columns), "")]
        for metric, spec in METRICS.items():
            if spec.task != task:
                continue
            values = [scores.get(metric) for _, scores in columns]
            rows.append((names.get(metric, metric), *values, spec.description))
        return report.Table(("score", *(name for name, _ in columns), "meaning"), rows)

    def _diagnostics_parts(self, views: Any, r: ResultRow, dataset: DatasetInfo) -> list[Any]:
        from n4afs.tree import report

        if dataset.task == "classification":
            table = renderers.typed_csv_rows(bytes(self.per_class(r).data))
            return ["Precision and recall per class (per_class.csv):", report.Table(*table)]
        if not self.is_pls(views, r):
            return ["Model diagnostics (coefficients, VIP, T², Q) are computed for PLS models."]
        got = self.diagnostics(*self.diagnostics_inputs(views, r))
        if got is None:
            return ["Its final model is not a PLS pipeline: no diagnostics."]
        found, ids, partitions, _ = got
        parts: list[Any] = [
            report.Table(
                ("", ""),
                [
                    ("latent variables", found.n_components),
                    ("calibration samples", found.n_calibration),
                    ("intercept b0", found.intercept),
                    ("Hotelling T² limit (95 %)", found.t2_limit),
                    ("Q residuals limit (95 %)", found.q_limit),
                    ("variables with VIP > 1", int((found.vip > 1).sum())),
                ],
            )
        ]
        flagged = [
            (sid, part, float(h), float(t2), float(q))
            for sid, part, h, t2, q, out in zip(
                ids, partitions, found.leverage, found.t2, found.q, found.outliers, strict=True
            )
            if out
        ]
        if flagged:
            parts.append(f"Outliers (beyond the T² or the Q limit): {len(flagged)}")
            header = ("sample_id", "partition", "leverage", "Hotelling T²", "Q residual")
            parts.append(report.Table(header, flagged))
        else:
            parts.append("No sample beyond the 95 % T² or Q limits.")
        parts.append(
            "Every sample: diagnostics/diagnostics.csv; b and VIP: diagnostics/coefficients.csv."
        )
        return parts

    @staticmethod
    def _provenance_table(views: Any, r: ResultRow, run: Any, dataset: DatasetInfo) -> Any:
        from n4afs.tree import report

        rows: list[tuple[str, Any]] = [
            ("result", r.label),
            ("result id", r.result_id),
            ("config hash", r.config_hash),
            ("run", r.run_id),
            ("run started", shown_time(run.created_at) if run else None),
            ("result finished", shown_time(r.created_at)),
            ("origin", views.snapshot.origin(r)),
            ("dataset id", str(dataset.dataset_id)),
            ("dataset blob", dataset.blob_id),
            ("predictions blob", r.predictions_blob),
        ]
        for model in views.snapshot.models_of(r.result_id).values():
            if model.role != "final":
                continue
            rows += [
                (f"final model: {a.step_name}", f"{a.class_path} {a.blob_id}")
                for a in model.artifacts
            ]
        versions = (run.options.get("versions") if run else None) or {}
        rows += [(f"version: {k}", v) for k, v in sorted(versions.items())]
        return report.Table(("", ""), rows)

    def group_report(
        self,
        views: Any,
        dataset: DatasetInfo,
        target: str | None,
        ranked: list[ResultRow],
        metric: str,
    ) -> LazyContent:
        """A ranking's REPORT.html: the dataset, every result best first with a link to its
        own report, RMSECV against components (regression), the runs and their notes."""
        run_ids = sorted({r.run_id for r in ranked})
        notes = tuple(
            (run_id, getattr(views.runs_by_id.get(run_id), "note", None)) for run_id in run_ids
        )
        key = (  # everything it shows: stored when its results are settled (`Tree`)
            "group REPORT.html",
            metric,
            self._shown(views, ranked),
            (dataset.name, dataset.blob_id, dataset.note),
            target,
            notes,
            ("slot", "REPORT", dataset.dataset_id, target),  # see `results_tables`
        )

        def render() -> bytes:
            from n4afs.tree import report

            header, columns = self.results_columns(views, ranked, metric)
            shown = ["rank", "result", "preprocessing", "model", "n_components", "metric", "score"]
            shown += ["rmsec", "rmsecv", "rmsep"] if dataset.task == "regression" else [
                "accuracy_c", "accuracy_cv", "accuracy_p"]  # fmt: skip
            shown += ["status", "run"]
            table_rows = list(zip(*(columns[header.index(c)] for c in shown), strict=True))
            links = [
                f"{r.label}/REPORT.html" if self._has_report(views, r) else None for r in ranked
            ]
            title = (
                dataset.name
                if target is None or not dataset.several_targets
                else f"{dataset.name} / {target}"
            )
            sections = [
                report.Section("Dataset", [report.Table(("", ""), _dataset_rows(dataset, target))]),
                report.Section(
                    "Ranking",
                    [
                        f"Every result, best first, by {metric} "
                        f"({METRICS[metric].direction} is better).",
                        report.Table(shown, table_rows, {1: links}),
                    ],
                ),
            ]
            if dataset.task == "regression":
                charts = self.group_charts(views, ranked, title, target)
                png = bytes(charts["rmsecv_vs_components.png"].content.data)
                sections.append(
                    report.Section(
                        "RMSECV vs components", [report.Image("rmsecv_vs_components.png", png)]
                    )
                )
            sections.append(
                report.Section(
                    "Runs",
                    [report.Table(("run", "note"), [(run_id, note) for run_id, note in notes])],
                )
            )
            return report.page(f"{title}: results", sections)

        return self._render(key, render)

    @staticmethod
    def _has_report(views: Any, r: ResultRow) -> bool:
        return r.status == "completed" and views.snapshot.imported_files(r.result_id) is None

    # -- ROC curves of a classifier with probabilities --------------------------------------
    @lru_cache(maxsize=256)  # noqa: B019
    def gives_probabilities(self, config_json: str) -> bool:
        """Whether the config's model gives class probabilities (an unfitted instance is
        asked: `SVC` only with `probability=True`); listing a folder loads no model."""
        import json

        from n4afs_core.metrics.roc import has_probabilities
        from n4afs_core.pipelines.operators import build, get_operator

        config = json.loads(config_json)
        if not config or not isinstance(config[-1], dict) or len(config[-1]) != 1:
            return False
        ((op, params),) = config[-1].items()
        try:
            return has_probabilities(build(get_operator(op), dict(params or {})))
        except Exception:  # an operator that cannot be built here: no ROC, never an error
            return False

    def has_roc(self, views: Any, r: ResultRow) -> bool:
        """A computed classification result of this workspace whose model gives
        probabilities (imported models are never loaded here)."""
        dataset = views.datasets_by_id[r.dataset_id]
        return (
            r.status == "completed"
            and views.snapshot.imported_files(r.result_id) is None
            and r.run_id not in views.snapshot.untrusted_runs
            and dataset.task == "classification"
            and dataset.blob_id is not None
            and self.gives_probabilities(r.config_json)
        )

    def roc_inputs(self, views: Any, r: ResultRow) -> tuple:
        """Its fold models' (fold, step blobs), its dataset blob, its predictions blob."""
        folds = tuple(
            (m.fold, tuple((a.step_name, a.blob_id) for a in m.artifacts))
            for m in views.snapshot.models_of(r.result_id).values()
            if m.role == "fold"
        )
        return folds, views.datasets_by_id[r.dataset_id].blob_id, r.predictions_blob

    @lru_cache(maxsize=16)  # noqa: B019
    def roc(self, folds: tuple, dataset_blob: str, predictions_blob: str) -> list[Any]:
        """One-vs-rest ROC curves from pooled out-of-fold probabilities
        (`core.metrics.roc`): each fold model applied to the samples it validated."""
        import numpy as np
        from n4afs_core import pickles
        from n4afs_core.metrics import roc
        from sklearn.pipeline import Pipeline

        s = self.spectra(dataset_blob)
        oof = ranking.out_of_fold_predictions(self.predictions(predictions_blob))
        ids = oof["sample_id"].to_list()
        row_of = {sid: i for i, sid in enumerate(s.sample_ids)}
        position = {sid: i for i, sid in enumerate(ids)}
        fitted, classes = [], set()
        for fold, steps in folds:
            pipeline = Pipeline([(n, pickles.loads(self.ws.store.read(b))) for n, b in steps])
            mine = oof.filter(oof["fold"] == fold)["sample_id"].to_list()
            rows = np.array([position[i] for i in mine], dtype=int)
            fitted.append((pipeline, rows, s.X[[row_of[i] for i in mine]]))
            classes |= {str(c) for c in pipeline.classes_}
        labels = sorted(classes)
        proba = roc.out_of_fold_probabilities(fitted, len(ids), labels)
        return roc.roc_curves(oof["y_true"].to_list(), proba, labels)

    def roc_csv(self, views: Any, r: ResultRow) -> LazyContent:
        from n4afs_core.metrics import roc

        def render() -> bytes:
            curves = self.roc(*self.roc_inputs(views, r))
            return renderers.csv_bytes(roc.COLUMNS, roc.curve_rows(curves))

        return self._render(("roc.csv", r.result_id, r.predictions_blob), render)

    # -- inside a PLS model ---------------------------------------------------------------
    @staticmethod
    def is_pls(views: Any, r: ResultRow) -> bool:
        """A computed regression result of this workspace whose model is PLS (from its
        config: listing a folder reads no model). Imported models are never loaded here."""
        if r.status != "completed" or views.snapshot.imported_files(r.result_id) is not None:
            return False
        if r.run_id in views.snapshot.untrusted_runs:
            return False
        dataset = views.datasets_by_id[r.dataset_id]
        if dataset.task != "regression" or dataset.blob_id is None:
            return False
        return _model_name(r.config_hash, r.config_json) == "pls"

    def diagnostics_inputs(self, views: Any, r: ResultRow) -> tuple:
        """What a result's PLS diagnostics are computed from: its final model's step blobs,
        its dataset blob, its predictions blob (which samples were train and test)."""
        final = next(
            (m for m in views.snapshot.models_of(r.result_id).values() if m.role == "final"), None
        )
        steps = () if final is None else tuple((a.step_name, a.blob_id) for a in final.artifacts)
        return steps, views.datasets_by_id[r.dataset_id].blob_id, r.predictions_blob

    @lru_cache(maxsize=16)  # noqa: B019
    def diagnostics(self, steps: tuple, dataset_blob: str, predictions_blob: str) -> Any:
        """(PLSDiagnostics, sample ids, partitions, spectra) of a result's final PLS model on
        its calibration (train) and test samples (`core.metrics.pls_diagnostics`); None when
        the final model is not a PLS pipeline."""
        from n4afs_core import pickles
        from n4afs_core.metrics import pls_diagnostics
        from sklearn.pipeline import Pipeline

        if not steps:
            return None
        pipeline = Pipeline([(name, pickles.loads(self.ws.store.read(b))) for name, b in steps])
        if not pls_diagnostics.is_pls_pipeline(pipeline):
            return None
        s = self.spectra(dataset_blob)
        table = self.predictions(predictions_blob)
        final = table.filter(table["model"] == "final")
        row_of = {sid: i for i, sid in enumerate(s.sample_ids)}
        ids = {
            p: final.filter(final["partition"] == p)["sample_id"].to_list()
            for p in ("train", "test")
        }
        calibration = s.X[[row_of[i] for i in ids["train"]]]
        shown = ids["train"] + ids["test"]
        found = pls_diagnostics.diagnose(pipeline, calibration, s.X[[row_of[i] for i in shown]])
        partitions = ["train"] * len(ids["train"]) + ["test"] * len(ids["test"])
        return found, shown, partitions, s

    def diagnostics_dir(self, views: Any, r: ResultRow, rest: TreePath) -> Listing | None:
        """diagnostics/: coefficients.csv (b per wavelength, intercept, VIP) and
        diagnostics.csv (leverage, Hotelling T², Q per sample, limits, outliers)."""
        from n4afs_core.data.datasets import wavelengths
        from n4afs_core.metrics import pls_diagnostics as pd_

        if rest:
            return None

        def coefficients() -> bytes:
            got = self.diagnostics(*self.diagnostics_inputs(views, r))
            if got is None:
                return renderers.csv_bytes(pd_.COEFFICIENT_COLUMNS, [])
            found, _, _, s = got
            rows = pd_.coefficient_rows(found, s.feature_names, wavelengths(s.feature_names))
            return renderers.csv_bytes(pd_.COEFFICIENT_COLUMNS, rows)

        def samples() -> bytes:
            got = self.diagnostics(*self.diagnostics_inputs(views, r))
            if got is None:
                return renderers.csv_bytes(pd_.SAMPLE_COLUMNS, [])
            found, ids, partitions, _ = got
            return renderers.csv_bytes(pd_.SAMPLE_COLUMNS, pd_.sample_rows(found, ids, partitions))

        def build() -> dict[str, Node]:
            t, ids = r.created_at.timestamp(), (r.result_id, r.predictions_blob)
            return {
                "coefficients.csv": file_node(
                    "coefficients.csv", t, self._render(("coefficients", *ids), coefficients)
                ),
                "diagnostics.csv": file_node(
                    "diagnostics.csv", t, self._render(("diagnostics", *ids), samples)
                ),
            }

        return FilesListing(DIAGNOSTICS_FILES, build)

    def charts_dir(self, views: Any, r: ResultRow, rest: TreePath) -> Listing | None:
        from n4afs.tree import charts

        if rest:
            return None
        dataset = views.datasets_by_id[r.dataset_id]
        pls = self.is_pls(views, r)
        with_roc = self.has_roc(views, r)

        def build() -> dict[str, Node]:
            t = r.created_at.timestamp()
            nodes = {}
            diagnostics = (
                (lambda: self.diagnostics(*self.diagnostics_inputs(views, r))) if pls else None
            )
            curves = (lambda: self.roc(*self.roc_inputs(views, r))) if with_roc else None
            for name, render, inputs, shared in charts.result_charts(
                self, r, dataset, views.snapshot.cv_scores(r.result_id), diagnostics, curves
            ):
                content = self._render(("chart", name, *inputs), render, shared)
                nodes[name] = file_node(name, t, content)
            return nodes

        return FilesListing(charts.chart_names(dataset.task, pls, with_roc), build)

    def models_dir(self, views: Any, r: ResultRow, rest: TreePath) -> Listing | None:
        models = views.snapshot.models_of(r.result_id)
        if not rest:
            return {
                label: directory(label, m.created_at.timestamp(), mutable=False)
                for label, m in models.items()
            }
        model = models.get(rest[0])
        if model is None or len(rest) > 1:
            return None
        names = (*(f"{a.step_name}.pkl" for a in model.artifacts), "pipeline.pkl", "MANIFEST.yaml")

        def build() -> dict[str, Node]:
            t = model.created_at.timestamp()
            steps = tuple(
                (a.step_name, a.blob_id, a.size, names_legacy_module(a.class_path))
                for a in model.artifacts
            )
            nodes = {
                name: file_node(name, t, _step_content(step))
                for name, step in zip(names, steps, strict=False)  # steps first
            }
            nodes["pipeline.pkl"] = file_node("pipeline.pkl", t, SegmentsContent(steps))
            nodes["MANIFEST.yaml"] = file_node("MANIFEST.yaml", t, self.manifest(views, r, model))
            return nodes

        return FilesListing(names, build)

    def manifest(self, views: Any, r: ResultRow, model: Any) -> LazyContent:
        run = views.runs_by_id[r.run_id]

        def render() -> bytes:
            return renderers.yaml_bytes(
                {
                    "model": model.model_id,
                    "role": model.role,
                    "fold": model.fold,
                    "result": r.label,
                    "target": r.target,
                    "run": r.run_id,
                    "steps": [
                        {
                            "file": f"{a.step_name}.pkl",
                            "class": a.class_path,
                            "sha256": a.blob_id,
                            "size": a.size,
                        }
                        for a in model.artifacts
                    ],
                    "pipeline": "pipeline.pkl = sklearn Pipeline of the steps above, in order",
                    "versions": run.options.get("versions", {}),
                }
            )

        return self._render(("manifest", model.model_id, r.target), render)

    def logs_dir(self, views: Any, r: ResultRow, rest: TreePath) -> Listing | None:
        if rest:
            return None
        if r.status != "completed":  # failed, or broken (found by verify)
            return FilesListing(("error.log",), lambda: self._error_log(r))

        run = views.runs_by_id.get(r.run_id)
        started = shown_time(run.created_at) if run is not None else None

        def build() -> dict[str, Node]:
            def render() -> bytes:
                return renderers.yaml_bytes(timing_yaml(r, started))

            timing = self._render(("timing.yaml", r.result_id, r.status, started), render)
            return {"timing.yaml": file_node("timing.yaml", r.created_at.timestamp(), timing)}

        return FilesListing(("timing.yaml",), build)

    @staticmethod
    def _error_log(r: ResultRow) -> dict[str, Node]:
        content = BytesContent((r.error or "").encode("utf-8"))
        return {"error.log": file_node("error.log", r.created_at.timestamp(), content)}


# What `seconds` in timing.yaml measures (core.pipelines.runner.run_group): the index keeps one
# duration per result, no separate fit and predict times.
# Results are fit in groups that share preprocessing fits; each gets an equal share.
TIMING_NOTE = "wall time to fit, predict and store every model: an equal share of its group's"


def timing_yaml(r: ResultRow, run_started: str | None) -> dict[str, Any]:
    """logs/timing.yaml of a computed result: the times the index holds for it."""
    return {
        "result": r.label,
        "status": r.status,
        "seconds": None if r.duration_s is None else round(r.duration_s, 6),
        "seconds_measure": TIMING_NOTE,
        "run": r.run_id,
        "run_started": run_started,
        "finished": shown_time(r.created_at),
    }


# RESULTS.csv's columns: the same for every dataset, task and metric (a DuckDB or polars glob
# over datasets reads them as one table), then one column per other generator choice
# (`core.pipelines.templates.choice_columns`), sorted by name.
RESULTS_IDENTITY = ("rank", "result", "seq", "name", "target", "run", "status", "origin")
RESULTS_CONFIG = ("preprocessing", "model", "n_components")
RESULTS_RANKING = ("metric", "direction", "score")
# per task, its main score on calibration (train, final model), pooled out-of-fold, test
RESULTS_TRIOS = {
    "regression": ("rmse", ("rmsec", "rmsecv", "rmsep")),
    "classification": ("accuracy", ("accuracy_c", "accuracy_cv", "accuracy_p")),
}
RESULTS_CV = tuple(f"cv_{m}" for m in METRICS if m not in {m for m, _ in RESULTS_TRIOS.values()})
RESULTS_COLUMNS = (
    *RESULTS_IDENTITY,
    *RESULTS_CONFIG,
    *RESULTS_RANKING,
    *(c for _, trio in RESULTS_TRIOS.values() for c in trio),
    *RESULTS_CV,
)
RESULTS_TYPES = {  # typed columns (Parquet); the rest of the fixed ones are text
    **dict.fromkeys(("rank", "seq", "n_components"), "int"),
    **dict.fromkeys((c for c in RESULTS_COLUMNS[RESULTS_COLUMNS.index("score") :]), "float"),
}


def results_columns(
    views: Any, ranked: list[ResultRow], metric: str, parts: ResultParts | None = None
) -> tuple[list, list]:
    """Every result of one dataset's target, best first (`ranked`): who it is, what it is
    (preprocessing, model, components, other choices), the ranking metric, its direction and
    its ranked value (`core.metrics.ranking.ranked_value`), RMSEC/RMSECV/RMSEP (accuracy for
    classes; the other task's columns empty) and every pooled out-of-fold score.

    (header, one list per column), filled a column at a time (10,000 results: 300,000
    cells); what the index rows of each result give is `ResultParts`' (`parts`: kept ones)."""
    n = len(ranked)
    if n == 0:
        return list(RESULTS_COLUMNS), [[] for _ in RESULTS_COLUMNS]
    snapshot = views.snapshot
    described, choices, finals = (parts or ResultParts()).of(snapshot, ranked)
    cv = [snapshot.cv_scores(r.result_id) for r in ranked]  # parsed when they were ranked
    extra = sorted({c for chosen in choices for c in chosen} - set(RESULTS_COLUMNS))
    task = {r.dataset_id: views.datasets_by_id[r.dataset_id].task for r in ranked}
    tasks = [task[r.dataset_id] for r in ranked]

    score = [v.get(metric) for v in cv]
    for i, r in enumerate(ranked):  # `ranking.ranked_value`: else the stored score
        if score[i] is None and r.metric == metric:
            score[i] = r.score
    columns: list[list] = [
        list(range(1, n + 1)),
        [r.label for r in ranked],
        [r.seq for r in ranked],
        [r.name for r in ranked],
        [r.target for r in ranked],
        [r.run_id for r in ranked],
        [r.status for r in ranked],
        [snapshot.origin(r) for r in ranked],
        *(list(c) for c in zip(*described, strict=True)),
        [metric] * n,
        [METRICS[metric].direction] * n,
        score,
    ]
    for trio_task, (main, _) in RESULTS_TRIOS.items():
        mine = [t == trio_task for t in tasks]
        trio = (finals[main, CALIBRATION], [v.get(main) for v in cv], finals[main, TEST])
        for values in trio:
            columns.append([v if m else None for v, m in zip(values, mine, strict=True)])
    for c in RESULTS_CV:
        name = c.removeprefix("cv_")
        columns.append([v.get(name) for v in cv])
    for c in extra:
        columns.append([chosen.get(c) for chosen in choices])
    return [*RESULTS_COLUMNS, *extra], columns


CALIBRATION, TEST = ranking.CALIBRATION[1], ranking.TEST[1]  # the final model's partitions
FINAL_METRICS = tuple(main for main, _ in RESULTS_TRIOS.values())  # shown of final models


class ResultParts:
    """What a ranked table (RESULTS, its REPORT.html) and the components chart show of each
    result, from its index rows, which never change (a result commits whole): its config
    described (preprocessing, model, components: `describe_config`), its other generator
    choices (`choice_columns`), and its final models' `FINAL_METRICS` on the calibration and
    test rows. Built in batches (configs parsed and described in one call; the final scores
    in one index query per ranking: `core.index.queries.final_scores`), kept by result id,
    so RESULTS and the chart beside it (or a run's ranking after the dataset's) build them
    once."""

    MAX_KEPT = 50_000  # results kept (~300 bytes each: 15 MB); then started afresh

    def __init__(self) -> None:
        self._of: dict[str, tuple] = {}

    def of(self, snapshot: Any, results: list[ResultRow] | tuple[ResultRow, ...]) -> tuple:
        """(described, choices, finals) in the order of `results`: lists, and finals as
        {(metric, partition): values}."""
        from n4afs_core.pipelines.templates import config_columns

        kept = self._of
        missing = [r for r in results if r.result_id not in kept]
        if missing:
            if len(kept) + len(missing) > self.MAX_KEPT:
                kept = self._of = {}
                missing = list(results)
            configs = _json_list([r.config_json for r in missing])
            chosen = _json_list([r.choices_json for r in missing])
            described, choices = config_columns(configs, chosen)
            finals = _final_values(snapshot, missing, FINAL_METRICS)
            values = list(zip(*finals.values(), strict=True))
            for r, d, c, f in zip(missing, described, choices, values, strict=True):
                kept[r.result_id] = (d, c, f)
        found = [kept[r.result_id] for r in results]
        keys = [(m, p) for m in FINAL_METRICS for p in (CALIBRATION, TEST)]
        columns = list(zip(*(f for _, _, f in found), strict=True)) or [() for _ in keys]
        return (
            [d for d, _, _ in found],
            [c for _, c, _ in found],
            dict(zip(keys, columns, strict=True)),
        )


def _final_values(
    snapshot: Any, results: list[ResultRow], metrics: tuple[str, ...]
) -> dict[tuple[str, str], list[Any]]:
    """(metric, partition: train or test) -> each result's final model's value of the
    metric there (None where it has none), in the order of `results`: one index query per
    ranking (`core.index.queries.final_scores`), the values parsed in one call per column."""
    from n4afs_core.index.queries import final_scores

    found: dict[str, tuple] = {}
    with snapshot.index.read() as conn:
        for group in {ranking.group_of(r) for r in results}:  # one: a ranking's
            found |= {row[0]: row[1:] for row in final_scores(conn, group, metrics)}
    missing = (None,) * (2 * len(metrics))
    rows = [found.get(r.result_id, missing) for r in results]
    return {
        (metric, partition): _json_values([row[2 * i + j] for row in rows])
        for i, metric in enumerate(metrics)
        for j, partition in enumerate((CALIBRATION, TEST))
    }


def _json_list(texts: list[str]) -> list[Any]:
    """`json.loads` of each text, in one call (10,000 small documents)."""
    import json

    return json.loads("[" + ",".join(texts) + "]")


def _json_values(texts: list[str | None]) -> list[Any]:
    """The values of JSON numbers given as text (`core.index.queries.final_scores`), None
    for none; parsed as `json.loads` parses them in their document (an int stays an int)."""
    import json

    try:
        return json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
    except ValueError:  # not numbers only (never written by n4afs): one at a time
        return [None if t is None else _json_value(t) for t in texts]


def _json_value(text: str) -> Any:
    """A value extracted from a JSON document as text: a number, else the text (a string)."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _dataset_rows(d: DatasetInfo, target: str | None) -> list[tuple[str, Any]]:
    """What a report says of a dataset."""
    unit = d.wavelength_unit
    stats = (d.target_stats or {}).get(target) or {}
    rows: list[tuple[str, Any]] = [
        ("name", d.name),
        ("id", str(d.dataset_id)),
        ("task", d.task),
        ("samples", d.n_samples),
        ("variables", d.n_features),
        ("spectral range", f"{d.wavelength_min} – {d.wavelength_max} {unit or ''}".strip()),
        ("target", target),
    ]
    rows += [(f"{target}: {k}", v) for k, v in stats.items() if not isinstance(v, (dict, list))]
    rows.append(("source", d.source_path))
    if d.note is not None:
        rows.append(("note", d.note))
    return rows


def _noted(views: Any, r: ResultRow, mtime: float) -> float:
    """A result report's mtime: the result's, or its run's note when set later."""
    run = views.runs_by_id.get(r.run_id)
    noted = run.noted_at.timestamp() if run is not None and run.noted_at is not None else 0.0
    return max(mtime, noted)


def _shared(table: Any, users: int) -> Any:
    """`table` built once for the `users` renders of one table (CSV, .xlsx, Parquet: `ls -la`
    sizes all three, and RESULTS' rows take ~0.5 s at 10,000 results), then let go, so a
    listing does not hold every table it could render; a render run again rebuilds it."""
    held: list = []
    left = [0]

    def get() -> Any:
        if not held:
            held.append(table())
            left[0] = users
        value = held[0]
        left[0] -= 1
        if left[0] <= 0:
            held.clear()
        return value

    return get


def _step_content(step: tuple[str, str, int, bool]) -> BlobContent | SegmentsContent:
    """A step's `.pkl`: its blob as stored, or wrapped when pickled under the old name."""
    _, blob_id, size, legacy = step
    return SegmentsContent((step,), single=True) if legacy else BlobContent(blob_id, size)


def _spreadsheet_twin(name: str) -> tuple[str, ...]:
    """The `.xlsx` twin a predictions CSV has: every one but the per-fold tables (the
    pooled cv table holds their rows, with the fold)."""
    return () if name.startswith("fold") else (name.removesuffix(".csv") + ".xlsx",)


def _fold_number(model: str) -> int:
    """`fold_12` -> 12: fold files sort by number, not as text."""
    return int(model[len(ranking.FOLD_PREFIX) :])


@lru_cache(maxsize=65_536)
def _model_name(config_hash: str, config_json: str) -> str:
    """The model step's name of a config (`templates.describe_config`), once per config:
    a result folder's listing asks it for several of its entries (at 10,000 results a walk
    spent a quarter of its time describing configs)."""
    from n4afs_core.pipelines.templates import describe_config

    return describe_config(json.loads(config_json))[1]


def results_about(metric: str) -> list[tuple[str, str]]:
    """The `about` sheet of RESULTS.xlsx and the key-value metadata of RESULTS.parquet."""
    return [
        ("table", "every result, best first"),
        ("metric", metric),
        ("direction", f"{METRICS[metric].direction} is better"),
        ("score", "the metric's pooled out-of-fold (cv) score, else final/test"),
        ("rmsec, rmsecv, rmsep", "RMSE of the final model on train, pooled out-of-fold, test"),
        ("accuracy_c, _cv, _p", "the same for classification: accuracy"),
        ("cv_<metric>", "every other pooled out-of-fold score"),
    ]
