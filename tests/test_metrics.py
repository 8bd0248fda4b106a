"""Metrics against hand-computed textbook values, sklearn, and their ranking directions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from n4afs_core.errors import N4AError
from n4afs_core.metrics.scores import (
    METRICS,
    Metric,
    best_index,
    classification_scores,
    get_metric,
    is_better,
    regression_scores,
    scores_for,
    sort_key,
)
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

REGRESSION_KEYS = [
    "n",
    "rmse",
    "mae",
    "bias",
    "sep",
    "r2",
    "r2_corr",
    "slope",
    "offset",
    "rpd",
    "rpiq",
]
CLASSIFICATION_KEYS = ["n", "accuracy", "balanced_accuracy", "f1"]


def no_warnings_regression(y_true, y_pred):
    """Score with every warning turned into an error, so a stray numpy warning fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return regression_scores(y_true, y_pred)


# --- hand-computed regression values -------------------------------------------------------


def test_regression_textbook_values_with_positive_bias():
    # y = [1, 2, 3, 4], ŷ = [2, 2, 4, 5]  →  e = ŷ − y = [1, 0, 1, 1]
    # rmse = sqrt((1 + 0 + 1 + 1) / 4) = sqrt(0.75) = 0.8660254
    # mae = 3 / 4 = 0.75; bias = 3 / 4 = +0.75 (over-prediction)
    # e − bias = [0.25, −0.75, 0.25, 0.25]; Σ² = 0.0625·3 + 0.5625 = 0.75
    # sep = sqrt(0.75 / 3) = 0.5
    # SD(y, ddof=1) = sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3) = sqrt(5/3); rpd = sqrt(5/3) / 0.5
    # Q1 = 1.75, Q3 = 3.25 (linear interpolation at positions 0.75 and 2.25), IQR = 1.5
    # rpiq = 1.5 / sqrt(0.75) = sqrt(3)
    # SS_res = 3, SS_tot = 5 → r2 = 1 − 3/5 = 0.4
    # ȳ = 2.5, mean ŷ = 3.25; Σ(y−ȳ)(ŷ−ŷ̄) = 1.875 + 0.625 + 0.375 + 2.625 = 5.5
    # Σ(ŷ−ŷ̄)² = 1.5625 + 1.5625 + 0.5625 + 3.0625 = 6.75 → r2_corr = 5.5² / (5 · 6.75)
    # slope = 5.5 / 5 = 1.1; offset = 3.25 − 1.1 · 2.5 = 0.5
    scores = regression_scores([1, 2, 3, 4], [2, 2, 4, 5])
    expected = {
        "n": 4,
        "rmse": math.sqrt(0.75),
        "mae": 0.75,
        "bias": 0.75,
        "sep": 0.5,
        "r2": 0.4,
        "r2_corr": 30.25 / 33.75,
        "slope": 1.1,
        "offset": 0.5,
        "rpd": math.sqrt(5 / 3) / 0.5,
        "rpiq": math.sqrt(3),
    }
    assert list(scores) == REGRESSION_KEYS
    assert scores == pytest.approx(expected, rel=1e-12)


def test_regression_textbook_values_without_bias():
    # y = [1, 2, 3, 4], ŷ = [1.5, 1.5, 3.5, 3.5]  →  e = [0.5, −0.5, 0.5, −0.5]
    # rmse = mae = 0.5; bias = 0; sep = sqrt(4 · 0.25 / 3) = sqrt(1/3)
    # rpd = sqrt(5/3) / sqrt(1/3) = sqrt(5); rpiq = 1.5 / 0.5 = 3
    # SS_res = 1, SS_tot = 5 → r2 = 0.8
    # ŷ − ŷ̄ = [−1, −1, 1, 1]; cross = 1.5 + 0.5 + 0.5 + 1.5 = 4; Σ(ŷ−ŷ̄)² = 4
    # r2_corr = 16 / (5 · 4) = 0.8; slope = 4 / 5 = 0.8; offset = 2.5 − 0.8 · 2.5 = 0.5
    scores = regression_scores([1, 2, 3, 4], [1.5, 1.5, 3.5, 3.5])
    assert scores == pytest.approx(
        {
            "n": 4,
            "rmse": 0.5,
            "mae": 0.5,
            "bias": 0.0,
            "sep": math.sqrt(1 / 3),
            "r2": 0.8,
            "r2_corr": 0.8,
            "slope": 0.8,
            "offset": 0.5,
            "rpd": math.sqrt(5),
            "rpiq": 3.0,
        },
        rel=1e-12,
        abs=1e-15,
    )


