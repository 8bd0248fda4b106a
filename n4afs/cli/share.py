"""Sharing: `export`, `import`, `trust`, `predict` (bundles in and out, models applied)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from n4afs.cli.common import echo, human_bytes, score, workspace, workspace_and_tree_path


@click.command()
@click.argument("path")
@click.option(
    "-o", "--output", "out", required=True, help="OUT.zip, or DIR/ for a folder of real files."
)
@click.option(
    "--minimal",
    "level",
    flag_value="minimal",
    help="Only what predicting needs: pipeline.yaml, scores.yaml, the final model.",
)
@click.option(
    "--with-data",
    "level",
    flag_value="with-data",
    help="Also the dataset(s) as CSV under data/, for full reproducibility.",
)
@click.option(
    "--link",
    is_flag=True,
    help="With -o DIR/: share the store's blocks instead of copying: a reflink where the "
    "file system has them, else a hard link, which IS the stored object (read-only: never "
    "chmod or edit it).",
)
@click.option(
    "--by-reference",
    is_flag=True,
    help="No bytes: write the results' index rows and blob ids to -o OUT.yaml, which a "
    "workspace on the same store imports without uploading anything.",
)
@click.pass_context
def export(ctx, path, out, level, link, by_reference) -> None:
    """Export a folder of the tree (or of a mount) as real files: a zip or a folder.

    PATH is a tree path (runs/wheat/0042_snv-pls15_x9y8z7) or the same folder inside a
    mount (~/nirs/runs/wheat/...). Adds EXPORT.yaml (provenance) and MANIFEST.yaml
    (sha256 of every file). Share the zip; `n4afs predict` and `n4afs import` read it.
    """
    ws, parts = workspace_and_tree_path(ctx, path)
    target = Path(out).expanduser()
    if by_reference:
        if link or level or target.suffix not in (".yaml", ".yml"):
            raise click.UsageError("--by-reference writes one file: give -o OUT.yaml alone")
        done = ws.export(parts, target, by_reference=True)
        skipped = (
            f"; {done.skipped_imported} imported results left out (they travel with files)"
            if done.skipped_imported
            else ""
        )
        echo(
            f"exported {len(done.results)} results by reference ({done.blobs} blobs in "
            f"{ws.store.url}, no bytes) to {done.out}{skipped}"
        )
        return
    if link and target.suffix == ".zip":
        raise click.UsageError("--link makes a folder: give -o DIR/")
    summary = ws.export(
        parts,
        target,
        level=level or "default",
        link=link,
        command="n4afs " + " ".join(sys.argv[1:]),
    )
    echo(
        f"exported {summary.files} files ({human_bytes(summary.bytes)}, "
        f"{len(summary.results)} results) to {summary.out}"
    )


@click.command("import")
@click.argument("bundle")
@click.option("--as", "name", default=None, help="Dataset name to file the results under.")
@click.option(
    "--trust",
    is_flag=True,
    help="Trust this bundle: its results may be best and its pickled models loaded (they "
    "run code when loaded): only for bundles from people you trust. Or later: n4afs trust.",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="NAME=PATH",
    help="nirs4all workspaces: the spectra of nirs4all's dataset NAME (a CSV in nirs4all's "
    "row order), checked against nirs4all's dataset hash. Repeatable.",
)
@click.option(
    "--data-target",
    "data_targets",
    multiple=True,
    metavar="NAME=COLUMN",
    help="The target column of --data NAME when n4afs cannot tell (class names are text).",
)
@click.option("--dry-run", is_flag=True, help="List what would come in; write nothing.")
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse bundles larger than this uncompressed (default 4 GiB).",
)
@click.option(
    "--max-ratio",
    type=click.FloatRange(min=1),
    default=None,
    help="Refuse files that inflate more than this many times (default 100).",
)
@click.pass_context
def import_cmd(ctx, bundle, name, trust, data, data_targets, dry_run, max_bytes, max_ratio) -> None:
    """Import an n4afs export (zip or folder), a nirs4all workspace or a nirs4all .n4a bundle.

    Refused with the reason, and nothing written, when the bundle has unsafe paths or
    names, links, a bad manifest hash, malformed metadata, is truncated, or inflates past
    its declared size or the limits. Scores are recomputed from the bundle's prediction
    tables; untrusted imports are never best. A nirs4all workspace comes in as one import
    run per nirs4all call; its spectra only with --data (given on a later import, they are
    attached to the results imported before).
    """
    limits = {"max_total_bytes": max_bytes, "max_ratio": max_ratio}
    attached = {}
    for item in data:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise click.BadParameter(f"{item!r} is not NAME=path.csv", param_hint="--data")
        attached[key] = path
    for item in data_targets:
        key, sep, column = item.partition("=")
        if not sep or key not in attached or not column:
            raise click.BadParameter(
                f"{item!r}: give NAME=COLUMN for a --data NAME", param_hint="--data-target"
            )
        attached[key] += f"#target={column}"
    ws = workspace(ctx.obj["workspace"], create=True)
    summary = ws.import_bundle(
        bundle,
        name=name,
        trust=trust,
        data=attached or None,
        dry_run=dry_run,
        **{k: v for k, v in limits.items() if v is not None},
    )
    if dry_run:
        for line in summary.dry_run:
            echo(line)
        echo("dry run: nothing written")
        return
    for line in summary.attached:
        echo(line)
    if summary.already_imported:
        echo(
            f"already imported as run {', '.join(summary.runs or [summary.run_id])}: "
            + ("no result new" if summary.new_blobs else "nothing new stored")
        )
        return
    runs = summary.runs or [summary.run_id]
    echo(
        f"imported {len(summary.results)} result(s) as run {', '.join(runs)} "
        f"({summary.new_blobs} new blobs); see by-run/{runs[0]}/"
        + ("" if trust else f"; untrusted: never best until `n4afs trust {runs[0]}`")
    )


@click.command()
@click.argument("key")
@click.pass_context
def trust(ctx, key) -> None:
    """Trust an imported bundle, named by its import run or one of its results' paths.

    Its results may then be best (best_*.csv, best/, `n4afs best`) and its pickled models
    loaded. Trust covers the whole bundle the result came with.
    """
    ws = workspace(ctx.obj["workspace"])
    run_id = ws.trust(key)
    echo(f"trusted the bundle imported as run {run_id}")
    if run_id in ws.untrusted_runs():  # trusted, but scored by the bundle itself
        echo(
            "its scores are the bundle's own (imported before n4afs recomputed them), so its "
            f"results still cannot be best: `n4afs rm {run_id} -y`, then import it again"
        )


@click.command()
@click.argument("source")
@click.argument("new_csv")
@click.option("-o", "--output", "out", default=None, help="Write predictions here (CSV).")
@click.option(
    "--model",
    default="final",
    show_default=True,
    help="final, fold_<k>, or avg (mean of the fold models).",
)
@click.option("--result", default=None, help="Which result, when a bundle holds several.")
@click.option(
    "--trust", is_flag=True, help="Load pickled models from a bundle (they run code when loaded)."
)
@click.pass_context
def predict(ctx, source, new_csv, out, model, result, trust) -> None:
    """Predict NEW_CSV with the model of SOURCE (a bundle, or a result folder).

    SOURCE is an exported zip/folder, a tree path (runs/wheat/0042_...) or a mounted
    result folder. NEW_CSV needs the training data's wavelengths (in any order, matched
    as numbers within a relative 1e-6). When it has the target column too, the output adds
    y_true and residual (or correct), and the scores are printed.
    """
    path = Path(source).expanduser()
    if path.exists() and (path.suffix == ".zip" or (path / "EXPORT.yaml").exists()):
        from n4afs.share.prediction import predict_bundle  # a bundle needs no workspace

        done = predict_bundle(path, Path(new_csv), model, trust, result)
    else:
        ws, parts = workspace_and_tree_path(ctx, source)
        done = ws.predict(parts, new_csv, model, trust)
    for warning in done.warnings:
        echo(f"warning: {warning}", err=True)
    if out:
        done.table.write_csv(out)
        echo(f"{done.table.height} predictions written to {out}")
    else:
        sys.stdout.write(done.table.write_csv())
    if done.target is not None:  # after the CSV on stdout: on stderr, so the CSV stays whole
        echo(_reference_line(done), err=not out)


def _reference_line(done) -> str:
    """'scores against glucose (1629 of 1629 samples): rmse 1.2, ...' or why none."""
    if not done.scores:
        return f"column {done.target} is empty: nothing to score"
    values = ", ".join(f"{k} {score(v)}" for k, v in done.scores.items() if k != "n")
    return (
        f"scores against {done.target} ({done.n_scored} of {done.table.height} samples "
        f"have a value): {values}"
    )


COMMANDS = (export, import_cmd, trust, predict)
