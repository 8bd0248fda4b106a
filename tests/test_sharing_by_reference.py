"""Cheap sharing between workspaces on one store: export by reference (index rows and blob
ids, no bytes) imported without uploading anything; and imports of several runs of the same
configs, which are atomic (nothing stored or written when refused)."""

from __future__ import annotations

import os
import uuid

import pytest
from n4afs_core.errors import BundleError

from n4afs.workspace import Workspace
from tests.cli_process import cli
from tests.test_forged_bundles import rewritten
from tests.test_scaleout import s3, s3_objects  # noqa: F401 - the moto S3 server fixture

SWEEP = [{"_or_": ["snv", "detrend"]}, {"pls": {"n_components": 2}}]


def two_runs_of_one_sweep(ws: Workspace) -> None:
    for name in ("monday", "tuesday"):
        run = ws.run(templates=[SWEEP], datasets=["chemotools:fermentation"], cv=2, name=name)
        assert run.status == "completed"


def scores(ws: Workspace) -> list[tuple[str, float]]:
    return sorted((r.row.name, round(r.row.score, 9)) for r in ws.results("fermentation"))


def nothing_in(ws: Workspace) -> bool:
    return not ws.datasets() and not ws.runs() and next(iter(ws.store.iter_ids()), None) is None


def test_a_dataset_export_of_two_runs_of_the_same_configs_imports(tmp_path):
    origin = Workspace(tmp_path / "origin")
    two_runs_of_one_sweep(origin)
    bundle = tmp_path / "fermentation.zip"
    origin.export("runs/fermentation", bundle)

    fresh = Workspace(tmp_path / "fresh")
    summary = fresh.import_bundle(bundle)
    assert len(summary.runs) == 2 and len(summary.results) == 4  # one import run per run
    assert scores(fresh) == scores(origin)
    fresh.trust(summary.runs[0])  # trusting the bundle trusts all its runs
    assert fresh.untrusted_runs() == set()
    assert fresh.best("fermentation").row.score == pytest.approx(
        origin.best("fermentation").row.score
    )
    assert fresh.import_bundle(bundle).already_imported
    assert fresh.verify().ok


def test_a_bundle_the_index_cannot_hold_is_refused_with_nothing_stored(tmp_path):
    origin = Workspace(tmp_path / "origin")
    two_runs_of_one_sweep(origin)
    bundle = tmp_path / "fermentation.zip"
    origin.export("runs/fermentation", bundle)

    def claim_another_target(info):  # a target the dataset (described by the last) lacks
        info["results"][0]["targets"] = ["glucose", "ethanol"]
        info["results"][0]["target"] = "ethanol"

    forged = rewritten(bundle, tmp_path / "forged.zip", claim_another_target)
    fresh = Workspace(tmp_path / "fresh")
    with pytest.raises(BundleError, match="ethanol"):
        fresh.import_bundle(forged)
    assert nothing_in(fresh)  # no dataset row, no run, no uploaded blob


def test_export_by_reference_imports_without_uploading_anything(s3, tmp_path):  # noqa: F811
    prefix = f"refs-{uuid.uuid4().hex[:8]}"
    url = f"s3://n4a-bucket/{prefix}"
    origin = Workspace(tmp_path / "origin", store=url)
    two_runs_of_one_sweep(origin)
    refs = tmp_path / "fermentation.refs.yaml"
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    done = cli("-w", str(origin.path), "export", "runs/fermentation", "-o", str(refs),
               "--by-reference", env=aws)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 results by reference" in done.stdout
    assert refs.stat().st_size < 64 * 1024  # rows and ids, no bytes

    colleague = Workspace(tmp_path / "colleague", store=url, shared_store=True)
    objects = s3_objects(s3, prefix)
    summary = colleague.import_bundle(refs)
    assert summary.new_blobs == 0 and len(summary.runs) == 2
    assert s3_objects(s3, prefix) == objects  # nothing uploaded
    assert scores(colleague) == scores(origin)  # recomputed from the predictions blobs
    assert colleague.untrusted_runs() == set(summary.runs)  # untrusted until said
    colleague.trust(summary.runs[1])
    X = colleague.load_dataset("fermentation").X
    best = colleague.best("fermentation")
    assert (
        best.load_model().predict(X) == origin.best("fermentation").load_model().predict(X)
    ).all()
    label = best.row.label
    assert colleague.tree.lookup(("runs", "fermentation", label, "predictions", "cv.csv"))
    assert colleague.verify().ok
    assert colleague.import_bundle(refs).already_imported
    assert colleague.gc(grace_s=0).removed == [] and origin.verify().ok


def test_references_to_blobs_another_store_lacks_are_refused_in_one_line(tmp_path):
    origin = Workspace(tmp_path / "origin", store=(tmp_path / "store").as_uri())
    two_runs_of_one_sweep(origin)
    refs = tmp_path / "fermentation.refs.yaml"
    origin.export("runs/fermentation", refs, by_reference=True)
    elsewhere = Workspace(tmp_path / "elsewhere")
    done = cli("-w", str(elsewhere.path), "import", str(refs))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "are not in" in line and "without --by-reference" in line
    assert nothing_in(elsewhere)
