"""Column roles: which column of a dataset file holds spectra, a target, the sample id,
metadata, the group, or nothing we keep.

The rule, in this order:

1. **Asked roles first.** `targets` (`--target`), `sample_id` (`--id`), `meta` (`--meta`),
   `ignore` (`--ignore`) and `group` (`--group`) name columns; each must exist and a column
   takes one role.
2. **Spectra**: a column whose header is a number is a wavelength (`1100`, `1100.5`, and
   `1100,5` in a decimal-comma file).
3. **Sample id**: a column named `sample_id`, `sample`, `id`, `sampleid` or `sample id`
   (any case). **Group**: a column named `group`, `sample_group` or `sample_no` names the
   physical sample of replicate scans; it is a metadata column too.
4. **The other columns** hold numbers (every non-empty cell is a number), text, both, or
   nothing (every cell empty: ignored).
   - Targets asked: no other column is a target, and none is a feature: each is kept as
     metadata, typed. Numeric columns left out this way are listed as `not_targets`.
   - No target asked: number columns are the targets, text columns metadata. **A text
     column is never a target unless asked**, except in a classification file, whose one
     column besides the spectra (and id, group, asked metadata) is its text label.
5. **Ambiguous files fail**, storing nothing, with one error that lists every column, the
   role it got and the option that gives it another: no target found, two text columns
   that could each be the label, a column of numbers with some text (`n.d.`), no spectra.
6. A table with no wavelength header at all (a DataFrame of named features) whose targets
   are asked: the columns left over are its spectra, as they were before roles existed.

Reading files is `core/data/readers.py`; building the dataset from the roles is
`core/data/datasets.py`. Design: docs/DESIGN.md, "Concepts".
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from n4afs_core.errors import DatasetError

SAMPLE_ID_NAMES = ("sample_id", "sample", "id", "sampleid", "sample id")
GROUP_NAMES = ("group", "sample_group", "sample_no")
ROLES = ("spectra", "target", "id", "meta", "group", "ignore")
OPTION = {"target": "--target", "id": "--id", "meta": "--meta", "ignore": "--ignore"}
OPTION["group"] = "--group"


@dataclass(frozen=True)
class Asked:
    """The roles a user set (`datasets add --target/--id/--meta/--ignore/--group`)."""

    targets: tuple[str, ...] = ()
    sample_id: str | None = None
    meta: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    group: str | None = None

    @classmethod
    def of(
        cls,
        targets: Sequence[str] | None = None,
        sample_id: str | None = None,
        meta: Sequence[str] | None = None,
        ignore: Sequence[str] | None = None,
        group: str | None = None,
    ) -> Asked:
        return cls(tuple(targets or ()), sample_id, tuple(meta or ()), tuple(ignore or ()), group)

    def by_column(self) -> dict[str, str]:
        """Column name -> asked role; a column asked two roles is refused."""
        found: dict[str, str] = {}
        pairs = [("target", t) for t in self.targets] + [("meta", m) for m in self.meta]
        pairs += [("ignore", i) for i in self.ignore]
        pairs += [(role, name) for role, name in (("id", self.sample_id), ("group", self.group))]
        for role, name in pairs:
            if name is None:
                continue
            if name in found and found[name] != role:
                raise DatasetError(
                    f"column {name!r} is given two roles ({OPTION[found[name]]} and "
                    f"{OPTION[role]}); give it one"
                )
            found[name] = role
        return found


@dataclass(frozen=True)
class Column:
    index: int
    name: str
    role: str  # one of ROLES, or "?" while undecided
    kind: str  # wavelength | number | text | mixed | empty
    asked: bool = False


@dataclass(frozen=True)
class Kind:
    """What a column's cells hold; `example` is the first text cell of a mixed column."""

    kind: str
    example: tuple[int, Any] | None = None


