"""The `hpo` command. Each command parses, calls one plain function, prints, and returns an exit code.

Heavy libraries (torch, transformers, optuna) are imported inside the commands, so `hpo --help` is instant.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from hpo.errors import HpoError
from hpo.retry import Preempted

# EX_TEMPFAIL: "try again later". Launchers treat it as "requeue me", not as a crash.
PREEMPTED_EXIT_CODE = 75

app = typer.Typer(
    help="Hyperparameter search for transfer-learning fine-tunes: Optuna studies over real PyTorch trials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

StudyFile = Annotated[Path, typer.Argument(help="A study file (YAML), e.g. studies/quickstart.yaml.")]
def _study_name(name: str) -> str:
    from hpo.spec import check_study_name

    return check_study_name(name)  # a name becomes a file path and a query: validated before either


StudyName = Annotated[str, typer.Argument(help="Study name.", callback=_study_name)]
StorageOption = Annotated[
    str | None,
    typer.Option("--storage", help="Storage URL; overrides HPO_STORAGE and the study file. Default sqlite:///hpo.db"),
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err_console, show_path=False)]
    )
    for noisy in ("httpx", "transformers", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


@app.command()
def run(
    study_file: StudyFile,
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
    from hpo.progress import summary_table
    from hpo.runner import run as run_study

    _quiet_libraries()
    result = run_study(study_file, storage=storage, n_trials=n_trials, force=force, console=console,
                       enqueue=enqueue)
    if result.message:
        console.print(result.message)
        return
    console.print(summary_table(result.study, storage=result.storage, wall_seconds=result.wall_seconds,
                                budget=result.budget))


@app.command()
def validate(
    study_file: StudyFile,
    data: Annotated[bool, typer.Option("--data/--no-data", help="Also load and check the datasets.")] = True,
) -> None:
    """Print the resolved study file, or say exactly what is wrong with it."""
    import yaml

    from hpo.runner import check_model, load_data
    from hpo.spec import load_spec

    _quiet_libraries()
    spec = load_spec(study_file)
    check_model(spec, str(study_file))
    resolved = spec.model_dump(mode="json", exclude_none=True)
    console.print(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True), highlight=False)
    if data:
        with console.status("loading data…"):
            task = load_data(spec, str(study_file))
        console.print(
            f"data: source {spec.source.label} {len(task.source)} docs, {len(task.source.label_names)} classes; "
            f"target {spec.target.label} {len(task.target_train)} train + {len(task.target_val)} validation, "
            f"{len(task.target_train.label_names)} classes", highlight=False,
        )
    console.print(f"[green]{study_file} is valid[/]")


studies_app = typer.Typer(help="The studies in the storage; `hpo studies delete NAME` removes one.",
                          invoke_without_command=True, no_args_is_help=False)
app.add_typer(studies_app, name="studies")


@studies_app.callback()
def studies(ctx: typer.Context, storage: StorageOption = None) -> None:
    """List the studies in the storage: trial states, budget and best value."""
    ctx.obj = storage
    if ctx.invoked_subcommand is None:
        from hpo.studies import list_studies

        console.print(list_studies(storage))


@studies_app.command("delete")
def delete_study(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The study to delete, with all its trials.", callback=_study_name)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    storage: StorageOption = None,
) -> None:
    """Delete a study and all its trials (asks for confirmation unless --yes)."""
    from hpo.studies import delete_study as delete

    storage = storage or ctx.obj  # --storage before `delete` or after it
    if not yes and not typer.confirm(f"Delete study {name!r} and all its trials?", default=False):
        raise typer.Abort()
    console.print(delete(storage, name))


@app.command()
def status(name: StudyName, storage: StorageOption = None) -> None:
    """A study's state counts, budget used, best F1, running trials (worker, age, last heartbeat), retries."""
    from hpo.status import study_status

    console.print(study_status(name, storage))


