"""Commands on stored studies: list them, a study's status, its report, exports, the dashboard, the transfer
effect."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hpo.cli.app import StorageOption, StudyName, app, console, quiet, study_name
from hpo.results.records import ExportFormat, OutputFormat, State

PANEL = "Results"
STDOUT = Path("-")  # -o -: standard output, on every command whose output is one file


FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f",
                                                    help="table for people; json or yaml for programs.")]


def _show(output: Any) -> None:
    """A table through rich; JSON or YAML as plain text, unwrapped, for a pipe."""
    if isinstance(output, str) and output.endswith("\n"):
        sys.stdout.write(output)
    else:
        console.print(output, soft_wrap=True, highlight=False)

studies_app = typer.Typer(help="The studies in the storage; `hpo studies delete NAME` removes one.",
                          invoke_without_command=True, no_args_is_help=False)
app.add_typer(studies_app, name="studies", rich_help_panel=PANEL)


@studies_app.callback()
def studies(ctx: typer.Context, storage: StorageOption = None, fmt: FormatOption = OutputFormat.table) -> None:
    """List the studies in the storage: trial states, budget and best value."""
    ctx.obj = storage
    if ctx.invoked_subcommand is None:
        from hpo.results.studies import list_studies

        _show(list_studies(storage, fmt))


@studies_app.command("delete")
def delete_study(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The study to delete, with all its trials.", callback=study_name)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    storage: StorageOption = None,
) -> None:
    """Delete a study and all its trials (asks for confirmation unless --yes)."""
    from hpo.results.studies import delete_study as delete

    if not yes and not typer.confirm(f"Delete study {name!r} and all its trials?", default=False):
        raise typer.Abort()
    console.print(delete(storage or ctx.obj, name), soft_wrap=True)  # --storage before `delete` or after it


@app.command(rich_help_panel=PANEL)
def status(name: StudyName, storage: StorageOption = None, fmt: FormatOption = OutputFormat.table) -> None:
    """A study's state counts, budget used, best F1, running trials (worker, age, last heartbeat), retries."""
    from hpo.results.status import study_status

    _show(study_status(name, storage, fmt))


@app.command(rich_help_panel=PANEL)
def trials(
    name: StudyName,
    state: Annotated[list[State] | None, typer.Option("--state", help="Only trials in this state (repeatable).")]
    = None,
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """A study's trials, one record each: number, state, value, params, epochs_run, duration_s, worker,
    failure_reason."""
    from hpo.results.trials import list_trials

    _show(list_trials(name, storage, states=tuple(s.value for s in state or ()), fmt=fmt))


@app.command(rich_help_panel=PANEL)
def best(
    name: StudyName,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the best complete trials.")] = 1,
    storage: StorageOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """A study's best complete trials, best first, as the records `hpo trials` prints."""
    from hpo.results.trials import best_trials

    _show(best_trials(name, storage, top=top, fmt=fmt))


@app.command(rich_help_panel=PANEL)
def report(
    name: StudyName,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="The HTML file to write; - for standard output. Default: NAME-report.html")] = None,
    storage: StorageOption = None,
) -> None:
    """Write one self-contained HTML file (works offline) of plotly figures for a study."""
    from hpo.cli.app import err_console
    from hpo.results.report import report_study

    said = report_study(name, output or Path(f"{name}-report.html"), storage)
    (err_console if output == STDOUT else console).print(said, highlight=False)  # stdout may be the page itself


