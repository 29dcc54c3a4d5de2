"""Commands on workers: `hpo launch local|slurm|k8s`, `hpo logs`, `hpo stop`.

Each launcher's options are its renderer's keyword-only parameters (hpo/launch/flow.py: `options_of`); the
commands below are built from that signature, so an option's name, type and default are defined once, beside the
code that uses it.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any, get_args, get_origin

import typer

from hpo.cli.app import StorageOption, StudyFileArgument, StudyName, app, console, err_console

PANEL = "Workers"
LAUNCHERS = {
    "local": "Start N workers on this machine, pinned round-robin to GPUs (or sharing the CPU cores), with a "
             "combined progress display; Ctrl-C stops them with their trials `preempted`.",
    "slurm": "Submit a Slurm job array: each task runs one `hpo run` worker on the study (PostgreSQL storage only).",
    "k8s": "Run the study as a Kubernetes Indexed Job of N `hpo run` workers, the study file in a ConfigMap; the "
           "storage URL comes from a Secret. Uses the current kube context.",
}

launch_app = typer.Typer(help="Start workers for a study: local processes, a Slurm job array, a Kubernetes Job.",
                         no_args_is_help=True)
app.add_typer(launch_app, name="launch", rich_help_panel=PANEL)


def cli_type(annotation: Any) -> Any:
    """The type typer parses an option as: a repeatable option for a sequence of strings, else the annotation."""
    if get_origin(annotation) in (Sequence, list, tuple) or Sequence in (get_origin(a) for a in get_args(annotation)):
        return list[str]
    return annotation


def _launch_command(name: str) -> Callable[..., None]:
    from hpo.launch.flow import options_of

    options, help_of = options_of(name)

    def command(**values: Any) -> None:
        from hpo.launch.flow import launch

        study_file, dry_run, n_trials = values.pop("study_file"), values.pop("dry_run"), values.pop("n_trials")
        launched = launch(name, study_file, dry_run=dry_run, storage=values.pop("storage", None), n_trials=n_trials,
                          **values)
        for note in launched.notes:
            err_console.print(f"[yellow]note:[/] {note}", highlight=False)
        if not launched.submitted:
            sys.stdout.write(launched.rendered)  # plain text for a file or `kubectl create -f -`: no markup
        elif launched.message:
            console.print(launched.message, highlight=False, soft_wrap=True)
        raise typer.Exit(launched.exit_code)

    parameters = [
        inspect.Parameter("study_file", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=StudyFileArgument),
        *(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=Annotated[
            cli_type(p.annotation), typer.Option(f"--{key.replace('_', '-')}", help=help_of[key])])
          for key, p in options.items()),
        inspect.Parameter("n_trials", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            int | None, typer.Option("--n-trials", min=1, help="Set the study's total budget, as hpo run does.")]),
        inspect.Parameter("dry_run", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
            bool, typer.Option("--dry-run", help="Print what would be launched; start nothing.")]),
    ]
    if name != "k8s":  # the pods' storage comes from --db-secret
        parameters.append(inspect.Parameter("storage", inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=StorageOption))
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = LAUNCHERS[name]
    return command


for _name in LAUNCHERS:
    launch_app.command(_name, help=LAUNCHERS[_name])(_launch_command(_name))


@app.command(rich_help_panel=PANEL)
def logs(
    name: StudyName,
    worker: Annotated[int, typer.Option("--worker", help="Worker index (local) or array task id (Slurm).")] = 0,
) -> None:
    """Print a worker's log (local and Slurm launches from this directory)."""
    from hpo.launch.control import worker_log

    sys.stdout.write(worker_log(name, worker))


@app.command(rich_help_panel=PANEL)
def stop(name: StudyName) -> None:
    """Stop the study's launched workers: local processes get SIGTERM, a Slurm array is cancelled, a Kubernetes
    Job is deleted. Running trials end `preempted` and are retried when workers start again."""
    from hpo.launch.control import stop_launches

    for line in stop_launches(name):
        console.print(line, highlight=False)
