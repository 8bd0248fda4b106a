"""An in-memory copy of the index rows the tree needs, loaded in one read transaction.

Long-lived readers (the fsspec filesystem, the FUSE mount) must not open DuckDB per file:
they hold a `Snapshot` and load a new one when the index's change token moves. Loading is
a handful of bulk queries; everything after that is dictionary lookups.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core import queries
from core.catalog import DatasetInfo, list_datasets
from core.queries import ResultRow, RunRow


@dataclass(frozen=True)
class ArtifactInfo:
    step_index: int
    step_name: str
    class_path: str
    blob_id: str
    size: int


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    result_id: str
    role: str  # fold | final
    fold: int | None
    created_at: datetime
    artifacts: tuple[ArtifactInfo, ...]

    @property
    def label(self) -> str:
        """Folder name under models/: `final_<id>` or `fold0_<id>`, sorted sensibly."""
        return (
            f"final_{self.model_id}" if self.role == "final" else f"fold{self.fold}_{self.model_id}"
        )


@dataclass
class Snapshot:
    token: tuple[int, int]
    datasets: list[DatasetInfo]
    runs: list[RunRow]
    results: list[ResultRow]  # visible (completed/failed), ordered by dataset then seq
    run_datasets: dict[str, list[str]]  # run id -> dataset ids in order
    templates: dict[str, list[tuple[int, str, Any]]]  # run id -> (position, name, body)
    models: dict[str, list[ModelInfo]] = field(default_factory=dict)  # by result id
    scores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by result id
    imported: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    untrusted_runs: set[str] = field(default_factory=set)  # imported without --trust

    def cv_scores(self, result_id: str) -> dict[str, Any]:
        return next((s for s in self.scores.get(result_id, []) if s["model"] == "cv"), {})


def load_snapshot(index: Any) -> Snapshot:
    token = index.change_token()  # read before the rows: a commit in between reloads again
    with index.read() as conn:
        snapshot = Snapshot(
            token=token,
            datasets=list_datasets(conn),
            runs=queries.list_runs(conn),
            results=_all_results(conn),
            run_datasets=_run_datasets(conn),
            templates=_templates(conn),
        )
        snapshot.models = _models(conn)
        snapshot.scores = _scores(conn)
        snapshot.imported = _imported(conn)
        snapshot.untrusted_runs = {
            run_id
            for (run_id,) in conn.execute("SELECT run_id FROM imports WHERE NOT trusted").fetchall()
        }
    return snapshot


def _imported(conn: Any) -> dict[str, dict[str, tuple[str, int]]]:
    """result id -> {path inside its folder: (blob id, size)} for imported results."""
    grouped: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    for result_id, path, blob_id, size in conn.execute(
        "SELECT result_id, path, blob_id, size FROM imported_files ORDER BY result_id, path"
    ).fetchall():
        grouped[result_id][path] = (blob_id, size)
    return dict(grouped)


def _all_results(conn: Any) -> list[ResultRow]:
    rows = conn.execute(
        f"{queries.RESULT_SELECT} WHERE r.status IN {queries.VISIBLE} ORDER BY r.dataset_id, r.seq"
    ).fetchall()
    return [queries.result_from_row(r) for r in rows]


def _run_datasets(conn: Any) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for run_id, dataset_id in conn.execute(
        "SELECT run_id, dataset_id FROM run_datasets ORDER BY run_id, position"
    ).fetchall():
        grouped[run_id].append(dataset_id)
    return dict(grouped)


def _templates(conn: Any) -> dict[str, list[tuple[int, str, Any]]]:
    grouped: dict[str, list[tuple[int, str, Any]]] = defaultdict(list)
    for run_id, position, name, body in conn.execute(
        "SELECT run_id, position, name, body FROM templates ORDER BY run_id, position"
    ).fetchall():
        grouped[run_id].append((position, name, json.loads(body)))
    return dict(grouped)


def _models(conn: Any) -> dict[str, list[ModelInfo]]:
    rows = conn.execute(
        "SELECT m.model_id, m.result_id, m.role, m.fold, m.created_at, a.step_index, "
        "a.step_name, a.class_path, a.blob_id, b.size FROM models m "
        "JOIN artifacts a USING (model_id) JOIN blobs b ON b.blob_id = a.blob_id "
        "ORDER BY m.result_id, m.role DESC, m.fold, a.step_index"
    ).fetchall()
    by_model: dict[str, list] = defaultdict(list)
    heads: dict[str, tuple] = {}
    for model_id, result_id, role, fold, created, index, name, class_path, blob, size in rows:
        heads.setdefault(model_id, (model_id, result_id, role, fold, created))
        by_model[model_id].append(ArtifactInfo(index, name, class_path, blob, size))
    grouped: dict[str, list[ModelInfo]] = defaultdict(list)
    for model_id, head in heads.items():
        grouped[head[1]].append(ModelInfo(*head, tuple(by_model[model_id])))
    return dict(grouped)


def _scores(conn: Any) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result_id, model, partition, fold, n, scores in conn.execute(
        "SELECT result_id, model, partition, fold, n_samples, scores FROM predictions "
        "ORDER BY result_id, fold, model, partition"
    ).fetchall():
        grouped[result_id].append(
            {"model": model, "partition": partition, "fold": fold, "n": n, **json.loads(scores)}
        )
    return dict(grouped)
