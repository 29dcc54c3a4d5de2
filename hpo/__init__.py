"""transfer-hpo: hyperparameter optimisation for transfer-learning fine-tunes."""

__version__ = "0.1.0"
