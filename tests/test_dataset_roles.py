"""Column roles (issue #18): spectra, targets, sample id, metadata, group, ignored.

Files are built from real chemotools spectra (tests/dataset_files.py)."""

from __future__ import annotations

import numpy as np
import pytest
from n4afs_core.data import datasets
from n4afs_core.errors import DatasetError

from tests.conftest import write_csv
from tests.dataset_files import OPERATORS, plain_csv, wheat_columns


@pytest.fixture(scope="module")
def wheat():
    return wheat_columns()


def test_a_text_column_is_metadata_never_a_target_nor_a_feature(tmp_path, wheat):
    s = datasets.load_csv(plain_csv(tmp_path / "wheat.csv", *wheat))
    assert s.task == "regression"
    assert s.target_names == ["protein", "moisture"]
    assert list(s.metadata) == ["operator"]
    assert s.metadata["operator"].tolist() == [OPERATORS[i % 3] for i in range(21)]
    assert s.feature_names == wheat[0][4:]
    assert datasets.metadata_types(s) == {"operator": "text"}
    assert s.groups is None


def test_target_option_leaves_the_other_reference_out_of_x(tmp_path, wheat):
    s = datasets.load_csv(plain_csv(tmp_path / "wheat.csv", *wheat), targets=["moisture"])
    assert s.target_names == ["moisture"]
    assert s.feature_names == wheat[0][4:]  # protein is not a spectral feature
    assert list(s.metadata) == ["protein", "operator"]
    assert datasets.metadata_types(s) == {"protein": "number", "operator": "text"}
    np.testing.assert_array_equal(s.metadata["protein"], [row[1] for row in wheat[1]])
    meta = datasets.metadata(s)
    assert (meta["wavelength_min"], meta["wavelength_max"]) == (428, 1825)
    roles = meta["columns"]
    assert roles["metadata"] == {"protein": "number", "operator": "text"}
    assert "protein" in roles["not_targets"]


def test_text_column_is_a_target_when_asked(tmp_path, wheat):
    s = datasets.load_csv(plain_csv(tmp_path / "wheat.csv", *wheat), targets=["operator"])
    assert s.task == "classification" and s.target_names == ["operator"]
    assert list(s.metadata) == ["protein", "moisture"]


def test_explicit_roles_meta_ignore_group_and_id(tmp_path, wheat):
    header, rows = wheat
    header = ["scan", "sample_no", *header[1:]]
    rows = [[f"scan{i}", f"P{i // 3}", *row[1:]] for i, row in enumerate(rows)]
    path = plain_csv(tmp_path / "wheat.csv", header, rows)
    s = datasets.load_csv(
        path, sample_id="scan", meta=["moisture"], ignore=["operator"], group="sample_no"
    )
    assert s.sample_ids[:2] == ["scan0", "scan1"]
    assert s.target_names == ["protein"]
    assert list(s.metadata) == ["sample_no", "moisture"]
    assert s.group_column == "sample_no"
    assert s.groups.tolist() == [f"P{i // 3}" for i in range(21)]
    assert datasets.metadata(s)["columns"]["ignored"] == ["operator"]
    assert datasets.metadata(s)["columns"]["group"] == "sample_no"


