"""The `n4afs` command line.

User errors (`N4AError`) print one line plus a hint and exit with status 2; anything else is
a bug and keeps its traceback. Exit statuses: 0 done, 1 `verify` found damage, 2 a user
error, 3 a run that finished with failed configs (`FAILED_CONFIGS_EXIT`), 130 Ctrl-C.
Heavy modules (sklearn, matplotlib, chemotools) are imported inside the commands that need
them, so `n4afs --help` answers at once.

The commands live by topic: `cli.runs` (init, datasets, run, runs, results, best, sql),
`cli.tree` (ls, tree, cat, open, mount, umount, serve), `cli.share` (export, import, trust,
predict), `cli.maintenance` (du, rm, gc, verify); `cli.common` holds what they share. Each
command is argument parsing, one call of the Python API (`n4afs.workspace.Workspace`, a
`Run` or the tree), and printing.
"""

from __future__ import annotations

import sys

import click

from n4afs import __version__
from n4afs.cli import maintenance, runs, share, tree
from n4afs.cli.common import WORKSPACE_HELP, echo
from n4afs.cli.runs import FAILED_CONFIGS_EXIT
from n4afs.cli.terminal import visible

__all__ = ["FAILED_CONFIGS_EXIT", "cli", "main"]


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


for _module in (runs, tree, share, maintenance):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line per user error, tracebacks only for bugs."""
    from n4afs_core.errors import N4AError

    try:
        cli.main(args=argv, prog_name="n4afs", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.message = visible(exc.message)  # it may quote the user's argument
        exc.show()
        sys.exit(exc.exit_code)
    except N4AError as exc:
        echo(f"error: {exc}", err=True)
        sys.exit(2)
