"""YAML rendering: the direct writer produces PyYAML's exact text, or declines."""

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from n4afs.tree import renderers
from n4afs.tree.renderers import _block_yaml, _pyyaml, yaml_bytes
from n4afs.tree.tree import Tree


def test_every_yaml_file_of_a_real_tree_is_written_directly_and_as_pyyaml_would(ws, monkeypatch):
    ws.run(
        templates=[[{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_or_": [2, 3]}}}]],
        datasets=["chemotools:fermentation"],
        cv=3,
        name="yaml",
    )
    documents = []
    original = renderers.yaml_bytes
    monkeypatch.setattr(renderers, "yaml_bytes", lambda d: documents.append(d) or original(d))
    tree = Tree(ws)
    for path, node in tree.walk_files(()):
        if path[-1].endswith(".yaml"):
            tree.read(node)
    assert len(documents) > 25  # DATASET, RUN, templates, and per result: pipeline,
    # scores, timing, one MANIFEST per model
    for document in documents:
        direct = _block_yaml(document)
        assert direct is not None, document  # every document we render takes the fast path
        assert direct == _pyyaml(document)
        assert yaml.safe_load(direct) == document


KEYS = st.one_of(
    st.sampled_from(["model", "n_components", "sha256", "rmse", "cv", "fold_0", "a.b"]),
    st.text(min_size=0, max_size=12),
    st.text(alphabet="ab_", min_size=100, max_size=200),  # PyYAML writes `? key` past 127
)
STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            "yes",
            "no",
            "null",
            "~",
            "0123",
            "1_000",
            "0x1F",
            "2026-11-25",
            "1e5",
            "-",
            "a: b",
            "#x",
            "it's",
            'say "hi"',
            "tab\there",
            "line\nbreak",
            "été",
            " lead",
            "trail ",
            "sklearn.cross_decomposition.PLSRegression",
            "2026-11-25_bench_4f2a1c",
            ".nan",
        ]
    ),
    st.text(max_size=40),
    st.text(alphabet="ab :-'\"#,[]{}&*!|>%@`", max_size=20),
    st.text(min_size=80, max_size=140),  # long: PyYAML wraps some of these
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e17, 5e-324, -0.0, 0.1, 1e-5]),
    STRINGS,
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=600, deadline=None)
@given(DOCUMENTS)
def test_generated_documents_are_pyyamls_text_or_declined(document):
    direct = _block_yaml(document)
    expected = _pyyaml(document)
    assert direct is None or direct == expected
    assert yaml_bytes(document) == expected.encode("utf-8")


def test_long_keys_are_left_to_pyyaml():
    for document in [{"a" * 129: 1}, [{"b" * 200: None}], {"k": {"c" * 128: []}}]:
        assert _block_yaml(document) is None
        assert yaml_bytes(document) == _pyyaml(document).encode("utf-8")


def test_floats_as_pyyaml_writes_them():
    values = [1e17, 5e-324, -0.0, 0.1, math.nan, math.inf, -math.inf, 12345.678]
    assert _block_yaml({"v": values}) == _pyyaml({"v": values})


def test_charts_of_results_sharing_predictions_name_their_own_result(ws):
    """Two results sharing one predictions blob: each chart is memoized under its own result."""
    origin = ws
    origin.run(
        templates=[["snv", {"pls": {"n_components": {"_or_": [2, 3]}}}]],
        datasets=["chemotools:fermentation"],
        cv=4,
        name="origin",
    )
    again = origin.run(
        templates=[["snv", {"pls": {"n_components": 2}}]],
        datasets=["fermentation"],
        cv=4,
        name="again",
    )
    (second,) = again.results
    first = next(
        r
        for r in origin.results("fermentation")
        if r.row.config_hash == second.row.config_hash and r.row.seq != second.row.seq
    )
    assert first.row.predictions_blob == second.row.predictions_blob
    paths = [
        ("runs", "fermentation", r.row.label, "charts", "residuals.png") for r in (first, second)
    ]
    forward, backward = Tree(origin), Tree(origin)
    a = [forward.read(forward.lookup(p)) for p in paths]
    b = [backward.read(backward.lookup(p)) for p in reversed(paths)][::-1]
    assert a == b and a[0] != a[1]