def test_a_column_named_like_a_group_is_the_group(tmp_path, wheat):
    header, rows = wheat
    header = [header[0], "sample_no", *header[1:]]
    rows = [[row[0], i // 3 + 1, *row[1:]] for i, row in enumerate(rows)]
    s = datasets.load_csv(plain_csv(tmp_path / "wheat.csv", header, rows))
    assert s.target_names == ["protein", "moisture"]  # not sample_no: it is the group
    assert s.group_column == "sample_no"
    assert datasets.metadata_types(s)["sample_no"] == "integer"
    assert s.groups.tolist()[:4] == ["1", "1", "1", "2"]


def test_one_text_label_column_is_still_a_classification_file(tmp_path):
    s = datasets.load_csv(write_csv(tmp_path / "c.csv", "origin,1,2\nBrasil,0.1,0.2\nVN,0.3,0.1\n"))
    assert s.task == "classification" and s.target_names == ["origin"] and not s.metadata


def test_two_text_columns_and_no_number_is_ambiguous_with_the_column_table(tmp_path):
    text = "sample_id,origin,operator,1100,1102\nA,Brasil,ana,0.1,0.2\nB,Vietnam,bob,0.3,0.1\n"
    with pytest.raises(DatasetError) as info:
        datasets.load_csv(write_csv(tmp_path / "c.csv", text))
    message = str(info.value)
    assert message.splitlines()[0].startswith(f"{tmp_path / 'c.csv'}: which column")
    assert "--target origin" in message and "--target operator" in message
    assert "sample_id" in message and "sample id" in message
    assert "1100 … 1102" in message and "spectra (2 columns)" in message


def test_a_column_of_numbers_with_a_text_cell_is_ambiguous(tmp_path):
    text = "sample_id,protein,fat,1100,1102\nA,12.5,3,0.1,0.2\nB,n.d.,4,0.3,0.1\nC,13.1,5,0.2,0.2\n"
    with pytest.raises(
        DatasetError, match=r"'protein' holds numbers and text \('n\.d\.', line 3\)"
    ):
        datasets.load_csv(write_csv(tmp_path / "w.csv", text))
    s = datasets.load_csv(write_csv(tmp_path / "w.csv", text), meta=["protein"])
    assert s.target_names == ["fat"]
    assert s.metadata["protein"].tolist() == ["12.5", "n.d.", "13.1"]


def test_a_column_given_two_roles_is_refused(tmp_path, wheat):
    path = plain_csv(tmp_path / "wheat.csv", *wheat)
    with pytest.raises(DatasetError, match="'operator' is given two roles"):
        datasets.load_csv(path, meta=["operator"], ignore=["operator"])
    with pytest.raises(DatasetError, match="no column 'oprator'"):
        datasets.load_csv(path, meta=["oprator"])


def test_repeated_sample_ids_suggest_the_group_option(tmp_path):
    text = "sample_id,protein,1100,1102\nA,12.5,0.1,0.2\nA,12.5,0.3,0.1\n"
    with pytest.raises(DatasetError, match="replicate scans.*--group sample_id"):
        datasets.load_csv(write_csv(tmp_path / "w.csv", text))
    s = datasets.load_csv(write_csv(tmp_path / "w.csv", text), group="sample_id")
    assert s.groups.tolist() == ["A", "A"] and s.sample_ids == ["S0001", "S0002"]


def test_metadata_and_groups_round_trip_through_parquet(tmp_path, wheat):
    header, rows = wheat
    header = [header[0], "sample_no", *header[1:]]
    rows = [[row[0], i // 3 + 1, *row[1:]] for i, row in enumerate(rows)]
    rows[4][3] = ""  # an empty moisture cell: metadata may have gaps
    s = datasets.load_csv(plain_csv(tmp_path / "w.csv", header, rows), targets=["protein"])
    back = datasets.from_parquet_bytes(datasets.to_parquet_bytes(s))
    assert list(back.metadata) == ["sample_no", "moisture", "operator"]
    assert datasets.metadata_types(back) == datasets.metadata_types(s)
    assert back.group_column == "sample_no"
    assert back.groups.tolist() == s.groups.tolist()
    assert np.isnan(back.metadata["moisture"][4])
    assert datasets.same_content(s, back)
    assert datasets.to_parquet_bytes(back) == datasets.to_parquet_bytes(s)


def test_metadata_is_part_of_the_content(tmp_path, wheat):
    with_meta = datasets.load_csv(plain_csv(tmp_path / "wheat.csv", *wheat))
    header, rows = wheat
    bare = datasets.load_csv(
        plain_csv(tmp_path / "bare.csv", header[:3] + header[4:], [r[:3] + r[4:] for r in rows])
    )
    assert not datasets.same_content(with_meta, bare)
    assert datasets.to_parquet_bytes(with_meta) != datasets.to_parquet_bytes(bare)


def test_arrays_and_frames_take_metadata_and_a_group():
    import pandas as pd

    X = np.arange(12, dtype=float).reshape(4, 3)
    s = datasets.from_arrays(
        X, [1.0, 2.0, 3.0, 4.0], "a", metadata={"batch": ["b1", "b1", "b2", "b2"]}, group="batch"
    )
    assert s.groups.tolist() == ["b1", "b1", "b2", "b2"]
    frame = pd.DataFrame(X, columns=["1100", "1102", "1104"])
    frame["protein"], frame["lot"], frame["operator"] = [1.0, 2, 3, 4], [1, 1, 2, 2], list("abab")
    f = datasets.from_frame(frame, "f", targets=["protein"], group="lot")
    assert f.feature_names == ["1100", "1102", "1104"]
    assert list(f.metadata) == ["lot", "operator"] and f.groups.tolist() == ["1", "1", "2", "2"]
    with pytest.raises(DatasetError, match="group 'lot' is not one of the metadata columns"):
        datasets.from_arrays(X, [1.0, 2, 3, 4], "a", metadata={"batch": [1, 1, 2, 2]}, group="lot")
