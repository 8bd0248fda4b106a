"""Operator registry: the short names templates use ("snv", "pls") and the classes behind them.

Nouns: an *operator* is a registered, sklearn-compatible class with a short `name`, the dotted
`class_path` it is imported from, its `kind` (a "transform" step or the final "model") and the
`label` used in readable result names ("sg1-pls10"). A dotted class path that is not registered
is an operator too, resolved on demand.

Nothing here imports scikit-learn or chemotools at module import: the CLI imports this module to
validate templates and list names, and paying ~2 s of chemotools import for `n4a --help` would be
felt. Classes are imported when a pipeline is built or a template's parameters are checked.

Design: docs/DESIGN.md, "Concepts".
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any, Literal

from n4afs_core.errors import TemplateError, UnknownOperator
from n4afs_core.pickles import renamed

Kind = Literal["transform", "model"]
Task = Literal["regression", "classification", "any"]
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Operator:
    """One name a template may use, and how to build and label it."""

    name: str
    class_path: str
    kind: Kind
    task: Task
    label: str
    key_param: str | None = None  # its value joins the label: pls + n_components=10 -> "pls10"
    key_default: Any = None  # shown when the step leaves key_param unset (savgol deriv -> "sg1")
    # whether fitting may learn from y: a step that cannot is fitted once for every target of
    # a run (`core.pipelines.cv`); unknown classes are assumed to (fitted per target, never wrong)
    uses_y: bool = True


def _op(name, path, kind, task="any", label=None, key=None, default=None) -> Operator:
    """A built-in: every built-in transform is unsupervised (its fit never reads y)."""
    return Operator(name, path, kind, task, label or name, key, default, kind == "model")


_CT = "chemotools."
_BUILTINS: tuple[Operator, ...] = (
    # scatter correction
    _op("snv", _CT + "scatter.StandardNormalVariate", "transform"),
    _op("msc", _CT + "scatter.MultiplicativeScatterCorrection", "transform"),
    _op("emsc", _CT + "scatter.ExtendedMultiplicativeScatterCorrection", "transform"),
    _op("rnv", _CT + "scatter.RobustNormalVariate", "transform"),
    # derivatives and smoothing
    _op(
        "savgol", _CT + "derivative.SavitzkyGolay", "transform", label="sg", key="deriv", default=1
    ),
    _op("norris_williams", _CT + "derivative.NorrisWilliams", "transform", "any", "nw", "deriv", 1),
    _op("sg_smooth", _CT + "smooth.SavitzkyGolayFilter", "transform", label="sgs"),
    _op("whittaker", _CT + "smooth.WhittakerSmooth", "transform", label="whit"),
    _op("mean_filter", _CT + "smooth.MeanFilter", "transform", label="meanf"),
    _op("median_filter", _CT + "smooth.MedianFilter", "transform", label="medf"),
    # baselines: detrend = a polynomial fitted to every point (chemotools' own description)
    _op("detrend", _CT + "baseline.PolynomialCorrection", "transform"),
    _op("baseline_poly", _CT + "baseline.PolynomialCorrection", "transform", label="poly"),
    _op("linear_baseline", _CT + "baseline.LinearCorrection", "transform", label="lin"),
    _op("airpls", _CT + "baseline.AirPls", "transform"),
    _op("arpls", _CT + "baseline.ArPls", "transform"),
    _op("asls", _CT + "baseline.AsLs", "transform"),
    # scaling, selection, projection
    _op("norm_scaler", _CT + "scale.NormScaler", "transform", label="norm"),
    _op("range_cut", _CT + "feature_selection.RangeCut", "transform", label="cut"),
    _op("minmax", "sklearn.preprocessing.MinMaxScaler", "transform"),
    _op("standard", "sklearn.preprocessing.StandardScaler", "transform", label="std"),
    _op("pca", "sklearn.decomposition.PCA", "transform", key="n_components"),
    # regression models
    _op(
        "pls",
        "sklearn.cross_decomposition.PLSRegression",
        "model",
        "regression",
        key="n_components",
    ),
    _op("ridge", "sklearn.linear_model.Ridge", "model", "regression", key="alpha"),
    _op("lasso", "sklearn.linear_model.Lasso", "model", "regression", key="alpha"),
    _op("elasticnet", "sklearn.linear_model.ElasticNet", "model", "regression", "enet", "alpha"),
    _op("rf", "sklearn.ensemble.RandomForestRegressor", "model", "regression", key="n_estimators"),
    _op("svr", "sklearn.svm.SVR", "model", "regression", key="C"),
    _op("knn", "sklearn.neighbors.KNeighborsRegressor", "model", "regression", key="n_neighbors"),
    # classifiers
    _op(
        "plsda",
        "n4afs_core.operators.PLSDAClassifier",
        "model",
        "classification",
        key="n_components",
    ),
    _op(
        "rf_clf",
        "sklearn.ensemble.RandomForestClassifier",
        "model",
        "classification",
        "rfc",
        "n_estimators",
    ),
    _op("svc", "sklearn.svm.SVC", "model", "classification", key="C"),
    _op("logreg", "sklearn.linear_model.LogisticRegression", "model", "classification", key="C"),
    _op(
        "knn_clf",
        "sklearn.neighbors.KNeighborsClassifier",
        "model",
        "classification",
        "knnc",
        "n_neighbors",
    ),
    _op(
        "lda", "sklearn.discriminant_analysis.LinearDiscriminantAnalysis", "model", "classification"
    ),
)

_registry: dict[str, Operator] = {op.name: op for op in _BUILTINS}
_classes: dict[str, type] = {}  # class_path -> class, filled lazily (and by register_operator)
_dynamic: dict[str, Operator] = {}  # unregistered class paths already resolved


# --------------------------------------------------------------------------- lookup


def known_names() -> list[str]:
    """Registered operator names, sorted."""
    return sorted(_registry)


def get_operator(name_or_class_path: str) -> Operator:
    """The operator for a registered name (any case) or an importable dotted class path."""
    if not isinstance(name_or_class_path, str) or not name_or_class_path.strip():
        raise UnknownOperator(f"an operator is a name or a class path (got {name_or_class_path!r})")
    text = renamed(name_or_class_path.strip())  # `core.operators.X` from before 0.2
    found = _registry.get(text.lower())
    if found is not None:
        return found
    if "." not in text:
        raise UnknownOperator(_unknown_message(text))
    return _by_class_path(text) or _dynamic_operator(text)


def _unknown_message(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), known_names(), n=3, cutoff=0.5)
    if close:
        return f"unknown operator {name!r}; did you mean: {', '.join(close)}?"
    return (
        f"unknown operator {name!r}; known: {', '.join(known_names())}, "
        "or an importable class path such as sklearn.cross_decomposition.PLSRegression"
    )


def _by_class_path(class_path: str) -> Operator | None:
    """The first registered operator for this class path (so `...PLSRegression` reads as pls)."""
    return next((op for op in _registry.values() if op.class_path == class_path), None)


def _dynamic_operator(class_path: str) -> Operator:
    """An unregistered class path: validate it now, infer kind and task from the class."""
    if class_path not in _dynamic:
        cls = _import_class(class_path)
        kind = _infer_kind(cls, class_path)
        _dynamic[class_path] = Operator(
            class_path, class_path, kind, _infer_task(cls), _label_for(cls.__name__)
        )
    return _dynamic[class_path]


def _infer_kind(cls: type, class_path: str) -> Kind:
    if hasattr(cls, "predict"):
        return "model"
    if hasattr(cls, "transform"):
        return "transform"
    raise UnknownOperator(
        f"{class_path} has neither predict nor transform; it cannot be a pipeline step"
    )


def _infer_task(cls: type) -> Task:
    from sklearn.base import ClassifierMixin, RegressorMixin

    if issubclass(cls, ClassifierMixin):
        return "classification"
    if issubclass(cls, RegressorMixin):
        return "regression"
    return "any"


def _label_for(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower()) or "op"


def fits_without_y(name_or_class_path: str) -> bool:
    """Whether a step's fit never reads y (`Operator.uses_y`): such a prefix is shared by
    every target of a run."""
    return not get_operator(name_or_class_path).uses_y


# --------------------------------------------------------------------------- tasks

# Models that exist for both tasks under two names. A template says `rf` whether the dataset
# holds reference values or class labels; each name resolves to the one that fits the task.
_TASK_PAIRS = {"pls": "plsda", "rf": "rf_clf", "knn": "knn_clf", "svr": "svc"}
_TASK_PAIRS |= {b: a for a, b in _TASK_PAIRS.items()}


def for_task(operator: Operator, task: str) -> Operator | None:
    """The operator to fit on a dataset of `task`: itself, its pair for that task, or None."""
    if operator.task in ("any", task):
        return operator
    partner = _registry.get(_TASK_PAIRS.get(operator.name, ""))
    if partner is not None and partner.task == task:
        return partner
    return None


def models_for(task: str) -> list[str]:
    """Registered model names that fit `task`, for messages that say what to use instead."""
    return [op.name for op in _registry.values() if op.kind == "model" and op.task == task]


# --------------------------------------------------------------------------- classes


def resolve_class(operator: Operator) -> type:
    """The operator's class, imported on first use and cached."""
    if operator.class_path not in _classes:
        _classes[operator.class_path] = _import_class(operator.class_path)
    return _classes[operator.class_path]


