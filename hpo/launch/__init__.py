"""Launchers: local processes, Slurm job arrays, Kubernetes Indexed Jobs. Each starts `hpo run` workers."""