@dataclass(frozen=True)
class Roles:
    columns: tuple[Column, ...]
    not_targets: tuple[str, ...] = ()
    kinds: dict[int, Kind] = field(default_factory=dict)
    asked_targets: tuple[str, ...] = ()  # the targets' order when asked

    def indices(self, role: str) -> list[int]:
        return [c.index for c in self.columns if c.role == role]

    @property
    def spectra(self) -> list[int]:
        return self.indices("spectra")

    @property
    def targets(self) -> list[int]:
        """In the order asked, else in file order."""
        found = {c.name: c.index for c in self.columns if c.role == "target"}
        if self.asked_targets:
            return [found[name] for name in self.asked_targets]
        return list(found.values())

    @property
    def id(self) -> int | None:
        found = self.indices("id")
        return found[0] if found else None

    @property
    def group(self) -> int | None:
        found = self.indices("group")
        return found[0] if found else None

    @property
    def metadata(self) -> list[int]:
        """Metadata columns, the group among them, in file order."""
        return [c.index for c in self.columns if c.role in ("meta", "group")]

    @property
    def ignored(self) -> list[str]:
        return [c.name for c in self.columns if c.role == "ignore"]


def assign(
    header: Sequence[str],
    kind_of: Callable[[int], Kind],
    asked: Asked,
    where: str,
    is_wavelength: Callable[[str], bool],
    place: Callable[[int], str] | None = None,
    task: str | None = None,
) -> Roles:
    """Each column's role by the module's rule. `kind_of(i)` reads column i's cells (called
    for the columns that are not wavelengths only); `place(row)` names a row in messages
    ('line 12'). With `task='regression'` asked, a column of numbers with some text is a
    target (whose text cell is then the error), not an ambiguity."""
    wanted = asked.by_column()
    for name in wanted:
        if name not in header:
            shown = ", ".join(list(header)[:8]) + (", …" if len(header) > 8 else "")
            what = "target column" if wanted[name] == "target" else "column"
            raise DatasetError(f"{where}: no {what} {name!r}; columns are {shown}")
    columns: list[Column] = []
    kinds: dict[int, Kind] = {}
    auto_id = auto_group = None
    for i, name in enumerate(header):
        if name in wanted:
            columns.append(Column(i, name, wanted[name], _kind(i, name, kind_of, kinds), True))
        elif is_wavelength(name):
            columns.append(Column(i, name, "spectra", "wavelength"))
        else:
            kind = _kind(i, name, kind_of, kinds)
            role = "?"
            lower = name.strip().lower()
            if kind == "empty":
                role = "ignore"
            elif asked.sample_id is None and auto_id is None and lower in SAMPLE_ID_NAMES:
                role, auto_id = "id", i
            elif asked.group is None and auto_group is None and lower in GROUP_NAMES:
                role, auto_group = "group", i
            columns.append(Column(i, name, role, kind))
    _check_unique_names(header, columns, where)
    roles = _decide_others(columns, asked, kinds, task)
    _refuse_ambiguous(roles, where, place)
    return roles


def _kind(i: int, name: str, kind_of: Callable[[int], Kind], kinds: dict[int, Kind]) -> str:
    kinds[i] = kind_of(i)
    return kinds[i].kind


def _check_unique_names(header: Sequence[str], columns: list[Column], where: str) -> None:
    first_seen: dict[str, int] = {}
    for column in columns:
        name = column.name
        if name == "" and column.kind == "empty":
            continue  # a trailing separator, or a formatted but empty spreadsheet column
        if name == "":
            raise DatasetError(
                f"{where}: column {column.index + 1} has values but no name; name it"
            )
        if name in first_seen:
            raise DatasetError(
                f"{where}, line 1: column {name!r} appears twice (columns "
                f"{first_seen[name] + 1} and {column.index + 1}); every column needs its "
                "own name"
            )
        first_seen[name] = column.index


