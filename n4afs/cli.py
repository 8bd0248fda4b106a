"""The `n4afs` command line.

User errors (`N4AError`) print one line plus a hint and exit with status 2; anything else is
a bug and keeps its traceback. Exit statuses: 0 done, 1 `verify` found damage, 2 a user
error, 3 a run that finished with failed configs (`FAILED_CONFIGS_EXIT`), 130 Ctrl-C.
Heavy modules (sklearn, matplotlib, chemotools) are imported inside the commands that need
them, so `n4afs --help` answers at once.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from n4afs import __version__, output
from n4afs.output import NAME, NUMBER, WORD, format_options
from n4afs.terminal import shown, visible

FAILED_CONFIGS_EXIT = 3  # `run` finished, but some configs failed (status partial / failed)
WORKSPACE_HELP = "Workspace directory (default: $N4AFS_WORKSPACE, else ~/.n4afs/workspace)."


def _workspace(path: str | None, create: bool = False):
    from n4afs.workspace import Workspace

    return Workspace(path, create=create)


def _console():
    """A rich console that does not squeeze tables into 80 columns when piped."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _echo(text: str, err: bool = False) -> None:
    """click.echo for every line that may quote a name, path or message: no control bytes."""
    click.echo(visible(text), err=err)


def _table(*columns: str, title: str | None = None):
    """A rich table whose headers and title show user text literally (no markup, no ESC)."""
    from rich.table import Table

    return Table(*(shown(c) for c in columns), title=None if title is None else shown(title))


def _add_row(table, *cells: object) -> None:
    """Add one row, every cell shown literally: names from users and bundles are not markup."""
    table.add_row(*(shown(cell) for cell in cells))


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
@click.option(
    "--store",
    default=None,
    help="Keep blobs at this fsspec URL (e.g. s3://bucket/prefix) instead of inside "
    "the workspace; credentials come from the usual AWS_* variables.",
)
@click.pass_context
def init(ctx: click.Context, path: str | None, store: str | None) -> None:
    """Create a workspace at PATH (or the default workspace) if it does not exist."""
    from n4afs.workspace import Workspace

    ws = Workspace(path or ctx.obj["workspace"], create=True, store=store)
    _echo(f"workspace ready: {ws.path}")


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
    Content already in the workspace is not added again: a new --name becomes another name
    of it, and a dataset imported without its spectra gets them attached.
    """
    ws = _workspace(ctx.obj["workspace"], create=True)
    options = {
        k: v
        for k, v in {"targets": list(targets) or None, "sample_id": sample_id, "task": task}.items()
        if v is not None
    }
    for source in sources:
        is_bundled = source.startswith("chemotools:")
        admitted = ws.admit_dataset(source, name=name, **({} if is_bundled else options))
        info = admitted.info
        _echo(
            f"{info.short_id}  {info.name}: {info.n_samples} samples x {info.n_features} "
            f"features, {info.task}, targets {', '.join(info.target_names)}"
        )
        if admitted.note:
            _echo(f"  {admitted.note}")


@datasets.command("list")
@format_options
@click.pass_context
def datasets_list(ctx, fmt) -> None:
    """List the workspace's datasets with their shapes and targets."""
    ws = _workspace(ctx.obj["workspace"])
    fmt = output.chosen_format(fmt)
    if fmt != "table":
        output.emit(fmt, [output.dataset_record(d) for d in ws.datasets()], output.DATASET_COLUMNS)
        return
    rows = [
        [
            d.short_id,
            _dataset_label(d),
            d.task,
            str(d.n_samples),
            str(d.n_features),
            f"{d.wavelength_min:g}-{d.wavelength_max:g} {d.wavelength_unit or ''}".strip()
            if d.wavelength_min is not None
            else "-",
            ", ".join(d.target_names),
        ]
        for d in ws.datasets()
    ]
    columns = [("id", WORD), ("name", NAME), ("task", WORD), ("samples", NUMBER)]
    columns += [("features", NUMBER), ("wavelengths", NAME), ("targets", NAME)]
    console = _console()
    console.print(output.fitted_table("datasets", columns, rows, console.width))
    stats = ws.blob_stats()
    _echo(
        f"{stats.n_blobs} blobs, {_human_bytes(stats.stored_bytes)} stored "
        f"({_human_bytes(stats.logical_bytes)} referenced)"
    )


def _dataset_label(d) -> str:
    """'wheat', 'wheat (also other)', 'wheat (no spectra)'."""
    notes = [f"also {', '.join(d.aliases)}"] if d.aliases else []
    notes += ["no spectra"] if d.blob_id is None else []
    return f"{d.name} ({'; '.join(notes)})" if notes else d.name


