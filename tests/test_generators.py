"""The generator language: counts and contents against hand-computed expectations."""

from __future__ import annotations

import random

import pytest
from n4afs_core.errors import TemplateError
from n4afs_core.pipelines.generators import (
    MAX_VARIANTS,
    count_variants,
    expand,
    join_path,
    template_error,
    with_prefix,
)


def values(node, **kwargs):
    return [v.value for v in expand(node, **kwargs)]


# --------------------------------------------------------------------------- _or_


def test_or_gives_one_variant_per_alternative_with_choice_recorded():
    variants = expand({"_or_": ["snv", "msc", "detrend"]}, "steps[0]")
    assert [v.value for v in variants] == ["snv", "msc", "detrend"]
    assert [v.choices for v in variants] == [
        {"steps[0]": "snv"},
        {"steps[0]": "msc"},
        {"steps[0]": "detrend"},
    ]


def test_or_pick_gives_combinations_in_order():
    node = {"_or_": ["snv", "msc", "detrend"], "pick": 2}
    assert values(node) == [["snv", "msc"], ["snv", "detrend"], ["msc", "detrend"]]
    assert count_variants(node) == 3


def test_or_pick_range_gives_all_sizes():
    node = {"_or_": ["a", "b", "c"], "pick": [1, 2]}
    assert values(node) == [["a"], ["b"], ["c"], ["a", "b"], ["a", "c"], ["b", "c"]]


def test_or_arrange_gives_permutations():
    node = {"_or_": ["a", "b", "c"], "arrange": 2}
    expected = [["a", "b"], ["a", "c"], ["b", "a"], ["b", "c"], ["c", "a"], ["c", "b"]]
    assert values(node) == expected
    assert count_variants(node) == 6


def test_or_pick_crosses_nested_generators():
    node = {"_or_": ["snv", {"savgol": {"deriv": {"_or_": [1, 2]}}}, "msc"], "pick": 2}
    expected = [
        ["snv", {"savgol": {"deriv": 1}}],
        ["snv", {"savgol": {"deriv": 2}}],
        ["snv", "msc"],
        [{"savgol": {"deriv": 1}}, "msc"],
        [{"savgol": {"deriv": 2}}, "msc"],
    ]
    assert values(node) == expected
    assert count_variants(node) == 5


def test_or_then_pick_selects_among_picked_groups():
    node = {"_or_": ["a", "b", "c"], "pick": 1, "then_pick": 2}
    assert values(node) == [["a", "b"], ["a", "c"], ["b", "c"]]
    assert count_variants(node) == 3


def test_nested_or_flattens_alternatives_and_records_both_choices():
    variants = expand({"_or_": [{"_range_": [1, 3]}, 10]}, "p")
    assert [v.value for v in variants] == [1, 2, 3, 10]
    assert variants[1].choices == {"p": 2, "p._or_[0]": 2}


def test_mixed_or_merges_dict_alternatives_into_the_base():
    node = {"_or_": [{"a": 1}, {"a": 2}], "b": {"_or_": [3, 4]}}
    assert values(node) == [{"b": 3, "a": 1}, {"b": 3, "a": 2}, {"b": 4, "a": 1}, {"b": 4, "a": 2}]


def test_constraints_filter_combinations():
    base = {"_or_": ["a", "b", "c", "d"], "pick": 2}
    assert ["a", "b"] not in values({**base, "_mutex_": [["a", "b"]]})
    assert values({**base, "_requires_": [["a", "b"]]}) == [
        ["a", "b"],
        ["b", "c"],
        ["b", "d"],
        ["c", "d"],
    ]
    assert len(values({**base, "_exclude_": [["d", "c"]]})) == 5
    assert count_variants({**base, "_mutex_": [["a", "b"]]}) == 5


def test_weighted_count_is_deterministic_and_prefers_heavy_alternatives():
    node = {"_or_": ["a", "b", "c", "d"], "count": 2, "_weights_": [0, 0, 1, 1], "_seed_": 3}
    assert sorted(values(node)) == ["c", "d"]
    assert values(node) == values(node)


# --------------------------------------------------------------------------- ranges


def test_range_is_inclusive():
    assert values({"_range_": [1, 15]}) == list(range(1, 16))
    assert values({"_range_": [1, 10, 3]}) == [1, 4, 7, 10]
    assert values({"_range_": [1, 10, 4]}) == [1, 5, 9]


def test_descending_range_counts_down_to_an_inclusive_end_like_nirs4all():
    assert values({"_range_": [10, 1, -3]}) == [10, 7, 4, 1]
    assert values({"_range_": {"from": 10, "to": 0, "step": -3}}) == [10, 7, 4, 1]
    assert values({"_range_": [1.0, 0.0, -0.25]}) == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert count_variants({"_range_": [10, 1, -3]}) == 4
    assert count_variants({"_range_": [10, 0, -3]}) == 4


