"""Answers at a size CI can afford: 2,000 results (10 real, the rest cloned index rows).

scripts/bench_scale.py times the same questions up to 100,000 results; this checks that the
answers stay right when there are many rows: counts, the best result, the listing of a
dataset folder of 1,000 results and its RESULTS.csv, `runs`, `verify` and `gc --dry-run`.
The workspace is scripts/_bench_workspace.py's (the one the benchmarks use): one real sweep,
its rows cloned with SQL over two datasets, the same blobs.
"""

from __future__ import annotations

import csv
import io

import pytest

N_RESULTS = 2_000
N_DATASETS = 2


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    from scripts._bench_workspace import build_workspace

    where = tmp_path_factory.mktemp("scale")
    return build_workspace(
        where / "ws",
        N_RESULTS,
        1,
        where,
        dataset_tag="test-scale",
        log=lambda _: None,
        n_datasets=N_DATASETS,
    )


def _index(ws, sql: str, *params):
    with ws.index.read() as conn:
        return conn.execute(sql, list(params)).fetchall()


def _datasets(ws) -> dict[str, int]:
    rows = _index(
        ws,
        "SELECT d.name, count(*) FROM results r JOIN datasets d USING (dataset_id) GROUP BY d.name",
    )
    return dict(rows)


def test_every_result_is_counted_once_per_dataset(big):
    per_dataset = _datasets(big.ws)
    assert sum(per_dataset.values()) == N_RESULTS
    assert sorted(per_dataset.values()) == [N_RESULTS // N_DATASETS] * N_DATASETS
    runs = big.ws.runs()
    assert sum(r.n_results for r in runs) == N_RESULTS


def test_best_is_the_lowest_score_in_the_index(big):
    for name in _datasets(big.ws):
        ((lowest,),) = _index(
            big.ws,
            "SELECT min(r.score) FROM results r JOIN datasets d USING (dataset_id) "
            "WHERE d.name = ? AND r.status = 'completed'",
            name,
        )
        best = big.ws.best(name).row
        assert best.score == lowest
        assert best.dataset == name


def test_a_dataset_folder_lists_each_result_once_and_results_csv_ranks_them(big):
    ws = big.ws
    name = min(_datasets(ws))
    listing = ws.tree.list_dir(("runs", name))
    folders = [entry for entry, node in listing.items() if node.is_dir and entry != "charts"]
    assert "charts" in listing  # the dataset's own charts beside its results
    assert len(folders) == len(set(folders)) == N_RESULTS // N_DATASETS
    text = ws.tree.read(listing["RESULTS.csv"]).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == N_RESULTS // N_DATASETS
    assert {r["result"] for r in rows} == set(folders)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)  # rmse: best (lowest) first
    assert float(rows[0]["score"]) == ws.best(name).row.score
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))


def test_verify_and_gc_see_every_object_and_nothing_to_delete(big):
    report = big.ws.verify()
    assert report.ok
    gc = big.ws.gc(dry_run=True, grace_s=0)
    ((referenced,),) = _index(big.ws, "SELECT count(DISTINCT blob_id) FROM referenced_blobs")
    assert gc.referenced == referenced
    assert gc.removed == []


def test_results_rows_are_built_once_for_csv_xlsx_and_parquet(big, monkeypatch):
    """`ls -la` sizes RESULTS.csv, .xlsx and .parquet and the ranking's REPORT.html: one
    build of the table for the four."""
    from n4afs.tree import result_files
    from n4afs.workspace import Workspace

    built = []
    real = result_files.results_columns

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(result_files, "results_columns", counting)
    ws = Workspace(big.ws.path)  # a fresh tree: nothing rendered yet
    name = max(_datasets(ws))
    listing = ws.tree.list_dir(("runs", name))
    names = [f"RESULTS.{ext}" for ext in ("csv", "xlsx", "parquet")] + ["REPORT.html"]
    sizes = [listing[name].content.size for name in names]
    assert all(size > 0 for size in sizes)
    assert len(built) == 1


def test_the_mount_loads_a_dataset_results_only_when_its_folder_is_browsed(big, monkeypatch):
    """A mount's first `ls` must not wait for every result (at 100,000 results loading them
    all took 1.6 s and their model rows 9.5 s and 2.3 GiB): the root, runs/ and by-run/
    list from per-dataset counts; a dataset's rows load on the first look inside it, and a
    page of model rows (not the dataset's) on the first `models/`."""
    from n4afs.tree import snapshot as snapshot_module
    from n4afs.tree.tree import Tree
    from n4afs.workspace import Workspace

    built: list[str] = []
    real = snapshot_module.queries.result_from_row
    monkeypatch.setattr(
        snapshot_module.queries,
        "result_from_row",
        lambda row: built.append(row[0]) or real(row),
    )
    ws = Workspace(big.ws.path)
    tree = Tree(ws, auto_refresh=False)
    tree.refresh()
    names = sorted(_datasets(ws))
    assert set(dict(tree.list_kinds(("runs",)))) == set(names)
    assert {name for name, _ in tree.list_kinds(())} >= {"runs", "by-run", "best"}
    assert tree.list_dir(("by-run",))
    assert built == []  # no result row read for the top of the tree
    listing = tree.list_dir(("runs", names[0]))
    assert len(built) == len(set(built)) == N_RESULTS // N_DATASETS
    labels = [n for n, node in listing.items() if node.is_dir and n != "charts"]
    assert tree.list_dir(("runs", names[0], labels[-1], "models"))
    snapshot = tree.views.snapshot
    assert 0 < len(snapshot._model_rows) <= snapshot_module.CHUNK  # one page, not 1,000
    assert len(built) == N_RESULTS // N_DATASETS  # the other dataset still unread
    assert snapshot.loaded_datasets == [listing_id(tree, names[0])]
    assert tree.list_dir(("runs", names[0], labels[0], "models"))  # a second page: a walker
    assert len(snapshot._model_rows) == N_RESULTS // N_DATASETS  # the rest of the dataset


