"""What every command module of the CLI shares: opening the workspace, resolving a tree path
(or a path inside a mount), and printing user text safely (no markup, no control bytes)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from n4afs.cli.terminal import shown, visible

WORKSPACE_HELP = "Workspace directory (default: $N4AFS_WORKSPACE, else ~/.n4afs/workspace)."


def workspace(path: str | None, create: bool = False):
    from n4afs.workspace import Workspace

    return Workspace(path, create=create)


def console():
    """A rich console that does not squeeze tables into 80 columns when piped."""
    from rich.console import Console

    found = Console()
    return found if found.is_terminal else Console(width=160)


def echo(text: str, err: bool = False) -> None:
    """click.echo for every line that may quote a name, path or message: no control bytes."""
    click.echo(visible(text), err=err)


def table(*columns: str, title: str | None = None):
    """A rich table whose headers and title show user text literally (no markup, no ESC)."""
    from rich.table import Table

    return Table(*(shown(c) for c in columns), title=None if title is None else shown(title))


def add_row(table, *cells: object) -> None:
    """Add one row, every cell shown literally: names from users and bundles are not markup."""
    table.add_row(*(shown(cell) for cell in cells))


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def score(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"


def parse_age(text: str) -> float:
    """'30d', '12h', '90m' -> seconds."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if not match:
        raise click.BadParameter(f"{text!r}: use a number and d, h or m (e.g. 30d)")
    return float(match.group(1)) * {"d": 86400, "h": 3600, "m": 60}[match.group(2)]


# -- tree paths ---------------------------------------------------------------------------------
def parsed(path: str) -> tuple[str, ...]:
    """A tree path; `..` is refused as a missing path (one line, exit 2), never resolved."""
    from n4afs.tree.tree import parse_path

    try:
        return parse_path(path)
    except FileNotFoundError:
        raise missing(path) from None


def missing(path: str) -> click.ClickException:
    exc = click.ClickException(
        f"no such path in the tree: /{path.strip('/')} (list what is there with `n4afs ls`)"
    )
    exc.exit_code = 2
    return exc


def tree_and_path(ctx: click.Context, path: str):
    """The -w workspace's tree and a tree path in it."""
    return workspace(ctx.obj["workspace"]).tree, parsed(path)


def workspace_and_tree_path(ctx: click.Context, path: str):
    """A path inside a live n4afs mount, or a tree path in the -w workspace."""
    from n4afs.surfaces.mount import locate

    mounted = locate(Path(path).expanduser()) if Path(path).expanduser().exists() else None
    if mounted is not None:
        found, parts = mounted
        return workspace(str(found)), tuple(parts)
    return workspace(ctx.obj["workspace"]), parsed(path)
