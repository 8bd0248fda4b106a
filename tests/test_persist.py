"""core/pipelines/persist.py: fitted configs become blobs and rows doing each piece of work
once: a shared fitted prefix is pickled once per group, label columns once per fold layout,
and partitions sent to workers leave their caches behind."""

import n4afs_core.pipelines.persist as persist


def test_shared_prefix_steps_are_pickled_once_per_group(ws, monkeypatch):
    pickled = []
    original = persist._joblib_bytes
    monkeypatch.setattr(persist, "_joblib_bytes", lambda obj: pickled.append(obj) or original(obj))
    template = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 3]}}}]
    run = ws.run(templates=[template], datasets=["chemotools:fermentation"], cv=3, name="once")
    assert run.status == "completed" and len(run.results) == 6
    preprocessing = [obj for obj in pickled if "pls" not in type(obj).__name__.lower()]
    # 2 groups (snv, msc) x (3 folds + final): one pickle per fitted prefix, not per config
    assert len(preprocessing) == 2 * 4
    assert len(pickled) - len(preprocessing) == 6 * 4  # one PLS model per config and fold


def test_predictions_label_columns_are_built_once_per_fold_layout(ws, monkeypatch):
    """Every config of a sweep is fitted on the same folds: only y_pred differs between
    their predictions tables, so the other columns are built once per layout, and each
    table still holds its own result's rows."""
    import io

    import pyarrow.parquet as pq

    built = []
    original = persist._label_columns
    monkeypatch.setattr(
        persist, "_label_columns", lambda parts, blocks: built.append(1) or original(parts, blocks)
    )
    template = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 3]}}}]
    run = ws.run(
        templates=[template], datasets=["chemotools:fermentation"], cv=3, test_size=0.2, name="l"
    )
    results = run.results
    assert run.status == "completed" and len(results) == 6
    assert len(built) == 1  # one layout (3 folds + final, test set, ensembles) for the run
    tables = [pq.read_table(io.BytesIO(ws.store.read(r.row.predictions_blob))) for r in results]
    for table, result in zip(tables, results, strict=True):
        predictions = result.predictions()
        assert table.column("y_pred").to_pylist() == predictions["y_pred"].to_list()
        assert table.drop_columns(["y_pred"]).equals(tables[0].drop_columns(["y_pred"]))
    assert len({tuple(t.column("y_pred").to_pylist()) for t in tables}) == 6


def test_label_columns_of_two_layouts_that_differ_in_one_row_are_not_shared():
    import numpy as np

    parts = persist.Partitions(
        ["a", "b", "c", "d"],
        np.array([1.0, 2.0, 3.0, 4.0]),
        "regression",
        [],
        np.array([3]),
        np.arange(3),
    )
    pred = np.zeros(2)
    first = [("fold_0", "val", 0, np.array([0, 1]), pred)]
    other = [("fold_0", "val", 0, np.array([0, 2]), pred)]
    assert parts.label_columns(first) is parts.label_columns(list(first))  # same layout
    assert parts.label_columns(other)["sample_id"].to_pylist() == ["a", "c"]
    assert parts.label_columns(first)["sample_id"].to_pylist() == ["a", "b"]


def test_partitions_sent_to_a_worker_leave_their_caches_behind():
    import pickle

    import numpy as np

    parts = persist.Partitions(
        ["a", "b", "c", "d"],
        np.array([1.0, 2.0, 3.0, 4.0]),
        "regression",
        [(np.array([0, 1]), np.array([2, 3]))],
        np.array([], dtype=int),
        np.arange(4),
    )
    before = parts.scores(np.array([2, 3]), np.array([3.5, 3.5]))
    parts.label_columns([("fold_0", "val", 0, np.array([2, 3]), np.zeros(2))])
    parts.sample_id_array()
    sent = pickle.loads(pickle.dumps(parts))
    assert sent._references == {} and sent._label_columns_by_layout == {}
    assert sent._sample_id_array is None
    assert parts._references and parts._label_columns_by_layout  # the sender keeps its own
    assert sent.scores(np.array([2, 3]), np.array([3.5, 3.5])) == before
    assert sent.sample_ids == parts.sample_ids and sent.folds[0][1].tolist() == [2, 3]