def _import_class(class_path: str) -> type:
    module_name, _, attr = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise UnknownOperator(
            f"cannot import {class_path!r} ({err}); a class path must name an importable, "
            "scikit-learn-compatible class"
        ) from err
    if not isinstance(cls, type) or not hasattr(cls, "fit") or not hasattr(cls, "get_params"):
        raise UnknownOperator(
            f"{class_path!r} is not a scikit-learn-compatible class (needs fit and get_params)"
        )
    return cls


DEFAULT_RANDOM_STATE = 0
"""Given to estimators that draw random numbers (random forests, randomized PCA…) when the
template does not set `random_state`: unseeded, they fitted different models on every run,
so a re-run stored new blobs and a resumed run could rank differently. A template that sets
`random_state` (even to null) keeps its value."""


def build(operator: Operator, params: dict[str, Any]) -> Any:
    """A fresh, unfitted estimator. Imports its library now, never at module import."""
    cls = resolve_class(operator)
    if "random_state" not in params and _takes_random_state(cls):
        params = {**params, "random_state": DEFAULT_RANDOM_STATE}
    try:
        return cls(**params)
    except TypeError as err:
        raise TemplateError(
            f"{operator.name}: cannot build {operator.class_path} with {params!r}: {err}"
        ) from err


def _takes_random_state(cls: type) -> bool:
    if cls not in _random_state_classes:
        try:
            names = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            names = {}
        _random_state_classes[cls] = "random_state" in names
    return _random_state_classes[cls]


