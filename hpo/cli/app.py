"""The `hpo` typer app, its shared arguments, and the one place exceptions become exit codes.

Heavy libraries (torch, transformers, optuna) are imported inside the commands, so `hpo --help` is instant.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console

from hpo.errors import HpoError, StorageUnavailable
from hpo.preemption import EXIT_INTERRUPTED, EXIT_PREEMPTED, Preempted, exit_code

__all__ = ["StorageOption", "StudyFileArgument", "StudyName", "app", "console", "err_console", "main", "quiet",
           "study_name"]

app = typer.Typer(
    help="Hyperparameter search for transfer-learning fine-tunes: Optuna studies over real PyTorch trials.",
    no_args_is_help=True,
    add_completion=True,  # hpo --install-completion [bash|zsh|fish|powershell]
    pretty_exceptions_enable=False,
)
PIPED_WIDTH = 100_000  # a pipe or a file has no width: lines are as long as their content


def _width(stream: TextIO) -> int | None:
    """Off a terminal rich would lay tables out in 80 columns (or in the width of whatever terminal stdin is), and
    cut or drop their cells: `hpo studies | less` lost the long study names. Tables are only as wide as their
    content, so a very wide console cuts nothing and pads nothing. COLUMNS, when set, still wins."""
    if stream.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return None
    return PIPED_WIDTH


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))
_state = {"debug": False}


def study_name(name: str) -> str:
    from hpo.spec import check_study_name

    return check_study_name(name)  # a name becomes a file path and a query: validated before either


StudyFileArgument = Annotated[Path, typer.Argument(help="A study file (YAML), e.g. studies/quickstart.yaml.")]
StudyName = Annotated[str, typer.Argument(help="Study name.", callback=study_name)]
StorageOption = Annotated[
    str | None,
    typer.Option("--storage", help="Storage URL; overrides HPO_STORAGE and the study file. Default sqlite:///hpo.db"),
]


def _version(shown: bool) -> None:
    if shown:
        import importlib.metadata

        from hpo import __version__

        try:
            installed = importlib.metadata.version("transfer-hpo")
        except importlib.metadata.PackageNotFoundError:
            installed = __version__
        typer.echo(f"transfer-hpo {installed}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.INFO, handlers=[_log_handler()])


def _log_handler() -> logging.Handler:
    """rich's columns on a terminal; elsewhere plain lines (rich's handler pads a log line to the console's width)."""
    if err_console.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=err_console, show_path=False)
    handler = _PlainLines()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


class _PlainLines(logging.Handler):
    """One unwrapped line per record on `err_console`, which writes to whatever sys.stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err_console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


def quiet() -> None:
    """For commands that load models and data: the libraries as quiet as a worker's."""
    from hpo.search.worker import quiet_libraries

    quiet_libraries()


def main() -> None:
    """The `hpo` entry point: what a user can fix is one message and exit 1, never a traceback (unless --debug);
    a preempted worker exits 75, Ctrl-C 130."""
    try:
        result = app(standalone_mode=False)
    except (HpoError, KeyboardInterrupt, Preempted, StorageUnavailable) as exc:
        if _state["debug"] and isinstance(exc, HpoError):
            raise
        err_console.print(_ended(exc), highlight=False, soft_wrap=True)
        sys.exit(exit_code(exc))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except Exception as exc:
        # Usage errors (missing argument, unknown command). typer vendors its own click, so they are matched by
        # their interface rather than by click's class.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if result == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into this return value, silently
        err_console.print(_ended(KeyboardInterrupt()), highlight=False, soft_wrap=True)
    sys.exit(result if isinstance(result, int) else 0)


def _ended(exc: BaseException) -> Any:
    from rich.markup import escape

    if isinstance(exc, Preempted):
        return (f"[yellow]preempted[/] ({exc}): the running trial is FAIL `preempted` and queued for a retry; "
                f"exiting with code {EXIT_PREEMPTED}")
    if isinstance(exc, KeyboardInterrupt):
        return "[yellow]interrupted[/]: a running trial is marked FAIL `interrupted`; run again to continue"
    return f"[red]error:[/] {escape(str(exc))}"
