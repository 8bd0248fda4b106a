"""The house rules the layout promises, checked on the source itself (#17)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from n4afs_core.index.names import InvalidName

ROOT = Path(__file__).resolve().parents[1]
WRITE = re.compile(r"\b(INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I)


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _sql_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module (docstrings excluded) that change index rows."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and id(node) not in docstrings and WRITE.search(text):
            found.append((node.lineno, text))
    return found


def test_only_the_writer_module_changes_index_rows():
    index = ROOT / "core" / "index"
    # the engines: migrations' schema_version rows; PostgreSQL's change token counter
    allowed = {index / "writes.py", index / "database.py", index / "postgres.py"}
    writers = {
        f"{path.relative_to(ROOT)}:{line}"
        for folder in ("core", "n4afs")
        for path in _sources(folder)
        if path not in allowed
        for line, _ in _sql_strings(path)
    }
    assert writers == set()


def test_the_index_module_writes_only_its_schema_version():
    statements = [sql for _, sql in _sql_strings(ROOT / "core" / "index" / "database.py")]
    assert statements and all("schema_version" in sql for sql in statements)


def test_the_engine_never_imports_the_surface():
    offenders = []
    for path in _sources("core"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "n4afs"]
    assert offenders == []


def test_the_writer_checks_names_from_elsewhere(ws):
    """An imported result's name is checked where it is written, whatever produced it."""
    from n4afs_core.index import writes

    with pytest.raises(InvalidName), ws.index.write() as conn:
        writes.insert_imported_result(
            conn, "r" * 12, "run", "d" * 64, "Bad Name\x1b[2J", "h", [], 0, "rmse", 1.0
        )


def test_the_cli_holds_no_sql_and_no_engine_maintenance():
    """Each command is parsing + one Workspace call + printing: no query of its own."""
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b|\.execute\(|fetchall\(")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _sources("n4afs/cli")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if sql.search(line) or "n4afs_core.maintenance" in line
    ]
    assert found == []


def _calls_and_constants(folder: str):
    """(module, node) for every call and string constant of a package's sources."""
    for path in _sources(folder):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            yield path.relative_to(ROOT).as_posix(), node


def test_one_streaming_hash_loop_and_one_object_layout():
    """A streaming sha256 (`hashlib.sha256()` fed piece by piece) is made in core/store/ids.py
    only; the object layout's folder name is spelled in core/store/storage.py only; callers
    reach a store through `core.store.storage.Store`, never a concrete store's module."""
    streaming, layout, concrete = set(), set(), set()
    for folder in ("core", "n4afs"):
        for module, node in _calls_and_constants(folder):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("hashlib.sha256", "hashlib.file_digest")
                and (not node.args or ast.unparse(node.func).endswith("file_digest"))
            ):
                streaming.add(module)
            if isinstance(node, ast.Constant) and node.value == "objects":
                layout.add(module)
            if isinstance(node, ast.ImportFrom) and node.module in (
                "n4afs_core.store.blobstore",
                "n4afs_core.store.remote_store",
            ):
                concrete.add(module)
    assert streaming == {"core/store/ids.py"}
    assert layout == {"core/store/storage.py"}
    assert concrete <= {"core/store/stores.py"}  # which store a workspace uses: it builds them


def _design() -> str:
    return (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")


def test_every_module_has_a_line_in_the_design_package_map():
    """docs/DESIGN.md's package map names every module: the map is where a newcomer looks."""
    design = _design()
    modules = [
        path.relative_to(ROOT).as_posix()
        for folder in ("core", "n4afs")
        for path in _sources(folder)
        if not path.relative_to(ROOT).as_posix().startswith("n4afs/cli/")  # one line: cli/
        and not (path.name == "__init__.py" and path.parent.name != "core")
    ]
    assert [m for m in modules if f"`{m}`" not in design] == []


def test_every_source_path_the_design_names_exists():
    """A path in docs/DESIGN.md that no longer exists sends a reader nowhere."""
    named = set(re.findall(r"\b((?:core|n4afs|tests|scripts)/[\w/]+\.(?:py|sql))", _design()))
    missing = [p for p in sorted(named) if "NNN" not in p and not (ROOT / p).exists()]
    assert named and missing == []


def test_the_engine_sits_in_subpackages_that_name_the_architecture():
    """core/ holds store, index, data, pipelines, metrics; its top level only what they
    share. n4afs/ holds tree, surfaces, share, cli; its top level only the Python API."""
    top = {
        folder: sorted(p.name for p in (ROOT / folder).iterdir() if p.suffix == ".py")
        for folder in ("core", "n4afs")
    }
    subpackages = {
        folder: sorted(p.name for p in (ROOT / folder).iterdir() if (p / "__init__.py").exists())
        for folder in ("core", "n4afs")
    }
    assert subpackages == {
        "core": ["data", "index", "metrics", "pipelines", "store"],
        "n4afs": ["cli", "share", "surfaces", "tree"],
    }
    assert top == {
        "core": ["__init__.py", "errors.py", "maintenance.py", "operators.py", "pickles.py"],
        "n4afs": ["__init__.py", "runs.py", "workspace.py"],
    }


def test_every_module_attribute_the_design_names_is_defined_there():
    """`core/index/queries.shown_status` in docs/DESIGN.md: that module defines that name."""
    wrong = []
    for module, name in set(re.findall(r"\b((?:core|n4afs)/[\w/]+)\.([A-Za-z_]\w*)", _design())):
        path = ROOT / f"{module}.py"
        if name in ("py", "sql"):
            continue
        defined = re.compile(rf"^\s*(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]", re.M)
        if not path.exists() or not defined.search(path.read_text(encoding="utf-8")):
            wrong.append(f"{module}.{name}")
    assert sorted(wrong) == []