def test_sep_divides_by_n_minus_one_not_n():
    # Same data as above: Σ(e − bias)² = 1, n = 4.
    # n − 1 version: sqrt(1/3) = 0.5774; n version (nirs4all 1.4): sqrt(1/4) = 0.5
    scores = regression_scores([1, 2, 3, 4], [1.5, 1.5, 3.5, 3.5])
    assert scores["sep"] == pytest.approx(math.sqrt(1 / 3))
    assert scores["sep"] != pytest.approx(0.5)


def test_bias_sign_is_predicted_minus_reference():
    # ŷ = y − 1 → e = [−1, −1, −1, −1]: under-prediction, bias −1; residuals constant so sep = 0
    under = regression_scores([1, 2, 3, 4], [0, 1, 2, 3])
    assert under["bias"] == -1.0
    assert under["sep"] == 0.0
    over = regression_scores([1, 2, 3, 4], [3, 4, 5, 6])
    assert over["bias"] == 2.0


def test_rpd_and_rpiq_use_different_spreads_on_skewed_reference():
    # y = [1, 2, 3, 4, 10], ŷ = y + [1, −1, 1, −1, 0]; bias = 0
    # SD(y, ddof=1): ȳ = 4, deviations² = 9 + 4 + 1 + 0 + 36 = 50 → sqrt(50 / 4) = sqrt(12.5)
    # sep = sqrt(4 / 4) = 1 → rpd = sqrt(12.5) = 3.5355
    # Q1 = 2, Q3 = 4 → IQR = 2; rmse = sqrt(4 / 5) → rpiq = 2 / sqrt(0.8) = sqrt(5) = 2.2361
    y = np.array([1, 2, 3, 4, 10], dtype=float)
    scores = regression_scores(y, y + np.array([1, -1, 1, -1, 0]))
    assert scores["rpd"] == pytest.approx(math.sqrt(12.5))
    assert scores["rpiq"] == pytest.approx(math.sqrt(5))


def test_r2_penalises_offset_but_r2_corr_does_not():
    # ŷ = y + 10 on y = [1, 2, 3, 4]: SS_res = 4 · 100 = 400, SS_tot = 5 → r2 = −79
    scores = regression_scores([1, 2, 3, 4], [11, 12, 13, 14])
    assert scores["r2"] == pytest.approx(-79.0)
    assert scores["r2_corr"] == pytest.approx(1.0)
    assert scores["slope"] == pytest.approx(1.0)
    assert scores["offset"] == pytest.approx(10.0)


def test_column_vectors_are_accepted():
    flat = regression_scores([1, 2, 3, 4], [2, 2, 4, 5])
    column = regression_scores(np.array([[1], [2], [3], [4]]), np.array([[2], [2], [4], [5]]))
    assert column == flat


# --- cross-checks against sklearn and numpy ------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_matches_sklearn_and_numpy(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, size=50)
    y_pred = 0.9 * y + 1.5 + rng.normal(0, 1, size=50)
    scores = regression_scores(y, y_pred)
    residual = y_pred - y
    slope, offset = np.polyfit(y, y_pred, 1)
    q1, q3 = np.percentile(y, [25, 75])
    assert scores["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, y_pred)))
    assert scores["mae"] == pytest.approx(mean_absolute_error(y, y_pred))
    assert scores["r2"] == pytest.approx(r2_score(y, y_pred))
    assert scores["r2_corr"] == pytest.approx(np.corrcoef(y, y_pred)[0, 1] ** 2)
    assert scores["sep"] == pytest.approx(np.std(residual, ddof=1))
    assert scores["rpd"] == pytest.approx(np.std(y, ddof=1) / np.std(residual, ddof=1))
    assert scores["rpiq"] == pytest.approx((q3 - q1) / math.sqrt(mean_squared_error(y, y_pred)))
    assert (scores["slope"], scores["offset"]) == pytest.approx((slope, offset))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = np.array(["low", "mid", "high", "x"])
    y = rng.choice(labels[:3], size=60)
    y_pred = np.where(rng.random(60) < 0.6, y, rng.choice(labels[:3], size=60))
    scores = classification_scores(y, y_pred)
    assert scores["accuracy"] == pytest.approx(accuracy_score(y, y_pred))
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, y_pred))
    assert scores["f1"] == pytest.approx(f1_score(y, y_pred, average="macro", zero_division=0))