def test_best_lists_every_dataset_s_best_without_loading_their_results(big):
    """`best/` shows one file per dataset: its best result, ranked by the index (at 100,000
    results, loading every dataset's rows for it took ~5 s in one callback), the same bytes
    as the best table of the dataset's own folder once its results are loaded."""
    from n4afs.tree.tree import Tree
    from n4afs.workspace import Workspace

    tree = Tree(Workspace(big.ws.path), auto_refresh=False)
    best = {name: node for name, node in tree.list_dir(("best",)).items()}
    names = sorted(_datasets(big.ws))
    assert sorted(best) == sorted(f"{n}.{s}" for n in names for s in ("csv", "xlsx", "parquet"))
    first_csv = bytes(tree.read(best[f"{names[0]}.csv"], 0, best[f"{names[0]}.csv"].size))
    assert tree.views.snapshot.loaded_datasets == []  # listed, sized and read: no rows
    for name in names:
        label = big.ws.best(name).row.label
        in_folder = tree.lookup(("runs", name, f"best_{label}.csv"))  # loads the dataset
        assert in_folder.content.key[2:] == best[f"{name}.csv"].content.key[2:]
    assert bytes(tree.read(in_folder, 0, in_folder.size)) == bytes(
        tree.read(best[f"{names[-1]}.csv"], 0, best[f"{names[-1]}.csv"].size)
    )
    assert first_csv.startswith(b"sample_id")


def test_a_walk_over_every_result_holds_a_bounded_part_of_their_rows(big, monkeypatch):
    """Past `ROWS_HELD` results, the model rows of the dataset loaded longest ago are
    forgotten (and load again, the same, when asked)."""
    from n4afs.tree import snapshot as snapshot_module
    from n4afs.tree.tree import Tree
    from n4afs.workspace import Workspace

    monkeypatch.setattr(snapshot_module, "ROWS_HELD", N_RESULTS // N_DATASETS)
    tree = Tree(Workspace(big.ws.path), auto_refresh=False)
    tree.refresh()
    views = tree.views
    first, second = (listing_id(tree, name) for name in sorted(_datasets(big.ws)))
    models = {}
    for dataset_id in (first, second, first):
        results = views.results_by_dataset[dataset_id]
        seen = {}
        for result in (results[0], results[-1]):  # two pages: the whole dataset loads
            found = views.snapshot.models_of(result.result_id)
            seen[result.result_id] = {label: m.artifacts for label, m in found.items()}
        held = views.snapshot._model_rows
        assert len(held) == N_RESULTS // N_DATASETS  # one dataset's, not both
        assert {r.result_id for r in results} == set(held)
        assert models.setdefault(dataset_id, seen) == seen


def listing_id(tree, name: str) -> str:
    return tree.dataset_named(name).dataset_id


def test_result_folders_under_by_run_are_built_without_rescanning_the_run(big, monkeypatch):
    """Building a result folder under by-run/<run>/<dataset>/ must not go through every
    result of the run there (it did: a `find` over by-run/ of 10,000 results listed ~500
    entries a second)."""
    from n4afs_core.metrics import ranking

    from n4afs.tree.tree import Tree
    from n4afs.workspace import Workspace

    tree = Tree(Workspace(big.ws.path), auto_refresh=False)
    tree.refresh()
    dataset = min(_datasets(big.ws))
    folders = [("by-run", run, dataset) for run, _ in tree.list_kinds(("by-run",))]
    folder = max(folders, key=lambda f: len(tree.list_dir(f) or {}))
    labels = [name for name, is_dir in tree.list_kinds(folder) if is_dir and name != "charts"]
    assert len(labels) >= 500
    calls = []
    real = ranking.group_of
    monkeypatch.setattr(ranking, "group_of", lambda r: calls.append(1) or real(r))
    for label in labels[:200]:
        assert "models" in tree.list_dir((*folder, label))
    assert len(calls) <= 2 * 200  # per folder, not per result of the run


def test_a_walk_keeps_a_bounded_number_of_listings_and_every_changing_one(big, monkeypatch):
    """Listings of content-addressed folders are rebuilt the same when dropped, so a walk
    keeps only the most recent `KEPT`; those holding a changing file are all kept, since a
    refresh must invalidate every changing path the mount served."""
    from n4afs.tree import tree as tree_module
    from n4afs.tree.tree import Tree
    from n4afs.workspace import Workspace

    monkeypatch.setattr(tree_module._Listings, "KEPT", 50)
    tree = Tree(Workspace(big.ws.path), auto_refresh=False)
    tree.refresh()
    name = min(_datasets(big.ws))
    assert name in tree.list_dir(("runs",))
    labels = [n for n, is_dir in tree.list_kinds(("runs", name)) if is_dir and n != "charts"]
    first = {}
    for label in labels[:60]:  # sizes of model files only: a result folder's renders cost
        for sub in ((), ("models",)):
            listing = tree.list_dir(("runs", name, label, *sub))
            first[(label, *sub)] = {n: sub and node.size for n, node in listing.items()}
    generation = tree._generation
    assert len(generation.dirs.fixed) <= 50 and len(generation.result_dirs.fixed) <= 50
    for key, sizes in list(first.items())[:5]:  # dropped long ago: built again, the same
        again = tree.list_dir(("runs", name, *key))
        assert {n: key[1:] and node.size for n, node in again.items()} == sizes
    changing = tree.mutable_paths(generation)
    assert ("runs", name, "RESULTS.csv") in changing and ("runs", name) in changing