_random_state_classes: dict[type, bool] = {}


# --------------------------------------------------------------------------- registration


def register_operator(
    name: str,
    cls_or_path: type | str,
    kind: Kind,
    task: Task = "any",
    label: str | None = None,
    *,
    key_param: str | None = None,
    key_default: Any = None,
    replace: bool = False,
    uses_y: bool = True,
) -> None:
    """Add a user operator. A class object is remembered, so even local classes can be built.

    `uses_y=False` declares a transform whose fit never reads y (a scatter correction, a
    smoother): a run over several targets fits it once for all of them."""
    key = name.lower() if isinstance(name, str) else name
    if not isinstance(key, str) or not _NAME_RE.fullmatch(key):
        raise ValueError(f"operator name {name!r}: use lowercase letters, digits and _ only")
    if kind not in ("transform", "model") or task not in ("regression", "classification", "any"):
        raise ValueError(f"operator {name!r}: bad kind {kind!r} or task {task!r}")
    class_path = _class_path_of(cls_or_path)
    existing = _registry.get(key)
    if existing and existing.class_path != class_path and not replace:
        raise ValueError(
            f"operator {key!r} is already {existing.class_path}; pass replace=True to override"
        )
    if isinstance(cls_or_path, type):
        _classes[class_path] = cls_or_path
    _registry[key] = Operator(
        key, class_path, kind, task, _label_for(label or key), key_param, key_default, uses_y
    )


def _class_path_of(cls_or_path: type | str) -> str:
    if isinstance(cls_or_path, type):
        return f"{cls_or_path.__module__}.{cls_or_path.__qualname__}"
    if isinstance(cls_or_path, str) and "." in cls_or_path:
        return cls_or_path
    raise ValueError(f"expected a class or a dotted class path, got {cls_or_path!r}")


