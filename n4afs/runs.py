"""Run and Result handles: what `ws.run(...)` returns and what users query afterwards.

They hold ids and rows, never open connections; every property reads the index through a
short transaction, so a handle stays valid while other processes keep writing.

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from n4afs_core.errors import N4AError, RunError, UntrustedArchive
from n4afs_core.index import queries
from n4afs_core.index.queries import ResultRow
from n4afs_core.index.trust import pickles_untrusted
from n4afs_core.metrics import ranking

if TYPE_CHECKING:
    from n4afs.workspace import Workspace


def undated(run_id: str) -> str:
    """A run id without its leading date (`2026-12-06_sweep_f099a2` -> `sweep_f099a2`): the
    short label tables show, which `Workspace.get_run` accepts like the full id."""
    date, _, rest = run_id.partition("_")
    return rest if rest and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) else run_id


@dataclass(frozen=True)
class Result:
    """One dataset x one expanded pipeline config.

    A result from a ranking (`Workspace.results`, `best`, `Run.ranked`) also carries the
    metric that ranked it and its value of that metric, so whoever shows the ranking shows
    the score the order follows.
    """

    ws: Workspace
    row: ResultRow
    ranked_by: str | None = None
    ranked_value: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)

    def __repr__(self) -> str:
        score = "-" if self.row.score is None else f"{self.row.score:.4g}"
        return f"Result({self.row.dataset}/{self.row.label}, {self.row.metric}={score})"

    @property
    def scores(self) -> list[dict[str, Any]]:
        """Per model x partition: every metric (cv/val is the pooled out-of-fold row)."""
        with self.ws.index.read() as conn:
            return queries.score_rows(conn, self.row.result_id)

    def cv_scores(self) -> dict[str, Any]:
        """The pooled out-of-fold scores (RMSECV etc.): what ranking uses."""
        found = (s for s in self.scores if ranking.is_out_of_fold(s["model"], s["partition"]))
        return next(found, {})

    def test_scores(self) -> dict[str, Any]:
        """The final model's scores on the test set (RMSEP etc.), empty without a test set."""
        found = (s for s in self.scores if s["model"] == "final" and s["partition"] == "test")
        return next(found, {})

    def is_untrusted_import(self) -> bool:
        """Whether its models load only with `trust=True` (`core.index.trust.UNTRUSTED_PICKLES`)."""
        with self.ws.index.read() as conn:
            return pickles_untrusted(conn, self.row.run_id)

    def predictions(self) -> Any:
        """Every prediction as a polars DataFrame: sample, model, partition, fold, y."""
        import polars as pl

        if self.row.predictions_blob is None:
            raise N4AError(f"result {self.row.label} failed; it has no predictions")
        return pl.read_parquet(io.BytesIO(self.ws.store.read(self.row.predictions_blob)))

    def load_model(self, which: str | int = "final", trust: bool = False) -> Any:
        """The fitted sklearn Pipeline of the final refit or of one CV fold (an int).

        Models of this workspace's own runs load as they are; those imported from a bundle
        without `--trust` are pickles from elsewhere and load only with `trust=True`.
        """
        from n4afs_core import pickles
        from sklearn.pipeline import Pipeline

        if not trust and self.is_untrusted_import():
            raise UntrustedArchive(
                f"result {self.row.label} was imported without --trust; its pickled models "
                "run code when loaded: pass trust=True only if you trust who made the bundle"
            )
        role, fold = ("final", None) if which == "final" else ("fold", int(which))
        with self.ws.index.read() as conn:
            steps = queries.model_artifacts(conn, self.row.result_id, role, fold)
        if not steps:
            raise N4AError(
                f"result {self.row.label} has no model {which!r} (use 'final' or 0..k-1)"
            )
        fitted = [(name, pickles.loads(self.ws.store.read(blob))) for name, _, blob in steps]
        return Pipeline(fitted)


def ranked_handles(ws: Workspace, ranking: queries.Ranking) -> list[Result]:
    """Handles of a ranking's rows, each with the metric and value it was ranked by."""
    return [
        Result(ws, row, ranking.metric, value)
        for row, value in zip(ranking.rows, ranking.values, strict=True)
    ]


@dataclass(frozen=True)
class Run:
    """A sweep: templates x datasets, its results and status."""

    ws: Workspace
    run_id: str

    def __repr__(self) -> str:
        return f"Run({self.run_id}, {self.status})"

    @property
    def info(self) -> queries.RunRow:
        with self.ws.index.read() as conn:
            for row in queries.list_runs(conn):
                if row.run_id == self.run_id:
                    return row
        raise RunError(f"no run {self.run_id!r}")

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def results(self) -> list[Result]:
        with self.ws.index.read() as conn:
            return [Result(self.ws, r) for r in queries.run_results(conn, self.run_id)]

    @property
    def datasets(self) -> list[str]:
        """The names of the run's datasets, in the order it was given them."""
        with self.ws.index.read() as conn:
            return queries.run_dataset_names(conn, self.run_id)

    def pending(self) -> tuple[int, str | None]:
        """(results still to compute, the metric they are scored by): what a progress bar
        counts and ranks while `finish` runs."""
        with self.ws.index.read() as conn:
            return queries.pending_results(conn, self.run_id)

    def finish(self, on_result: Any = None, **execution: Any) -> Run:
        """Compute the run's pending results, storing each as it finishes (`on_result` is
        called with each one's payload); a planned, interrupted or failed-midway run is
        finished this way. `execution`: where to compute them this time (`backend`,
        `scheduler`, `n_jobs`, `worker_cache`) instead of where the run was started: a run
        whose cluster is gone finishes on another one, or here. Returns the run."""
        from n4afs_core.pipelines.runner import execute_run

        execute_run(self.ws.index, self.ws.store, self.run_id, on_result, execution)
        self.ws._published()
        return self

    @property
    def targets(self) -> dict[str, list[str]]:
        """The targets the run models, per dataset name, in the dataset's order."""
        with self.ws.index.read() as conn:
            return queries.run_targets(conn, self.run_id)

    def ranked(
        self, dataset: str, metric: str | None = None, target: str | None = None
    ) -> list[Result]:
        """The run's results on `dataset`, best first (`Workspace.results`' rule: each
        target's ranking in turn unless `target` names one)."""
        from n4afs.workspace import target_groups

        info = self.ws.dataset(dataset)
        found: list[Result] = []
        with self.ws.index.read() as conn:
            for group in target_groups(info, target, every=True):
                ranked = queries.rank_results(conn, group, metric, run_id=self.run_id)
                found += ranked_handles(self.ws, ranked)
        return found

    def best(self, dataset: str, metric: str | None = None, target: str | None = None) -> Result:
        """Best validation score of the run's metric on that dataset (and `target`, which a
        dataset with several targets needs)."""
        from n4afs.workspace import target_groups

        untrusted = self.ws.untrusted_runs()  # once, not per result
        (group,) = target_groups(self.ws.dataset(dataset), target)
        ranked = [
            r
            for r in self.ranked(dataset, metric, group.target)
            if ranking.may_be_best(r.row.status, r.row.run_id in untrusted)
        ]
        if not ranked:
            raise RunError(f"run {self.run_id} has no completed result on {dataset!r}")
        return ranked[0]