@app.command()
def dashboard(
    storage: StorageOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Start optuna-dashboard on the configured storage (the study's metric is named val_f1)."""
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


@app.command()
def report(
    name: StudyName,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The HTML file to write. Default: NAME-report.html")
    ] = None,
    storage: StorageOption = None,
) -> None:
    """Write one self-contained HTML file (works offline) of plotly figures for a study."""
    from hpo.report import report_study

    console.print(report_study(name, output or Path(f"{name}-report.html"), storage), highlight=False)


@app.command()
def export(
    name: StudyName,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    top: Annotated[int | None, typer.Option("--top", min=1, help="Export the k best configs (for --enqueue).")] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="yaml (a runnable study file) or training-args (JSON for HF Trainer).")
    ] = "yaml",
    trial: Annotated[int | None, typer.Option("--trial", help="Export this trial instead of the best.")] = None,
    storage: StorageOption = None,
) -> None:
    """Export the best trial as a runnable study file with every searched field fixed (or the k best configs,
    or TrainingArguments JSON)."""
    from hpo.export import export_study

    message = export_study(name, output, top=top, output_format=output_format, trial=trial, storage=storage)
    console.print(message, highlight=False)


@app.command("train")
def train_command(
    study_file: Annotated[Path, typer.Argument(help="An exported study file (every field fixed).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to save the trained classifier in.")],
    train_on: Annotated[
        str, typer.Option("--train-on", help="train (keep the best validation step) or train+validation.")
    ] = "train",
) -> None:
    """Retrain an exported config, save the model (save_pretrained) and evaluate it on the test split."""
    from hpo.evaluate import format_metrics
    from hpo.retrain import retrain

    _quiet_libraries()
    if train_on not in ("train", "train+validation"):
        raise HpoError(f"--train-on must be train or train+validation, not {train_on!r}")
    with console.status("training…"):
        metrics = retrain(study_file, out, train_on=train_on)
    if metrics["validation"]:
        v = metrics["validation"]
        console.print(f"best validation F1 {v['f1']:.4f} at evaluation {v['step']} (epoch {v['epoch']:g})")
    console.print(*format_metrics(metrics["test"]))
    console.print(f"saved to {out} (metrics.json, confusion_matrix.html); train time {metrics['train_seconds']:.0f} s")


@app.command()
def evaluate(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL_DIR", help="A directory written by `hpo train --out`.")],
) -> None:
    """Evaluate a saved classifier on its study's test split: metric tables, plus test_metrics.json and
    confusion_matrix.html written into MODEL_DIR."""
    from hpo.evaluate import evaluate_dir, format_metrics

    _quiet_libraries()
    with console.status("evaluating on the test split…"):
        metrics = evaluate_dir(model_dir)
    console.print(*format_metrics(metrics))
    console.print(f"confusion matrix: {model_dir / 'confusion_matrix.html'}; "
                  f"metrics: {model_dir / 'test_metrics.json'}", highlight=False, soft_wrap=True)


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL_DIR", help="A directory written by `hpo train --out`.")],
    source: Annotated[str, typer.Argument(
        metavar="INPUT", help="CSV, TSV, JSON, JSONL or Parquet file of texts, or - for one text per line on stdin.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write: .csv, .tsv, .json, .jsonl or .parquet. Default: CSV on stdout.")] = None,
    text_column: Annotated[str, typer.Option("--text-column", help="The input column holding the texts.")] = "text",
) -> None:
    """Label texts with a saved classifier: per row the text, `label` and `p_<class>` for every class."""
    from hpo.predict import predict_file

    _quiet_libraries()
    with err_console.status("predicting…"):  # stderr: stdout may be the CSV itself
        written = predict_file(model_dir, source if source == "-" else Path(source), output, text_column=text_column)
    if written != "-":
        console.print(f"wrote {written}", highlight=False)


@app.command("transfer-effect")
def transfer_effect(
    name: StudyName,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per trained row, paired across rows.")] = 5,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The HTML file to write; the JSON goes beside it (same stem).")
    ] = Path("transfer.html"),
    storage: StorageOption = None,
) -> None:
    """Measure what the source task bought on the target's test split: zero-shot, linear probe, target only and
    transfer over seeds, with 95% t intervals and the paired transfer gain (flags negative transfer)."""
    from hpo.storage import load_study
    from hpo.transfer_effect import transfer_effect as measure

    _quiet_libraries()
    study, url = load_study(name, storage)
    measure(study, seeds=seeds, output=output, storage_url=url.url, console=console)


launch_app = typer.Typer(help="Start workers for a study: local processes, a Slurm job array, a Kubernetes Job.",
                         no_args_is_help=True)
