"""The Optuna side: the search space (the one caller of suggest_*), samplers and pruners, the objective (the one
place outcomes become trial states and retries), the worker loop, warm starts, provenance and progress."""
