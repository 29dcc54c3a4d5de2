"""The `hpo` command: a typer app whose every command parses, makes one call, prints, and returns an exit code.

The commands live in modules by what they act on (a study file, a stored study, a saved classifier, launched
workers); importing them registers them on the one app, in the order `hpo --help` lists them.
"""

# isort: skip_file
from hpo.cli.app import app, main
from hpo.cli import study  # noqa: F401 - registers run, validate, prepare
from hpo.cli import results  # noqa: F401 - studies, status, report, export, dashboard, transfer-effect
from hpo.cli import classifier  # noqa: F401 - train, evaluate, predict
from hpo.cli import launch  # noqa: F401 - launch local|slurm|k8s, logs, stop

__all__ = ["app", "main"]
