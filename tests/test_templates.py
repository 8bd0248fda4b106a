"""Templates to pipeline configs: the reference sweep, files, instances, names, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from n4afs_core.errors import TemplateError, UnknownOperator
from n4afs_core.pipelines.templates import (
    PipelineConfig,
    Step,
    Template,
    load_template,
    load_templates,
)

SAVGOL = {"savgol": {"deriv": 1, "window_length": 15, "polyorder": 2}}
SWEEP = [
    {"_or_": ["snv", "msc", SAVGOL]},
    {"pls": {"n_components": {"_range_": [1, 15]}}},
]


def configs_of(body, **kwargs):
    return load_template(body, **kwargs).expand()


def names_of(body):
    return [c.name for c in configs_of(body)]


def spectra(n=40, p=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).cumsum(axis=1)
    return X, X[:, 10] - X[:, 40] + rng.normal(scale=0.1, size=n)


# --------------------------------------------------------------------------- reference sweep


def test_reference_sweep_gives_45_distinct_configs_with_readable_names():
    configs = configs_of(SWEEP)
    assert len(configs) == 45
    assert len({c.hash for c in configs}) == 45
    expected = [f"{p}-pls{k}" for p in ("snv", "msc", "sg1") for k in range(1, 16)]
    assert [c.name for c in configs] == expected


def test_sweep_configs_record_their_choices_and_template_name():
    config = configs_of(SWEEP, name="sweep")[-1]
    assert config.template_name == "sweep"
    assert config.choices == {"steps[0]": SAVGOL, "steps[1].pls.n_components": 15}
    assert config.steps == (
        Step("savgol", {"deriv": 1, "polyorder": 2, "window_length": 15}),
        Step("pls", {"n_components": 15}),
    )


def test_hash6_is_the_hash_prefix_and_configs_work_as_set_members():
    configs = configs_of(SWEEP)
    assert all(len(c.hash) == 64 and c.hash.startswith(c.hash6) for c in configs)
    assert len(set(configs)) == 45 and len({c.hash6 for c in configs}) == 45


def test_to_template_round_trips_to_an_equal_config():
    for config in configs_of(SWEEP)[::11]:
        body = config.to_template()
        (again,) = load_template(json.loads(json.dumps(body))).expand()
        assert again == config and again.hash == config.hash
    assert configs_of(SWEEP)[1].to_template() == [{"snv": {}}, {"pls": {"n_components": 2}}]


def test_build_pipeline_fits_and_predicts():
    X, y = spectra()
    for config in configs_of(SWEEP)[14::15]:
        pipeline = config.build_pipeline()
        assert pipeline.fit(X, y).predict(X).shape[0] == len(y)
    assert [n for n, _ in configs_of(SWEEP)[0].build_pipeline().steps] == ["snv", "pls"]


def test_repeated_operators_get_unique_pipeline_step_names():
    (config,) = configs_of(["snv", "snv", {"pls": {"n_components": 2}}])
    assert [n for n, _ in config.build_pipeline().steps] == ["snv", "snv_2", "pls"]


def test_classification_template_builds_plsda():
    X, _ = spectra()
    y = np.where(X[:, 10] > np.median(X[:, 10]), "high", "low")
    (config,) = configs_of(["snv", {"plsda": {"n_components": 3}}])
    assert config.name == "snv-plsda3"
    assert set(config.build_pipeline().fit(X, y).predict(X)) <= {"high", "low"}


# --------------------------------------------------------------------------- step forms


def test_pick_is_spliced_into_the_step_list():
    body = [{"_or_": ["snv", "msc", "detrend"], "pick": 2}, "pls"]
    assert names_of(body) == ["snv-msc-pls", "snv-detrend-pls", "msc-detrend-pls"]
    assert all(len(c.steps) == 3 for c in configs_of(body))


def test_null_step_is_dropped_and_duplicates_are_merged():
    assert names_of([{"_or_": [None, "snv"]}, "pls"]) == ["pls", "snv-pls"]
    assert names_of([{"_or_": ["snv", "SNV"]}, "pls"]) == ["snv-pls"]


def test_class_path_steps_normalize_to_registered_names():
    (a,) = configs_of(["sklearn.cross_decomposition.PLSRegression"])
    (b,) = configs_of([{"pls": None}])
    assert a == b and a.steps == (Step("pls", {}),)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_unregistered_class_path_step_builds():
    body = ["snv", {"sklearn.linear_model.HuberRegressor": {"epsilon": 1.5}}]
    (config,) = configs_of(body)
    assert config.name == "snv-huberregressor"
    X, y = spectra()
    assert config.build_pipeline().fit(X, y).predict(X).shape == (len(y),)


@pytest.mark.parametrize(
    ("step", "label"),
    [
        ({"savgol": {"deriv": 2}}, "sg2"),
        ("savgol", "sg1"),
        ({"savgol": {"deriv": 0}}, "sg0"),
        ({"ridge": {"alpha": 0.1}}, "ridge0p1"),
        ({"ridge": {"alpha": 1e-05}}, "ridge1em05"),
        ({"rf": {"max_depth": 3}}, "rf"),
    ],
)
def test_names_carry_the_key_parameter(step, label):
    model = step if label.startswith(("ridge", "rf")) else "pls"
    body = [step] if model is step else [step, model]
    assert names_of(body)[0].split("-")[0] == label


def test_names_use_only_safe_characters():
    body = ["snv", {"sklearn.linear_model.HuberRegressor": {"epsilon": 1.5}}]
    for config in configs_of(SWEEP) + configs_of(body):
        assert all(ch.isdigit() or "a" <= ch <= "z" or ch == "-" for ch in config.name)


# --------------------------------------------------------------------------- estimators


def test_python_list_with_sklearn_instances():
    from chemotools.scatter import StandardNormalVariate
    from sklearn.cross_decomposition import PLSRegression

    template = load_template([StandardNormalVariate(), PLSRegression(n_components=np.int64(4))])
    assert template.body == [{"snv": {}}, {"pls": {"n_components": 4}}]
    json.dumps(template.body)
    (config,) = template.expand()
    assert config == configs_of(["snv", {"pls": {"n_components": 4}}])[0]


def test_instances_inside_generators_are_converted():
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.linear_model import Ridge

    body = ["msc", {"_or_": [PLSRegression(n_components=3), Ridge(alpha=0.5)]}]
    assert names_of(body) == ["msc-pls3", "msc-ridge0p5"]


def test_nested_estimator_parameter_is_an_error_with_its_path():
    from sklearn.ensemble import BaggingRegressor
    from sklearn.linear_model import Ridge

    with pytest.raises(TemplateError) as info:
        load_template(["snv", BaggingRegressor(estimator=Ridge())])
    message = str(info.value)
    assert message.startswith("steps[1]['sklearn.ensemble.BaggingRegressor'].estimator:")
    assert "nested estimators" in message


def test_unserializable_parameter_is_an_error_with_its_path():
    with pytest.raises(TemplateError, match=r"^steps\[0\]\.pls\.n_components: a set cannot"):
        load_template([{"pls": {"n_components": {1, 2}}}])


# --------------------------------------------------------------------------- files


def test_yaml_file_with_name_and_steps(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: sg_sweep\n"
        "steps:\n"
        "  - _or_: [snv, msc]\n"
        "  - pls:\n"
        "      n_components: {_range_: [2, 4]}\n",
        encoding="utf-8",
    )
    template = load_template(path)
    assert template.name == "sg_sweep" and template.source == str(path)
    assert [c.name for c in template.expand()][:3] == ["snv-pls2", "snv-pls3", "snv-pls4"]


def test_yaml_list_and_json_files(tmp_path):
    (tmp_path / "a.yml").write_text("- snv\n- pls: {n_components: 3}\n", encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(SWEEP), encoding="utf-8")
    a, b = load_templates([str(tmp_path / "a.yml"), tmp_path / "b.json"])
    assert (a.name, b.name) == ("template_001", "template_002")
    assert [c.name for c in a.expand()] == ["snv-pls3"]
    assert len(b.expand()) == 45


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- snv\n- pls: {n_components: 3\n- msc\n", encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        load_template(path)
    assert str(info.value).startswith(f"{path}, line ")
    assert "invalid YAML" in str(info.value)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  "snv",\n  {"pls": }\n]', encoding="utf-8")
    with pytest.raises(TemplateError, match=r"bad\.json, line 3, column \d+: invalid JSON"):
        load_template(path)


@pytest.mark.parametrize(
    ("filename", "content", "fragment"),
    [
        ("missing.yaml", None, "no such file"),
        ("notes.txt", "- pls", ".yaml, .yml or .json"),
        ("empty.yaml", "", "empty"),
    ],
)
def test_unusable_files(tmp_path, filename, content, fragment):
    path = tmp_path / filename
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TemplateError, match=fragment):
        load_template(path)


def test_errors_inside_a_file_mention_the_file(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("- snv\n- pls: {n_components: {_range_: [1, 5, 0]}}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        load_templates([path])
    message = str(info.value)
    assert message.startswith("templates[0].steps[1].pls.n_components._range_: step must not be 0")
    assert message.endswith(f"(in {path})")


# --------------------------------------------------------------------------- names, sources


def test_default_and_explicit_names():
    a, b, c = load_templates([["pls"], {"name": "mine", "steps": ["pls"]}, ["ridge"]])
    assert (a.name, b.name, c.name) == ("template_001", "mine", "template_003")
    assert load_template(["pls"], name="given").name == "given"
    assert load_template(["pls"]).name == "template_001"


def test_body_is_kept_before_expansion_and_is_json():
    template = load_template({"name": "s", "random_state": 3, "steps": SWEEP})
    assert template.body["steps"] == SWEEP
    assert json.loads(json.dumps(template.body)) == template.body


def test_random_state_seeds_count_sampling():
    steps = [{"pls": {"n_components": {"_range_": [1, 30], "count": 4}}}]
    a = [c.name for c in configs_of({"random_state": 1, "steps": steps})]
    b = [c.name for c in configs_of({"random_state": 1, "steps": steps})]
    c = [c.name for c in configs_of({"random_state": 2, "steps": steps})]
    assert a == b and len(a) == 4 and a != c


def test_nirs4all_pipeline_key_is_accepted():
    assert [c.name for c in configs_of({"pipeline": ["snv", "pls"]})] == ["snv-pls"]


# --------------------------------------------------------------------------- errors


def expand_error(templates, index=1, error=TemplateError):
    with pytest.raises(error) as info:
        load_templates(templates)[index].expand(f"templates[{index}]")
    return str(info.value)


def test_generator_error_has_the_full_path():
    bad = ["snv", "msc", {"_range_": [1, 3, 0]}]
    with pytest.raises(TemplateError) as info:
        load_templates([["pls"], bad])
    assert str(info.value).startswith("templates[1].steps[2]._range_: step must not be 0")


def test_unknown_operator_has_path_and_suggestion():
    message = expand_error([["pls"], ["snv", "snvv", "pls"]], error=UnknownOperator)
    assert message.startswith("templates[1].steps[1]: unknown operator 'snvv'; did you mean: snv")


def test_unknown_operator_inside_a_generator_is_found():
    message = expand_error([["pls"], [{"_or_": ["snv", "mcs"]}, "pls"]], error=UnknownOperator)
    assert message.startswith("templates[1].steps[0]: unknown operator 'mcs'; did you mean: msc")


@pytest.mark.parametrize(
    ("steps", "start", "fragment"),
    [
        (["snv", "msc"], "templates[1].steps[1]:", "last step must be a model"),
        (["rf", "pls"], "templates[1].steps[0]:", "no transform"),
        ([{"pls": {"n_component": 3}}], "templates[1].steps[0].pls.n_component:", "n_components"),
        ([{"snv": {}, "pls": {}}], "templates[1].steps[0]:", "one mapping"),
        ([{"pls": 10}], "templates[1].steps[0].pls:", "parameters must be a mapping"),
        ([3], "templates[1].steps[0]:", "operator name"),
        ([None], "templates[1].steps:", "no steps left"),
    ],
)
def test_bad_steps_raise_with_their_path(steps, start, fragment):
    message = expand_error([["pls"], steps])
    assert message.startswith(start), message
    assert fragment in message


@pytest.mark.parametrize(
    ("body", "start", "fragment"),
    [
        ({"name": "x"}, "templates[0]:", "exactly one of steps"),
        ({"steps": ["pls"], "pipeline": ["pls"]}, "templates[0]:", "exactly one of steps"),
        ({"steps": ["pls"], "author": "me"}, "templates[0].author:", "unknown template key"),
        ({"steps": ["pls"], "name": "a b"}, "templates[0].name:", "not a usable template name"),
        ({"steps": ["pls"], "random_state": "x"}, "templates[0].random_state:", "integer"),
        (42, "templates[0]:", ".yaml/.yml/.json path"),
    ],
)
def test_bad_template_bodies(body, start, fragment):
    with pytest.raises(TemplateError) as info:
        load_templates([body])
    assert str(info.value).startswith(start), str(info.value)
    assert fragment in str(info.value)


def test_duplicate_template_names_are_refused():
    with pytest.raises(TemplateError, match=r"^templates\[1\]: duplicate template name 'a'"):
        load_templates([{"name": "a", "steps": ["pls"]}, {"name": "a", "steps": ["ridge"]}])


def test_explosion_is_refused_at_load_time():
    body = [{"pls": {"n_components": {"_range_": [1, 400]}, "scale": {"_range_": [1, 400]}}}]
    with pytest.raises(TemplateError, match=r"^templates\[0\]\.steps: expands to 160,000"):
        load_templates([body])


def test_template_can_be_built_directly():
    template = Template("direct", ["snv", {"pls": {"n_components": 2}}])
    assert [c.name for c in template.expand()] == ["snv-pls2"]
    assert isinstance(template.expand()[0], PipelineConfig)


def test_a_generator_can_be_the_params_mapping():
    body = ["snv", {"pls": {"_grid_": {"n_components": [2, 3], "scale": [True, False]}}}]
    configs = configs_of(body)
    assert [c.name for c in configs] == ["snv-pls2", "snv-pls2", "snv-pls3", "snv-pls3"]
    assert configs[1].steps[1] == Step("pls", {"n_components": 2, "scale": False})
    assert configs[1].choices == {"steps[1].pls": {"n_components": 2, "scale": False}}