def test_range_dict_form_and_float_steps():
    assert values({"_range_": {"from": 0, "to": 1, "step": 0.25}}) == [0, 0.25, 0.5, 0.75, 1.0]
    assert values({"_range_": {"from": 2, "to": 4}}) == [2, 3, 4]
    assert count_variants({"_range_": [0.1, 0.5, 0.1]}) == len(values({"_range_": [0.1, 0.5, 0.1]}))


def test_log_range_list_and_dict_forms():
    assert values({"_log_range_": [0.001, 1, 4]}) == [0.001, 0.01, 0.1, 1.0]
    assert values({"_log_range_": {"from": 1, "to": 8, "num": 4, "base": 2}}) == [1, 2, 4, 8]
    assert count_variants({"_log_range_": {"from": 1, "to": 100}}) == 10


# --------------------------------------------------------------------------- grid, zip, chain


def test_grid_is_the_cartesian_product_of_its_lists():
    node = {"_grid_": {"x": [1, 2], "y": ["a", "b"]}}
    expected = [{"x": 1, "y": "a"}, {"x": 1, "y": "b"}, {"x": 2, "y": "a"}, {"x": 2, "y": "b"}]
    assert values(node) == expected
    assert count_variants({"_grid_": {"x": {"_range_": [1, 3]}, "y": [0, 1]}}) == 6


def test_zip_pairs_the_written_positions_and_varies_a_generator_within_its_position():
    node = {"_zip_": {"x": [{"_or_": [1, 2]}, {"_or_": [3, 4]}], "y": ["a", "b"]}}
    assert values(node) == [
        {"x": 1, "y": "a"},
        {"x": 2, "y": "a"},
        {"x": 3, "y": "b"},
        {"x": 4, "y": "b"},
    ]
    assert count_variants(node) == 4


def test_zip_over_a_whole_generator_pairs_its_values():
    node = {"_zip_": {"x": {"_range_": [1, 3]}, "y": ["a", "b", "c"]}}
    assert values(node) == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}, {"x": 3, "y": "c"}]


def test_zip_length_error_counts_what_was_written():
    msg = error_of({"_zip_": {"x": [{"_range_": [1, 2]}, 9], "y": [1, 2, 3]}}, "s")
    assert "(x has 2, y has 3)" in msg
    msg = error_of({"_zip_": {"x": [{"_range_": [1, 3]}], "y": [1, 2, 3]}}, "s")
    assert "(x has 1, y has 3)" in msg and "as a whole value it pairs its values" in msg


def test_zip_pairs_by_position():
    node = {"_zip_": {"x": [1, 2, 3], "y": ["a", "b", "c"]}}
    assert values(node) == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}, {"x": 3, "y": "c"}]


def test_chain_keeps_order_and_count_takes_the_first_without_seed():
    assert values({"_chain_": ["a", {"_or_": ["b", "c"]}, "d"]}) == ["a", "b", "c", "d"]
    assert values({"_chain_": ["a", "b", "c"], "count": 2}) == ["a", "b"]


def test_cartesian_builds_pipelines_then_picks_among_them():
    stages = [{"_or_": ["a", "b"]}, {"_or_": ["x", "y"]}]
    assert values({"_cartesian_": stages}) == [["a", "x"], ["a", "y"], ["b", "x"], ["b", "y"]]
    node = {"_cartesian_": stages, "pick": 2}
    assert count_variants(node) == 6
    assert values(node)[0] == [["a", "x"], ["a", "y"]]


def test_sample_is_seeded_and_within_bounds():
    node = {"_sample_": {"distribution": "uniform", "from": 2, "to": 3, "num": 5}, "_seed_": 7}
    first = values(node)
    assert first == values(node)
    assert len(first) == 5 and all(2 <= v <= 3 for v in first)
    assert values({**node, "_seed_": 8}) != first


# --------------------------------------------------------------------------- products, count


def test_independent_nodes_multiply_and_record_choices_by_path():
    node = [{"_or_": ["snv", "msc"]}, {"pls": {"n_components": {"_range_": [1, 3]}}}]
    variants = expand(node, "steps")
    assert len(variants) == count_variants(node, "steps") == 6
    assert variants[4].value == ["msc", {"pls": {"n_components": 2}}]
    assert variants[4].choices == {"steps[0]": "msc", "steps[1].pls.n_components": 2}


def test_count_with_seed_is_a_deterministic_subset_matching_random_sample():
    node = {"_range_": [1, 100], "count": 5, "_seed_": 42}
    first = values(node)
    assert first == values(node)
    assert len(set(first)) == 5 and set(first) <= set(range(1, 101))
    assert first == random.Random(42).sample(list(range(1, 101)), 5)  # nirs4all's sampling
    assert values({**node, "_seed_": 43}) != first


def test_count_applies_to_any_generator_and_without_seed_stays_deterministic():
    grid = {"_grid_": {"a": [1, 2, 3], "b": [1, 2, 3]}, "count": 4}
    assert len(values(grid)) == count_variants(grid) == 4
    assert values(grid) == values(grid)
    assert values({"_or_": ["a", "b", "c"], "pick": 2, "count": 1}, seed=5) == values(
        {"_or_": ["a", "b", "c"], "pick": 2, "count": 1, "_seed_": 5}
    )


