"""Starting workers for a study: one Launcher interface (render / submit / stop / logs) filled in for local processes,
a Slurm job array and a Kubernetes Indexed Job; `hpo stop` and `hpo logs` on what was launched; `hpo prepare`."""