def test_classification_with_label_only_predicted_matches_sklearn():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, size=40)
    y_pred = np.where(rng.random(40) < 0.5, y, rng.integers(0, 5, size=40))
    scores = classification_scores(y, y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that y_pred has classes not in y_true
        expected_balanced = balanced_accuracy_score(y, y_pred)
    assert scores["balanced_accuracy"] == pytest.approx(expected_balanced)
    assert scores["f1"] == pytest.approx(f1_score(y, y_pred, average="macro", zero_division=0))


# --- hand-computed classification values ---------------------------------------------------


def test_classification_textbook_values_with_strings():
    # y = [a, a, a, b], ŷ = [a, b, a, c]; labels = {a, b, c}
    # accuracy = 2 / 4 = 0.5
    # recall: a = 2/3, b = 0/1 (c is not a reference class) → balanced = (2/3 + 0) / 2 = 1/3
    # F1: a: TP 2, FP 0, FN 1 → 4/5; b: TP 0 → 0; c: TP 0 → 0 → macro = 0.8 / 3
    scores = classification_scores(["a", "a", "a", "b"], ["a", "b", "a", "c"])
    assert list(scores) == CLASSIFICATION_KEYS
    assert scores == pytest.approx(
        {"n": 4, "accuracy": 0.5, "balanced_accuracy": 1 / 3, "f1": 0.8 / 3}
    )


def test_classification_textbook_values_with_ints():
    # y = [0, 0, 1, 1, 2, 2], ŷ = [0, 1, 1, 1, 2, 0]
    # accuracy = 4 / 6; recall 0: 1/2, 1: 2/2, 2: 1/2 → balanced = 2/3
    # F1 = 2TP / (2TP + FP + FN): 0: 2/4 = 0.5, 1: 4/5 = 0.8, 2: 2/3 → macro = (0.5 + 0.8 + 2/3) / 3
    scores = classification_scores([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0])
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["balanced_accuracy"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_classification_int_and_string_labels_are_different_labels():
    # "1" is not 1: nothing is correct, three labels in the union
    scores = classification_scores([1, 1, 2], ["1", "1", "2"])
    assert scores["accuracy"] == 0.0
    assert scores["f1"] == 0.0


# --- directions and the registry -----------------------------------------------------------

EXPECTED_DIRECTIONS = {
    "rmse": "lower",
    "mae": "lower",
    "sep": "lower",
    "bias": "zero",
    "r2": "higher",
    "r2_corr": "higher",
    "rpd": "higher",
    "rpiq": "higher",
    "accuracy": "higher",
    "balanced_accuracy": "higher",
    "f1": "higher",
}


def test_registry_holds_exactly_the_specified_metrics():
    assert set(METRICS) == set(EXPECTED_DIRECTIONS) | {"slope", "offset"}
    assert [name for name, m in METRICS.items() if m.task == "regression"] == REGRESSION_KEYS[1:]
    assert [name for name, m in METRICS.items() if m.task == "classification"] == (
        CLASSIFICATION_KEYS[1:]
    )


@pytest.mark.parametrize(("name", "direction"), EXPECTED_DIRECTIONS.items())
def test_rankable_metric_directions(name, direction):
    metric = get_metric(name)
    assert isinstance(metric, Metric)
    assert metric.direction == direction
    assert metric.rankable


def test_slope_and_offset_are_not_rankable():
    assert not get_metric("slope").rankable
    assert not get_metric("offset").rankable
    with pytest.raises(N4AError, match="descriptive"):
        sort_key("slope", 1.0)
    with pytest.raises(N4AError, match="descriptive"):
        best_index("offset", [0.1, 0.2])


def test_get_metric_is_case_insensitive():
    assert get_metric("RMSE") is METRICS["rmse"]
    assert get_metric("Balanced_Accuracy") is METRICS["balanced_accuracy"]


def test_get_metric_unknown_name_suggests_closest_first():
    with pytest.raises(N4AError) as caught:
        get_metric("rsme")
    message = str(caught.value)
    assert "'rsme'" in message
    assert "did you mean 'rmse'" in message
    listed = message.split("known metrics: ")[1].split(", ")
    assert listed[0] == "rmse"
    assert sorted(listed) == sorted(METRICS)


# --- ranking helpers -----------------------------------------------------------------------


def test_sort_key_per_direction():
    assert sort_key("rmse", 1.0) < sort_key("rmse", 2.0)
    assert sort_key("r2", 0.9) < sort_key("r2", 0.5)
    assert sort_key("bias", -0.1) < sort_key("bias", 0.5)
    assert sort_key("bias", -0.2) == sort_key("bias", 0.2)


@pytest.mark.parametrize("name", ["rmse", "r2", "bias"])
@pytest.mark.parametrize("missing", [None, math.nan, np.nan])
def test_sort_key_missing_sorts_last(name, missing):
    assert sort_key(name, missing) == math.inf
    assert sort_key(name, 1e300) < math.inf
    assert sort_key(name, -1e300) < math.inf


def test_is_better_per_direction():
    assert is_better("rmse", 1.0, 2.0)
    assert not is_better("rmse", 2.0, 1.0)
    assert is_better("rpd", 3.0, 2.0)
    assert not is_better("rpd", 2.0, 3.0)
    assert is_better("bias", -0.1, 0.3)
    assert not is_better("bias", 0.3, -0.1)


def test_is_better_ties_and_missing():
    assert not is_better("rmse", 1.0, 1.0)  # a tie keeps the incumbent
    assert not is_better("bias", 0.2, -0.2)
    assert is_better("r2", 0.1, None)
    assert is_better("r2", -5.0, math.nan)
    assert not is_better("r2", math.nan, 0.1)
    assert not is_better("r2", None, None)
    assert not is_better("r2", math.nan, math.nan)


def test_best_index_per_direction():
    assert best_index("rmse", [3.0, math.nan, 1.0, 2.0]) == 2
    assert best_index("r2", [0.1, None, 0.9, 0.5]) == 2
    assert best_index("bias", [0.5, -0.1, 0.2]) == 1
    assert best_index("accuracy", [0.5, 0.8, 0.8]) == 1  # first on ties


def test_best_index_none_when_nothing_to_rank():
    assert best_index("rmse", []) is None
    assert best_index("rmse", [math.nan, None]) is None
    with pytest.raises(N4AError, match="unknown metric"):
        best_index("rsme", [])


def test_best_index_prefers_infinite_score_over_missing():
    # an exploded RMSE is still a value; NaN is not
    assert best_index("rmse", [math.nan, math.inf]) == 1


# --- degenerate inputs: NaN, never a crash or a warning ------------------------------------


def test_empty_input_gives_nan():
    scores = no_warnings_regression([], [])
    assert scores["n"] == 0
    assert all(math.isnan(scores[k]) for k in REGRESSION_KEYS[1:])
    empty_classes = classification_scores([], [])
    assert all(math.isnan(empty_classes[k]) for k in CLASSIFICATION_KEYS[1:])


def test_single_sample():
    # y = [2], ŷ = [3]: e = [1] → rmse = mae = bias = 1; everything needing n ≥ 2 is NaN
    scores = no_warnings_regression([2.0], [3.0])
    assert (scores["rmse"], scores["mae"], scores["bias"]) == (1.0, 1.0, 1.0)
    for key in ["sep", "rpd", "rpiq", "r2", "r2_corr", "slope", "offset"]:
        assert math.isnan(scores[key]), key


@pytest.mark.parametrize("reference", [[2.0, 2.0, 2.0], [0.1, 0.1, 0.1]])
def test_constant_reference(reference):
    # [0.1] · 3 has a mean that is not exactly 0.1: constancy must still be detected
    scores = no_warnings_regression(reference, [1.0, 2.0, 3.0])
    for key in ["r2", "r2_corr", "rpd", "rpiq", "slope", "offset"]:
        assert math.isnan(scores[key]), key
    assert math.isfinite(scores["rmse"])
    assert math.isfinite(scores["sep"])


def test_perfect_prediction_zero_sep_gives_nan_ratios():
    scores = no_warnings_regression([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (scores["rmse"], scores["sep"], scores["bias"]) == (0.0, 0.0, 0.0)
    assert scores["r2"] == 1.0
    assert math.isnan(scores["rpd"])
    assert math.isnan(scores["rpiq"])


def test_constant_prediction():
    # ŷ = [2, 2, 2]: no correlation defined, slope 0, offset 2
    scores = no_warnings_regression([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert math.isnan(scores["r2_corr"])
    assert scores["slope"] == 0.0
    assert scores["offset"] == 2.0
    assert scores["r2"] == pytest.approx(0.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_prediction_makes_every_score_nan(bad):
    scores = no_warnings_regression([1.0, 2.0, 3.0], [1.0, bad, 3.0])
    assert scores["n"] == 3
    assert all(math.isnan(scores[k]) for k in REGRESSION_KEYS[1:])


def test_non_finite_class_prediction_makes_every_score_nan():
    scores = classification_scores([0.0, 1.0, 1.0], [0.0, math.nan, 1.0])
    assert scores["n"] == 3
    assert all(math.isnan(scores[k]) for k in CLASSIFICATION_KEYS[1:])


def test_overflowing_values_do_not_warn():
    scores = no_warnings_regression([1e200, -1e200, 0.0], [-1e200, 1e200, 1.0])
    assert scores["rmse"] == math.inf


def test_non_finite_reference_raises_with_index():
    with pytest.raises(N4AError, match=r"1 non-finite reference value.*index 2"):
        regression_scores([1.0, 2.0, math.nan], [1.0, 2.0, 3.0])


# --- input errors --------------------------------------------------------------------------


def test_length_mismatch_names_both_lengths():
    with pytest.raises(N4AError, match=r"y_true has 3 samples but y_pred has 2"):
        regression_scores([1, 2, 3], [1, 2])
    with pytest.raises(N4AError, match=r"y_true has 2 samples but y_pred has 4"):
        classification_scores(["a", "b"], ["a", "b", "a", "b"])


def test_multi_column_input_is_rejected():
    with pytest.raises(N4AError, match=r"shape \(3, 2\)"):
        regression_scores(np.ones((3, 2)), np.ones(3))


def test_non_numeric_regression_input_is_rejected():
    with pytest.raises(N4AError, match="not numeric"):
        regression_scores(["a", "b"], [1.0, 2.0])


def test_scores_for_dispatches_on_task():
    assert scores_for("regression", [1, 2, 3, 4], [2, 2, 4, 5]) == regression_scores(
        [1, 2, 3, 4], [2, 2, 4, 5]
    )
    assert list(scores_for("classification", ["a", "b"], ["a", "a"])) == CLASSIFICATION_KEYS
    with pytest.raises(N4AError, match="unknown task 'clustering'"):
        scores_for("clustering", [1], [1])


def test_the_fast_mean_is_numpys_mean_to_the_bit():
    """Scores feed blob ids (the predictions table's footer): a faster mean must give the
    very same floats, or identical re-runs would stop deduplicating."""
    from n4afs_core.metrics.scores import _mean

    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 7, 17, 21, 128, 1000, 4097):
        for scale in (1e-6, 1.0, 3e5):
            values = rng.normal(size=size) * scale + rng.normal() * scale
            assert _mean(values) == np.mean(values)
