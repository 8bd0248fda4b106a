"""Experiments: `init`, `datasets add|list`, `run`, `runs`, `results`, `best`, `compare`,
`sql`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from n4afs.cli import output
from n4afs.cli.common import add_row, console, echo, human_bytes, score, table, workspace
from n4afs.cli.output import NAME, NUMBER, WORD, format_options
from n4afs.cli.terminal import shown, visible

FAILED_CONFIGS_EXIT = 3  # `run` finished, but some configs failed (status partial / failed)


@click.command()
@click.argument("path", required=False)
@click.option(
    "--store",
    default=None,
    help="Keep blobs at this fsspec URL (e.g. s3://bucket/prefix) instead of inside "
    "the workspace; credentials come from the usual AWS_* variables.",
)
@click.option(
    "--shared-store",
    is_flag=True,
    help="The --store already holds other workspaces' objects, and is shared with them "
    "(each workspace's gc spares what the others reference).",
)
@click.option(
    "--index",
    default=None,
    help="Share an index on PostgreSQL (postgresql://user@host:port/database; default: "
    "$N4AFS_INDEX, else the workspace's own file); the password goes in PGPASSWORD or "
    "~/.pgpass.",
)
@click.pass_context
def init(
    ctx: click.Context, path: str | None, store: str | None, shared_store: bool, index: str | None
) -> None:
    """Create a workspace at PATH (or the default workspace) if it does not exist."""
    from n4afs.workspace import Workspace

    ws = Workspace(
        path or ctx.obj["workspace"],
        create=True,
        store=store,
        shared_store=shared_store,
        index=index,
    )
    echo(f"workspace ready: {ws.path}")


@click.group()
def datasets() -> None:
    """Add and list datasets (spectra + targets)."""


@datasets.command("add")
@click.argument("sources", nargs=-1)
@click.option("--name", help="Name shown in the tree (default: the file name).")
@click.option("--target", "targets", multiple=True, help="Target column (repeatable).")
@click.option(
    "--id",
    "--sample-id",
    "sample_id",
    help="Column holding sample ids (default: sample_id/id/sample).",
)
@click.option("--meta", multiple=True, help="Keep this column as metadata (repeatable).")
@click.option("--ignore", multiple=True, help="Leave this column out (repeatable).")
@click.option(
    "--group",
    help="Metadata column naming the physical sample of replicate scans "
    "(default: a column named group/sample_group/sample_no).",
)
@click.option("--task", type=click.Choice(["regression", "classification"]), default=None)
@click.option("--sheet", help="Spreadsheet sheet to read (when the workbook has several).")
@click.option("--encoding", help="Text encoding of a CSV that is not UTF-8, e.g. cp1252.")
@click.option("--spectra", "spectra_file", help="File of spectra, joined to --targets FILE.")
@click.option("--targets", "references", help="File of reference values (and metadata).")
@click.option("--on", help="Sample id column joining --spectra and --targets.")
@click.option("--note", help='A note on the dataset, e.g. "harvest 2025, FOSS DS2500".')
@click.option("--set", "keys", multiple=True, metavar="KEY=VALUE", help="A user key (repeatable).")
@click.pass_context
def datasets_add(
    ctx, sources, name, targets, sample_id, meta, ignore, group, task, sheet, encoding,
    spectra_file, references, on, note, keys,
) -> None:  # fmt: skip
    """Add dataset files (CSV, .xlsx/.xls) or bundled spectra (chemotools:fermentation,
    chemotools:coffee).

    Columns whose header is a number are wavelengths; a column named sample_id/id/sample
    holds sample ids; other number columns are targets, text columns metadata (a text
    column is a target only with --target, or as the one label of a classification file).
    With --target, the other columns are metadata, never spectra. Set any column's role
    with --target/--id/--meta/--ignore/--group. Comma, semicolon and tab separators work;
    with ; or tab, decimal commas too. Spectra and reference values in two files:
    --spectra X.csv --targets Y.csv --on sample_id.
    Content already in the workspace is not added again: a new --name becomes another name
    of it, and a dataset imported without its spectra gets them attached.
    """
    if spectra_file is not None:
        if sources:
            raise click.UsageError("give FILE or --spectra FILE --targets FILE, not both")
        sources = (spectra_file,)
    if not sources:
        raise click.UsageError("give a file to add (or --spectra FILE --targets FILE --on ID)")
    if (references is None) != (on is None) or (references and spectra_file is None):
        raise click.UsageError("two files are joined with --spectra FILE --targets FILE --on ID")
    options = {
        k: v
        for k, v in {
            "targets": list(targets) or None,
            "sample_id": sample_id,
            "meta": list(meta) or None,
            "ignore": list(ignore) or None,
            "group": group,
            "task": task,
            "sheet": sheet,
            "encoding": encoding,
            "references": references,
            "on": on,
        }.items()
        if v is not None
    }
    described = {"note": note, "keys": _key_values(keys)}
    ws = workspace(ctx.obj["workspace"], create=True)
    for source in sources:
        is_bundled = source.startswith("chemotools:")
        chosen = {} if is_bundled else options
        admitted = ws.admit_dataset(source, name=name, **chosen, **described)
        info = admitted.info
        echo(
            f"{info.short_id}  {info.name}: {info.n_samples} samples x {info.n_features} "
            f"features, {info.task}, targets {', '.join(info.target_names)}"
        )
        for line in _roles_lines(info.columns):
            echo(f"  {line}")
        if admitted.note:
            echo(f"  {admitted.note}")


def _key_values(pairs: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: give --set KEY=VALUE", param_hint="--set")
        found[key.strip()] = value
    return found


def _roles_lines(columns: dict) -> list[str]:
    """What `datasets add` says about columns that are not spectra or targets."""
    lines = []
    group = columns.get("group")
    if columns.get("metadata"):
        shown = [f"{m} (group)" if m == group else m for m in columns["metadata"]]
        lines.append(f"metadata {', '.join(shown)}")
    if columns.get("not_targets"):
        not_targets = ", ".join(columns["not_targets"])
        lines.append(f"not targets (kept as metadata, as --target asked): {not_targets}")
    if columns.get("ignored"):
        lines.append(f"ignored {', '.join(columns['ignored'])}")
    return lines


@datasets.command("list")
@format_options
@click.pass_context
def datasets_list(ctx, fmt) -> None:
    """List the workspace's datasets with their shapes and targets."""
    ws = workspace(ctx.obj["workspace"])
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
    out = console()
    out.print(output.fitted_table("datasets", columns, rows, out.width))
    stats = ws.blob_stats()
    echo(
        f"{stats.n_blobs} blobs, {human_bytes(stats.stored_bytes)} stored "
        f"({human_bytes(stats.logical_bytes)} referenced)"
    )