def _score(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"


# the scores a ranked table shows besides the ranking one: what fits in 80 columns
TABLE_SCORES = {"regression": ("rmse", "r2", "rpd", "bias"), "classification": ("accuracy", "f1")}
BETTER = {"lower": "lower is better", "higher": "higher is better", "zero": "closest to 0 is best"}


def _ranked_by(metric: str | None) -> str:
    """`ranked by r2 (pooled CV, higher is better)`: what a ranking's order follows."""
    from n4afs_core.metrics import METRICS

    if metric is None:
        return "nothing to rank"
    return f"ranked by {metric} (pooled CV, {BETTER[METRICS[metric].direction]})"


def _ranked_table(title: str, results: list, width: int, show_run: bool = True):
    """Best first: the ranking metric's pooled CV score, its test score when there is a test
    set (in place of the last other score), then a few others of the task. Run ids lose their
    date (`runs` shows it); the status column appears when a result did not complete."""
    from n4afs_core.metrics import METRICS

    from n4afs.runs import undated

    metric = results[0].ranked_by if results else None
    task = METRICS[metric].task if metric else None
    others = [m for m in TABLE_SCORES.get(task, ()) if m != metric]
    completed = [r.row.status == "completed" for r in results]
    tests = [r.test_scores() if done else {} for r, done in zip(results, completed, strict=True)]
    show_test = any(tests)
    columns = [("rank", NUMBER), ("result", NAME)] + ([("run", NAME)] if show_run else [])
    columns += [(metric, NUMBER)] if metric else []
    columns += [(f"test {metric}", NUMBER)] if show_test else []
    columns += [(name, NUMBER) for name in others[: len(others) - show_test]]
    columns += [] if all(completed) else [("status", WORD)]
    rows = []
    for rank, (result, test) in enumerate(zip(results, tests, strict=True), start=1):
        cv = result.cv_scores() if result.row.status == "completed" else {}
        rows.append(
            [str(rank), result.row.label]
            + ([undated(result.row.run_id)] if show_run else [])
            + [_score(result.ranked_value)]
            + ([_score(test.get(metric))] if show_test else [])
            + [_score(cv.get(m)) for m in others[: len(others) - show_test]]
            + ([] if all(completed) else [result.row.status])
        )
    return output.fitted_table(f"{title}, {_ranked_by(metric)}", columns, rows, width)


def _progress_callback(progress, task_id, state: dict):
    def on_result(payload) -> None:
        if payload.status == "completed" and payload.score is not None:
            if state["best"] is None or state["better"](payload.score, state["best"]):
                state["best"] = payload.score
        else:
            state["failed"] += 1
        best = _score(state["best"])
        progress.update(
            task_id,
            advance=1,
            description=shown(f"best {state['metric']} {best}, failed {state['failed']}"),
        )

    return on_result


def _execute_with_progress(ws, run_id: str) -> None:
    from n4afs_core.metrics import is_better
    from n4afs_core.runner import execute_run
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    pending, metric = ws.index.fetchall(
        "SELECT count(*), any_value(metric) FROM results WHERE run_id = ? AND status = 'pending'",
        [run_id],
    )[0]
    state = {
        "best": None,
        "failed": 0,
        "metric": metric,
        "better": lambda a, b: is_better(metric, a, b),
    }
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
        transient=False,
    ) as progress:
        task_id = progress.add_task("starting", total=pending)
        execute_run(ws.index, ws.store, run_id, _progress_callback(progress, task_id, state))


def _show_run_summary(ws, run_id: str, limit: int) -> None:
    run = ws.get_run(run_id)
    console = _console()
    with ws.index.read() as conn:
        names = [
            n
            for (n,) in conn.execute(
                "SELECT d.name FROM run_datasets r JOIN datasets d USING (dataset_id) "
                "WHERE run_id = ? ORDER BY position",
                [run_id],
            ).fetchall()
        ]
    for name in names:
        title = f"{name}: best of run {run_id}"
        console.print(_ranked_table(title, run.ranked(name)[:limit], console.width, False))
    info = run.info
    console.print(
        shown(f"run {run_id}: {info.status}, {info.n_results} results ({info.n_failed} failed)")
    )
    if info.n_failed:
        _echo(
            f"{info.n_failed} configs failed: their errors are in by-run/{run_id}/"
            f"<dataset>/<result>/logs/error.log (exit status {FAILED_CONFIGS_EXIT})",
            err=True,
        )
        sys.exit(FAILED_CONFIGS_EXIT)


