import numpy as np
import pandas as pd
import polars as pl
import pytest
from n4afs_core.data import datasets
from n4afs_core.errors import DatasetError

from tests.conftest import write_csv

GOOD = (
    "sample_id,protein,1100,1102,1104\n"
    "S1,12.5,0.1,0.2,0.3\nS2,13.0,0.2,0.3,0.4\nS3,11.2,0.3,0.2,0.1\n"
)


def test_csv_roles_are_inferred_from_headers(tmp_path):
    s = datasets.load_csv(write_csv(tmp_path / "wheat.csv", GOOD))
    assert s.name == "wheat"
    assert s.sample_ids == ["S1", "S2", "S3"]
    assert s.target_names == ["protein"]
    assert s.feature_names == ["1100", "1102", "1104"]
    assert s.task == "regression"
    np.testing.assert_array_equal(s.X[1], [0.2, 0.3, 0.4])
    assert s.target().tolist() == [12.5, 13.0, 11.2]
    meta = datasets.metadata(s)
    assert meta["wavelength_min"] == 1100 and meta["wavelength_max"] == 1104
    assert meta["wavelength_unit"] == "nm"
    assert meta["source_size"] == len(GOOD.encode())
    assert meta["target_stats"]["protein"]["max"] == 13.0


def test_semicolon_csv_with_decimal_comma(tmp_path):
    text = "id;protein;1100;1102\nA;12,5;0,1;0,2\nB;13,0;0,2;0,3\n"
    s = datasets.load_csv(write_csv(tmp_path / "eu.csv", text))
    assert s.target().tolist() == [12.5, 13.0]
    assert s.X[0].tolist() == [0.1, 0.2]


def test_explicit_targets_and_several_targets(tmp_path):
    text = "code,fat,protein,1100,1102\n1,3.1,12.5,0.1,0.2\n2,3.3,13.0,0.2,0.3\n"
    s = datasets.load_csv(
        write_csv(tmp_path / "m.csv", text), targets=["protein", "fat"], sample_id="code"
    )
    assert s.target_names == ["protein", "fat"]
    assert s.y.shape == (2, 2)
    assert s.sample_ids == ["1", "2"]


def test_text_labels_make_a_classification_dataset(tmp_path):
    text = "origin,1,2\nBrasil,0.1,0.2\nVietnam,0.3,0.1\n"
    s = datasets.load_csv(write_csv(tmp_path / "c.csv", text))
    assert s.task == "classification"
    assert datasets.metadata(s)["target_stats"]["origin"]["classes"] == {"Brasil": 1, "Vietnam": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty\.csv: the file is empty"),
        ("protein,1100\n", "only a header row"),
        (
            GOOD.replace("0.2,0.3,0.4", "0.2,abc,0.4"),
            r"line 3, column '1102': 'abc' is not a number",
        ),
        (
            GOOD.replace("S2,13.0,0.2,0.3,0.4", "S2,13.0,0.2,0.3"),
            "line 3: 4 fields but the header has 5",
        ),
        (GOOD.replace("S3,11.2,", "S3,,"), r"line 4, column 'protein': missing target"),
        (GOOD.replace("S3,11.2,", "S3,NaN,"), r"line 4, column 'protein': missing target"),
        (GOOD.replace("S3,", "S1,"), r"sample id 'S1' appears twice \(lines 2 and 4\)"),
        (GOOD.replace("0.3,0.2,0.1", "0.3,,0.1"), r"line 4, column '1102': '' is not a number"),
        (
            GOOD.replace("0.3,0.2,0.1", "0.3,inf,0.1"),
            r"line 4, column '1102': 'inf' is not a finite",
        ),
        ("1100,1102\n0.1,0.2\n", "no target column was found; name the target with --target"),
    ],
    ids=[
        "empty",
        "header-only",
        "text-in-spectra",
        "ragged",
        "missing-target",
        "nan-target",
        "duplicate-ids",
        "empty-cell",
        "inf",
        "no-target",
    ],
)
def test_bad_csv_names_file_row_and_column(tmp_path, text, message):
    path = write_csv(tmp_path / "empty.csv" if text == "" else tmp_path / "bad.csv", text)
    with pytest.raises(DatasetError, match=message) as info:
        datasets.load_csv(path)
    assert path.name in str(info.value)


