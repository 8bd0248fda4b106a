"""Operator registry: every name resolves and builds; lookups, suggestions, registration."""

from __future__ import annotations

import inspect
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from n4afs_core.errors import TemplateError, UnknownOperator
from n4afs_core.pipelines import operators
from n4afs_core.pipelines.operators import (
    build,
    get_operator,
    known_names,
    operator_for_instance,
    register_operator,
    resolve_class,
)
from sklearn.base import BaseEstimator, TransformerMixin, clone

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = [
    "snv",
    "msc",
    "emsc",
    "rnv",
    "savgol",
    "sg_smooth",
    "norris_williams",
    "detrend",
    "baseline_poly",
    "airpls",
    "arpls",
    "whittaker",
    "minmax",
    "standard",
    "pca",
    "pls",
    "ridge",
    "lasso",
    "elasticnet",
    "rf",
    "svr",
    "knn",
    "plsda",
    "rf_clf",
    "svc",
    "logreg",
    "knn_clf",
    "lda",
]


@pytest.fixture
def isolated_registry(monkeypatch):
    """User registrations in a test must not leak into the next one."""
    monkeypatch.setattr(operators, "_registry", dict(operators._registry))
    monkeypatch.setattr(operators, "_classes", dict(operators._classes))


class DoubleIt(TransformerMixin, BaseEstimator):
    def __init__(self, factor=2.0):
        self.factor = factor

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.asarray(X) * self.factor


def test_required_names_are_registered():
    assert set(REQUIRED) <= set(known_names())
    assert known_names() == sorted(known_names())


@pytest.mark.parametrize("name", known_names())
def test_every_registered_name_imports_and_builds(name):
    op = get_operator(name)
    cls = resolve_class(op)
    estimator = build(op, {})
    assert type(estimator) is cls
    assert clone(estimator).get_params() == estimator.get_params()
    method = "predict" if op.kind == "model" else "transform"
    assert hasattr(estimator, method)
    assert re.fullmatch(r"[a-z0-9]+", op.label)


@pytest.mark.parametrize("name", ["savgol", "norris_williams"])
def test_label_defaults_match_the_class_defaults(name):
    op = get_operator(name)
    default = inspect.signature(resolve_class(op)).parameters[op.key_param].default
    assert op.key_default == default


def test_model_tasks():
    assert get_operator("pls").task == "regression"
    assert get_operator("plsda").task == get_operator("lda").task == "classification"
    assert get_operator("snv").kind == "transform" and get_operator("rf").kind == "model"


def test_names_are_case_insensitive():
    assert get_operator("SNV") is get_operator("snv")
    assert get_operator(" Pls ").name == "pls"


def test_registered_class_path_resolves_to_its_name():
    assert get_operator("sklearn.cross_decomposition.PLSRegression").name == "pls"


def test_unregistered_class_path_is_validated_and_classified():
    op = get_operator("sklearn.linear_model.HuberRegressor")
    assert (op.name, op.kind, op.task, op.label) == (
        "sklearn.linear_model.HuberRegressor",
        "model",
        "regression",
        "huberregressor",
    )
    assert type(build(op, {"epsilon": 1.5})).__name__ == "HuberRegressor"


@pytest.mark.parametrize("path", ["sklearn.linear_model.NoSuchModel", "nosuchpkg.Thing", "os.sep"])
def test_bad_class_paths_are_unknown_operators(path):
    with pytest.raises(UnknownOperator, match=re.escape(repr(path))):
        get_operator(path)


def test_unknown_name_suggests_closest_names():
    with pytest.raises(UnknownOperator) as info:
        get_operator("snvv")
    assert str(info.value).startswith("unknown operator 'snvv'; did you mean: snv")


def test_unknown_name_without_close_match_lists_known_names():
    with pytest.raises(UnknownOperator) as info:
        get_operator("qqqqqqqq")
    assert "pls" in str(info.value) and "class path" in str(info.value)


def test_build_with_a_bad_parameter_raises_template_error():
    with pytest.raises(TemplateError, match="pls: cannot build"):
        build(get_operator("pls"), {"n_component": 3})


def test_operator_for_instance_finds_registered_names():
    from chemotools.scatter import StandardNormalVariate
    from sklearn.cross_decomposition import PLSRegression

    assert operator_for_instance(PLSRegression()).name == "pls"
    assert operator_for_instance(StandardNormalVariate()).name == "snv"
    assert operator_for_instance(operators.PLSDAClassifier()).name == "plsda"


def test_operator_for_unregistered_instance_uses_the_public_class_path():
    from sklearn.linear_model import HuberRegressor

    assert operator_for_instance(HuberRegressor()).name == "sklearn.linear_model.HuberRegressor"


def test_user_registration_by_class(isolated_registry):
    register_operator("Double", DoubleIt, "transform", label="x2")
    op = get_operator("double")
    assert (op.kind, op.task, op.label) == ("transform", "any", "x2")
    assert build(op, {"factor": 3.0}).transform([[1.0]])[0][0] == 3.0
    assert operator_for_instance(DoubleIt()).name == "double"


def test_user_registration_by_path_and_conflicts(isolated_registry):
    register_operator("huber", "sklearn.linear_model.HuberRegressor", "model", "regression")
    assert get_operator("sklearn.linear_model.HuberRegressor").name == "huber"
    with pytest.raises(ValueError, match="replace=True"):
        register_operator("huber", DoubleIt, "transform")
    register_operator("huber", DoubleIt, "transform", replace=True)
    assert get_operator("huber").kind == "transform"
    with pytest.raises(ValueError, match="lowercase"):
        register_operator("bad name", DoubleIt, "transform")


def test_importing_the_modules_does_not_import_sklearn_or_chemotools():
    code = (
        "import sys, n4afs_core.pipelines.operators, n4afs_core.pipelines.templates, "
        "n4afs_core.pipelines.generators; "
        "print(sorted(m for m in ('sklearn', 'chemotools', 'numpy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- PLS-DA


def two_blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b"] * (n // 2))
    X = rng.normal(size=(n, 6)) + (y == "b")[:, None] * 3.0
    return X, y


def test_plsda_passes_sklearn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(operators.PLSDAClassifier())


def test_plsda_separates_two_classes_and_pickles():
    X, y = two_blobs()
    model = build(get_operator("plsda"), {"n_components": 2}).fit(X, y)
    assert (model.predict(X) == y).mean() > 0.95
    assert model.decision_function(X).shape == (len(y),)
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is operators.PLSDAClassifier
    assert (copy.predict(X) == model.predict(X)).all()


def test_plsda_multiclass_scores_have_one_column_per_class():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 10)
    X = rng.normal(size=(30, 5)) + y[:, None] * 2.0
    model = operators.PLSDAClassifier(n_components=3).fit(X, y)
    assert model.decision_function(X).shape == (30, 3)
    assert list(model.classes_) == [0, 1, 2]


def test_estimators_that_draw_random_numbers_are_seeded_unless_the_template_says():
    rf = get_operator("rf")
    assert build(rf, {}).random_state == 0
    assert build(rf, {"random_state": 7}).random_state == 7
    assert build(rf, {"random_state": None}).random_state is None  # asked for: kept
    assert "random_state" not in build(get_operator("pls"), {}).get_params()
