"""Where the API's progress goes: nowhere unless asked, since a library call that prints surprises its caller."""

from __future__ import annotations

from rich.console import Console

from hpo.search.worker import quiet_libraries

__all__ = ["Progress", "console_for"]

Progress = bool | Console | None  # None or False: silent; True: the terminal, as the CLI shows it; a Console: that


def console_for(progress: Progress) -> Console:
    """The console the wrapped workflow prints to, and the libraries as quiet as the CLI makes them (no download
    bars or transformers warnings in the caller's output)."""
    quiet_libraries()
    if isinstance(progress, Console):
        return progress
    return Console() if progress else Console(quiet=True)
