"""nirs4all's generator language: templates that expand into many concrete structures.

Nouns: a *node* is any JSON-like value (dict, list, scalar). A *generator node* is a dict
holding one generation keyword (`_or_`, `_range_`, `_log_range_`, `_grid_`, `_zip_`,
`_chain_`, `_sample_`, `_cartesian_`) plus its modifiers (`count`, `_seed_`, `pick`,
`arrange`, ...). A *variant* is one concrete structure with no generator node left, plus the
*choices* that produced it, keyed by the path of each generator node (`steps[1].pls.n_components`).

Keywords and semantics follow nirs4all (nirs4all/pipeline/config/_generator/), so a nirs4all
user's template expands to the same values in the same order: independent generator nodes
combine as a Cartesian product, `pick` gives combinations, `arrange` permutations, `count`
samples with `random.Random(seed).sample`. Where nirs4all silently produces nothing or junk
(zip of unequal lengths, pick larger than the alternatives, unknown keys), we raise a
`TemplateError` whose message starts with the path to the bad node.

Design: docs/DESIGN.md, "Concepts".
"""

from __future__ import annotations

import difflib
import itertools
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from n4afs_core.errors import TemplateError

MAX_VARIANTS = 100_000
"""Above this a template is almost surely a mistake (and would take weeks to run)."""

DEFAULT_SEED = 0
"""nirs4all samples with an unseeded RNG when no seed is given; we must be reproducible."""

GENERATORS = (
    "_or_",
    "_range_",
    "_log_range_",
    "_grid_",
    "_zip_",
    "_chain_",
    "_sample_",
    "_cartesian_",
)
_CONSTRAINTS = frozenset({"_mutex_", "_requires_", "_exclude_"})
_COMMON = frozenset({"count", "_seed_"})
_MODIFIERS: dict[str, frozenset[str]] = {
    "_or_": _COMMON | _CONSTRAINTS | {"pick", "arrange", "then_pick", "then_arrange", "_weights_"},
    "_range_": _COMMON,
    "_log_range_": _COMMON,
    "_grid_": _COMMON,
    "_zip_": _COMMON,
    "_chain_": _COMMON,
    "_sample_": _COMMON,
    "_cartesian_": _COMMON | _CONSTRAINTS | {"pick", "arrange"},
}
KNOWN_KEYWORDS = tuple(sorted(set(GENERATORS) | {"_seed_", "_weights_"} | _CONSTRAINTS))
_NIRS4ALL_ONLY = frozenset({"_tags_", "_metadata_", "_depends_on_", "_preset_"})
_KEYWORD_RE = re.compile(r"_[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*_")
_DISTRIBUTIONS = ("uniform", "log_uniform", "normal", "gaussian", "choice")


@dataclass(frozen=True)
class Variant:
    """One concrete expansion of a node and the generator choices behind it."""

    value: Any
    choices: dict[str, Any]


# --------------------------------------------------------------------------- errors, paths


def template_error(path: str, reason: str, cls: type[TemplateError] = TemplateError):
    """Build an error whose message starts with the node path; keep both parts for re-prefixing.

    An empty path (the whole input, or a file that does not parse) leaves just the reason.
    """
    err = cls(f"{path}: {reason}" if path else reason)
    err.path = path
    err.reason = reason
    return err


def _fail(path: str, reason: str) -> NoReturn:
    raise template_error(path, reason)


def join_path(prefix: str, path: str) -> str:
    """`templates[1]` + `steps[2]` -> `templates[1].steps[2]`; `a` + `[0]` -> `a[0]`."""
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def with_prefix(err: TemplateError, prefix: str) -> TemplateError:
    """Re-issue `err` (same class) with `prefix` in front of its node path."""
    path = getattr(err, "path", "")
    reason = getattr(err, "reason", str(err))
    return template_error(join_path(prefix, path), reason, type(err))


def key_path(path: str, key: Any) -> str:
    """Dict keys that are identifiers read as `.key`; others (class paths, ints) as `['a.b']`."""
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _index_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


# --------------------------------------------------------------------------- public API


def expand(node: Any, path: str = "", *, seed: int | None = None) -> list[Variant]:
    """Every concrete variant of `node`, in nirs4all's order.

    `seed` is the fallback for generators without `_seed_` (nirs4all's `random_state`);
    without either, sampling uses DEFAULT_SEED so the same template always gives the same runs.
    """
    check_variant_count(node, path)
    return [Variant(_fresh(v.value), _fresh(v.choices)) for v in _expand(node, path, seed)]