@contextmanager
def _resumable(run_id: str) -> Iterator[None]:
    """Whatever stops the run from here says how to finish it: Ctrl-C prints the command
    and exits 130, a user error gets it appended, a bug's traceback gets it as a note."""
    from n4afs_core.errors import N4AError
    from n4afs_core.runner import resume_hint

    hint = resume_hint(run_id)
    try:
        yield
    except KeyboardInterrupt:
        _echo(f"interrupted: run {run_id} stopped; finish it with {hint}", err=True)
        sys.exit(130)
    except N4AError as exc:
        if "--resume" in str(exc):
            raise
        raise N4AError(f"{exc}; run {run_id} stopped: finish it with {hint}") from exc
    except Exception as exc:
        exc.add_note(f"run {run_id} stopped: finish it with {hint}")
        raise


@cli.command()
@click.argument("templates", nargs=-1)
@click.option(
    "-d",
    "--dataset",
    "datasets_",
    multiple=True,
    help="CSV file, chemotools:NAME, or a dataset already in the workspace. Repeatable.",
)
@click.option("--cv", default=5, show_default=True, help="Number of cross-validation folds.")
@click.option(
    "--metric",
    default=None,
    help="Ranking metric: rmse, mae, r2, rpd, rpiq, sep, bias, accuracy, f1 ... "
    "(default: rmse for regression, accuracy for classification).",
)
@click.option("--name", default="run", show_default=True, help="Readable name of the run.")
@click.option(
    "--test-size",
    default=0.0,
    show_default=True,
    help="Fraction of samples held out as a test set before CV.",
)
@click.option(
    "--test",
    "test_dataset",
    default=None,
    help="A separate test dataset (CSV, chemotools:NAME or a workspace dataset).",
)
@click.option("--seed", default=42, show_default=True, help="Seed of the splits.")
@click.option("-j", "--jobs", default=1, show_default=True, help="Parallel worker processes.")
@click.option(
    "--backend",
    type=click.Choice(["joblib", "dask"]),
    default="joblib",
    show_default=True,
    help="Where results are computed.",
)
@click.option("--scheduler", default=None, help="dask scheduler address (tcp://host:8786).")
@click.option("--resume", "resume_id", default=None, help="Finish an interrupted run (its id).")
@click.option(
    "--again",
    "again_id",
    default=None,
    help="A new run of RUN's templates, datasets and options (the same fitted bytes: "
    "recreates blobs `verify --repair` quarantined).",
)
@click.option("--top", default=10, show_default=True, help="Rows of the ranked table.")
@click.pass_context
def run(
    ctx,
    templates,
    datasets_,
    cv,
    metric,
    name,
    test_size,
    test_dataset,
    seed,
    jobs,
    backend,
    scheduler,
    resume_id,
    again_id,
    top,
):
    """Run a sweep: every config of every TEMPLATE (YAML/JSON) on every --dataset.

    Results are stored as they finish (a crash loses only results in flight; finish with
    --resume RUN). Ends with a ranked table per dataset.

    \b
    Exit status: 0 every config completed; 2 a user error (nothing planned, or the run
    stopped: the message names `n4afs run --resume RUN`); 3 the run finished but some
    configs failed (status partial or failed); 130 interrupted (Ctrl-C), with the
    resume command. A run whose process died is listed `interrupted` by `n4afs runs`.
    """
    from n4afs_core.runner import RunOptions, plan_again, plan_run
    from n4afs_core.templates import load_templates

    ws = _workspace(ctx.obj["workspace"], create=True)
    if resume_id and again_id:
        raise click.UsageError("give --resume or --again, not both")
    if resume_id:
        run_id = ws.get_run(resume_id).run_id
    elif again_id:
        run_id = plan_again(ws.index, ws.get_run(again_id).run_id)
    else:
        if not templates or not datasets_:
            raise click.UsageError("give at least one TEMPLATE file and one --dataset")
        loaded = load_templates(list(templates))
        infos = [ws.resolve_dataset(d) for d in datasets_]
        test_id = ws.resolve_dataset(test_dataset).dataset_id if test_dataset else None
        options = RunOptions(
            cv=cv,
            seed=seed,
            metric=metric,
            test_size=test_size,
            n_jobs=jobs,
            test_dataset=test_id,
            backend=backend,
            scheduler=scheduler,
        )
        run_id = plan_run(ws.index, loaded, infos, options, name)
    _echo(f"run {run_id}")
    with _resumable(run_id):
        _execute_with_progress(ws, run_id)
    _show_run_summary(ws, run_id, top)


