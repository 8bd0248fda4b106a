"""Templates in, concrete pipeline configs out.

Nouns: a *template* is what the user writes (a list of steps, or `{name, steps}`), possibly
holding generator nodes; its `body` is saved as given, before expansion. A *step* is one
operator and the parameters the user set: `"snv"`, `{"pls": {"n_components": 10}}`, a class
path, or (from Python) an estimator instance. A *pipeline config* is one fully expanded list
of steps; its identity is the sha256 of its canonical JSON, and its `name` is a readable
label such as `snv-pls10` (not unique: the hash is).

A step that expands to a list (`{"_or_": [...], "pick": 2}`) is spliced into the step list,
and a null step (`{"_or_": [null, "snv"]}`) is dropped, so "optional preprocessing" reads as
nirs4all users write it.

Design: docs/DESIGN.md, "Concepts".
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import inspect
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, NoReturn

from n4afs_core.errors import TemplateError, UnknownOperator
from n4afs_core.index.names import result_name
from n4afs_core.pipelines.generators import (
    GENERATORS,
    check_variant_count,
    expand,
    key_path,
    template_error,
    with_prefix,
)
from n4afs_core.pipelines.operators import (
    Operator,
    build,
    for_task,
    get_operator,
    models_for,
    operator_for_instance,
    resolve_class,
)

_BODY_KEYS = ("name", "description", "steps", "pipeline", "random_state")
_STEP_LEVEL_GENERATORS = frozenset({"_or_", "_chain_", "_cartesian_"})
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PIPELINE_RESERVED = frozenset({"steps", "memory", "verbose", "transform_input"})
_SCALARS = (type(None), bool, int, float, str)


def _fail(path: str, reason: str) -> NoReturn:
    raise template_error(path, reason)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Step:
    """One operator (registered name or class path) and only the parameters the user set."""

    op: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_template(self) -> dict[str, dict[str, Any]]:
        return {self.op: _canonical(self.params)}

    def __hash__(self) -> int:
        return hash(_canonical_json(self.to_template()))


@dataclass(frozen=True)
class PipelineConfig:
    """One concrete pipeline. Equality and hash are its steps; choices and template name are
    where it came from, not what it is."""

    steps: tuple[Step, ...]
    choices: dict[str, Any] = field(default_factory=dict, compare=False)
    template_name: str = field(default="", compare=False)

    def to_template(self) -> list[dict[str, dict[str, Any]]]:
        """`[{"snv": {}}, {"pls": {"n_components": 15}}]`: valid template input again."""
        return [step.to_template() for step in self.steps]

    @cached_property
    def hash(self) -> str:
        return hashlib.sha256(_canonical_json(self.to_template()).encode("utf-8")).hexdigest()

    @property
    def hash6(self) -> str:
        return self.hash[:6]

    @property
    def name(self) -> str:
        """Readable, not unique: `snv-sg1-pls10`; `core.index.names.result_name`'s rule."""
        return result_name("-".join(_step_label(step) for step in self.steps))

    def build_pipeline(self) -> Any:
        """A fresh, unfitted sklearn Pipeline; sklearn and chemotools are imported only now."""
        from sklearn.pipeline import Pipeline

        names = _unique_names([_pipeline_step_name(step) for step in self.steps])
        built = [build(get_operator(s.op), copy.deepcopy(s.params)) for s in self.steps]
        return Pipeline(list(zip(names, built, strict=True)))

    def for_task(self, task: str, dataset: str) -> PipelineConfig:
        """This config as fitted on a `task` dataset: `rf` there is `rf_clf` on class labels.

        Resolved when the run is planned, so `pipeline.yaml` names what was fitted and a model
        of the wrong kind is refused before anything is fitted, not one traceback per result.
        """
        steps = []
        for step in self.steps:
            operator = get_operator(step.op)
            fitted = for_task(operator, task)
            if fitted is None:
                raise TemplateError(
                    f"template {self.template_name or '?'}: {step.op} is a {operator.task} "
                    f"model and dataset {dataset!r} is {task}; use one of: "
                    f"{', '.join(models_for(task))}"
                )
            if fitted is not operator:  # the partner must take the parameters set
                _check_params(fitted, step.params, f"{step.op} (as {fitted.name} on {task})")
            steps.append(step if fitted is operator else Step(fitted.name, step.params))
        if steps == list(self.steps):
            return self
        return PipelineConfig(tuple(steps), self.choices, self.template_name)

    def __hash__(self) -> int:
        return hash(self.hash)


