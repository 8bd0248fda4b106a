"""The `n4afs` command line.

User errors (`N4AError`) print one line plus a hint and exit with status 2; anything else is
a bug and keeps its traceback. Heavy modules (sklearn, matplotlib, chemotools) are imported
inside the commands that need them, so `n4afs --help` answers at once.
"""

from __future__ import annotations

import sys

import click

from n4afs import __version__

WORKSPACE_HELP = "Workspace directory (default: $N4AFS_WORKSPACE, else ~/.n4afs/workspace)."


def _workspace(path: str | None, create: bool = False):
    from n4afs.workspace import Workspace

    return Workspace(path, create=create)


def _console():
    """A rich console that does not squeeze tables into 80 columns when piped."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="n4afs")
@click.option("-w", "--workspace", envvar="N4AFS_WORKSPACE", help=WORKSPACE_HELP)
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """n4afs keeps NIRS experiment workspaces.

    Every dataset, fitted model and prediction table is stored once, by content, and
    indexed in DuckDB. Start with `n4afs init PATH`, then `n4afs datasets add FILE`.
    """
    ctx.obj = {"workspace": workspace}


@cli.command()
@click.argument("path", required=False)
@click.pass_context
def init(ctx: click.Context, path: str | None) -> None:
    """Create a workspace at PATH (or the default workspace) if it does not exist."""
    ws = _workspace(path or ctx.obj["workspace"], create=True)
    click.echo(f"workspace ready: {ws.path}")


@cli.group()
def datasets() -> None:
    """Add and list datasets (spectra + targets)."""


@datasets.command("add")
@click.argument("sources", nargs=-1, required=True)
@click.option("--name", help="Name shown in the tree (default: the file name).")
@click.option("--target", "targets", multiple=True, help="Target column (repeatable).")
@click.option("--sample-id", help="Column holding sample ids (default: sample_id/id/sample).")
@click.option("--task", type=click.Choice(["regression", "classification"]), default=None)
@click.pass_context
def datasets_add(ctx, sources, name, targets, sample_id, task) -> None:
    """Add CSV files or bundled spectra (chemotools:fermentation, chemotools:coffee).

    In a CSV, columns whose header is a number are wavelengths; the others are targets,
    except a sample id column. Comma, semicolon (with decimal comma) and tab work.
    """
    ws = _workspace(ctx.obj["workspace"], create=True)
    options = {
        k: v
        for k, v in {"targets": list(targets) or None, "sample_id": sample_id, "task": task}.items()
        if v is not None
    }
    for source in sources:
        is_bundled = source.startswith("chemotools:")
        info = ws.add_dataset(source, name=name, **({} if is_bundled else options))
        click.echo(
            f"{info.short_id}  {info.name}: {info.n_samples} samples x {info.n_features} "
            f"features, {info.task}, targets {', '.join(info.target_names)}"
        )


@datasets.command("list")
@click.pass_context
def datasets_list(ctx) -> None:
    """List the workspace's datasets with their shapes and targets."""
    from rich.table import Table

    ws = _workspace(ctx.obj["workspace"])
    table = Table("id", "name", "task", "samples", "features", "wavelengths", "targets")
    for d in ws.datasets():
        waves = (
            f"{d.wavelength_min:g}-{d.wavelength_max:g} {d.wavelength_unit or ''}".strip()
            if d.wavelength_min is not None
            else "-"
        )
        table.add_row(
            d.short_id,
            d.name,
            d.task,
            str(d.n_samples),
            str(d.n_features),
            waves,
            ", ".join(d.target_names),
        )
    _console().print(table)
    stats = ws.blob_stats()
    click.echo(
        f"{stats.n_blobs} blobs, {_human_bytes(stats.stored_bytes)} stored "
        f"({_human_bytes(stats.logical_bytes)} referenced)"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per user error, tracebacks only for bugs."""
    from core.errors import N4AError

    try:
        cli.main(args=argv, prog_name="n4afs", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except N4AError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
