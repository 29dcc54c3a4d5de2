"""The launch flow every launcher shares (`hpo launch`), the launchers by name, and their options."""

from __future__ import annotations

import inspect
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo.errors import HpoError
from hpo.launch.interface import LAUNCHERS, Launch, Launcher, StudyFile

__all__ = ["check_one_line", "launch", "launcher", "options_of"]

_NAMED = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte", "\x1b": "an escape"}


def options_of(name: str) -> tuple[dict[str, inspect.Parameter], dict[str, str]]:
    """A launcher's options, with their help: its pure renderer's keyword-only parameters, less those filled in from
    the study. Reads only the light renderer modules, so `hpo --help` imports no scheduler client."""
    if name == "local":
        from hpo.launch.local import LocalLauncher as source
    elif name == "slurm":
        from hpo.launch import slurm_script as source
    elif name == "k8s":
        from hpo.launch import k8s_render as source
    else:
        raise HpoError(f"no launcher {name!r}; launchers: {', '.join(LAUNCHERS)}")
    parameters = inspect.signature(source.OPTIONS_FROM, eval_str=True).parameters
    return ({key: p for key, p in parameters.items() if p.kind is p.KEYWORD_ONLY and key not in source.NOT_OPTIONS},
            source.OPTION_HELP)


def launcher(name: str) -> Launcher:
    from hpo.launch.k8s import KubernetesLauncher
    from hpo.launch.local import LocalLauncher
    from hpo.launch.slurm import SlurmLauncher

    launchers: dict[str, Launcher] = {"local": LocalLauncher(), "slurm": SlurmLauncher(), "k8s": KubernetesLauncher()}
    if name not in launchers:
        raise HpoError(f"no launcher {name!r}; launchers: {', '.join(launchers)}")
    return launchers[name]


def launch(name: str, study_file: Path, *, dry_run: bool = False, storage: str | None = None,
           n_trials: int | None = None, **options: Any) -> Launch:
    """The flow every launcher shares: validate the study file once, check the storage its workers will resolve
    (--storage, HPO_STORAGE, the study file's), then render it (a dry run) or submit it."""
    from hpo.settings import resolve_storage
    from hpo.spec import load_study_file

    chosen = launcher(name)
    legal, _ = options_of(name)
    unknown = sorted(set(options) - set(legal))
    if unknown:
        raise HpoError(f"unknown {name} launch option(s) {', '.join(unknown)}; valid: {', '.join(legal)}")
    for key, value in options.items():
        check_one_line(f"--{key.replace('_', '-')}", value)
    path = Path(study_file).expanduser().absolute()
    spec, text = load_study_file(path)
    study = StudyFile(spec.name, path, text, n_trials)
    target = resolve_storage(storage, spec.storage)
    notes = chosen.check_storage(target)
    if dry_run:
        return Launch(spec.name, chosen.render(study, **options), notes=notes, submitted=False)
    launched = chosen.submit(study, target, storage=storage, **options)
    return Launch(launched.study, launched.rendered, launched.message, notes + launched.notes, launched.exit_code,
                  record=launched.record)


def check_one_line(option: str, value: Any) -> None:
    """Refuse an option value (or any item of a repeatable one) holding a control character: a newline in
    `--partition` would end the #SBATCH block of the job script and run the rest as a shell line, a newline in
    `--setup` would make one setup line two; in a manifest or a log it would forge a line just the same."""
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    for item in items:
        if not isinstance(item, str | Path):
            continue  # a number or a flag: typed already, nothing to end a line with
        bad = next((c for c in str(item) if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
        if bad is not None:
            shown = repr(bad)[1:-1]
            what = _NAMED.get(bad, f"the control character U+{ord(bad):04X}")
            raise HpoError(f"{option}: contains {what} ({shown}); an option value is one line")