@app.command(rich_help_panel=PANEL)
def export(
    name: StudyName,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; - for standard output.")] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Export the k best configs (for --enqueue).")] = None,
    output_format: Annotated[ExportFormat, typer.Option(
        "--format", help="yaml: a runnable study file; training-args: TrainingArguments JSON (and the transfer "
                         "recipe beside it).")] = ExportFormat.yaml,
    trial: Annotated[int | None, typer.Option("--trial", help="Export this trial instead of the best.")] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="Write the trial's kept model (keep_models) to this new folder instead: no retrain.")] = None,
    storage: StorageOption = None,
) -> None:
    """Export the best trial (or trial N) as a runnable study file with every searched field fixed, the k best
    configs, or TrainingArguments JSON (-o); or its model as the search kept it (--model DIR, keep_models)."""
    from hpo.cli.app import err_console
    from hpo.errors import HpoError
    from hpo.results.export import export_study

    if (output is None) == (model is None):
        raise HpoError("give -o FILE (a study file, configs or TrainingArguments) or --model DIR (the kept model), "
                       "one of the two")
    if model is not None:
        from hpo.results.export_model import export_model

        clash = [flag for flag, given in (("--top", top is not None),
                                          ("--format", output_format is not ExportFormat.yaml)) if given]
        if clash:
            raise HpoError(f"--model and {clash[0]} cannot be used together: --model writes one trial's model")
        console.print(export_model(name, model, trial=trial, storage=storage).message, highlight=False,
                      soft_wrap=True)
        return
    assert output is not None
    done = export_study(name, output, top=top, output_format=output_format.value, trial=trial, storage=storage)
    if done.stdout is not None:
        sys.stdout.write(done.stdout)
        err_console.print(done.message, highlight=False, soft_wrap=True)
    else:
        console.print(done.message, highlight=False, soft_wrap=True)


@app.command(rich_help_panel=PANEL)
def dashboard(
    storage: StorageOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Start optuna-dashboard on the configured storage (the metric named after the objective: val_f1, ...)."""
    from hpo.errors import HpoError
    from hpo.settings import resolve_storage
    from hpo.storage import open_storage, storage_exists

    target = resolve_storage(storage, None)
    if not storage_exists(target):
        raise HpoError(f"nothing to show: {target.display} does not exist (run a study first, or give --storage)")
    backend = open_storage(target)
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise HpoError("optuna-dashboard is not installed: pip install optuna-dashboard") from None
    console.print(f"optuna-dashboard on {target.display}: http://{host}:{port}/  (Ctrl-C stops it)")
    run_server(backend, host=host, port=port)


@app.command("transfer-effect", rich_help_panel=PANEL)
def transfer_effect(
    name: StudyName,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per trained row, paired across rows.")] = 5,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The HTML file to write; the JSON goes beside it (same stem). Not -: it is two files.")
    ] = Path("transfer.html"),
    zero_shot_limit: Annotated[int | None, typer.Option(
        "--zero-shot-limit", min=1, metavar="N",
        help="Score the zero-shot row on N test texts (a seeded draw), not all: a decoder's log-likelihood "
             "zero-shot runs the model once per text.")] = None,
    storage: StorageOption = None,
) -> None:
    """Measure what the source task bought on the target's test split: zero-shot, linear probe, target only and
    transfer over seeds, with 95% t intervals and the paired transfer gain (flags negative transfer). For a
    decoder-only model the zero-shot row is the label name's log-likelihood after a fixed prompt."""
    from hpo.errors import HpoError
    from hpo.results.transfer import transfer_effect as measure
    from hpo.storage import load_study

    if output == STDOUT:  # refused before minutes of training, not after
        raise HpoError("-o -: hpo transfer-effect writes two files, an HTML page and the JSON beside it, which "
                       "standard output cannot hold; give the page's name (-o transfer.html)")
    quiet()
    study, target = load_study(name, storage)
    measure(study, seeds=seeds, output=output, storage=target.url, console=console, zero_shot_limit=zero_shot_limit)


@app.command("rank-models", rich_help_panel=PANEL)
def rank_models(
    study_file: Annotated[Path, typer.Argument(help="A study file (YAML): its target, max_length, pooling.")],
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", metavar="ID[:POOLING]",
        help="A candidate: hub id, local directory or bundled:NAME, with :mean, :cls or :last to pool it its own way "
             "(repeatable). Default: the study's own model.")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> int:
    """Rank pretrained models for the study's target before fine-tuning: LogME of each one's frozen pooled
    features on the target's training split (higher is better). Exits 1 if any candidate could not be scored."""
    from rich.markup import escape

    from hpo.cli.app import err_console
    from hpo.results.rank import rank_models as rank
    from hpo.results.rank import ranking_text

    quiet()
    with err_console.status("reading the target…") as status:  # stderr: stdout may be the JSON itself
        ranking = rank(study_file, model or (), on_candidate=lambda name: status.update(f"LogME of {name}…"))
    for name, reason in ranking.failed:
        err_console.print(f"[red]error:[/] {escape(name)}: {escape(reason)}", highlight=False, soft_wrap=True)
    _show(ranking_text(ranking, fmt))
    return 1 if ranking.failed else 0
