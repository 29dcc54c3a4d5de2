"""The manifests of `hpo launch k8s`: N `hpo run` workers as one Kubernetes Indexed Job, the study file in a
ConfigMap beside it.

`render_job` is pure: study text and options in, manifests (plain dicts, built from the `kubernetes` client's
models) out. Its keyword-only parameters are the launcher's options; the CLI maps them one to one. What it renders:

- a ConfigMap `<name>` holding the study file as `study.yaml`, mounted read-only at /etc/hpo;
- a Job `<name>`: `completionMode: Indexed`, `completions` = `parallelism` = workers, each index running
  `hpo run /etc/hpo/study.yaml`. `backoffLimitPerIndex` restarts an index whose pod failed (the worker exits 75
  after SIGTERM, its running trial FAIL `preempted` and queued for a retry); a pod the cluster evicted or preempted
  (pod condition `DisruptionTarget`) is replaced without counting against that limit (`podFailurePolicy`). No
  `maxFailedIndexes`: one index that keeps failing does not stop the others, which share the study's budget.
  `podReplacementPolicy: Failed` starts a replacement only once the old pod has finished marking its trial.
- `HPO_STORAGE` from the Secret `--db-secret`, key `url` (never in the manifest), `POD_NAME` from the downward API
  (with `JOB_COMPLETION_INDEX`, set by Kubernetes, it is recorded on each trial), `HPO_CACHE=/cache` on an emptyDir
  or the PersistentVolumeClaim `--cache-pvc`.

`<name>` is `hpo-<study>-<YYYYmmdd-HHMMSS>-<4 hex>` (UTC), new for every launch because a Job cannot be changed.
Both objects carry the labels `app.kubernetes.io/name: transfer-hpo` and `hpo/study: <study>`, and the annotation
`hpo/study-name: <study>`; `stop_job` selects by the labels and deletes what the annotation names. A study name
that does not fit a name or a label value is cut there and given a hash of the whole name (k8s_names.py). The
manifests use fields of Kubernetes ≥ 1.29 (`backoffLimitPerIndex`, `podReplacementPolicy`: beta and
on by default in 1.29, GA in 1.33 and 1.34) and are validated against every minor version in
`KUBERNETES_VERSIONS` by the tests (kubernetes-validate --strict).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from hpo.errors import HpoError
from hpo.launch.k8s_names import DNS_LABEL, DNS_SUBDOMAIN, job_name, label_key, label_value, study_label

__all__ = [
    "APP",
    "APP_LABEL",
    "KUBERNETES_VERSIONS",
    "NOT_OPTIONS",
    "OPTIONS_FROM",
    "OPTION_HELP",
    "SECRET_KEY",
    "STUDY_ANNOTATION",
    "STUDY_FILE",
    "STUDY_LABEL",
    "job_name",
    "label_value",
    "render_job",
    "study_label",
    "to_yaml",
]

NOT_OPTIONS = ("n_trials", "launched_at", "suffix")  # render_job's parameters a launch fills in
OPTION_HELP = {
    "workers": "Worker pods at once: the Job's parallelism and completions.",
    "image": "Container image with transfer-hpo installed, e.g. built from the Dockerfile.",
    "db_secret": "Secret whose key `url` holds the storage URL (the workers' HPO_STORAGE).",
    "gpus_per_worker": "nvidia.com/gpu per pod; 0 for CPU workers.",
    "namespace": "Kubernetes namespace.",
    "cpu": "CPU request per pod (a quantity: 4, 3500m).",
    "memory": "Memory request and limit per pod.",
    "node_selector": "KEY=VALUE a node must carry; repeatable.",
    "toleration": "KEY=VALUE:EFFECT or KEY:EFFECT, a taint to tolerate; repeatable.",
    "service_account": "The pods' service account.",
    "ttl_seconds": "Delete the finished Job (and its ConfigMap) after this many seconds.",
    "backoff_per_index": "Restarts of a failed worker index before it counts as failed.",
    "cache_pvc": "PersistentVolumeClaim for HPO_CACHE (/cache); default: an emptyDir per pod.",
}
KUBERNETES_VERSIONS = ("1.29", "1.37")  # oldest and newest Kubernetes minor the manifests are validated against
APP_LABEL = "app.kubernetes.io/name"
APP = "transfer-hpo"
STUDY_LABEL = "hpo/study"  # the study's name, or (too long for a label) its cut-and-hashed form: k8s_names.py
STUDY_ANNOTATION = "hpo/study-name"  # the study's full name
SECRET_KEY = "url"  # the key of the --db-secret Secret that holds the storage URL
STUDY_DIR = "/etc/hpo"
STUDY_FILE = "study.yaml"
CACHE_DIR = "/cache"  # HPO_CACHE; the repository's Dockerfile makes it writable by its user (uid 1000)
IMAGE_GID = 1000  # fsGroup: a mounted cache volume is made writable for that image's user
CONTAINER = "worker"
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")



def render_job(
    spec_text: str,
    study_name: str,
    *,
    workers: int,
    image: str,
    db_secret: str,
    gpus_per_worker: int = 1,
    namespace: str = "default",
    cpu: str = "4",
    memory: str = "16Gi",
    node_selector: Sequence[str] = (),
    toleration: Sequence[str] = (),
    service_account: str | None = None,
    ttl_seconds: int | None = 86400,
    backoff_per_index: int = 3,
    cache_pvc: str | None = None,
    n_trials: int | None = None,
    launched_at: datetime | None = None,
    suffix: str | None = None,
) -> list[dict[str, Any]]:
    """The ConfigMap and the Indexed Job (in that order, the order to create them) for one launch of a study.

    Every parameter after `*` but the last three is a launcher option, named as on the command line
    (`--gpus-per-worker`, `--node-selector KEY=VALUE` and `--toleration KEY[=VALUE][:EFFECT]`, both repeatable).
    `n_trials` is the budget the workers set (`hpo run --n-trials`); `launched_at` (default: now) and `suffix`
    (default: 4 random hex digits) make the name, and so the output, reproducible. Bad options raise HpoError
    naming the option.
    """
    from kubernetes import client as k8s
    from kubernetes.client import ApiClient

    _check_options(workers=workers, image=image, db_secret=db_secret, gpus_per_worker=gpus_per_worker,
                   namespace=namespace, cpu=cpu, memory=memory, service_account=service_account,
                   ttl_seconds=ttl_seconds, backoff_per_index=backoff_per_index, cache_pvc=cache_pvc)
    name = job_name(study_name, launched_at or datetime.now(UTC), suffix or secrets.token_hex(2))
    labels, annotations = {APP_LABEL: APP, STUDY_LABEL: study_label(study_name)}, {STUDY_ANNOTATION: study_name}
    metadata = k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels, annotations=annotations)
    config_map = k8s.V1ConfigMap(api_version="v1", kind="ConfigMap", metadata=metadata,
                                 data={STUDY_FILE: spec_text}, immutable=True)
    container = _container(image, db_secret, gpus_per_worker, cpu, memory, n_trials)
    cache = (k8s.V1Volume(name="cache", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                 claim_name=cache_pvc)) if cache_pvc
             else k8s.V1Volume(name="cache", empty_dir=k8s.V1EmptyDirVolumeSource()))
    pod = k8s.V1PodSpec(
        restart_policy="Never",  # backoffLimitPerIndex and podFailurePolicy require it
        containers=[container],
        volumes=[k8s.V1Volume(name="study", config_map=k8s.V1ConfigMapVolumeSource(name=name)), cache],
        node_selector=_node_selector(node_selector) or None,
        tolerations=[_toleration(item) for item in toleration] or None,
        service_account_name=service_account,
        security_context=k8s.V1PodSecurityContext(fs_group=IMAGE_GID),
    )
    job = k8s.V1Job(api_version="batch/v1", kind="Job", metadata=metadata,
                    spec=_job_spec(workers, backoff_per_index, ttl_seconds, metadata.labels, pod))
    serialise = ApiClient().sanitize_for_serialization
    return [_head_first(serialise(config_map)), _head_first(serialise(job))]


def _container(image: str, db_secret: str, gpus: int, cpu: str, memory: str, n_trials: int | None) -> Any:
    """The worker: `hpo run` on the study file from the ConfigMap, the storage URL from the Secret."""
    from kubernetes import client as k8s

    requests = {"cpu": cpu, "memory": memory}
    limits = {"memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    return k8s.V1Container(
        name=CONTAINER,
        image=image.strip(),
        command=["hpo", "run", f"{STUDY_DIR}/{STUDY_FILE}", *(["--n-trials", str(n_trials)] if n_trials else [])],
        env=[
            k8s.V1EnvVar(name="HPO_STORAGE", value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=db_secret, key=SECRET_KEY))),
            k8s.V1EnvVar(name="POD_NAME", value_from=k8s.V1EnvVarSource(
                field_ref=k8s.V1ObjectFieldSelector(field_path="metadata.name"))),
            k8s.V1EnvVar(name="HPO_CACHE", value=CACHE_DIR),
        ],
        resources=k8s.V1ResourceRequirements(requests=requests, limits=limits),
        volume_mounts=[
            k8s.V1VolumeMount(name="study", mount_path=STUDY_DIR, read_only=True),
            k8s.V1VolumeMount(name="cache", mount_path=CACHE_DIR),
        ],
    )


def _job_spec(workers: int, backoff_per_index: int, ttl_seconds: int | None, labels: dict[str, str],
              pod: Any) -> Any:
    """An Indexed Job of `workers` pods: a failed index restarts up to `backoff_per_index` times; an evicted or
    preempted pod (DisruptionTarget) is replaced without counting; a replacement starts once the old pod ended."""
    from kubernetes import client as k8s

    return k8s.V1JobSpec(
        completion_mode="Indexed",
        completions=workers,
        parallelism=workers,
        backoff_limit_per_index=backoff_per_index,
        pod_failure_policy=k8s.V1PodFailurePolicy(rules=[k8s.V1PodFailurePolicyRule(
            action="Ignore",
            on_pod_conditions=[k8s.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")],
        )]),
        pod_replacement_policy="Failed",
        ttl_seconds_after_finished=ttl_seconds,
        template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=pod),
    )


def to_yaml(docs: Sequence[dict[str, Any]]) -> str:
    """The manifests as one multi-document YAML stream (`kubectl create -f -` takes it); the study file as a
    literal block."""
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=120, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def _head_first(doc: dict[str, Any]) -> dict[str, Any]:
    head = {key: doc[key] for key in ("apiVersion", "kind", "metadata") if key in doc}
    return {**head, **{key: value for key, value in doc.items() if key not in head}}


def _check_options(*, workers: Any, image: Any, db_secret: Any, gpus_per_worker: Any, namespace: Any, cpu: Any,
                   memory: Any, service_account: Any, ttl_seconds: Any, backoff_per_index: Any,
                   cache_pvc: Any) -> None:
    if not isinstance(image, str) or not image.strip():
        raise HpoError("--image is required: the container image with transfer-hpo installed "
                       "(e.g. registry.example/hpo:1.0, built from the repository's Dockerfile)")
    if re.search(r"\s", image.strip()):
        raise HpoError(f"--image {image!r} contains whitespace")
    if workers is None:
        raise HpoError("--workers is required: how many worker pods run at once (the Job's parallelism)")
    _whole("--workers", workers, 1)
    _whole("--gpus-per-worker", gpus_per_worker, 0)
    _whole("--backoff-per-index", backoff_per_index, 0)
    if ttl_seconds is not None:
        _whole("--ttl-seconds", ttl_seconds, 0)
    if not db_secret:
        raise HpoError(f"--db-secret is required: the Secret whose key {SECRET_KEY!r} holds the storage URL, e.g. "
                       "kubectl create secret generic hpo-db --from-literal=url=postgresql+psycopg2://USER:PW@HOST/DB")
    _dns("--namespace", namespace, DNS_LABEL, 63)
    _dns("--db-secret", db_secret, DNS_SUBDOMAIN, 253)
    if service_account is not None:
        _dns("--service-account", service_account, DNS_SUBDOMAIN, 253)
    if cache_pvc is not None:
        _dns("--cache-pvc", cache_pvc, DNS_SUBDOMAIN, 253)
    for option, value, example in (("--cpu", cpu, "4 or 3500m"), ("--memory", memory, "16Gi or 16000M")):
        if quantity(value) is None or quantity(value) <= 0:
            raise HpoError(f"{option} must be a positive Kubernetes quantity such as {example} (got {value!r})")


def _whole(option: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise HpoError(f"{option} must be a whole number ≥ {least} (got {value!r})")


def _dns(option: str, value: Any, pattern: re.Pattern[str], longest: int) -> None:
    if not isinstance(value, str) or len(value) > longest or not pattern.fullmatch(value):
        raise HpoError(f"{option} {value!r} is not a valid Kubernetes name (lower-case letters, digits and '-'"
                       f"{', and dots' if pattern is DNS_SUBDOMAIN else ''}; at most {longest} characters)")


def _node_selector(items: Sequence[str]) -> dict[str, str]:
    selector: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not label_key(key) or not label_value(value):
            raise HpoError(f"--node-selector {item!r}: write KEY=VALUE with a label key and value, "
                           "e.g. nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3")
        selector[key] = value
    return selector


def _toleration(item: str) -> Any:
    from kubernetes import client as k8s

    head, colon, effect = item.rpartition(":") if ":" in item else (item, "", "")
    key, equals, value = head.partition("=")
    if (colon and effect not in _EFFECTS) or not label_key(key) or (equals and not label_value(value)):
        raise HpoError(f"--toleration {item!r}: write KEY=VALUE:EFFECT or KEY:EFFECT (any value), EFFECT one of "
                       f"{', '.join(_EFFECTS)} or left out (every effect), e.g. nvidia.com/gpu=present:NoSchedule")
    return k8s.V1Toleration(key=key, operator="Equal" if equals else "Exists", value=value if equals else None,
                            effect=effect or None)


def quantity(value: Any) -> Any:
    """A Kubernetes quantity ("4", "3500m", "16Gi") as a number, or None if it is not one."""
    from kubernetes.utils import parse_quantity

    try:
        return parse_quantity(value)
    except (ValueError, TypeError, ArithmeticError):
        return None


OPTIONS_FROM = render_job  # the renderer whose keyword-only parameters are the launcher's options