@cli.command()
@format_options
@click.pass_context
def runs(ctx, fmt) -> None:
    """List runs with their status and result counts.

    `running` is a run whose process is alive; `interrupted` one whose process is gone
    (killed, crashed, stopped by an error or Ctrl-C): finish it with `n4afs run --resume`.
    """
    ws = _workspace(ctx.obj["workspace"])
    listed = ws.runs()
    fmt = output.chosen_format(fmt)
    if fmt != "table":
        output.emit(fmt, [output.run_record(r) for r in listed], output.RUN_COLUMNS)
        _interrupted_hints(listed, err=True)  # on stderr: stdout stays one CSV or JSON
        return
    rows = []
    for r in listed:
        counts = [f"{n} {what}" for n, what in ((r.n_failed, "failed"), (r.n_pending, "pending"))]
        rows.append(
            [
                r.run_id,
                r.status,
                r.metric,
                ", ".join([str(r.n_results), *(c for c in counts if not c.startswith("0 "))]),
                f"{r.created_at:%Y-%m-%d %H:%M}",
            ]
        )
    columns = [("run", NAME), ("status", WORD), ("metric", WORD), ("results", NAME)]
    console = _console()
    columns.append(("started", WORD))
    console.print(output.fitted_table("runs", columns, rows, console.width))
    _interrupted_hints(listed)


def _interrupted_hints(listed: list, err: bool = False) -> None:
    """One line per interrupted run: the command that finishes it."""
    from n4afs_core.runner import resume_hint

    for r in listed:
        if r.status != "interrupted":
            continue
        if "imported_from" in r.options:  # an import attempt: no plan to resume
            _echo(f"interrupted: {r.run_id}: import its bundle again", err=err)
        else:
            hint = resume_hint(r.run_id)
            _echo(f"interrupted: {r.run_id} ({r.n_pending} pending): {hint}", err=err)


@cli.command()
@click.argument("dataset")
@click.option("--metric", default=None, help="Rank by another metric (pooled CV scores).")
@click.option("--top", default=20, show_default=True, help="How many results (every format).")
@format_options
@click.pass_context
def results(ctx, dataset, metric, top, fmt) -> None:
    """Every result on DATASET across runs, best first."""
    ws = _workspace(ctx.obj["workspace"])
    ranked = ws.results(dataset, metric)
    fmt = output.chosen_format(fmt)
    if fmt != "table":
        records = [output.result_record(r, rank) for rank, r in enumerate(ranked[:top], start=1)]
        output.emit(fmt, records, output.RESULT_COLUMNS)
        return
    title = f"{dataset}: {len(ranked)} results" + (f", top {top}" if len(ranked) > top else "")
    console = _console()
    console.print(_ranked_table(title, ranked[:top], console.width))


@cli.command()
@click.argument("dataset")
@click.option("--metric", default=None, help="Rank by another metric (pooled CV scores).")
@format_options
@click.pass_context
def best(ctx, dataset, metric, fmt) -> None:
    """The best result on DATASET: its folder name, run and scores."""
    import shutil
    import textwrap

    ws = _workspace(ctx.obj["workspace"])
    result = ws.best(dataset, metric)
    fmt = output.chosen_format(fmt)
    if fmt != "table":
        output.emit_one(fmt, output.result_record(result))
        return
    _echo(f"{result.row.dataset}/{result.row.label}")
    _echo(f"  run {result.row.run_id}")
    _echo(f"  {_ranked_by(result.ranked_by)}: {_score(result.ranked_value)}")
    scores = {k: v for k, v in result.cv_scores().items() if isinstance(v, float)}
    line = ", ".join(f"{k}={_score(v)}" for k, v in scores.items())
    width = shutil.get_terminal_size().columns
    for wrapped in textwrap.wrap(line, width, initial_indent="  cv: ", subsequent_indent="  "):
        _echo(wrapped)


def _tree_and_path(ctx, path: str):
    from n4afs.tree import Tree

    ws = _workspace(ctx.obj["workspace"])
    return Tree(ws), _parsed(path)


def _parsed(path: str) -> tuple[str, ...]:
    """A tree path; `..` is refused as a missing path (one line, exit 2), never resolved."""
    from n4afs.tree import parse_path

    try:
        return parse_path(path)
    except FileNotFoundError:
        raise _missing(path) from None


def _missing(path: str) -> click.ClickException:
    exc = click.ClickException(
        f"no such path in the tree: /{path.strip('/')} (list what is there with `n4afs ls`)"
    )
    exc.exit_code = 2
    return exc