def test_named_target_that_does_not_exist(tmp_path):
    with pytest.raises(DatasetError, match="no target column 'moisture'"):
        datasets.load_csv(write_csv(tmp_path / "w.csv", GOOD), targets=["moisture"])


def test_missing_file_and_not_utf8(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        datasets.load_csv(tmp_path / "nope.csv")
    (tmp_path / "latin.csv").write_bytes("protein,1100\n\xe9,0.1\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        datasets.load_csv(tmp_path / "latin.csv")


def test_regression_target_with_text_when_task_is_forced(tmp_path):
    text = GOOD.replace("S2,13.0,", "S2,high,")
    with pytest.raises(DatasetError, match=r"line 3, column 'protein': 'high' is not a number"):
        datasets.load_csv(write_csv(tmp_path / "w.csv", text), task="regression")


def test_arrays_are_validated_too():
    X = np.ones((3, 4))
    with pytest.raises(DatasetError, match="3 spectra but 2 target rows"):
        datasets.from_arrays(X, [1.0, 2.0], "arr")
    X[1, 2] = np.nan
    with pytest.raises(DatasetError, match="sample 'S0002', column '2'"):
        datasets.from_arrays(X, [1.0, 2.0, 3.0], "arr")
    with pytest.raises(DatasetError, match="target 'y': missing"):
        datasets.from_arrays(np.ones((3, 4)), [1.0, np.nan, 3.0], "arr")
    with pytest.raises(DatasetError, match="no spectra"):
        datasets.from_arrays(np.ones((0, 4)), [], "arr")


def test_frames_from_pandas_and_polars_agree():
    frame = pd.DataFrame(
        {"id": ["a", "b"], "y": [1.0, 2.0], "1100": [0.1, 0.2], "1102": [0.3, 0.4]}
    )
    from_pd = datasets.from_frame(frame.copy(), "f", targets=["y"], sample_id="id")
    from_pl = datasets.from_frame(pl.from_pandas(frame), "f", targets=["y"], sample_id="id")
    np.testing.assert_array_equal(from_pd.X, from_pl.X)
    assert from_pd.sample_ids == from_pl.sample_ids == ["a", "b"]
    assert from_pd.feature_names == ["1100", "1102"]


def test_chemotools_fermentation_true_shape_and_metadata():
    s = datasets.load_chemotools("chemotools:fermentation")
    meta = datasets.metadata(s)
    assert (meta["n_samples"], meta["n_features"]) == (21, 1047)
    assert meta["task"] == "regression"
    assert meta["target_names"] == ["glucose"]
    assert (meta["wavelength_min"], meta["wavelength_max"]) == (428.0, 1833.0)
    assert meta["wavelength_unit"] == "cm-1"
    stats = meta["target_stats"]["glucose"]
    assert stats["min"] < stats["mean"] < stats["max"] and stats["std"] > 0


def test_chemotools_coffee_true_shape_and_classes():
    meta = datasets.metadata(datasets.load_chemotools("chemotools:coffee"))
    assert (meta["n_samples"], meta["n_features"]) == (60, 1841)
    assert meta["task"] == "classification"
    assert meta["target_stats"]["labels"]["classes"] == {
        "Brasil": 20,
        "Ethiopia": 20,
        "Vietnam": 20,
    }


def test_unknown_bundled_dataset():
    with pytest.raises(DatasetError, match="chemotools:fermentation or chemotools:coffee"):
        datasets.load_chemotools("chemotools:wheat")


def test_parquet_round_trip_is_exact_and_deterministic():
    s = datasets.load_chemotools("chemotools:coffee")
    data = datasets.to_parquet_bytes(s)
    assert datasets.to_parquet_bytes(s) == data
    back = datasets.from_parquet_bytes(data)
    np.testing.assert_array_equal(back.X, s.X)
    assert back.y.tolist() == s.y.tolist()
    assert back.sample_ids == s.sample_ids
    assert back.feature_names == s.feature_names
    assert back.task == "classification"
