"""Commands on a study file: run it, validate it, prepare a shared cache for it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpo.cli.app import StorageOption, StudyFileArgument, app, console, quiet

PANEL = "Search"


@app.command(rich_help_panel=PANEL)
def run(
    study_file: StudyFileArgument,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", min=1, help="Set the study's total budget (COMPLETE + PRUNED).")
    ] = None,
    storage: StorageOption = None,
    force: Annotated[bool, typer.Option("--force", help="Continue even if the setup changed.")] = False,
    enqueue: Annotated[
        Path | None, typer.Option("--enqueue", help="Try these exported configs first (hpo export --top k).")
    ] = None,
) -> None:
    """Run the study: trials until its budget is spent or its deadline passes, then a summary."""
    from hpo.search.worker import run_file

    quiet()
    run_file(study_file, console=console, storage=storage, n_trials=n_trials, force=force, enqueue=enqueue)


@app.command(rich_help_panel=PANEL)
def validate(
    study_file: StudyFileArgument,
    data: Annotated[bool, typer.Option("--data/--no-data", help="Also load and check the datasets.")] = True,
) -> None:
    """Print the resolved study file (every default filled in, every path absolute), or every problem in it at once:
    its fields, the model against it and, unless --no-data, the datasets."""
    from hpo.spec import dump_spec
    from hpo.workbench import check_study_file

    quiet()
    with console.status("checking the model and the data…" if data else "checking the model…"):
        checked = check_study_file(study_file, data=data)
    console.print(dump_spec(checked.spec), highlight=False, markup=False)
    if checked.data is not None:
        task, spec = checked.data, checked.spec
        source = f"{len(task.source)} docs, {len(task.source.label_names)} classes" if task.source is not None else \
            f"searched over {', '.join(spec.source_candidates())} (each checked)" if spec.searches_source else "none"
        console.print(
            f"data: source {', '.join(spec.source_candidates())} {source}; "
            f"target {spec.target.label} {len(task.target_train)} train + {len(task.target_val)} validation, "
            f"{len(task.target_train.label_names)} classes", highlight=False, soft_wrap=True,
        )
    for warning in checked.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    console.print(f"[green]{study_file} is valid[/]")


@app.command(rich_help_panel=PANEL)
def prepare(
    study_file: StudyFileArgument,
    cache: Annotated[Path | None, typer.Option("--cache", help="Cache directory the workers share: HPO_CACHE.")] = None,
) -> None:
    """Put the model, the datasets and the tokenised caches a study needs into the shared cache, so workers never
    reach for a registry or a hub."""
    from hpo.launch.prepare import prepare as prepare_cache

    quiet()
    if not console.is_terminal:  # a spinner shows nothing in a log: say what is going on, once
        console.print(f"preparing the model, data and tokenised caches of {study_file}…", highlight=False)
    with console.status("preparing…"):
        lines = prepare_cache(study_file, cache)
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"[green]ready[/]: start workers with HPO_CACHE={cache or lines[0].removeprefix('cache: ')}")
