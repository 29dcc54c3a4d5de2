"""transfer-hpo: hyperparameter optimisation for transfer-learning fine-tunes.

The Python API (`hpo.run`, `hpo.load`, `hpo.retrain`, `hpo.evaluate`, `hpo.predict`, `hpo.transfer_effect`) lives
in `hpo.api`; its names are imported on first use, so `import hpo` loads neither optuna nor torch.
"""

from typing import Any

from hpo import api
from hpo.errors import DataError, HpoError, OutputError, SpecError, StorageError, StudyMismatchError

__version__ = "0.1.0"

__all__ = ["DataError", "HpoError", "OutputError", "SpecError", "StorageError", "StudyMismatchError", "__version__",
           *api.__all__]


def __getattr__(name: str) -> Any:
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