app.add_typer(launch_app, name="launch")


@launch_app.command("local")
def launch_local(
    study_file: StudyFile,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes to start.")] = 2,
    gpus: Annotated[str | None, typer.Option("--gpus", help="GPU ids, e.g. 0,1,2,3; none: CPU workers.")] = None,
    per_gpu: Annotated[int, typer.Option("--per-gpu", help="Workers packed on one GPU.")] = 1,
    storage: StorageOption = None,
) -> None:
    """Start N workers on this machine, pinned round-robin to GPUs (or sharing the CPU cores), with a combined
    progress display; Ctrl-C stops them with their trials `preempted`."""
    from hpo.launch.local import launch_local as launch

    gpu_ids = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    code = launch(study_file, workers=workers, gpus=gpu_ids, per_gpu=per_gpu, storage=storage, console=console)
    raise typer.Exit(code)


@launch_app.command("slurm")
def launch_slurm(
    study_file: StudyFile,
    array: Annotated[int, typer.Option("--array", min=1, help="Number of array tasks, one worker each.")],
    time_limit: Annotated[str, typer.Option(
        "--time", help="Time limit of each task in Slurm's format: 4:00:00, 1-00:00:00, or minutes.")],
    gpus_per_task: Annotated[int, typer.Option("--gpus-per-task", min=0, help="GPUs per worker; 0 for CPU only.")] = 1,
    partition: Annotated[str | None, typer.Option("--partition", help="Partition (default: the cluster's).")] = None,
    cpus_per_task: Annotated[int | None, typer.Option("--cpus-per-task", min=1, help="CPUs per worker.")] = None,
    mem: Annotated[str | None, typer.Option("--mem", help="Memory per worker, e.g. 16G.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Slurm account to charge.")] = None,
    qos: Annotated[str | None, typer.Option("--qos", help="Quality of service.")] = None,
    constraint: Annotated[str | None, typer.Option("--constraint", help="Node features, e.g. a100.")] = None,
    sbatch: Annotated[list[str] | None, typer.Option(
        "--sbatch", help="Another sbatch directive, e.g. --sbatch=--mail-type=END (repeatable).")] = None,
    setup: Annotated[list[str] | None, typer.Option(
        "--setup", help='A shell line run before the worker, e.g. "module load cuda" (repeatable).')] = None,
    log_dir: Annotated[Path | None, typer.Option(
        "--log-dir", help="Task logs and submitit's files, on a file system every node sees. "
                          "Default: .hpo/slurm/NAME")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the job script; submit nothing.")] = False,
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", min=1, help="Set the study's total budget (COMPLETE + PRUNED), as hpo run does.")] = None,
    storage: StorageOption = None,
) -> None:
    """Submit a Slurm job array: each task runs one `hpo run` worker on the study (PostgreSQL storage only)."""
    from hpo.launch.slurm import launch_slurm as submit

    launch = submit(study_file, storage=storage, log_dir=log_dir, dry_run=dry_run, n_trials=n_trials, array=array,
                    time=time_limit, gpus_per_task=gpus_per_task, partition=partition, cpus_per_task=cpus_per_task,
                    mem=mem, account=account, qos=qos, constraint=constraint, sbatch=sbatch or [],
                    setup=setup or [])
    for note in launch.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    if dry_run:
        console.print(launch.script, markup=False, highlight=False, soft_wrap=True, end="")
        return
    console.print(f"submitted Slurm job {launch.job_id}: {launch.tasks} worker(s) on study {launch.study}, "
                  f"logs in {launch.log_dir}\n  hpo status {launch.study}  ·  hpo logs {launch.study} --worker K  ·  "
                  f"hpo stop {launch.study}", highlight=False, soft_wrap=True)


@launch_app.command("k8s")
def launch_k8s_command(
    study_file: StudyFile,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Worker pods at once: the Job's parallelism and completions.")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="Container image with transfer-hpo installed, e.g. built from the Dockerfile.")] = None,
    db_secret: Annotated[str | None, typer.Option(
        "--db-secret", help="Secret whose key `url` holds the storage URL (the workers' HPO_STORAGE).")] = None,
    gpus_per_worker: Annotated[int, typer.Option(
        "--gpus-per-worker", help="nvidia.com/gpu per pod; 0 for CPU workers.")] = 1,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Kubernetes namespace.")] = "default",
    cpu: Annotated[str, typer.Option("--cpu", help="CPU request per pod (a quantity: 4, 3500m).")] = "4",
    memory: Annotated[str, typer.Option("--memory", help="Memory request and limit per pod.")] = "16Gi",
    node_selector: Annotated[list[str] | None, typer.Option(
        "--node-selector", help="KEY=VALUE a node must carry; repeatable.")] = None,
    toleration: Annotated[list[str] | None, typer.Option(
        "--toleration", help="KEY=VALUE:EFFECT or KEY:EFFECT, a taint to tolerate; repeatable.")] = None,
    service_account: Annotated[str | None, typer.Option(
        "--service-account", help="The pods' service account.")] = None,
    ttl_seconds: Annotated[int, typer.Option(
        "--ttl-seconds", help="Delete the finished Job (and its ConfigMap) after this many seconds.")] = 86400,
    backoff_per_index: Annotated[int, typer.Option(
        "--backoff-per-index", help="Restarts of a failed worker index before it counts as failed.")] = 3,
    cache_pvc: Annotated[str | None, typer.Option(
        "--cache-pvc", help="PersistentVolumeClaim for HPO_CACHE (/cache); default: an emptyDir per pod.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the manifests (YAML) instead of creating them.")] = False,
) -> None:
    """Run the study as a Kubernetes Indexed Job of N `hpo run` workers, the study file in a ConfigMap; the storage
    URL comes from a Secret. Uses the current kube context."""
    from hpo.launch.k8s import launch_k8s

    output = launch_k8s(
        study_file, dry_run=dry_run, workers=workers, image=image, db_secret=db_secret,
        gpus_per_worker=gpus_per_worker, namespace=namespace, cpu=cpu, memory=memory,
        node_selector=node_selector or [], toleration=toleration or [], service_account=service_account,
        ttl_seconds=ttl_seconds, backoff_per_index=backoff_per_index, cache_pvc=cache_pvc,
    )
    if dry_run:
        sys.stdout.write(output)  # plain YAML for `kubectl create -f -`: no markup, no wrapping
    else:
        console.print(output, highlight=False, soft_wrap=True)


@app.command()
def prepare(
    study_file: StudyFile,
    cache: Annotated[Path | None, typer.Option("--cache", help="Cache directory the workers share: HPO_CACHE.")] = None,
) -> None:
    """Put the model, the datasets and the tokenised caches a study needs into the shared cache, so workers never
    reach for a registry or a hub."""
    from hpo.prepare import prepare as prepare_cache

    _quiet_libraries()
    with console.status("preparing…"):
        lines = prepare_cache(study_file, cache)
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"[green]ready[/]: start workers with HPO_CACHE={cache or lines[0].removeprefix('cache: ')}")