def _dataset_label(d) -> str:
    """'wheat', 'wheat (also other)', 'wheat (no spectra)'."""
    notes = [f"also {', '.join(d.aliases)}"] if d.aliases else []
    notes += ["no spectra"] if d.blob_id is None else []
    return f"{d.name} ({'; '.join(notes)})" if notes else d.name


# the scores a ranked table shows besides the ranking one: what fits in 80 columns
TABLE_SCORES = {"regression": ("rmse", "r2", "rpd", "bias"), "classification": ("accuracy", "f1")}
BETTER = {"lower": "lower is better", "higher": "higher is better", "zero": "closest to 0 is best"}


def _ranked_by(metric: str | None) -> str:
    """`ranked by r2 (pooled CV, higher is better)`: what a ranking's order follows."""
    from n4afs_core.metrics.scores import METRICS

    if metric is None:
        return "nothing to rank"
    return f"ranked by {metric} (pooled CV, {BETTER[METRICS[metric].direction]})"


def _ranked_table(title: str, results: list, width: int, show_run: bool = True):
    """Best first: the ranking metric's pooled CV score, its test score when there is a test
    set (in place of the last other score), then a few others of the task. Run ids lose their
    date (`runs` shows it); the status column appears when a result did not complete."""
    from n4afs_core.metrics.scores import METRICS

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
            + [score(result.ranked_value)]
            + ([score(test.get(metric))] if show_test else [])
            + [score(cv.get(m)) for m in others[: len(others) - show_test]]
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
        best = score(state["best"])
        progress.update(
            task_id,
            advance=1,
            description=shown(f"best {state['metric']} {best}, failed {state['failed']}"),
        )

    return on_result


