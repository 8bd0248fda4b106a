"""Keeping a workspace: `du`, `rm`, `gc`, `verify`, `render` (each one `Workspace` call)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from n4afs.cli.common import (
    add_row,
    console,
    echo,
    human_bytes,
    parse_age,
    table,
    workspace,
    workspace_and_tree_path,
)


@click.command()
@click.argument("path", default="/")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def du(ctx, path, as_json) -> None:
    """Logical bytes (what the tree shows as plain copies) against bytes stored once.

    Per dataset and per run, plus the largest results. PATH narrows every number but the
    workspace's own (objects on disk, index) to runs/<dataset>, by-run/<run>[/<dataset>]
    or a result folder, in the tree or a mount. Logical counts runs/ and by-run/, and model
    files plus pipeline.pkl; rendered CSV/YAML/PNG files are not counted.
    """
    import json

    ws, parts = workspace_and_tree_path(ctx, path)
    report = ws.usage(parts)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))  # JSON escapes control characters
        return
    _show_usage(report)


def _show_usage(report) -> None:
    h = human_bytes
    counted = (
        f"logical {h(report['logical_bytes'])}, stored {h(report['referenced_bytes'])} "
        f"(dedup x{report['dedup_ratio']:.1f})"
    )
    whole = (
        f"objects on disk {h(report['stored_bytes'])}"
        f" ({h(report['rendered_bytes'])} stored renders, "
        f"{h(report['unreferenced_bytes'])} unreferenced: `n4afs gc`"
        + (
            f"; {h(report['held_by_others_bytes'])} held by other workspaces"
            if report["held_by_others_bytes"]
            else ""
        )
        + f"); index {h(report['index_bytes'])}"
    )
    if report["scope"] == "/":
        echo(f"{counted}; {whole}")
    else:  # the scope's numbers, then the workspace's, which no scope divides
        echo(f"{report['scope']}: {counted}")
        echo(f"whole workspace: {whole}")
    out = console()
    for title, key, rows in (
        ("datasets", "dataset", report["datasets"]),
        ("runs", "run", report["runs"]),
    ):
        shown = table(key, "results", "logical", "stored", title=title)
        for row in rows:
            add_row(shown, row[key], str(row["results"]), h(row["logical"]), h(row["stored"]))
        out.print(shown)
    shown = table("result", "dataset", "run", "logical", title="largest results")
    for row in report["largest"]:
        add_row(shown, row["result"], row["dataset"], row["run"], h(row["logical"]))
    out.print(shown)


@click.command()
@click.argument("targets", nargs=-1)
@click.option("--older-than", default=None, help="Every run started more than this ago (30d).")
@click.option(
    "--keep-best", type=int, default=None, help="Per dataset, keep only the N best results."
)
@click.option("--metric", default=None, help="Metric for --keep-best (default: stored).")
@click.option("--dry-run", is_flag=True, help="Show what would go; remove nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def rm(ctx, targets, older_than, keep_best, metric, dry_run, yes) -> None:
    """Remove runs (RUN id, prefix or name) or results (tree or mounted paths) from the index.

    Bytes are reclaimed by `n4afs gc`. Sequence numbers are never reused.
    """
    if not targets and older_than is None and keep_best is None:
        raise click.UsageError("name runs or results, or use --older-than / --keep-best")
    ws, named = _removal_targets(ctx, targets)

    def ask(removal) -> bool:
        _show_removal(removal)
        return yes or click.confirm(f"remove {len(removal.labels)} results?", abort=True)

    removal = ws.remove(
        named,
        older_than_s=None if older_than is None else parse_age(older_than),
        keep_best=keep_best,
        metric=metric,
        dry_run=dry_run,
        confirm=ask,
    )
    if not removal.done:  # a dry run, or nothing to remove: `ask` was not called
        _show_removal(removal)
        count = len(removal.labels)
        echo(f"{count} results would be removed" if dry_run else "nothing to remove")
        return
    echo(
        f"removed {len(removal.labels)} results and {len(removal.runs_removed)} empty runs; "
        "reclaim the bytes with `n4afs gc`"
    )


def _removal_targets(ctx, targets: tuple[str, ...]):
    """The -w workspace and the targets as `Workspace.remove` takes them: runs as named,
    result folders as tree paths (a folder inside a mount of that workspace too)."""
    ws = workspace(ctx.obj["workspace"])
    named: list[Any] = []
    for target in targets:
        if "/" not in target and not Path(target).expanduser().exists():
            named.append(target)  # a run id, prefix or name
            continue
        target_ws, parts = workspace_and_tree_path(ctx, target)
        if target_ws.path.resolve() != ws.path.resolve():
            raise click.UsageError(
                f"{target} is in a mount of the workspace {target_ws.path}: "
                f"give `-w {target_ws.path}` to remove it"
            )
        named.append(parts)
    return ws, named


def _show_removal(removal) -> None:
    for label in removal.labels[:20]:
        echo(f"  {label}")
    if len(removal.labels) > 20:
        echo(f"  ... and {len(removal.labels) - 20} more")


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be removed.")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Spare unreferenced objects younger than this (in-flight runs).",
)
@click.option(
    "--forget",
    multiple=True,
    metavar="WORKSPACE_ID",
    help="A workspace sharing the store that is gone (deleted, crashed for good): drop "
    "its published references first, so its objects can be collected (repeatable).",
)
@click.pass_context
def gc(ctx, dry_run, grace, forget) -> None:
    """Delete stored objects no longer referenced by the index (mark and sweep).

    Safe while a run writes and while mounted: objects younger than --grace are spared,
    a run re-using an old object refreshes it, and every object written since a run in
    flight started (its process alive) is spared whatever the grace. On a store shared
    with other workspaces, this workspace's references are published first and every
    object another workspace holds is spared.
    """
    ws = workspace(ctx.obj["workspace"])
    report = ws.gc(dry_run=dry_run, grace_s=parse_age(grace), forget=forget)
    verb = "would remove" if dry_run else "removed"
    for gone in report.forgotten:
        echo(f"forgot workspace {gone}: its objects are no longer held")
    echo(
        f"{verb} {len(report.removed)} objects ({human_bytes(report.removed_bytes)}) "
        f"and {report.temporaries_removed} temporaries; kept {report.referenced} "
        f"referenced, spared {report.spared_young} younger than {grace}"
        + (" or than the start of a run in flight" if report.live_runs else "")
        + (f", {report.held_by_others} held by other workspaces" if report.other_workspaces else "")
    )
    for run_id in report.live_runs:  # a run whose process cannot be proven gone
        echo(f"  in flight: {run_id} (`n4afs runs`; interrupted runs pin nothing)")
    for other in report.other_workspaces:
        echo(f"  shares the store: {other}")
    if report.renders_kept or report.renders_dropped:
        dropped = len(report.renders_dropped)
        echo(
            f"  stored renders: kept {report.renders_kept} of this version"
            + (f", dropped {dropped} older versions" if dropped else "")
        )


@click.command()
@click.pass_context
def render(ctx) -> None:
    """Draw and store every chart and table not stored yet (after a sweep, before sharing).

    Any process reading the tree (the mount, n4a://, serve, export) then reads their sizes
    and bytes without drawing them; without this, the first reader draws and stores each.
    """
    ws = workspace(ctx.obj["workspace"])
    done = ws.render()
    echo(
        f"{done['files']} rendered files: drew {done['drawn']}, "
        f"{done['stored_before']} were stored already; {done['folders']} result folders stored"
    )


@click.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Remove stale temporaries, evict corrupt cached copies, quarantine corrupt "
    "objects, mark results with missing/corrupt blobs broken (and complete them again "
    "once their blobs are back).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def verify(ctx, repair, as_json) -> None:
    """Hash every referenced blob and check that index rows hang together."""
    import json

    report = workspace(ctx.obj["workspace"]).verify(repair=repair)
    if as_json:
        click.echo(json.dumps(report.summary(), indent=2))  # JSON escapes control characters
    else:
        _show_verify(report, repair)
    if not report.ok:
        sys.exit(1)


def _show_verify(report: Any, repair: bool) -> None:
    """What verify found, what --repair did (or would do), and what recreates lost bytes."""
    echo(
        f"checked {report.checked} blobs: {len(report.missing)} missing, "
        f"{len(report.corrupt)} corrupt; {len(report.corrupt_copies)} corrupt cached "
        f"copies; {len(report.orphans)} unreferenced (gc), "
        + (f"{report.held_by_others} held by other workspaces, " if report.held_by_others else "")
        + f"{len(report.temporaries)} temporaries; {len(report.problems)} index problems"
    )
    for line in report.problems[:20]:
        echo(f"  {line}")
    for blob_id in report.missing:
        echo(f"  missing: {blob_id}")
    for blob_id in report.corrupt:
        where = f"moved to {report.quarantine}" if repair else "to quarantine (--repair)"
        echo(f"  corrupt: {blob_id} ({where})")
    for blob_id in report.corrupt_copies:
        echo(f"  corrupt cached copy: {blob_id} ({'evicted' if repair else '--repair'})")
    if report.broken_results:
        action = "marked broken" if repair else "would be marked broken (--repair)"
        echo(f"{len(report.broken_results)} results {action}")
    if report.recreate:
        echo("recreate the lost bytes, then run `n4afs verify --repair`:")
        for command in report.recreate:
            echo(f"  {command}")
    if report.restorable:
        action = "completed again" if repair else "would be completed again (--repair)"
        echo(f"{len(report.restorable)} broken results are whole: {action}")


COMMANDS = (du, rm, gc, verify, render)