@cli.command("ls")
@click.argument("path", default="/")
@click.option("-l", "long", is_flag=True, help="Sizes and dates.")
@click.pass_context
def ls_cmd(ctx, path, long) -> None:
    """List a folder of the workspace tree (the view the mount shows)."""
    from datetime import datetime

    tree, parts = _tree_and_path(ctx, path)
    entries = tree.list_dir(parts)
    if entries is None:
        node = tree.lookup(parts)
        if node is None:
            raise _missing(path)
        entries = {node.name: node}
    for name, node in entries.items():
        entry = name + ("/" if node.is_dir else "")
        if long:
            when = datetime.fromtimestamp(node.mtime).strftime("%Y-%m-%d %H:%M")
            size = "-" if node.is_dir else _human_bytes(node.size)
            _echo(f"{size:>10}  {when}  {entry}")
        else:
            _echo(entry)


@cli.command("tree")
@click.argument("path", default="/")
@click.option("-L", "depth", default=2, show_default=True, help="How many levels to show.")
@click.pass_context
def tree_cmd(ctx, path, depth) -> None:
    """Show the workspace tree below PATH, like `tree -L`."""
    tree, parts = _tree_and_path(ctx, path)
    if tree.list_dir(parts) is None:
        raise _missing(path)
    _echo("/" + "/".join(parts))

    def show(at: tuple, prefix: str, level: int) -> None:
        entries = list(tree.list_kinds(at) or ())
        for i, (name, is_dir) in enumerate(entries):
            last = i == len(entries) - 1
            _echo(f"{prefix}{'└── ' if last else '├── '}{name}{'/' if is_dir else ''}")
            if is_dir and level < depth:
                show((*at, name), prefix + ("    " if last else "│   "), level + 1)

    show(parts, "", 1)


@cli.command("cat")
@click.argument("path")
@click.pass_context
def cat_cmd(ctx, path) -> None:
    """Write a file of the tree to standard output."""
    tree, parts = _tree_and_path(ctx, path)
    node = tree.lookup(parts)
    if node is None or node.is_dir:
        raise _missing(path)
    sys.stdout.buffer.write(tree.read(node))


@cli.command("open")
@click.argument("path")
@click.pass_context
def open_cmd(ctx, path) -> None:
    """Print the real (read-only) file behind PATH when it is a stored blob.

    For tools that want a path on disk: model .pkl files are blobs. Rendered files
    (CSV, YAML, PNG) have no file of their own: use `n4afs cat` or the mount.
    """
    tree, parts = _tree_and_path(ctx, path)
    node = tree.lookup(parts)
    if node is None or node.is_dir:
        raise _missing(path)
    real = tree.real_path(node)
    if real is None:
        exc = click.ClickException(
            f"/{path.strip('/')} is rendered on demand and has no file "
            "on disk; read it with `n4afs cat` or through the mount"
        )
        exc.exit_code = 2
        raise exc
    _echo(real)


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="[WORKSPACE] MOUNTPOINT")
@click.option("--foreground", is_flag=True, help="Stay attached (Ctrl-C unmounts).")
@click.option(
    "--allow-other",
    is_flag=True,
    help="Let other users read the mount (needs user_allow_other in /etc/fuse.conf).",
)
@click.pass_context
def mount(ctx, paths, foreground, allow_other) -> None:
    """Mount the workspace tree read-only at MOUNTPOINT (FUSE).

    Files open in Excel, file managers and shell tools; new results appear while a run
    writes. Private to you unless --allow-other. Runs in the background unless
    --foreground; stop it with `n4afs umount MOUNTPOINT`.
    """
    from n4afs import mount as mounting

    if len(paths) > 2:
        raise click.UsageError("give at most a WORKSPACE and a MOUNTPOINT")
    workspace = paths[0] if len(paths) == 2 else ctx.obj["workspace"]
    mountpoint = Path(paths[-1]).expanduser().absolute()
    ws = _workspace(workspace)
    mounting.check_fuse()
    mounting.check_mountpoint(mountpoint)
    if foreground:
        _serve(ws, mountpoint, allow_other)
        return
    log_path = mounting.start_background(ws.path.absolute(), mountpoint, allow_other)
    _echo(f"mounted {ws.path} at {mountpoint} (log: {log_path})")
    _echo(f"browse it: ls {mountpoint}/runs   stop it: n4afs umount {mountpoint}")