@app.command()
def logs(
    name: StudyName,
    worker: Annotated[int, typer.Option("--worker", help="Worker index (local) or array task id (Slurm).")] = 0,
) -> None:
    """Print a worker's log (local and Slurm launches from this directory)."""
    from hpo.launch.control import worker_log

    sys.stdout.write(worker_log(name, worker))


@app.command()
def stop(name: StudyName) -> None:
    """Stop the study's launched workers: local processes get SIGTERM, a Slurm array is cancelled, a Kubernetes
    Job is deleted. Running trials end `preempted` and are retried when workers start again."""
    from hpo.launch.control import stop_launches

    for line in stop_launches(name):
        console.print(line, highlight=False)


def _quiet_libraries() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*TRANSFORMERS_CACHE.*")
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenisation happens once, before any fork
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main() -> None:
    try:
        result = app(standalone_mode=False)
    except HpoError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/] {_escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: the running trial is marked FAIL; run again to continue")
        sys.exit(130)
    except Preempted as exc:
        err_console.print(f"[yellow]preempted[/] ({exc}): the running trial is FAIL `preempted` and queued "
                          "for a retry; exiting with code 75")
        sys.exit(PREEMPTED_EXIT_CODE)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except Exception as exc:
        # Usage errors (missing argument, unknown command). typer vendors its own click, so they are matched
        # by their interface rather than by click's class.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(result if isinstance(result, int) else 0)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