def _execution_given(ctx, **values) -> dict:
    """The execution options given on this command line (not their defaults): where a
    resumed run executes this time."""
    from click.core import ParameterSource

    names = {"n_jobs": "jobs"}
    return {
        key: value
        for key, value in values.items()
        if ctx.get_parameter_source(names.get(key, key)) is not ParameterSource.DEFAULT
    }


def _finish_with_progress(run, execution: dict | None = None) -> None:
    """`Run.finish` under a progress bar: done of pending, the best score so far, failures."""
    from n4afs_core.metrics.scores import is_better
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    pending, metric = run.pending()
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
        console=console(),
        transient=False,
    ) as progress:
        task_id = progress.add_task("starting", total=pending)
        run.finish(_progress_callback(progress, task_id, state), **(execution or {}))


def _on(dataset: str, target: str | None, several: bool) -> str:
    """`wheat` or, on a dataset with several targets, `wheat / protein`: what a ranked
    table ranks (results of two targets are never ranked together)."""
    return f"{dataset} / {target}" if several else dataset


def _show_run_summary(run, limit: int) -> None:
    run_id = run.run_id
    out = console()
    for name, targets in run.targets.items():
        several = len(run.ws.dataset(name).target_names) > 1
        for target in targets:
            title = f"{_on(name, target, several)}: best of run {run_id}"
            ranked = run.ranked(name, target=target if several else None)
            out.print(_ranked_table(title, ranked[:limit], out.width, False))
    info = run.info
    out.print(
        shown(f"run {run_id}: {info.status}, {info.n_results} results ({info.n_failed} failed)")
    )
    if info.n_failed:
        echo(
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
    from n4afs_core.pipelines.runner import resume_hint

    hint = resume_hint(run_id)
    try:
        yield
    except KeyboardInterrupt:
        echo(f"interrupted: run {run_id} stopped; finish it with {hint}", err=True)
        sys.exit(130)
    except N4AError as exc:
        if "--resume" in str(exc):
            raise
        raise N4AError(f"{exc}; run {run_id} stopped: finish it with {hint}") from exc
    except Exception as exc:
        exc.add_note(f"run {run_id} stopped: finish it with {hint}")
        raise


@click.command()
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
@click.option(
    "--worker-cache",
    default=None,
    help="Where dask workers cache the store's objects (default: a folder in each worker's "
    "temporary directory).",
)
@click.option(
    "--resume",
    "resume_id",
    default=None,
    help="Finish an interrupted run (its id); with --backend/--scheduler/--jobs/--worker-cache "
    "it finishes there instead of where it started.",
)
@click.option(
    "--again",
    "again_id",
    default=None,
    help="A new run of RUN's templates, datasets and options (the same fitted bytes: "
    "recreates blobs `verify --repair` quarantined).",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="Target to model (repeatable; `all`: every target of each dataset). One result per "
    "config and target. Default: each dataset's first target.",
)
@click.option(
    "--group",
    "group",
    default=None,
    help="Metadata column naming each scan's physical sample: its scans stay together in "
    "every split. Default: the dataset's group column (datasets add --group).",
)
@click.option(
    "--no-group", is_flag=True, help="Split scans independently, even with a group column."
)
@click.option(
    "--note",
    default=None,
    help="What to remember about this run (one line; RUN.yaml shows it; `n4afs note` replaces it).",
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
    worker_cache,
    resume_id,
    again_id,
    targets,
    group,
    no_group,
    note,
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
    ws = workspace(ctx.obj["workspace"], create=True)
    if resume_id and again_id:
        raise click.UsageError("give --resume or --again, not both")
    if group is not None and no_group:
        raise click.UsageError("give --group COLUMN or --no-group, not both")
    execution = {}
    if resume_id:
        planned = ws.get_run(resume_id)
        execution = _execution_given(
            ctx, backend=backend, scheduler=scheduler, n_jobs=jobs, worker_cache=worker_cache
        )
    elif again_id:
        planned = ws.run_again(again_id, compute=False)
    else:
        if not templates or not datasets_:
            raise click.UsageError("give at least one TEMPLATE file and one --dataset")
        planned = ws.run(
            templates,
            datasets_,
            cv=cv,
            metric=metric,
            name=name,
            test_size=test_size,
            test_dataset=test_dataset,
            seed=seed,
            n_jobs=jobs,
            backend=backend,
            scheduler=scheduler,
            worker_cache=worker_cache,
            compute=False,
            targets=list(targets) or None,
            group=False if no_group else group,
            note=note,
        )
    if note is not None and (resume_id or again_id):
        ws.note(planned.run_id, note)
    echo(f"run {planned.run_id}")
    with _resumable(planned.run_id):
        _finish_with_progress(planned, execution)
    _show_run_summary(planned, top)


@click.command()
@click.argument("run_key", metavar="RUN")
@click.argument("text")
@click.pass_context
def note(ctx, run_key, text) -> None:
    """Set RUN's note to TEXT (one line; it replaces the note RUN had). RUN.yaml shows it.

    RUN: a run id, a unique prefix of one, or its name.
    """
    ws = workspace(ctx.obj["workspace"])
    echo(f"noted run {ws.note(run_key, text)}")


@click.command()
@format_options
@click.pass_context
def runs(ctx, fmt) -> None:
    """List runs with their status and result counts.

    `running` is a run whose process is alive; `interrupted` one whose process is gone
    (killed, crashed, stopped by an error or Ctrl-C): finish it with `n4afs run --resume`.
    """
    ws = workspace(ctx.obj["workspace"])
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
                f"{r.created_at.astimezone():%Y-%m-%d %H:%M}",  # local time
            ]
        )
    columns = [("run", NAME), ("status", WORD), ("metric", WORD), ("results", NAME)]
    out = console()
    columns.append(("started", WORD))
    out.print(output.fitted_table("runs", columns, rows, out.width))
    _interrupted_hints(listed)