def _serve(ws, mountpoint: Path, allow_other: bool) -> None:
    import logging

    from n4afs.fuse_ops import serve
    from n4afs.mount import register
    from n4afs.tree import Tree

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    tree = Tree(ws, auto_refresh=False)
    tree.refresh()
    tree.prepare()  # before mounting: no callback waits for rows, rankings, imports
    record = register(mountpoint, ws.path.absolute())
    try:
        serve(tree, str(mountpoint), allow_other=allow_other)
    finally:
        record.unlink(missing_ok=True)


@cli.command()
@click.argument("mountpoint")
def umount(mountpoint) -> None:
    """Unmount an n4afs mount (also clears a stale one left by a killed daemon)."""
    from n4afs.mount import unmount

    _echo(f"{unmount(Path(mountpoint).expanduser().absolute())}: {mountpoint}")


def _workspace_and_tree_path(ctx, path: str):
    """A path inside a live n4afs mount, or a tree path in the -w workspace."""
    from n4afs.mount import locate

    mounted = locate(Path(path).expanduser()) if Path(path).expanduser().exists() else None
    if mounted is not None:
        workspace, parts = mounted
        return _workspace(str(workspace)), tuple(parts)
    return _workspace(ctx.obj["workspace"]), _parsed(path)


@cli.command()
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
@click.pass_context
def export(ctx, path, out, level, link) -> None:
    """Export a folder of the tree (or of a mount) as real files: a zip or a folder.

    PATH is a tree path (runs/wheat/0042_snv-pls15_x9y8z7) or the same folder inside a
    mount (~/nirs/runs/wheat/...). Adds EXPORT.yaml (provenance) and MANIFEST.yaml
    (sha256 of every file). Share the zip; `n4afs predict` and `n4afs import` read it.
    """
    from n4afs.export import export as run_export

    ws, parts = _workspace_and_tree_path(ctx, path)
    target = Path(out).expanduser()
    if link and target.suffix == ".zip":
        raise click.UsageError("--link makes a folder: give -o DIR/")
    summary = run_export(
        ws,
        parts,
        target,
        level=level or "default",
        link=link,
        command="n4afs " + " ".join(sys.argv[1:]),
    )
    _echo(
        f"exported {summary.files} files ({_human_bytes(summary.bytes)}, "
        f"{len(summary.results)} results) to {summary.out}"
    )


@cli.command("import")
@click.argument("bundle")
@click.option("--as", "name", default=None, help="Dataset name to file the results under.")
@click.option(
    "--trust",
    is_flag=True,
    help="Trust this bundle: its results may be best and its pickled models loaded (they "
    "run code when loaded): only for bundles from people you trust. Or later: n4afs trust.",
)
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
def import_cmd(ctx, bundle, name, trust, max_bytes, max_ratio) -> None:
    """Import an export bundle (zip or folder): verified, stored once, shown in the tree.

    Refused with the reason, and nothing written, when the bundle has unsafe paths or
    names, links, a bad manifest hash, malformed metadata, is truncated, or inflates past
    its declared size or the limits. Scores are recomputed from the bundle's prediction
    tables; untrusted imports are never best.
    """
    limits = {"max_total_bytes": max_bytes, "max_ratio": max_ratio}
    ws = _workspace(ctx.obj["workspace"], create=True)
    summary = ws.import_bundle(
        bundle, name=name, trust=trust, **{k: v for k, v in limits.items() if v is not None}
    )
    if summary.already_imported:
        _echo(f"already imported as run {summary.run_id}: nothing new stored")
        return
    _echo(
        f"imported {len(summary.results)} result(s) as run {summary.run_id} "
        f"({summary.new_blobs} new blobs); see by-run/{summary.run_id}/"
        + ("" if trust else f"; untrusted: never best until `n4afs trust {summary.run_id}`")
    )


@cli.command()
@click.argument("key")
@click.pass_context
def trust(ctx, key) -> None:
    """Trust an imported bundle, named by its import run or one of its results' paths.

    Its results may then be best (best_*.csv, best/, `n4afs best`) and its pickled models
    loaded. Trust covers the whole bundle the result came with.
    """
    ws = _workspace(ctx.obj["workspace"])
    run_id = ws.trust(key)
    _echo(f"trusted the bundle imported as run {run_id}")
    if run_id in ws.untrusted_runs():
        _echo(
            "its scores are the bundle's own (imported before n4afs recomputed them), so its "
            f"results still cannot be best: `n4afs rm {run_id} -y`, then import it again"
        )