@dataclass(frozen=True)
class Template:
    """A template as given (`body`, JSON-serializable, before expansion) and its name."""

    name: str
    body: Any
    source: str | None = field(default=None, compare=False)  # the file it was read from

    def expand(self, path_prefix: str = "") -> list[PipelineConfig]:
        """Every distinct pipeline config, in generator order; duplicates (same hash) dropped.

        Validates operators and their parameter names, and that the last step is a model.
        Errors name the node: `templates[1].steps[2]._range_: step must not be 0 (got [1, 3, 0])`.
        """
        try:
            return self._expand()
        except TemplateError as err:
            if not (path_prefix or self.source):
                raise
            raise _located(err, path_prefix, self.source) from err

    def _expand(self) -> list[PipelineConfig]:
        steps_node, seed, steps_path = _split_body(self.body)
        configs: dict[str, PipelineConfig] = {}
        for variant in expand(steps_node, steps_path, seed=seed):
            steps = _parse_steps(variant.value, steps_path)
            config = PipelineConfig(steps, variant.choices, self.name)
            configs.setdefault(config.hash, config)
        return list(configs.values())


def _located(err: TemplateError, prefix: str, source: str | None) -> TemplateError:
    """The same error under `prefix`, mentioning the file it came from."""
    located = with_prefix(err, prefix)
    if source:
        reason = f"{getattr(located, 'reason', str(located))} (in {source})"
        located = template_error(getattr(located, "path", ""), reason, type(err))
    return located


# --------------------------------------------------------------------------- canonical form


def _canonical(value: Any) -> Any:
    """Sorted-key deep copy: the same config always serializes to the same bytes."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- names


def _step_label(step: Step) -> str:
    """Operator label plus its key parameter: pls + n_components=10 -> pls10, savgol -> sg1."""
    return _operator_label(get_operator(step.op), step.params)


def _operator_label(operator: Any, params: dict[str, Any]) -> str:
    """`_step_label` of a step of `operator` with `params`."""
    label = operator.label
    if operator.key_param:
        value = params.get(operator.key_param, operator.key_default)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            label += _format_number(value)
    return label


def _format_number(value: float) -> str:
    """0.1 -> 0p1, 1e-05 -> 1em05: numbers in names without dots or signs."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value).lower().replace(".", "p").replace("-", "m").replace("+", "")


def _pipeline_step_name(step: Step) -> str:
    operator = get_operator(step.op)
    base = operator.label if "." in operator.name else operator.name
    base = re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "", base.lower())).strip("_") or "step"
    return base + "_step" if base in _PIPELINE_RESERVED else base