def _interrupted_hints(listed: list, err: bool = False) -> None:
    """One line per interrupted run: the command that finishes it."""
    from n4afs_core.pipelines.runner import resume_hint

    for r in listed:
        if r.status != "interrupted":
            continue
        if "imported_from" in r.options:  # an import attempt: no plan to resume
            echo(f"interrupted: {r.run_id}: import its bundle again", err=err)
        else:
            hint = resume_hint(r.run_id)
            echo(f"interrupted: {r.run_id} ({r.n_pending} pending): {hint}", err=err)


TARGET_HELP = "On a dataset with several targets: the one to rank (default: each in turn)."


@click.command()
@click.argument("dataset")
@click.option("--metric", default=None, help="Rank by another metric (pooled CV scores).")
@click.option("--target", default=None, help=TARGET_HELP)
@click.option("--top", default=20, show_default=True, help="How many results (every format).")
@format_options
@click.pass_context
def results(ctx, dataset, metric, target, top, fmt) -> None:
    """Every result on DATASET across runs, best first (per target: results of two targets
    are never ranked against each other)."""
    ws = workspace(ctx.obj["workspace"])
    ranked = ws.results(dataset, metric, target=target)
    by_target: dict = {}
    for result in ranked:
        by_target.setdefault(result.row.target, []).append(result)
    fmt = output.chosen_format(fmt)
    if fmt != "table":
        records = [
            output.result_record(r, rank)
            for shown in by_target.values()
            for rank, r in enumerate(shown[:top], start=1)
        ]
        output.emit(fmt, records, output.RESULT_COLUMNS)
        return
    several = len(ws.dataset(dataset).target_names) > 1
    out = console()
    for name, listed in (by_target or {target: []}).items():
        title = f"{_on(dataset, name, several)}: {len(listed)} results"
        title += f", top {top}" if len(listed) > top else ""
        out.print(_ranked_table(title, listed[:top], out.width))


