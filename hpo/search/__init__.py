"""The Optuna side: the search space (the one caller of suggest_*), samplers and pruners, the objective (the one
place outcomes become trial states and retries), a worker's run of a study (worker.py), the trial loop
(runner.py), warm starts, provenance and progress."""