def _unique_names(names: list[str]) -> list[str]:
    """sklearn needs unique step names: snv, pls, snv_2 on a repeat."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        out.append(candidate)
    return out


# --------------------------------------------------------------------------- body


def _split_body(body: Any) -> tuple[Any, int | None, str]:
    """(steps node, generator seed, path of the steps node) for a list or a mapping body."""
    if isinstance(body, list):
        return body, None, "steps"
    if not isinstance(body, dict):
        _fail("", f"a template is a list of steps or a mapping with steps (got {_kind(body)})")
    unknown = [k for k in body if k not in _BODY_KEYS]
    if unknown:
        _fail(key_path("", unknown[0]), f"unknown template key; allowed: {', '.join(_BODY_KEYS)}")
    if ("steps" in body) == ("pipeline" in body):
        _fail("", "a template mapping needs exactly one of steps: [...] or pipeline: [...]")
    steps_key = "steps" if "steps" in body else "pipeline"
    seed = body.get("random_state")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        _fail("random_state", f"must be an integer (got {seed!r})")
    return body[steps_key], seed, steps_key


def _kind(value: Any) -> str:
    return type(value).__name__


# --------------------------------------------------------------------------- steps


def _parse_steps(value: Any, steps_path: str) -> tuple[Step, ...]:
    """Expanded steps -> Step records: nested lists spliced, nulls dropped, chain checked."""
    items = value if isinstance(value, list) else [value]
    steps: list[Step] = []
    origins: list[str] = []
    for i, raw in enumerate(items):
        path = f"{steps_path}[{i}]"
        for step in _parse_step(raw, path):
            steps.append(step)
            origins.append(path)
    if not steps:
        _fail(steps_path, "no steps left after expansion; a pipeline needs at least a model")
    _check_chain(steps, origins)
    return tuple(steps)


def _parse_step(raw: Any, path: str) -> list[Step]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [step for item in raw for step in _parse_step(item, path)]
    if isinstance(raw, str):
        return [_make_step(raw, {}, path)]
    if isinstance(raw, dict):
        return [_mapping_step(raw, path)]
    if _is_estimator(raw):
        return _parse_step(_instance_to_node(raw, path), path)
    _fail(path, f"a step is an operator name, {{name: params}} or an estimator (got {_kind(raw)})")


def _mapping_step(raw: dict, path: str) -> Step:
    if len(raw) != 1:
        shown = ", ".join(map(str, raw)) or "none"
        _fail(path, f"a step is one mapping {{operator: params}}; found keys: {shown}")
    ((name, params),) = raw.items()
    if not isinstance(name, str):
        _fail(path, f"operator names are strings (got {name!r})")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        _fail(
            key_path(path, name),
            f"parameters must be a mapping, e.g. {{{name}: {{...}}}} "
            f"(got {_kind(params)} {params!r})",
        )
    return _make_step(name, params, path)


def _make_step(name: str, params: dict, path: str) -> Step:
    operator = _operator_at(name, path)
    _check_params(operator, params, key_path(path, name))
    return Step(operator.name, _canonical(params))


def _operator_at(name: str, path: str) -> Operator:
    try:
        return get_operator(name)
    except UnknownOperator as err:
        raise template_error(path, str(err), UnknownOperator) from err


def _class_at(operator: Operator, path: str) -> type:
    try:
        return resolve_class(operator)
    except UnknownOperator as err:
        raise template_error(path, str(err), UnknownOperator) from err


def _check_params(operator: Operator, params: dict, path: str) -> None:
    """Catch `n_component` now, not after an hour of fitting the other configs."""
    for key in params:
        if not isinstance(key, str):
            _fail(path, f"parameter names are strings (got {key!r})")
    accepted = _accepted_params(_class_at(operator, path))
    if accepted is None:
        return
    for key in params:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            _fail(
                key_path(path, key),
                f"unknown parameter for {operator.name} "
                f"({operator.class_path}); {hint}valid: {', '.join(sorted(accepted))}",
            )


@cache
def _accepted_params(cls: type) -> frozenset[str] | None:
    """Constructor parameter names; None when it takes **kwargs (anything goes)."""
    parameters = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL)


def _check_chain(steps: list[Step], origins: list[str]) -> None:
    last = _operator_at(steps[-1].op, origins[-1])
    if last.kind != "model":
        _fail(
            origins[-1],
            f"the last step must be a model (pls, ridge, rf, plsda, ...); "
            f"{last.name!r} is a {last.kind}",
        )
    for step, origin in zip(steps[:-1], origins[:-1], strict=True):
        operator = _operator_at(step.op, origin)
        if not hasattr(_class_at(operator, origin), "transform"):
            _fail(origin, f"{operator.name!r} has no transform, so it can only be the last step")


# --------------------------------------------------------------------------- estimators


def _is_estimator(value: Any) -> bool:
    return not isinstance(value, type) and hasattr(value, "get_params") and hasattr(value, "fit")


def _instance_to_node(obj: Any, path: str) -> dict[str, dict[str, Any]]:
    """`StandardNormalVariate()` -> `{"snv": {}}`: keep only parameters that differ from the
    constructor defaults, so an instance and the equivalent name hash the same."""
    operator = operator_for_instance(obj)
    defaults = {name: p.default for name, p in inspect.signature(type(obj)).parameters.items()}
    params = {}
    for key, value in obj.get_params(deep=False).items():
        if key in defaults and _same_value(value, defaults[key]):
            continue
        params[key] = _plain(value, key_path(key_path(path, operator.name), key))
    return {operator.name: params}


def _same_value(value: Any, default: Any) -> bool:
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except (TypeError, ValueError):  # e.g. numpy arrays: ambiguous truth value
        return False


def _plain(value: Any, path: str) -> Any:
    """A YAML/JSON-safe copy of a parameter value, or an error naming where it is not."""
    if type(value) in _SCALARS:
        return value
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()  # numpy scalars
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                _fail(path, f"mapping keys must be strings (got {k!r})")
        return {k: _plain(v, key_path(path, k)) for k, v in value.items()}
    if _is_estimator(value):
        _fail(
            path,
            "nested estimators are not supported; register a class that builds it "
            "(register_operator) and use its name",
        )
    _fail(
        path,
        f"a {_kind(value)} cannot be saved in a template; use null, booleans, numbers, "
        "strings, lists or mappings",
    )


def _normalize(node: Any, path: str, step_level: bool) -> Any:
    """Instances -> `{name: params}` where a step may stand; everything else plain JSON data."""
    if isinstance(node, (list, tuple)):
        return [_normalize(v, f"{path}[{i}]", step_level) for i, v in enumerate(node)]
    if step_level and _is_estimator(node):
        return _instance_to_node(node, path)
    if not isinstance(node, dict):
        return _plain(node, path)
    for key in node:
        if not isinstance(key, str):
            _fail(path, f"mapping keys must be strings (got {key!r})")
    is_generator = any(k in GENERATORS for k in node)
    return {
        k: _normalize(
            v, key_path(path, k), step_level and is_generator and k in _STEP_LEVEL_GENERATORS
        )
        for k, v in node.items()
    }


def _normalize_body(raw: Any) -> Any:
    if isinstance(raw, (list, tuple)):
        return _normalize(raw, "steps", step_level=True)
    if not isinstance(raw, dict):
        _fail(
            "",
            "a template is a .yaml/.yml/.json path, a list of steps or a mapping with steps "
            f"(got {_kind(raw)})",
        )
    return {
        k: _normalize(v, key_path("", k), step_level=k in ("steps", "pipeline"))
        for k, v in raw.items()
    }


# --------------------------------------------------------------------------- loading


def load_template(
    source: str | Path | list | dict,
    name: str | None = None,
    *,
    default_name: str = "template_001",
) -> Template:
    """A template from a .yaml/.yml/.json file or from Python data (estimators allowed).

    Generator syntax is checked now (and the variant count bounded); operators are checked by
    `Template.expand`, which imports their libraries.
    """
    file_label = str(source) if isinstance(source, (str, Path)) else None
    raw = _read_file(Path(source)) if file_label else source
    try:
        body = _normalize_body(raw)
        steps_node, _, steps_path = _split_body(body)
        check_variant_count(steps_node, steps_path)
        resolved = name or (body.get("name") if isinstance(body, dict) else None) or default_name
        _check_name(resolved)
    except TemplateError as err:
        if file_label is None:
            raise
        raise _located(err, "", file_label) from err
    return Template(resolved, body, file_label)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        _fail(
            "name",
            f"{name!r} is not a usable template name: 1-64 letters, digits, _ . - "
            "(starting with a letter or digit)",
        )


def _read_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        _fail("", f"{path}: a template file ends in .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail("", f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as err:
        _fail("", f"{path}: cannot read it ({err})")
    data = _parse_json(text, path) if suffix == ".json" else _parse_yaml(text, path)
    if data is None:
        _fail("", f"{path}: the file is empty; write a list of steps")
    return data


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise template_error(
            "", f"{path}, line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}"
        ) from err


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise template_error("", f"{path}{where}: invalid YAML: {problem}") from err


def load_templates(sources: Sequence[Any]) -> list[Template]:
    """Several templates; unnamed ones become template_001, template_002 … by position."""
    if isinstance(sources, (str, Path, dict)):
        _fail("", "load_templates takes a list of sources; use load_template for one")
    templates: list[Template] = []
    seen: dict[str, int] = {}
    for i, source in enumerate(sources):
        prefix = f"templates[{i}]"
        try:
            template = load_template(source, default_name=f"template_{i + 1:03d}")
        except TemplateError as err:
            raise with_prefix(err, prefix) from err
        if template.name in seen:
            _fail(
                prefix,
                f"duplicate template name {template.name!r} "
                f"(also templates[{seen[template.name]}]); give each a distinct name",
            )
        seen[template.name] = i
        templates.append(template)
    return templates


# --------------------------------------------------------------------------- config columns
# What a config is, as the columns of a table a user pivots (RESULTS.csv): every result has
# a preprocessing, a model and (for latent-variable models) a number of components, whatever
# template produced it, so these three columns exist for every dataset and task; any other
# generator choice gets a column of its own, named `<operator>.<parameter>`.
NO_PREPROCESSING = "none"
_PARAMETER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def describe_config(config: Sequence[dict[str, Any]]) -> tuple[str, str | None, int | None]:
    """(preprocessing, model, n_components) of a config (`PipelineConfig.to_template()`,
    a result's `config`): the preprocessing steps' labels joined as in the result's name
    (`snv-sg1`, `none` without any), the model's operator label (`pls`), and its number of
    latent variables when it has one (set or default), else None."""
    return _describe(config, get_operator)


def _describe(config: Sequence[dict[str, Any]], operator_of: Any) -> tuple:
    steps = [(op, params or {}) for step in config for op, params in step.items()]
    if not steps:
        return NO_PREPROCESSING, None, None
    *before, (last_op, last_params) = steps
    labels = (_operator_label(operator_of(op), params) for op, params in before)
    preprocessing = "-".join(labels) or NO_PREPROCESSING
    operator = operator_of(last_op)
    components = last_params.get("n_components")
    if components is None and operator.key_param == "n_components":
        components = operator.key_default
    if isinstance(components, bool) or not isinstance(components, int):
        components = None
    return preprocessing, operator.label, components


def choice_columns(config: Sequence[dict[str, Any]], choices: dict[str, Any]) -> dict[str, Any]:
    """The generator choices `describe_config` does not show, as `{"savgol.window_length": 11}`:
    a choice of one parameter of one operator (its path ends `<operator>.<parameter>`). Choices
    of whole steps (`steps[0]`, `_or_[1]`) are the preprocessing and model columns, and the
    model's `n_components` is its own column. Values: numbers and text as they are, anything
    else as compact JSON."""
    return _choices(config, choices, {})


def _choices(
    config: Sequence[dict[str, Any]],
    choices: dict[str, Any],
    paths: dict[str, tuple[str, str] | None],
) -> dict[str, Any]:
    """`choice_columns`, with `paths`: each choice path's (operator, parameter), or None for
    a path that names no parameter, as found so far (filled here)."""
    model = None
    for step in config:  # the last step's operator
        for op in step:
            model = op
    columns: dict[str, Any] = {}
    for path, value in choices.items():
        named = paths.get(path, False)
        if named is False:
            parts = path.split(".")
            ok = len(parts) >= 2 and all(_PARAMETER.match(p) for p in parts[-2:])
            named = paths[path] = (parts[-2], parts[-1]) if ok else None
        if named is None:
            continue
        operator, parameter = named
        if operator == model and parameter == "n_components":
            continue
        if not isinstance(value, _SCALARS):
            value = json.dumps(value, sort_keys=True, separators=(",", ":"))
        columns[f"{operator}.{parameter}"] = value
    return columns


def config_columns(
    configs: Sequence[Sequence[dict[str, Any]]], choices: Sequence[dict[str, Any]]
) -> tuple[list[tuple[str, str | None, int | None]], list[dict[str, Any]]]:
    """`describe_config` and `choice_columns` of many configs (a ranked table's): the same
    answers, each distinct operator looked up and each choice path parsed once (a sweep of
    10,000 configs has a few dozen of either)."""
    operators: dict[str, Any] = {}

    def operator_of(op: str) -> Any:
        found = operators.get(op)
        if found is None:
            found = operators[op] = get_operator(op)
        return found

    paths: dict[str, tuple[str, str] | None] = {}
    described = [_describe(config, operator_of) for config in configs]
    chosen = [_choices(c, picked, paths) for c, picked in zip(configs, choices, strict=True)]
    return described, chosen