def test_count_zero_or_less_means_no_limit_as_in_nirs4all():
    assert len(values({"_range_": [1, 5], "count": 0})) == 5


@pytest.mark.parametrize(
    "node",
    [
        [{"_or_": ["a", "b"]}, {"k": {"_grid_": {"x": [1, 2], "y": {"_range_": [1, 3]}}}}],
        {"_or_": [{"_or_": [1, 2], "pick": 1}, {"_zip_": {"a": [1, 2], "b": [3, 4]}}]},
        {"_or_": ["a", {"_range_": [1, 4]}, "c"], "arrange": [0, 2]},
        {"_cartesian_": [{"_or_": ["a", "b"]}, {"_range_": [1, 2]}], "arrange": 2},
        {"p": {"_log_range_": [1, 100, 3]}, "q": {"_chain_": [1, {"_or_": [2, 3]}]}},
    ],
)
def test_count_variants_equals_len_expand(node):
    assert count_variants(node) == len(expand(node))


def test_variants_share_no_mutable_structure():
    node = [{"_or_": ["a", "b"]}, {"fixed": {"x": [1, 2]}}]
    variants = expand(node)
    variants[0].value[1]["fixed"]["x"].append(3)
    assert variants[1].value[1]["fixed"]["x"] == [1, 2]
    assert node[1] == {"fixed": {"x": [1, 2]}}


# --------------------------------------------------------------------------- errors


def error_of(node, path=""):
    with pytest.raises(TemplateError) as info:
        expand(node, path)
    return str(info.value)


def test_range_step_zero_names_the_path():
    msg = error_of({"_range_": [1, 10, 0]}, "templates[1].steps[2]")
    assert msg.startswith("templates[1].steps[2]._range_: step must not be 0")


@pytest.mark.parametrize(
    ("node", "start", "fragment"),
    [
        ({"_range_": [1, 10, -1]}, "s._range_:", "counts down from 1, away from 10"),
        ({"_range_": [10, 1]}, "s._range_:", "empty"),
        ({"_range_": [1]}, "s._range_:", "[from, to]"),
        ({"_log_range_": [-1, 10, 3]}, "s._log_range_:", "positive"),
        ({"_or_": "snv"}, "s._or_:", "list of alternatives"),
        ({"_or_": ["a", "b"], "pick": 3}, "s.pick:", "only 2 alternatives"),
        ({"_or_": ["a", "b"], "pick": 1, "arrange": 1}, "s:", "not both"),
        ({"_zip_": {"x": [1, 2], "y": [1]}}, "s._zip_:", "(x has 2, y has 1)"),
        ({"_or_": ["a"], "_range_": [1, 2]}, "s:", "one generator per mapping"),
        ({"_range_": [1, 2], "pick": 1}, "s:", "unexpected key"),
        ({"_range_": [1, 5], "count": "3"}, "s.count:", "integer"),
        ({"x": 1, "_seed_": 3}, "s._seed_:", "only applies inside a generator"),
        ({"_or_": ["a"], "then_pick": 1}, "s.then_pick:", "needs pick or arrange"),
        ({"_sample_": {"distribution": "beta"}}, "s._sample_:", "unknown distribution"),
        ({"_tags_": ["x"], "_or_": [1]}, "s._tags_:", "not supported"),
    ],
)
def test_bad_nodes_raise_with_their_path(node, start, fragment):
    msg = error_of(node, "s")
    assert msg.startswith(start), msg
    assert fragment in msg


def test_unknown_keyword_names_path_suggestion_and_known_keywords():
    msg = error_of({"p": {"_rnage_": [1, 3]}}, "steps[1]")
    assert msg.startswith("steps[1].p._rnage_: unknown keyword _rnage_")
    assert "did you mean _range_?" in msg
    assert "_or_" in msg and "_grid_" in msg and "_zip_" in msg


def test_explosion_is_refused_with_the_total_and_a_remedy():
    node = [{"_range_": [1, 1000]}, {"_range_": [1, 1000]}]
    assert count_variants(node) == 1_000_000 > MAX_VARIANTS
    msg = error_of(node, "steps")
    assert msg.startswith("steps: expands to 1,000,000 variants")
    assert "count" in msg


def test_count_cannot_hide_an_exploding_population():
    msg = error_of({"_range_": [1, 10_000_000], "count": 3}, "p")
    assert msg.startswith("p: samples from 10,000,000 variants")


def test_sampled_count_is_bounded_even_when_the_full_product_is_not():
    node = [{"_range_": [1, 1000], "count": 10}, {"_range_": [1, 1000], "count": 10}]
    assert count_variants(node) == 100
    assert len(expand(node)) == 100


def test_with_prefix_keeps_the_class_and_joins_paths():
    err = with_prefix(template_error("steps[2]._range_", "step must be > 0"), "templates[1]")
    assert str(err) == "templates[1].steps[2]._range_: step must be > 0"
    assert join_path("a", "[0]") == "a[0]" and join_path("", "b") == "b"
    assert (
        str(with_prefix(template_error("", "bad file"), "templates[0]")) == "templates[0]: bad file"
    )
