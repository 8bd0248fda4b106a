"""The trust rule for imported results, once.

A result computed in this workspace is trusted. One imported from a bundle (an `imports`
row) is trusted when the user said so (`import --trust`, `n4afs trust`): its pickled models
may then be loaded. It may be `best` only when it is trusted AND n4afs recomputed its scores
from the bundle's prediction tables (`scores_recomputed`; imports older than schema 004 kept
the scores their bundle claimed). Any other import is shown, ranked after the rest
(`core.metrics.ranking`), and never `best`, whatever its scores.

Design: docs/DESIGN.md, "Rules every view obeys" (Untrusted imports).
"""

from __future__ import annotations

from typing import Any

MAY_BE_BEST = "(trusted AND scores_recomputed)"  # over an `imports` row

# run ids of the imports whose results may not be best
UNTRUSTED_RUNS = f"(SELECT run_id FROM imports WHERE NOT {MAY_BE_BEST})"

# run ids of the imports whose pickles may not be loaded without an explicit trust
UNTRUSTED_PICKLES = "(SELECT run_id FROM imports WHERE NOT trusted)"


def untrusted_runs(conn: Any) -> set[str]:
    """The run ids of `UNTRUSTED_RUNS`: imports whose results may not be best."""
    return {
        run_id for (run_id,) in conn.execute(f"SELECT run_id FROM {UNTRUSTED_RUNS} AS u").fetchall()
    }


def pickles_untrusted(conn: Any, run_id: str) -> bool:
    """Whether `run_id` is an import whose models load only with `trust=True`."""
    found = conn.execute(f"SELECT 1 WHERE ? IN {UNTRUSTED_PICKLES}", [run_id]).fetchall()
    return bool(found)


def import_origins(conn: Any) -> dict[str, str]:
    """run id -> `origin_label` of every import (results not listed come from here)."""
    rows = conn.execute(
        "SELECT run_id, bundle_sha256, trusted, scores_recomputed, "
        "coalesce(json_extract_string(export_info, '$.cv_comparable') = 'false', false) "
        "FROM imports"
    ).fetchall()
    return {
        run_id: origin_label(sha, trusted, done, bool(not_comparable))
        for run_id, sha, trusted, done, not_comparable in rows
    }


CV_NOT_COMPARABLE = "CV not comparable: preprocessing fitted before cross-validation"


def origin_label(
    bundle_sha256: str | None,
    trusted: bool = False,
    recomputed: bool = True,
    cv_not_comparable: bool = False,
) -> str:
    """Where a result comes from, as RESULTS.csv and scores.yaml say it: `workspace`, or
    the bundle and how far it is trusted (the module's rule). An import whose
    cross-validation fitted preprocessing before splitting (nirs4all's legacy engine:
    EXPORT.yaml `cv_comparable: false`) says so: its RMSECV is not n4afs's."""
    if bundle_sha256 is None:
        return "workspace"
    if not recomputed:
        return f"bundle {bundle_sha256[:12]} (scores as claimed by the bundle)"
    trust = "trusted" if trusted else "untrusted"
    if cv_not_comparable:
        trust += "; " + CV_NOT_COMPARABLE
    return f"bundle {bundle_sha256[:12]} ({trust})"