@cli.command()
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
    from n4afs import prediction as predicting

    path = Path(source).expanduser()
    if path.exists() and (path.suffix == ".zip" or (path / "EXPORT.yaml").exists()):
        done = predicting.predict_bundle(path, Path(new_csv), model, trust, result)
    else:
        ws, parts = _workspace_and_tree_path(ctx, source)
        done = predicting.predict_result(ws, parts, Path(new_csv), model, trust)
    for warning in done.warnings:
        _echo(f"warning: {warning}", err=True)
    if out:
        done.table.write_csv(out)
        _echo(f"{done.table.height} predictions written to {out}")
    else:
        sys.stdout.write(done.table.write_csv())
    if done.target is not None:  # after the CSV on stdout: on stderr, so the CSV stays whole
        _echo(_reference_line(done), err=not out)


def _reference_line(done) -> str:
    """'scores against glucose (1629 of 1629 samples): rmse 1.2, ...' or why none."""
    if not done.scores:
        return f"column {done.target} is empty: nothing to score"
    values = ", ".join(f"{k} {_score(v)}" for k, v in done.scores.items() if k != "n")
    return (
        f"scores against {done.target} ({done.n_scored} of {done.table.height} samples "
        f"have a value): {values}"
    )


def _parse_age(text: str) -> float:
    """'30d', '12h', '90m' -> seconds."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if not match:
        raise click.BadParameter(f"{text!r}: use a number and d, h or m (e.g. 30d)")
    return float(match.group(1)) * {"d": 86400, "h": 3600, "m": 60}[match.group(2)]


@cli.command()
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

    ws, parts = _workspace_and_tree_path(ctx, path)
    report = ws.usage(parts)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))  # JSON escapes control characters
        return
    _show_usage(report)


def _show_usage(report) -> None:
    h = _human_bytes
    counted = (
        f"logical {h(report['logical_bytes'])}, stored {h(report['referenced_bytes'])} "
        f"(dedup x{report['dedup_ratio']:.1f})"
    )
    workspace = (
        f"objects on disk {h(report['stored_bytes'])}"
        f" ({h(report['unreferenced_bytes'])} unreferenced: `n4afs gc`); "
        f"index {h(report['index_bytes'])}"
    )
    if report["scope"] == "/":
        _echo(f"{counted}; {workspace}")
    else:  # the scope's numbers, then the workspace's, which no scope divides
        _echo(f"{report['scope']}: {counted}")
        _echo(f"whole workspace: {workspace}")
    console = _console()
    for title, key, rows in (
        ("datasets", "dataset", report["datasets"]),
        ("runs", "run", report["runs"]),
    ):
        table = _table(key, "results", "logical", "stored", title=title)
        for row in rows:
            _add_row(table, row[key], str(row["results"]), h(row["logical"]), h(row["stored"]))
        console.print(table)
    table = _table("result", "dataset", "run", "logical", title="largest results")
    for row in report["largest"]:
        _add_row(table, row["result"], row["dataset"], row["run"], h(row["logical"]))
    console.print(table)


@cli.command()
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
    from n4afs_core import maintenance

    if not targets and older_than is None and keep_best is None:
        raise click.UsageError("name runs or results, or use --older-than / --keep-best")
    ws = _workspace(ctx.obj["workspace"])
    doomed: list[str] = []
    for target in targets:
        doomed += _results_for_target(ctx, ws, target)
    if older_than is not None:
        doomed += maintenance.results_older_than(ws.index, _parse_age(older_than))
    if keep_best is not None:
        doomed += maintenance.results_beyond_best(ws.index, keep_best, metric)
    doomed = list(dict.fromkeys(doomed))
    labels = dict(
        ws.index.fetchall(
            "SELECT r.result_id, d.name || '/' || lpad(r.seq::VARCHAR, 4, '0') || '_' || r.name "
            "FROM results r JOIN datasets d USING (dataset_id) WHERE r.result_id IN "
            "(SELECT unnest(?))",
            [doomed],
        )
    )
    for result_id in doomed[:20]:
        _echo(f"  {labels.get(result_id, result_id)}")
    if len(doomed) > 20:
        _echo(f"  ... and {len(doomed) - 20} more")
    if dry_run or not doomed:
        _echo(f"{len(doomed)} results would be removed" if dry_run else "nothing to remove")
        return
    if not yes and not click.confirm(f"remove {len(doomed)} results?", default=False):
        raise click.Abort()
    runs_gone = maintenance.remove_results(ws.index, doomed)
    _echo(
        f"removed {len(doomed)} results and {len(runs_gone)} empty runs; "
        "reclaim the bytes with `n4afs gc`"
    )


def _results_for_target(ctx, ws, target: str) -> list[str]:
    from n4afs_core import maintenance
    from n4afs_core.errors import N4AError, RunError

    from n4afs.tree import Tree

    looks_like_path = "/" in target or Path(target).expanduser().exists()
    if looks_like_path:
        target_ws, parts = _workspace_and_tree_path(ctx, target)
        found = Tree(target_ws).result_at(parts)
        if found is None or found[1] != len(parts):
            raise N4AError(f"{target} is not a result folder (runs/<dataset>/<NNNN_...>)")
        return [found[0].result_id]
    try:
        return maintenance.results_of_runs(ws.index, [ws.get_run(target).run_id])
    except RunError as exc:
        raise N4AError(f"{exc}; results are given as paths (runs/<dataset>/<NNNN_...>)") from exc


@cli.command()
@click.option("--dry-run", is_flag=True, help="Show what would be removed.")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Spare unreferenced objects younger than this (in-flight runs).",
)
@click.pass_context
def gc(ctx, dry_run, grace) -> None:
    """Delete stored objects no longer referenced by the index (mark and sweep).

    Safe while a run writes and while mounted: objects younger than --grace are spared,
    a run re-using an old object refreshes it, and every object written since a run in
    flight started (its process alive) is spared whatever the grace.
    """
    from n4afs_core.maintenance import gc as collect

    ws = _workspace(ctx.obj["workspace"])
    report = collect(ws.index, ws.store, dry_run=dry_run, grace_s=_parse_age(grace))
    verb = "would remove" if dry_run else "removed"
    _echo(
        f"{verb} {len(report.removed)} objects ({_human_bytes(report.removed_bytes)}) "
        f"and {report.temporaries_removed} temporaries; kept {report.referenced} "
        f"referenced, spared {report.spared_young} younger than {grace}"
        + (" or than the start of a run in flight" if report.live_runs else "")
    )
    for run_id in report.live_runs:  # a run whose process cannot be proven gone
        _echo(f"  in flight: {run_id} (`n4afs runs`; interrupted runs pin nothing)")


@cli.command()
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

    from n4afs_core.maintenance import describe
    from n4afs_core.maintenance import verify as check

    ws = _workspace(ctx.obj["workspace"])
    report = check(ws.index, ws.store, repair=repair)
    if as_json:
        click.echo(json.dumps(describe(report), indent=2))  # JSON escapes control characters
    else:
        _show_verify(report, repair)
    if not report.ok:
        sys.exit(1)


def _show_verify(report: Any, repair: bool) -> None:
    """What verify found, what --repair did (or would do), and what recreates lost bytes."""
    _echo(
        f"checked {report.checked} blobs: {len(report.missing)} missing, "
        f"{len(report.corrupt)} corrupt; {len(report.corrupt_copies)} corrupt cached "
        f"copies; {len(report.orphans)} unreferenced (gc), {len(report.temporaries)} "
        f"temporaries; {len(report.problems)} index problems"
    )
    for line in report.problems[:20]:
        _echo(f"  {line}")
    for blob_id in report.missing:
        _echo(f"  missing: {blob_id}")
    for blob_id in report.corrupt:
        where = f"moved to {report.quarantine}" if repair else "to quarantine (--repair)"
        _echo(f"  corrupt: {blob_id} ({where})")
    for blob_id in report.corrupt_copies:
        _echo(f"  corrupt cached copy: {blob_id} ({'evicted' if repair else '--repair'})")
    if report.broken_results:
        action = "marked broken" if repair else "would be marked broken (--repair)"
        _echo(f"{len(report.broken_results)} results {action}")
    if report.recreate:
        _echo("recreate the lost bytes, then run `n4afs verify --repair`:")
        for command in report.recreate:
            _echo(f"  {command}")
    if report.restorable:
        action = "completed again" if repair else "would be completed again (--repair)"
        _echo(f"{len(report.restorable)} broken results are whole: {action}")


@cli.command()
@click.argument("query")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@click.pass_context
def sql(ctx, query, as_csv) -> None:
    """Run a read-only SQL QUERY on the index (DuckDB), e.g.

    n4afs sql "select name, score from results order by score limit 5"

    Tables: datasets, runs, templates, results, models, artifacts, predictions, blobs,
    imports. The query runs on a read-only snapshot of the index that cannot attach,
    read or write other files: the workspace cannot be changed from here.
    """
    header, rows = _workspace(ctx.obj["workspace"]).query(query)
    if as_csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([visible(name) for name in header])
        writer.writerows([None if v is None else visible(v) for v in row] for row in rows)
        return
    table = _table(*header)
    for row in rows:
        _add_row(table, *["" if v is None else v for v in row])
    _console().print(table)


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
        _echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