def _decide_others(
    columns: list[Column], asked: Asked, kinds: dict[int, Kind], task: str | None
) -> Roles:
    """Step 4 (and 6) of the rule: the role of every column not decided by its name."""
    undecided = [c for c in columns if c.role == "?"]
    decided: dict[int, str] = {}
    not_targets: list[str] = []
    has_waves = any(c.kind == "wavelength" for c in columns)
    if asked.targets:
        for c in undecided:
            if not has_waves:
                decided[c.index] = "spectra"
                continue
            decided[c.index] = "meta"
            if c.kind == "number":
                not_targets.append(c.name)
    else:
        numeric = ("number", "mixed") if task == "regression" else ("number",)
        numbers = [c for c in undecided if c.kind in numeric]
        texts = [c for c in undecided if c.kind == "text"]
        for c in numbers:
            decided[c.index] = "target"
        for c in texts:
            decided[c.index] = "meta"
        if not numbers and len(texts) == 1 and not any(c.kind == "mixed" for c in undecided):
            decided[texts[0].index] = "target"  # a classification file: its one label column
        if not numbers and len(texts) > 1:
            for c in texts:
                decided[c.index] = "?"
    final = tuple(
        Column(c.index, c.name, decided.get(c.index, c.role), c.kind, c.asked) for c in columns
    )
    return Roles(final, tuple(not_targets), kinds, asked.targets)


def _refuse_ambiguous(roles: Roles, where: str, place: Callable[[int], str] | None) -> None:
    unsure = [c for c in roles.columns if c.role == "?"]
    mixed = [c for c in unsure if c.kind == "mixed"]
    if mixed:
        c = mixed[0]
        row, cell = roles.kinds[c.index].example
        at = place(row) if place else f"row {row + 1}"
        problem = f"{c.name!r} holds numbers and text ({cell!r}, {at})"
    elif unsure:
        names = " and ".join(repr(c.name) for c in unsure[:3])
        problem = f"which column is the target? {names} are text columns, each could be it"
    elif not roles.spectra:
        problem = "no spectra columns: no column header is a wavelength (a number)"
    elif not roles.targets:
        if all(c.role in ("spectra", "id") for c in roles.columns):
            problem = "every column header is a number, so no target column was found"
        else:
            problem = "no target column was found"
        problem += "; name the target with --target NAME"
    else:
        return
    raise DatasetError(f"{where}: {problem}\n{table(roles)}")


_SHOWN = {
    "target": "target",
    "id": "sample id",
    "meta": "metadata",
    "group": "group (metadata)",
    "ignore": "ignored",
    "?": "?",
}


def table(roles: Roles) -> str:
    """Every column with its role and the options that give it another, spectra in one
    line: what the user needs to write the right `datasets add` command."""
    lines = [("column", "role", "to change it")]
    spectra_done = False
    for c in roles.columns:
        if c.role == "spectra":
            if spectra_done:
                continue
            spectra_done = True
            waves = [x for x in roles.columns if x.role == "spectra"]
            name = waves[0].name if len(waves) == 1 else f"{waves[0].name} … {waves[-1].name}"
            lines.append((name, f"spectra ({len(waves)} columns)", ""))
            continue
        kind = {"number": "numbers", "mixed": "numbers and text"}.get(c.kind, c.kind)
        role = f"{_SHOWN[c.role]} ({kind})" if c.role != "id" else "sample id"
        if c.asked:
            role += ", asked"
        quoted = shlex.quote(c.name)
        options = [f"{OPTION[r]} {quoted}" for r in ("target", "meta", "ignore") if r != c.role]
        if c.role == "?" or c.role == "group":
            options = [f"{OPTION[r]} {quoted}" for r in ("target", "meta", "ignore")]
        lines.append((c.name, role, " | ".join(options)))
    widths = [max(len(line[k]) for line in lines) for k in range(2)]
    return "\n".join(f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in lines)


def kind_of_cells(
    cells: Sequence[Any], is_missing: Callable[[Any], bool], to_number: Callable[[Any], float]
) -> Kind:
    """numbers (every non-empty cell), text, empty, or mixed: numbers with a minority of
    text cells, which is likely a reference column with a typo or a `n.d.`."""
    n_numbers = n_text = 0
    first_text: tuple[int, Any] | None = None
    for row, cell in enumerate(cells):
        if is_missing(cell):
            continue
        try:
            to_number(cell)
        except ValueError:
            n_text += 1
            if first_text is None:
                first_text = (row, cell)
        else:
            n_numbers += 1
    if n_numbers == n_text == 0:
        return Kind("empty")
    if n_text == 0:
        return Kind("number")
    if n_numbers > n_text:
        return Kind("mixed", first_text)
    return Kind("text")