@click.command()
@click.argument("dataset")
@click.option("--metric", default=None, help="Rank by another metric (pooled CV scores).")
@click.option("--target", default=None, help="The target, on a dataset with several.")
@format_options
@click.pass_context
def best(ctx, dataset, metric, target, fmt) -> None:
    """The best result on DATASET (and --target, on a dataset with several): its folder
    name, run and scores."""
    import shutil
    import textwrap

    ws = workspace(ctx.obj["workspace"])
    result = ws.best(dataset, metric, target=target)
    fmt = output.chosen_format(fmt)
    if fmt != "table":
        output.emit_one(fmt, output.result_record(result))
        return
    several = len(ws.dataset(dataset).target_names) > 1
    row = result.row
    echo(f"{row.dataset}/{row.target}/{row.label}" if several else f"{row.dataset}/{row.label}")
    echo(f"  run {result.row.run_id}")
    echo(f"  {_ranked_by(result.ranked_by)}: {score(result.ranked_value)}")
    scores = {k: v for k, v in result.cv_scores().items() if isinstance(v, float)}
    line = ", ".join(f"{k}={score(v)}" for k, v in scores.items())
    width = shutil.get_terminal_size().columns
    for wrapped in textwrap.wrap(line, width, initial_indent="  cv: ", subsequent_indent="  "):
        echo(wrapped)


@click.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@format_options
@click.pass_context
def compare(ctx, run_a, run_b, fmt) -> None:
    """RUN_A and RUN_B side by side: per dataset and target, the same configs with each
    run's score (the metric "best" means there), which run does better on each (a, b, tie,
    or only one ran it), and which run holds the best.

    RUN_A, RUN_B: run ids, unique prefixes of them, or their names.
    """
    from n4afs_core.metrics.compare import COLUMNS

    from n4afs.runs import undated

    ws = workspace(ctx.obj["workspace"])
    compared = ws.compare(run_a, run_b)
    groups = compared.groups
    fmt = output.chosen_format(fmt)
    if fmt != "table":
        records = [dict(zip(COLUMNS, row.values(), strict=True)) for g in groups for row in g.rows]
        output.emit(fmt, records, COLUMNS)
        return
    out = console()
    a, b = undated(compared.run_a), undated(compared.run_b)
    for g in groups:
        columns = [("config", NAME), (f"a: {a}", NUMBER), (f"b: {b}", NUMBER), ("better", WORD)]
        rows = [
            [r.config, score(r.score_a), score(r.score_b), _side(r.better, a, b)] for r in g.rows
        ]
        title = f"{_on(g.dataset, g.target, g.target is not None)}, {_ranked_by(g.metric)}"
        out.print(output.fitted_table(title, columns, rows, out.width))
        best = {"a": g.best_a, "b": g.best_b}.get(g.best_in)
        held = _side(g.best_in, a, b)
        if best is not None:
            echo(f"  best: {held} ({best.label}, {g.metric} {score(best.value)})")
        else:
            echo(f"  best: {held}")


def _side(which: str, a: str, b: str) -> str:
    """`a` -> the run A's label; "only b" -> "only <B>"; tie and none as they are."""
    names = {"a": a, "b": b, "only a": f"only {a}", "only b": f"only {b}"}
    return names.get(which, which)


@click.command()
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
    header, rows = workspace(ctx.obj["workspace"]).query(query)
    if as_csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([visible(name) for name in header])
        writer.writerows([None if v is None else visible(v) for v in row] for row in rows)
        return
    shown_table = table(*header)
    for row in rows:
        add_row(shown_table, *["" if v is None else v for v in row])
    console().print(shown_table)


COMMANDS = (init, datasets, run, note, runs, results, best, compare, sql)
