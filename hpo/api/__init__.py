"""The Python API: every `hpo` workflow as one function that returns a typed object and raises the `HpoError`
subclasses the CLI turns into one-line messages. It prints nothing unless asked (`progress=True`).

    import hpo

    result = hpo.run("studies/quickstart.yaml")       # or a dict of the study file's fields
    result.best(3)                                     # the same records as `hpo best quickstart --top 3`

Each function wraps the very function its command calls (no second implementation), so the API and the CLI
cannot disagree. The names are imported on first use: `import hpo` stays instant, `hpo.load` never imports torch,
and only a fine-tune (`retrain`, `evaluate`, `predict`, `transfer_effect`, `run`) does.

`hpo train` is `hpo.retrain` here: `hpo.train` is the fine-tune package, and the import system sets that
attribute to the package whenever any of its modules is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module of hpo.api that defines it
_HOME = {
    "run": "study", "load": "study", "StudyResult": "study", "TrialRecord": "study",
    "retrain": "classifier", "evaluate": "classifier", "predict": "classifier", "TestMetrics": "classifier",
    "Prediction": "classifier", "Retrained": "classifier",
    "transfer_effect": "transfer", "TransferEffect": "transfer",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # imported by name, not by a static import: a static one would load optuna (and torch) with `import hpo`
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
