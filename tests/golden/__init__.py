"""The golden files' cases: what each file under tests/golden/ was rendered from. The tests compare a fresh
rendering with the file; only `python scripts/update-goldens.py` (a developer, after checking the difference)
writes the files, never a test run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).parent
REPO = FOLDER.parents[1]

SLURM_CASES: dict[str, dict[str, Any]] = {
    # the issue's example: 16 GPU workers for 4 hours, with every option set
    "r8-from-20ng-array16.sbatch": dict(
        name="r8-from-20ng", log_dir="/shared/hpo/.hpo/slurm/r8-from-20ng", array=16, gpus_per_task=1,
        partition="gpu", time="4:00:00", cpus_per_task=8, mem="16G", account="nlp", qos="normal",
        constraint="a100", sbatch=["--mail-type=END", "--exclusive"], setup=["module load cuda/12.4"],
        python="/shared/hpo/.venv/bin/python",
    ),
    # the defaults: one CPU-only worker (a plain job, no array)
    "quickstart-one-cpu-task.sbatch": dict(
        name="quickstart", log_dir="/home/me/hpo/.hpo/slurm/quickstart", array=1, time="30", gpus_per_task=0,
        python="/home/me/hpo/.venv/bin/python",
    ),
}

K8S_STUDY = REPO / "studies" / "r8-from-20ng.yaml"
K8S_LAUNCHED = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
K8S_SUFFIX = "3f9a"
K8S_IMAGE = "registry.example/hpo:1.0"
K8S_ISSUE_COMMAND = {"workers": 16, "image": K8S_IMAGE, "gpus_per_worker": 1, "db_secret": "hpo-db"}
K8S_CASES: dict[str, dict[str, Any]] = {
    "r8-from-20ng.yaml": K8S_ISSUE_COMMAND,
    "r8-from-20ng-spot-options.yaml": {
        "workers": 4, "image": K8S_IMAGE, "gpus_per_worker": 2, "db_secret": "hpo-db", "namespace": "ml",
        "cpu": "7500m", "memory": "24Gi",
        "node_selector": ["nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3", "cloud.google.com/gke-spot=true"],
        "toleration": ["nvidia.com/gpu:NoSchedule", "cloud.google.com/gke-spot=true:NoSchedule"],
        "service_account": "hpo-worker", "ttl_seconds": 3600, "backoff_per_index": 5, "cache_pvc": "hpo-cache",
    },
    "r8-from-20ng-cpu.yaml": {"workers": 3, "image": f"{K8S_IMAGE}-cpu", "gpus_per_worker": 0, "db_secret": "hpo-db",
                              "cpu": "2", "memory": "6Gi"},
}


def golden_path(kind: str, name: str) -> Path:
    return FOLDER / kind / name


def render_k8s(**options: Any) -> list[dict[str, Any]]:
    """The manifests of the r8-from-20ng study file, at a fixed clock and name suffix."""
    from hpo.launch.k8s_render import render_job

    return render_job(K8S_STUDY.read_text(), "r8-from-20ng", launched_at=K8S_LAUNCHED, suffix=K8S_SUFFIX, **options)


def rendered(kind: str, name: str) -> str:
    """What the golden file `kind/name` must hold, rendered now."""
    if kind == "slurm":
        from hpo.launch.slurm_script import render_job_script

        return render_job_script(**SLURM_CASES[name])
    from hpo.launch.k8s_render import to_yaml

    return to_yaml(render_k8s(**K8S_CASES[name]))


def cases() -> list[tuple[str, str]]:
    return [("slurm", name) for name in sorted(SLURM_CASES)] + [("k8s", name) for name in sorted(K8S_CASES)]