def check_variant_count(node: Any, path: str = "") -> int:
    """The variant count, or a TemplateError if it is above MAX_VARIANTS (validates syntax too)."""
    total = count_variants(node, path)
    if total > MAX_VARIANTS:
        _fail(
            path,
            f"expands to {total:,} variants, more than the {MAX_VARIANTS:,} limit; "
            "sample with `count: N` (and `_seed_`) on a generator, or narrow a _range_/_or_",
        )
    return total


def count_variants(node: Any, path: str = "") -> int:
    """How many variants `expand` returns, computed without materializing them when possible."""
    if isinstance(node, (list, tuple)):
        return math.prod(_count(item, _index_path(path, i)) for i, item in enumerate(node))
    if not isinstance(node, dict):
        return 1
    generator = _generator_of(node, path)
    if generator is None:
        return math.prod(_count(v, key_path(path, k)) for k, v in node.items())
    if _is_mixed_or(node, generator):
        base, or_node = _split_mixed_or(node)
        return count_variants(base, path) * count_variants(or_node, path)
    full = _COUNTERS[generator](node, path)
    if full == 0:
        _fail(path, f"{generator} produces no variants; check its sizes and constraints")
    return _limited(full, _count_limit(node, path))


_count = count_variants


def has_generator(node: Any) -> bool:
    """True if any generator keyword appears anywhere in `node`."""
    if isinstance(node, dict):
        return any(k in GENERATORS for k in node) or any(has_generator(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(has_generator(item) for item in node)
    return False


# --------------------------------------------------------------------------- dispatch


def _expand(node: Any, path: str, seed: int | None) -> list[Variant]:
    if isinstance(node, (list, tuple)):
        parts = [_expand(item, _index_path(path, i), seed) for i, item in enumerate(node)]
        return [Variant(values, choices) for values, choices in _product(parts)]
    if not isinstance(node, dict):
        return [Variant(node, {})]
    generator = _generator_of(node, path)
    if generator is None:
        return _expand_plain_dict(node, path, seed)
    if _is_mixed_or(node, generator):
        return _expand_mixed_or(node, path, seed)
    _check_population(node, path, generator)
    return _EXPANDERS[generator](node, path, seed)


def _expand_plain_dict(node: dict, path: str, seed: int | None) -> list[Variant]:
    keys = list(node)
    parts = [_expand(node[k], key_path(path, k), seed) for k in keys]
    return [Variant(dict(zip(keys, values, strict=True)), ch) for values, ch in _product(parts)]


def _product(parts: list[list[Variant]]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """Cartesian product of independent variant lists, merging their choices in order."""
    for combo in itertools.product(*parts):
        choices: dict[str, Any] = {}
        for variant in combo:
            choices.update(variant.choices)
        yield [v.value for v in combo], choices


def _generator_of(node: dict, path: str) -> str | None:
    """The node's generation keyword (None for a plain dict); rejects unknown `_xxx_` keys."""
    for key in node:
        if isinstance(key, str) and _KEYWORD_RE.fullmatch(key) and key not in KNOWN_KEYWORDS:
            _fail(key_path(path, key), _unknown_keyword_reason(key))
    found = [k for k in node if k in GENERATORS]
    if len(found) > 1:
        _fail(path, f"one generator per mapping, found {', '.join(found)}; nest them instead")
    if not found:
        stray = [k for k in node if k in KNOWN_KEYWORDS]
        if stray:
            _fail(key_path(path, stray[0]), "only applies inside a generator node")
        return None
    generator = found[0]
    extra = [k for k in node if k != generator and k not in _MODIFIERS[generator]]
    if extra and generator != "_or_":
        allowed = ", ".join(sorted(_MODIFIERS[generator]))
        _fail(
            path,
            f"unexpected key(s) {', '.join(map(str, extra))} in a {generator} node; "
            f"allowed: {allowed}",
        )
    return generator


def _unknown_keyword_reason(key: str) -> str:
    if key in _NIRS4ALL_ONLY:
        return f"nirs4all keyword {key} is not supported by n4afs"
    close = difflib.get_close_matches(key, KNOWN_KEYWORDS, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown keyword {key}; {hint}known keywords: {', '.join(KNOWN_KEYWORDS)}"


def _check_population(node: dict, path: str, generator: str) -> None:
    """`count` samples from the full population, so that population must itself be sane."""
    if _count_limit(node, path) is None:
        return  # the top-level total already bounds this node
    full = _COUNTERS[generator](node, path)
    if full > MAX_VARIANTS:
        _fail(
            path,
            f"samples from {full:,} variants, more than the {MAX_VARIANTS:,} limit; "
            "narrow the generator before sampling it",
        )


# --------------------------------------------------------------------------- modifiers


def _int_option(node: dict, key: str, path: str) -> int | None:
    value = node.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key_path(path, key), f"must be an integer (got {value!r})")
    return value


def _count_limit(node: dict, path: str) -> int | None:
    """nirs4all: `count` <= 0 means no limit."""
    count = _int_option(node, "count", path)
    return count if count is not None and count > 0 else None


def _limited(total: int, limit: int | None) -> int:
    return total if limit is None else min(total, limit)


def _node_seed(node: dict, path: str, seed: int | None) -> int | None:
    own = _int_option(node, "_seed_", path)
    return own if own is not None else seed


def _sample(items: list, node: dict, path: str, seed: int | None) -> list:
    """nirs4all's sample_with_seed: `Random(seed).sample`, in the sampled order."""
    limit = _count_limit(node, path)
    if limit is None or len(items) <= limit:
        return items
    effective = _node_seed(node, path, seed)
    rng = random.Random(DEFAULT_SEED if effective is None else effective)
    return rng.sample(items, limit)


def _size_spec(node: dict, key: str, path: str) -> tuple[int, int] | None:
    """`pick: 2` -> (2, 2); `pick: [1, 3]` -> (1, 3) (nirs4all's size spec)."""
    spec = node.get(key)
    if spec is None:
        return None
    where = key_path(path, key)
    if isinstance(spec, int) and not isinstance(spec, bool):
        low, high = spec, spec
    elif isinstance(spec, (list, tuple)) and len(spec) == 2 and all(_is_int(x) for x in spec):
        low, high = spec
    else:
        _fail(where, f"must be an integer or [from, to] (got {spec!r})")
    if low < 0 or low > high:
        _fail(where, f"must be >= 0 with from <= to (got {spec!r})")
    return low, high


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fresh(value: Any) -> Any:
    """Copy containers so no two variants (or the template) share a mutable list or dict."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_fresh(v) for v in value]
    return value


# --------------------------------------------------------------------------- _or_


@dataclass(frozen=True)
class _OrSpec:
    choices: list
    mode: str  # "one", "pick" or "arrange"
    sizes: tuple[int, int]
    then_mode: str | None
    then_sizes: tuple[int, int] | None


def _parse_or(node: dict, path: str) -> _OrSpec:
    choices = node["_or_"]
    where = key_path(path, "_or_")
    if not isinstance(choices, (list, tuple)):
        _fail(where, f"must be a list of alternatives (got {type(choices).__name__})")
    if not choices:
        _fail(where, "needs at least one alternative")
    mode, sizes = _selection(node, path, ("pick", "arrange"))
    then_mode, then_sizes = _selection(node, path, ("then_pick", "then_arrange"))
    if then_mode and mode == "one":
        _fail(key_path(path, f"then_{then_mode}"), "needs pick or arrange first")
    if mode != "one" and sizes[0] > len(choices):
        _fail(key_path(path, mode), f"{mode} {sizes[0]} but only {len(choices)} alternatives")
    if then_mode and any(has_generator(c) for c in choices):
        _fail(key_path(path, f"then_{then_mode}"), "alternatives may not contain generators here")
    return _OrSpec(list(choices), mode, sizes, then_mode, then_sizes)


def _selection(node: dict, path: str, keys: tuple[str, str]) -> tuple[Any, Any]:
    specs = {k: _size_spec(node, k, path) for k in keys if k in node}
    if len(specs) > 1:
        _fail(path, f"use {keys[0]} or {keys[1]}, not both")
    if not specs:
        return ("one", (1, 1)) if keys[0] == "pick" else (None, None)
    ((key, sizes),) = specs.items()
    return key.removeprefix("then_"), sizes


def _count_or(node: dict, path: str) -> int:
    spec = _parse_or(node, path)
    if _has_constraints(node):
        _check_constraint_bound(node, path, spec)
        return len(_expand_or_unsampled(node, path, None, spec))
    return _count_or_unconstrained(spec, path)


def _count_or_unconstrained(spec: _OrSpec, path: str) -> int:
    where = key_path(path, "_or_")
    counts = [_count(c, _index_path(where, i)) for i, c in enumerate(spec.choices)]
    if spec.mode == "one":
        return sum(counts)
    if spec.then_mode:
        primary = _uniform_selection_count(len(counts), spec.mode, spec.sizes)
        return _uniform_selection_count(primary, spec.then_mode, spec.then_sizes)
    return _selection_count(counts, spec.mode, spec.sizes)


def _uniform_selection_count(n: int, mode: str, sizes: tuple[int, int]) -> int:
    """Combinations or permutations of n distinct single-variant items, summed over sizes."""
    select = math.perm if mode == "arrange" else math.comb
    return sum(select(n, k) for k in range(sizes[0], min(sizes[1], n) + 1))


def _selection_count(counts: list[int], mode: str, sizes: tuple[int, int]) -> int:
    """Combinations (or permutations) of distinct items, each item standing for counts[i] variants.

    The sum over k-subsets of the product of counts is the elementary symmetric polynomial e_k.
    """
    n = len(counts)
    elementary = [1] + [0] * n
    for c in counts:
        for k in range(n, 0, -1):
            elementary[k] += elementary[k - 1] * c
    sizes_in_range = range(sizes[0], min(sizes[1], n) + 1)
    factor: Callable[[int], int] = math.factorial if mode == "arrange" else (lambda k: 1)
    return sum(elementary[k] * factor(k) for k in sizes_in_range)


def _expand_or(node: dict, path: str, seed: int | None) -> list[Variant]:
    spec = _parse_or(node, path)
    variants = _expand_or_unsampled(node, path, seed, spec)
    weights = node.get("_weights_")
    if weights is not None:
        return _weighted_sample(variants, node, path, seed, spec)
    return _sample(variants, node, path, seed)


def _expand_or_unsampled(node: dict, path: str, seed: int | None, spec: _OrSpec) -> list:
    if spec.mode == "one":
        variants = _expand_alternatives(spec.choices, path, seed)
    elif spec.then_mode:
        variants = _expand_second_order(spec, path)
    else:
        variants = _expand_selection(spec, path, seed)
    return _apply_constraints(variants, node, path) if _has_constraints(node) else variants


def _expand_alternatives(choices: list, path: str, seed: int | None) -> list[Variant]:
    where = key_path(path, "_or_")
    out = []
    for i, choice in enumerate(choices):
        for v in _expand(choice, _index_path(where, i), seed):
            out.append(Variant(v.value, {path: v.value, **v.choices}))
    return out


def _combos(n: int, mode: str, sizes: tuple[int, int]) -> Iterator[tuple[int, ...]]:
    select = itertools.permutations if mode == "arrange" else itertools.combinations
    for size in range(sizes[0], min(sizes[1], n) + 1):
        yield from select(range(n), size)


def _expand_selection(spec: _OrSpec, path: str, seed: int | None) -> list[Variant]:
    """pick/arrange: each combination of alternatives, crossed with their own expansions."""
    where = key_path(path, "_or_")
    expanded = [_expand(c, _index_path(where, i), seed) for i, c in enumerate(spec.choices)]
    out = []
    for combo in _combos(len(spec.choices), spec.mode, spec.sizes):
        for values, choices in _product([expanded[i] for i in combo]):
            out.append(Variant(values, {path: values, **choices}))
    return out


def _expand_second_order(spec: _OrSpec, path: str) -> list[Variant]:
    """nirs4all's then_pick/then_arrange: select groups first, then select among the groups."""
    n = len(spec.choices)
    primary = []
    for combo in _combos(n, spec.mode, spec.sizes):
        items = [spec.choices[i] for i in combo]
        primary.append(items[0] if len(items) == 1 else items)
    out = []
    for combo in _combos(len(primary), spec.then_mode, spec.then_sizes):
        values = [primary[i] for i in combo]
        out.append(Variant(values, {path: values}))
    return out


def _weighted_sample(variants: list, node: dict, path: str, seed, spec: _OrSpec) -> list:
    """nirs4all's weighted sampling without replacement (sequential roulette)."""
    weights = node["_weights_"]
    where = key_path(path, "_weights_")
    if spec.mode != "one":
        _fail(where, "only works with a plain _or_ and count, not with pick/arrange")
    ok = isinstance(weights, list) and all(_is_number(w) and w >= 0 for w in weights)
    if not ok or len(weights) != len(spec.choices):
        _fail(where, f"must be {len(spec.choices)} non-negative numbers, one per alternative")
    if len(variants) != len(weights):
        _fail(where, "needs one variant per alternative (an alternative holds a generator)")
    limit = _count_limit(node, path)
    if limit is None or limit >= len(variants):
        return variants
    effective = _node_seed(node, path, seed)
    rng = random.Random(DEFAULT_SEED if effective is None else effective)
    return [variants[i] for i in _roulette(list(weights), limit, rng)]


def _roulette(weights: list[float], k: int, rng: random.Random) -> list[int]:
    remaining = list(range(len(weights)))
    picked = []
    for _ in range(k):
        total = sum(weights[i] for i in remaining)
        if total <= 0:
            index = rng.choice(remaining)
        else:
            threshold, cumulative, index = rng.random() * total, 0.0, remaining[0]
            for i in remaining:
                cumulative += weights[i]
                if cumulative >= threshold:
                    index = i
                    break
        picked.append(index)
        remaining.remove(index)
    return picked


def _is_mixed_or(node: dict, generator: str) -> bool:
    return generator == "_or_" and any(k not in _MODIFIERS["_or_"] and k != "_or_" for k in node)


def _split_mixed_or(node: dict) -> tuple[dict, dict]:
    or_keys = _MODIFIERS["_or_"] | {"_or_"}
    base = {k: v for k, v in node.items() if k not in or_keys}
    return base, {k: v for k, v in node.items() if k in or_keys}


def _expand_mixed_or(node: dict, path: str, seed: int | None) -> list[Variant]:
    """nirs4all: `{"_or_": [{a: 1}, {a: 2}], "b": 3}` merges each dict choice into the base."""
    base, or_node = _split_mixed_or(node)
    bases = _expand_plain_dict(base, path, seed)
    options = _expand(or_node, path, seed)
    out = []
    for b in bases:
        for option in options:
            if not isinstance(option.value, dict):
                _fail(
                    key_path(path, "_or_"),
                    f"alternatives next to other keys must be mappings (got {option.value!r})",
                )
            out.append(Variant({**b.value, **option.value}, {**b.choices, **option.choices}))
    return out


# --------------------------------------------------------------------------- constraints


def _has_constraints(node: dict) -> bool:
    return any(k in node for k in _CONSTRAINTS)


def _check_constraint_bound(node: dict, path: str, spec: _OrSpec) -> None:
    if spec.mode == "one":
        _fail(path, "_mutex_/_requires_/_exclude_ need pick or arrange")
    bound = _count_or_unconstrained(spec, path)
    if bound > MAX_VARIANTS:
        _fail(path, f"filters {bound:,} combinations, more than the {MAX_VARIANTS:,} limit")


def _hashable(item: Any) -> Any:
    """nirs4all's _normalize_item: compare dicts and lists by value."""
    if isinstance(item, dict):
        return frozenset((k, _hashable(v)) for k, v in item.items())
    if isinstance(item, (list, tuple)):
        return tuple(_hashable(v) for v in item)
    return item


def _constraint_groups(node: dict, key: str, path: str) -> list[list]:
    groups = node.get(key) or []
    valid = isinstance(groups, list) and all(isinstance(g, list) for g in groups)
    if not valid:
        _fail(key_path(path, key), f"must be a list of lists (got {groups!r})")
    if key == "_requires_" and any(len(g) < 2 for g in groups):
        _fail(key_path(path, key), "each entry is [item, required, ...] with at least 2 items")
    return [[_hashable(x) for x in group] for group in groups]


@dataclass(frozen=True)
class _Constraints:
    """nirs4all's constraints: mutex groups never all present; [a, b...]: a needs b...;
    exclude: these exact sets are dropped."""

    mutex: list[frozenset]
    requires: list[tuple[Any, frozenset]]
    exclude: set[frozenset]

    def allows(self, items: list) -> bool:
        present = frozenset(_hashable(x) for x in items)
        if any(group <= present for group in self.mutex):
            return False
        if any(trigger in present and not needed <= present for trigger, needed in self.requires):
            return False
        return present not in self.exclude


def _parse_constraints(node: dict, path: str) -> _Constraints:
    mutex = [frozenset(g) for g in _constraint_groups(node, "_mutex_", path)]
    requires = [(g[0], frozenset(g[1:])) for g in _constraint_groups(node, "_requires_", path)]
    exclude = {frozenset(g) for g in _constraint_groups(node, "_exclude_", path)}
    return _Constraints(mutex, requires, exclude)


def _apply_constraints(variants: list[Variant], node: dict, path: str) -> list[Variant]:
    constraints = _parse_constraints(node, path)
    return [v for v in variants if constraints.allows(v.value)]


# --------------------------------------------------------------------------- _range_


def _range_bounds(node: dict, path: str) -> tuple[Any, Any, Any]:
    spec = node["_range_"]
    where = key_path(path, "_range_")
    if isinstance(spec, (list, tuple)) and len(spec) in (2, 3):
        start, end, step = (*spec, 1) if len(spec) == 2 else spec
    elif isinstance(spec, dict) and {"from", "to"} <= set(spec) <= {"from", "to", "step"}:
        start, end, step = spec["from"], spec["to"], spec.get("step", 1)
    else:
        _fail(where, f"must be [from, to], [from, to, step] or {{from, to, step}} (got {spec!r})")
    if not all(_is_number(x) for x in (start, end, step)):
        _fail(where, f"from, to and step must be numbers (got {spec!r})")
    if step == 0:
        _fail(where, f"step must not be 0 (got {spec!r})")
    if (start > end and step > 0) or (start < end and step < 0):
        direction = "up" if step > 0 else "down"
        _fail(where, f"is empty: step {step} counts {direction} from {start}, away from {end}")
    return start, end, step


def _range_values(start: Any, end: Any, step: Any) -> list:
    """nirs4all: `to` is inclusive in either direction; float ranges round to 10 decimals."""
    if all(_is_int(x) for x in (start, end, step)):
        return list(range(start, end + (1 if step > 0 else -1), step))
    values, current, sign = [], start, 1 if step > 0 else -1
    while sign * current <= sign * end + 1e-10:
        values.append(round(current, 10))
        current += step
    return values


def _count_range(node: dict, path: str) -> int:
    start, end, step = _range_bounds(node, path)
    if all(_is_int(x) for x in (start, end, step)):
        return (end - start) // step + 1
    estimate = int((end - start) / step) + 1
    if estimate > MAX_VARIANTS:
        return estimate
    return len(_range_values(start, end, step))


def _expand_range(node: dict, path: str, seed: int | None) -> list[Variant]:
    values = _range_values(*_range_bounds(node, path))
    return _sample([Variant(v, {path: v}) for v in values], node, path, seed)


# --------------------------------------------------------------------------- _log_range_


def _log_range_spec(node: dict, path: str) -> tuple[float, float, int, float]:
    spec = node["_log_range_"]
    where = key_path(path, "_log_range_")
    if isinstance(spec, (list, tuple)) and len(spec) == 3:
        (start, end, num), base = spec, 10
    elif isinstance(spec, dict) and {"from", "to"} <= set(spec) <= {"from", "to", "num", "base"}:
        start, end = spec["from"], spec["to"]
        num, base = spec.get("num", 10), spec.get("base", 10)
    else:
        _fail(where, f"must be [from, to, num] or {{from, to, num, base}} (got {spec!r})")
    if not (_is_number(start) and _is_number(end) and start > 0 and end > 0):
        _fail(where, f"from and to must be positive numbers (got {start!r}, {end!r})")
    if not _is_int(num) or num < 1:
        _fail(where, f"num must be an integer >= 1 (got {num!r})")
    if not _is_number(base) or base <= 0 or base == 1:
        _fail(where, f"base must be a positive number other than 1 (got {base!r})")
    return start, end, num, base


def _log_range_values(start: float, end: float, num: int, base: float) -> list[float]:
    """nirs4all: base ** (evenly spaced exponents), rounded to 10 decimals."""
    if num == 1:
        return [float(start)]
    low, high = math.log(start, base), math.log(end, base)
    step = (high - low) / (num - 1)
    return [round(base ** (low + i * step), 10) for i in range(num)]


def _count_log_range(node: dict, path: str) -> int:
    return _log_range_spec(node, path)[2]


def _expand_log_range(node: dict, path: str, seed: int | None) -> list[Variant]:
    values = _log_range_values(*_log_range_spec(node, path))
    return _sample([Variant(v, {path: v}) for v in values], node, path, seed)


# --------------------------------------------------------------------------- _grid_, _zip_


def _param_lists(node: dict, keyword: str, path: str) -> dict[str, Any]:
    spec = node[keyword]
    if not isinstance(spec, dict):
        _fail(key_path(path, keyword), f"must map parameter -> values (got {spec!r})")
    for key in spec:
        if not isinstance(key, str):
            _fail(key_path(path, keyword), f"parameter names must be strings (got {key!r})")
    return spec


def _param_values(values: Any, path: str, seed: int | None) -> list[Variant]:
    """A list is the candidate values (each may be a generator); a dict is one generator node."""
    if isinstance(values, (list, tuple)):
        return [
            v for i, item in enumerate(values) for v in _expand(item, _index_path(path, i), seed)
        ]
    return _expand(values, path, seed)


def _count_param_values(values: Any, path: str) -> int:
    if isinstance(values, (list, tuple)):
        return sum(_count(item, _index_path(path, i)) for i, item in enumerate(values))
    return _count(values, path)


def _count_grid(node: dict, path: str) -> int:
    spec = _param_lists(node, "_grid_", path)
    where = key_path(path, "_grid_")
    return math.prod(_count_param_values(v, key_path(where, k)) for k, v in spec.items())


def _expand_grid(node: dict, path: str, seed: int | None) -> list[Variant]:
    spec = _param_lists(node, "_grid_", path)
    where = key_path(path, "_grid_")
    keys = list(spec)
    parts = [_param_values(spec[k], key_path(where, k), seed) for k in keys]
    out = []
    for values, choices in _product(parts):
        value = dict(zip(keys, values, strict=True))
        out.append(Variant(value, {path: value, **choices}))
    return _sample(out, node, path, seed)


def _zip_positions(node: dict, path: str) -> dict[str, tuple[list, bool]]:
    """Each parameter's positions as written, as nirs4all pairs them.

    A list pairs by its written items (a generator inside an item varies within that
    position); a generator node as the whole value pairs by the values it expands to.
    The flag says which: True for a generator node.
    """
    spec = _param_lists(node, "_zip_", path)
    where = key_path(path, "_zip_")
    positions: dict[str, tuple[list, bool]] = {}
    for key, values in spec.items():
        if isinstance(values, (list, tuple)):
            positions[key] = (list(values), False)
        elif isinstance(values, dict) and _generator_of(values, key_path(where, key)):
            positions[key] = ([values], True)
        else:
            positions[key] = ([values], False)
    return positions


def _zip_length(node: dict, path: str) -> int:
    where = key_path(path, "_zip_")
    positions = _zip_positions(node, path)
    lengths = {
        key: _count(items[0], key_path(where, key)) if generated else len(items)
        for key, (items, generated) in positions.items()
    }
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        hint = ""
        if any(has_generator(items) for items, generated in positions.values() if not generated):
            hint = (
                "; a generator inside a list is one position, as a whole value it pairs its values"
            )
        _fail(where, f"pairs values by position, so every parameter needs as many ({shown}){hint}")
    return next(iter(lengths.values()), 1)


def _zip_columns(node: dict, path: str, seed: int | None) -> dict[str, list[list[Variant]]]:
    """Per parameter, per position: the variants that position takes."""
    where = key_path(path, "_zip_")
    columns = {}
    for key, (items, generated) in _zip_positions(node, path).items():
        at = key_path(where, key)
        if generated:
            columns[key] = [[v] for v in _expand(items[0], at, seed)]
        else:
            columns[key] = [_expand(item, _index_path(at, i), seed) for i, item in enumerate(items)]
    return columns


def _count_zip(node: dict, path: str) -> int:
    where = key_path(path, "_zip_")
    length = _zip_length(node, path)
    total = 0
    for i in range(length):
        counts = [
            1 if generated else _count(items[i], _index_path(key_path(where, key), i))
            for key, (items, generated) in _zip_positions(node, path).items()
        ]
        total += math.prod(counts)
    return total


def _expand_zip(node: dict, path: str, seed: int | None) -> list[Variant]:
    length = _zip_length(node, path)
    columns = _zip_columns(node, path, seed)
    keys = list(columns)
    out = []
    for i in range(length):
        for values, nested in _product([columns[k][i] for k in keys]):
            value = dict(zip(keys, values, strict=True))
            out.append(Variant(value, {path: value, **nested}))
    return _sample(out, node, path, seed)


# --------------------------------------------------------------------------- _chain_


def _chain_items(node: dict, path: str) -> list:
    items = node["_chain_"]
    if not isinstance(items, (list, tuple)) or not items:
        _fail(key_path(path, "_chain_"), f"must be a non-empty list (got {items!r})")
    return list(items)


def _count_chain(node: dict, path: str) -> int:
    where = key_path(path, "_chain_")
    return sum(
        _count(item, _index_path(where, i)) for i, item in enumerate(_chain_items(node, path))
    )


def _expand_chain(node: dict, path: str, seed: int | None) -> list[Variant]:
    """Ordered alternatives; nirs4all's `count` keeps the first n unless a seed is given."""
    where = key_path(path, "_chain_")
    out = []
    for i, item in enumerate(_chain_items(node, path)):
        for v in _expand(item, _index_path(where, i), seed):
            out.append(Variant(v.value, {path: v.value, **v.choices}))
    limit = _count_limit(node, path)
    if limit is not None and _node_seed(node, path, seed) is None:
        return out[:limit]
    return _sample(out, node, path, seed)


# --------------------------------------------------------------------------- _sample_


def _sample_spec(node: dict, path: str) -> tuple[dict, str, int]:
    spec = node["_sample_"]
    where = key_path(path, "_sample_")
    if not isinstance(spec, dict):
        _fail(where, f"must be a mapping with distribution and num (got {spec!r})")
    distribution = spec.get("distribution", "uniform")
    if distribution not in _DISTRIBUTIONS:
        _fail(where, f"unknown distribution {distribution!r}; known: {', '.join(_DISTRIBUTIONS)}")
    num = spec.get("num", 10)
    if not _is_int(num) or num < 1:
        _fail(where, f"num must be an integer >= 1 (got {num!r})")
    _check_sample_params(spec, distribution, where)
    return spec, distribution, num


def _check_sample_params(spec: dict, distribution: str, where: str) -> None:
    numeric = ("mean", "std") if distribution in ("normal", "gaussian") else ("from", "to")
    for key in numeric:
        if key in spec and not _is_number(spec[key]):
            _fail(where, f"{key} must be a number (got {spec[key]!r})")
    if distribution == "log_uniform" and min(spec.get("from", 0.001), spec.get("to", 1)) <= 0:
        _fail(where, "log_uniform needs positive from and to")
    if distribution == "choice" and not (isinstance(spec.get("values"), list) and spec["values"]):
        _fail(where, "choice needs a non-empty values list")


def _count_sample(node: dict, path: str) -> int:
    return _sample_spec(node, path)[2]


def _draw(spec: dict, distribution: str, rng: random.Random) -> Any:
    """One draw, exactly as nirs4all's SampleStrategy (12 significant digits)."""
    if distribution == "uniform":
        return float(f"{rng.uniform(spec.get('from', 0), spec.get('to', 1)):.12g}")
    if distribution == "log_uniform":
        low, high = math.log(spec.get("from", 0.001)), math.log(spec.get("to", 1))
        return float(f"{math.exp(rng.uniform(low, high)):.12g}")
    if distribution == "choice":
        return rng.choice(spec["values"])
    return float(f"{rng.gauss(spec.get('mean', 0), spec.get('std', 1)):.12g}")


def _expand_sample(node: dict, path: str, seed: int | None) -> list[Variant]:
    spec, distribution, num = _sample_spec(node, path)
    num = _limited(num, _count_limit(node, path))
    effective = _node_seed(node, path, seed)
    rng = random.Random(DEFAULT_SEED if effective is None else effective)
    values = [_draw(spec, distribution, rng) for _ in range(num)]
    return [Variant(v, {path: v}) for v in values]


# --------------------------------------------------------------------------- _cartesian_


def _cartesian_parts(node: dict, path: str) -> tuple[list, str, tuple[int, int]]:
    stages = node["_cartesian_"]
    if not isinstance(stages, (list, tuple)):
        _fail(key_path(path, "_cartesian_"), f"must be a list of stages (got {stages!r})")
    mode, sizes = _selection(node, path, ("pick", "arrange"))
    return list(stages), mode, sizes


def _count_cartesian(node: dict, path: str) -> int:
    stages, mode, sizes = _cartesian_parts(node, path)
    where = key_path(path, "_cartesian_")
    pipelines = math.prod(_count(s, _index_path(where, i)) for i, s in enumerate(stages))
    if _has_constraints(node):
        if pipelines > MAX_VARIANTS:
            _fail(path, f"filters {pipelines:,} pipelines, more than the {MAX_VARIANTS:,} limit")
        return len(_expand_cartesian_unsampled(node, path, None))
    if mode == "one":
        return pipelines
    return _uniform_selection_count(pipelines, mode, sizes)


def _expand_cartesian_unsampled(node: dict, path: str, seed: int | None) -> list[Variant]:
    """nirs4all: the stages multiply into whole pipelines; pick/arrange selects among those."""
    stages, mode, sizes = _cartesian_parts(node, path)
    where = key_path(path, "_cartesian_")
    parts = [_expand(s, _index_path(where, i), seed) for i, s in enumerate(stages)]
    pipelines = [Variant(values, {path: values, **ch}) for values, ch in _product(parts)]
    if mode != "one":
        selected = _combos(len(pipelines), mode, sizes)
        values_list = [[pipelines[i].value for i in combo] for combo in selected]
        pipelines = [Variant(values, {path: values}) for values in values_list]
    if _has_constraints(node):
        return _apply_constraints(pipelines, node, path)
    return pipelines


def _expand_cartesian(node: dict, path: str, seed: int | None) -> list[Variant]:
    return _sample(_expand_cartesian_unsampled(node, path, seed), node, path, seed)


_COUNTERS: dict[str, Callable[[dict, str], int]] = {
    "_or_": _count_or,
    "_range_": _count_range,
    "_log_range_": _count_log_range,
    "_grid_": _count_grid,
    "_zip_": _count_zip,
    "_chain_": _count_chain,
    "_sample_": _count_sample,
    "_cartesian_": _count_cartesian,
}
_EXPANDERS: dict[str, Callable[[dict, str, int | None], list[Variant]]] = {
    "_or_": _expand_or,
    "_range_": _expand_range,
    "_log_range_": _expand_log_range,
    "_grid_": _expand_grid,
    "_zip_": _expand_zip,
    "_chain_": _expand_chain,
    "_sample_": _expand_sample,
    "_cartesian_": _expand_cartesian,
}