def operator_for_instance(obj: Any) -> Operator:
    """The registered operator for an estimator's class, else one named by its public path."""
    cls = type(obj)
    for op in _registry.values():
        if op.class_path.split(".")[0] == cls.__module__.split(".")[0] and _same_class(op, cls):
            return op
    return get_operator(_public_path(cls))


def _same_class(operator: Operator, cls: type) -> bool:
    try:
        return resolve_class(operator) is cls
    except UnknownOperator:
        return False


def _public_path(cls: type) -> str:
    """`sklearn.cross_decomposition._pls.PLSRegression` -> the shortest module re-exporting it."""
    parts = cls.__module__.split(".")
    for depth in range(1, len(parts) + 1):
        module_name = ".".join(parts[:depth])
        try:
            if getattr(importlib.import_module(module_name), cls.__qualname__, None) is cls:
                return f"{module_name}.{cls.__qualname__}"
        except ImportError:
            continue
    return f"{cls.__module__}.{cls.__qualname__}"


# --------------------------------------------------------------------------- PLS-DA


UNCONVERTED = "n4afs_core.pipelines.operators.Unconverted"


class Unconverted:
    """A step of a foreign pipeline that n4afs has no operator for (an imported nirs4all
    config: a nirs4all class, a y transform), kept in the config so the result says what ran
    and its config hash is its own. `params` hold the step as the other tool wrote it. It is
    never fitted: such a result is imported score-only."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return dict(self.params)

    def set_params(self, **params: Any) -> Unconverted:
        self.params.update(params)
        return self

    def fit(self, X: Any, y: Any = None) -> Unconverted:
        raise TemplateError(
            f"step {self.params.get('nirs4all', self.params)!r} came from another tool and has "
            "no n4afs operator: a config holding it cannot be fitted"
        )

    def transform(self, X: Any) -> Any:
        return self.fit(X)


PICKLED_AS = "n4afs_core.operators"  # the module name pickles give n4afs's own estimators


def __getattr__(name: str) -> Any:
    """Create PLSDAClassifier on first access, so importing this module never imports sklearn.

    The class is cached in the module globals under its own name. Its `__module__` is
    `PICKLED_AS`, the name it had before the engine moved into subpackages: models pickled
    before and after the move name it alike, and `n4afs_core/operators.py` hands pickle/joblib
    this very class object back.
    """
    if name == "PLSDAClassifier":
        cls = _make_plsda_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_plsda_class() -> type:
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data

    class PLSDAClassifier(ClassifierMixin, BaseEstimator):
        """PLS-DA: PLS regression on one-hot class indicators, predicting the largest score.

        Neither scikit-learn nor chemotools ships one. No predict_proba: PLS scores are not
        probabilities, and pretending otherwise would mislead calibration-based metrics.
        """

        def __init__(self, n_components=2, scale=True, max_iter=500, tol=1e-06):
            self.n_components = n_components
            self.scale = scale
            self.max_iter = max_iter
            self.tol = tol

        def fit(self, X, y):
            X, y = validate_data(self, X, y)
            check_classification_targets(y)
            self.classes_, encoded = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError("PLS-DA needs at least 2 classes; y has only 1 class")
            indicators = np.eye(len(self.classes_))[encoded]
            self.pls_ = PLSRegression(
                n_components=self.n_components,
                scale=self.scale,
                max_iter=self.max_iter,
                tol=self.tol,
            ).fit(X, indicators)
            self.n_iter_ = self.pls_.n_iter_  # sklearn's contract for estimators with max_iter
            return self

        def _scores(self, X):
            check_is_fitted(self)
            X = validate_data(self, X, reset=False)
            return self.pls_.predict(X)

        def decision_function(self, X):
            scores = self._scores(X)
            return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

        def predict(self, X):
            scores = self._scores(X)  # first: it raises NotFittedError before classes_ is read
            return self.classes_[np.argmax(scores, axis=1)]

    PLSDAClassifier.__module__ = PICKLED_AS  # its stable name in every pickle
    PLSDAClassifier.__qualname__ = "PLSDAClassifier"
    return PLSDAClassifier
