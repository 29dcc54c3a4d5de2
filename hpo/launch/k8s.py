"""`hpo launch k8s`: N `hpo run` workers as one Kubernetes Indexed Job, the study file in a ConfigMap beside it.

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
Both objects carry the labels `app.kubernetes.io/name: transfer-hpo` and `hpo/study: <study>`; `stop_job` deletes
by them. The manifests use fields of Kubernetes ≥ 1.29 (`backoffLimitPerIndex`, `podReplacementPolicy`: beta and
on by default in 1.29, GA in 1.33 and 1.34) and are validated against every minor version in
`KUBERNETES_VERSIONS` by the tests (kubernetes-validate --strict).
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import os
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hpo.errors import HpoError
from hpo.launch.registry import record_launch

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "APP_LABEL",
    "KUBERNETES_VERSIONS",
    "SECRET_KEY",
    "STUDY_LABEL",
    "apply_job",
    "check_manifests",
    "job_name",
    "launch_k8s",
    "launch_options",
    "render_job",
    "stop_job",
    "to_yaml",
    "validate_manifests",
]

KUBERNETES_VERSIONS = ("1.29", "1.37")  # oldest and newest Kubernetes minor the manifests are validated against
APP_LABEL = "app.kubernetes.io/name"
APP = "transfer-hpo"
STUDY_LABEL = "hpo/study"
SECRET_KEY = "url"  # the key of the --db-secret Secret that holds the storage URL
STUDY_DIR = "/etc/hpo"
STUDY_FILE = "study.yaml"
CACHE_DIR = "/cache"  # HPO_CACHE; the repository's Dockerfile makes it writable by its user (uid 1000)
IMAGE_GID = 1000  # fsGroup: a mounted cache volume is made writable for that image's user
CONTAINER = "worker"
MAX_NAME = 52  # pods are named `<job>-<index>-<5 random>`, hostnames `<job>-<index>`: keep those under 63

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_MODELS = {("v1", "ConfigMap"): "V1ConfigMap", ("batch/v1", "Job"): "V1Job"}


# --- rendering (pure) -----------------------------------------------------------------------------------------


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
    launched_at: datetime | None = None,
    suffix: str | None = None,
) -> list[dict[str, Any]]:
    """The ConfigMap and the Indexed Job (in that order, the order to create them) for one launch of a study.

    Every parameter after `*` except `launched_at` and `suffix` is a launcher option, named as on the command line
    (`--gpus-per-worker`, `--node-selector KEY=VALUE` and `--toleration KEY[=VALUE][:EFFECT]`, both repeatable).
    `launched_at` (default: now) and `suffix` (default: 4 random hex digits) make the name, and so the output,
    reproducible. Bad options raise HpoError naming the option.
    """
    from kubernetes import client as k8s
    from kubernetes.client import ApiClient

    _check_options(workers=workers, image=image, db_secret=db_secret, gpus_per_worker=gpus_per_worker,
                   namespace=namespace, cpu=cpu, memory=memory, service_account=service_account,
                   ttl_seconds=ttl_seconds, backoff_per_index=backoff_per_index, cache_pvc=cache_pvc)
    selector = _node_selector(node_selector)
    tolerations = [_toleration(item) for item in toleration]
    name = job_name(study_name, launched_at or datetime.now(UTC), suffix or secrets.token_hex(2))
    labels = {APP_LABEL: APP, STUDY_LABEL: study_name}

    config_map = k8s.V1ConfigMap(
        api_version="v1", kind="ConfigMap",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        data={STUDY_FILE: spec_text},
        immutable=True,
    )
    requests = {"cpu": cpu, "memory": memory}
    limits = {"memory": memory}
    if gpus_per_worker:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus_per_worker)
    container = k8s.V1Container(
        name=CONTAINER,
        image=image.strip(),
        command=["hpo", "run", f"{STUDY_DIR}/{STUDY_FILE}"],
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
    cache = (k8s.V1Volume(name="cache", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                 claim_name=cache_pvc)) if cache_pvc
             else k8s.V1Volume(name="cache", empty_dir=k8s.V1EmptyDirVolumeSource()))
    pod = k8s.V1PodSpec(
        restart_policy="Never",  # backoffLimitPerIndex and podFailurePolicy require it
        containers=[container],
        volumes=[k8s.V1Volume(name="study", config_map=k8s.V1ConfigMapVolumeSource(name=name)), cache],
        node_selector=selector or None,
        tolerations=tolerations or None,
        service_account_name=service_account,
        security_context=k8s.V1PodSecurityContext(fs_group=IMAGE_GID),
    )
    job = k8s.V1Job(
        api_version="batch/v1", kind="Job",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=k8s.V1JobSpec(
            completion_mode="Indexed",
            completions=workers,
            parallelism=workers,
            backoff_limit_per_index=backoff_per_index,
            pod_failure_policy=k8s.V1PodFailurePolicy(rules=[k8s.V1PodFailurePolicyRule(
                action="Ignore",
                on_pod_conditions=[k8s.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget",
                                                                                 status="True")],
            )]),
            pod_replacement_policy="Failed",
            ttl_seconds_after_finished=ttl_seconds,
            template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=pod),
        ),
    )
    serialise = ApiClient().sanitize_for_serialization
    return [_head_first(serialise(config_map)), _head_first(serialise(job))]


def job_name(study_name: str, launched_at: datetime, suffix: str) -> str:
    """`hpo-<study>-<YYYYmmdd-HHMMSS>-<suffix>`, the study part lower-cased and shortened to fit MAX_NAME."""
    if not _LABEL_VALUE.fullmatch(study_name) or not study_name:
        raise HpoError(f"study name {study_name!r} cannot be a Kubernetes label value (at most 63 letters, digits, "
                       "'-', '_' or '.', starting and ending with a letter or digit); set name: in the study file")
    if not re.fullmatch(r"[0-9a-f]{1,8}", suffix):
        raise HpoError(f"the name suffix must be 1 to 8 lower-case hex digits (got {suffix!r})")
    stamp = launched_at.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", study_name.lower()).strip("-")
    room = MAX_NAME - len(f"hpo--{stamp}-{suffix}")
    slug = slug[:room].rstrip("-") or "study"
    return f"hpo-{slug}-{stamp}-{suffix}"


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
    _dns("--namespace", namespace, _DNS_LABEL, 63)
    _dns("--db-secret", db_secret, _DNS_SUBDOMAIN, 253)
    if service_account is not None:
        _dns("--service-account", service_account, _DNS_SUBDOMAIN, 253)
    if cache_pvc is not None:
        _dns("--cache-pvc", cache_pvc, _DNS_SUBDOMAIN, 253)
    for option, value, example in (("--cpu", cpu, "4 or 3500m"), ("--memory", memory, "16Gi or 16000M")):
        if _quantity(value) is None or _quantity(value) <= 0:
            raise HpoError(f"{option} must be a positive Kubernetes quantity such as {example} (got {value!r})")


def _whole(option: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise HpoError(f"{option} must be a whole number ≥ {least} (got {value!r})")


def _dns(option: str, value: Any, pattern: re.Pattern[str], longest: int) -> None:
    if not isinstance(value, str) or len(value) > longest or not pattern.fullmatch(value):
        raise HpoError(f"{option} {value!r} is not a valid Kubernetes name (lower-case letters, digits and '-'"
                       f"{', and dots' if pattern is _DNS_SUBDOMAIN else ''}; at most {longest} characters)")


def _label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    prefix_ok = not prefix or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(prefix)))
    return prefix_ok and 0 < len(name) <= 63 and bool(_LABEL_VALUE.fullmatch(name))


def _label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.fullmatch(value))


def _node_selector(items: Sequence[str]) -> dict[str, str]:
    selector: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _label_key(key) or not _label_value(value):
            raise HpoError(f"--node-selector {item!r}: write KEY=VALUE with a label key and value, "
                           "e.g. nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3")
        selector[key] = value
    return selector


def _toleration(item: str) -> Any:
    from kubernetes import client as k8s

    head, colon, effect = item.rpartition(":") if ":" in item else (item, "", "")
    key, equals, value = head.partition("=")
    if (colon and effect not in _EFFECTS) or not _label_key(key) or (equals and not _label_value(value)):
        raise HpoError(f"--toleration {item!r}: write KEY=VALUE:EFFECT or KEY:EFFECT (any value), EFFECT one of "
                       f"{', '.join(_EFFECTS)} or left out (every effect), e.g. nvidia.com/gpu=present:NoSchedule")
    return k8s.V1Toleration(key=key, operator="Equal" if equals else "Exists", value=value if equals else None,
                            effect=effect or None)


def _quantity(value: Any) -> Any:
    from kubernetes.utils import parse_quantity

    try:
        return parse_quantity(value)
    except (ValueError, TypeError, ArithmeticError):
        return None


# --- checks ---------------------------------------------------------------------------------------------------


def validate_manifests(docs: Sequence[dict[str, Any]]) -> list[str]:
    """Each manifest through the `kubernetes` client's strict model (pydantic, unknown fields forbidden): misspelt
    fields and wrong types. One line per problem, empty when all are valid."""
    from pydantic import ValidationError

    problems: list[str] = []
    for number, doc in enumerate(docs, 1):
        where = _where(doc, number)
        model = _model(doc)
        if model is None:
            known = ", ".join(f"{api}/{kind}" for api, kind in _MODELS)
            problems.append(f"{where}: unexpected apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')} "
                            f"(expected {known})")
            continue
        try:
            model.model_validate(doc)
        except ValidationError as exc:
            for err in exc.errors():
                path = ".".join(str(part) for part in err["loc"])
                problems.append(f"{where}: {path}: {err['msg']} (got {err.get('input')!r})")
    return problems


def check_manifests(docs: Sequence[dict[str, Any]]) -> list[str]:
    """The project's own rules, which no schema expresses: an Indexed Job with restartPolicy Never, an image,
    quantities that parse, parallelism ≤ completions, the storage URL from a Secret, the study ConfigMap present.
    One line per problem, empty when all hold."""
    problems: list[str] = []
    jobs = [(number, doc) for number, doc in enumerate(docs, 1) if doc.get("kind") == "Job"]
    config_maps = {(doc.get("metadata") or {}).get("name"): doc for doc in docs if doc.get("kind") == "ConfigMap"}
    if len(jobs) != 1:
        problems.append(f"expected one Job, found {len(jobs)}")
    for number, job in jobs:
        where = _where(job, number)
        spec = _mapping(job.get("spec"))
        pod = _mapping(_mapping(spec.get("template")).get("spec"))
        if spec.get("completionMode") != "Indexed":
            problems.append(f"{where}: spec.completionMode must be Indexed (got {spec.get('completionMode')!r})")
        if pod.get("restartPolicy") != "Never":
            problems.append(f"{where}: spec.template.spec.restartPolicy must be Never: backoffLimitPerIndex needs "
                            f"it (got {pod.get('restartPolicy')!r})")
        completions, parallelism = spec.get("completions"), spec.get("parallelism")
        if not isinstance(completions, int) or completions < 1:
            problems.append(f"{where}: spec.completions must be a whole number ≥ 1 (got {completions!r})")
        elif not isinstance(parallelism, int) or not 1 <= parallelism <= completions:
            problems.append(f"{where}: spec.parallelism must be between 1 and completions ({completions}) "
                            f"(got {parallelism!r})")
        for label in (APP_LABEL, STUDY_LABEL):
            for part, meta in (("metadata", job.get("metadata")),
                               ("spec.template.metadata", _mapping(spec.get("template")).get("metadata"))):
                if not _mapping(_mapping(meta).get("labels")).get(label):
                    problems.append(f"{where}: {part}.labels has no {label}")
        containers = pod.get("containers") or []
        if not containers:
            problems.append(f"{where}: spec.template.spec.containers is empty")
        for i, container in enumerate(containers):
            problems += _container_problems(f"{where}: spec.template.spec.containers[{i}]", _mapping(container))
        for volume in pod.get("volumes") or []:
            referenced = _mapping(_mapping(volume).get("configMap")).get("name")
            if referenced is not None and STUDY_FILE not in _mapping(_mapping(config_maps.get(referenced))
                                                                     .get("data")):
                problems.append(f"{where}: volume {_mapping(volume).get('name')!r} mounts ConfigMap {referenced!r}, "
                                f"but no ConfigMap of that name with key {STUDY_FILE} is among the manifests")
    return problems


def _container_problems(where: str, container: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        problems.append(f"{where}.image is missing or empty")
    resources = _mapping(container.get("resources"))
    for kind in ("requests", "limits"):
        for resource, value in _mapping(resources.get(kind)).items():
            parsed = _quantity(value)
            if parsed is None or parsed < 0:
                problems.append(f"{where}.resources.{kind}.{resource}: {value!r} is not a Kubernetes quantity")
            elif resource == "nvidia.com/gpu" and parsed != int(parsed):
                problems.append(f"{where}.resources.{kind}.{resource}: GPUs come whole (got {value!r})")
    requests, limits = _mapping(resources.get("requests")), _mapping(resources.get("limits"))
    if "nvidia.com/gpu" in requests and requests["nvidia.com/gpu"] != limits.get("nvidia.com/gpu"):
        problems.append(f"{where}.resources: nvidia.com/gpu requests and limits must be equal")
    env = {item.get("name"): item for item in (container.get("env") or []) if isinstance(item, dict)}
    storage = env.get("HPO_STORAGE")
    if storage is None or "value" in storage or not _mapping(storage.get("valueFrom")).get("secretKeyRef"):
        problems.append(f"{where}.env: HPO_STORAGE must come from a Secret (valueFrom.secretKeyRef), never a value")
    return problems


def _model(doc: dict[str, Any]) -> Any:
    from kubernetes import client as k8s

    name = _MODELS.get((doc.get("apiVersion"), doc.get("kind")))
    return getattr(k8s, name) if name else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _where(doc: dict[str, Any], number: int) -> str:
    name = _mapping(doc.get("metadata")).get("name")
    return f"{doc.get('kind', 'document')} {name}" if name else f"document {number} ({doc.get('kind', '?')})"


# --- the cluster ----------------------------------------------------------------------------------------------


def apply_job(docs: Sequence[dict[str, Any]], namespace: str, api_client: ApiClient | None = None) -> str:
    """Create the ConfigMap, then the Job, in `namespace` through the current kube context (or `api_client`);
    return the Job's name. The ConfigMap is then owned by the Job, so it goes when the Job goes (by hand or
    after ttlSecondsAfterFinished); if the Job cannot be created, the ConfigMap is deleted again."""
    from kubernetes import client as k8s

    by_kind = {doc.get("kind"): doc for doc in docs}
    if set(by_kind) != {"ConfigMap", "Job"} or len(docs) != 2:
        raise HpoError("apply_job takes the ConfigMap and the Job that render_job made")
    for doc in docs:
        if _mapping(doc.get("metadata")).get("namespace", namespace) != namespace:
            raise HpoError(f"{_where(doc, 0)} is for namespace {doc['metadata']['namespace']!r}, not {namespace!r}")
    api = api_client or _default_client()
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    config_map, job = k8s.V1ConfigMap.model_validate(by_kind["ConfigMap"]), k8s.V1Job.model_validate(by_kind["Job"])
    _call(f"create ConfigMap {config_map.metadata.name} in namespace {namespace}", api,
          core.create_namespaced_config_map, namespace, config_map)
    try:
        created = _call(f"create Job {job.metadata.name} in namespace {namespace}", api,
                        batch.create_namespaced_job, namespace, job)
    except HpoError:
        _quietly(core.delete_namespaced_config_map, config_map.metadata.name, namespace)
        raise
    uid = created.metadata.uid if created.metadata is not None else None
    if uid:
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job.metadata.name, "uid": uid}
        _quietly(core.patch_namespaced_config_map, config_map.metadata.name, namespace,
                 {"metadata": {"ownerReferences": [owner]}})  # stop_job deletes it anyway if this fails
    return job.metadata.name


def stop_job(study_name: str, namespace: str, api_client: ApiClient | None = None) -> str:
    """Delete every Job labelled `hpo/study=<study_name>` (and `app.kubernetes.io/name=transfer-hpo`) in
    `namespace`, with background propagation, and their ConfigMaps. The pods get SIGTERM: each worker marks its
    running trial FAIL `preempted`, queues its retry and exits 75; the next run picks the trials up."""
    from kubernetes import client as k8s

    if not _label_value(study_name) or not study_name:
        raise HpoError(f"study name {study_name!r} cannot be a Kubernetes label value")
    api = api_client or _default_client()
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    selector = f"{APP_LABEL}={APP},{STUDY_LABEL}={study_name}"
    where = f"in namespace {namespace}"
    jobs = _ours(_call(f"list Jobs {where}", api, batch.list_namespaced_job, namespace, label_selector=selector),
                 study_name)
    config_maps = _ours(_call(f"list ConfigMaps {where}", api, core.list_namespaced_config_map, namespace,
                              label_selector=selector), study_name)
    for name in jobs:
        _call(f"delete Job {name} {where}", api, batch.delete_namespaced_job, name, namespace,
              propagation_policy="Background", missing_ok=True)
    for name in config_maps:  # usually gone with its Job already (owner reference)
        _call(f"delete ConfigMap {name} {where}", api, core.delete_namespaced_config_map, name, namespace,
              missing_ok=True)
    if not jobs and not config_maps:
        return f"no Job of study {study_name!r} {where}"
    return (f"deleted {len(jobs)} Job(s) of study {study_name!r} {where} ({', '.join(jobs) or 'none'}) and "
            f"{len(config_maps)} ConfigMap(s); their pods get SIGTERM: running trials end FAIL `preempted` and "
            "are retried by the next run")


def _ours(listing: Any, study_name: str) -> list[str]:
    """Names of the listed objects that really carry our labels (a server that ignores label selectors, such as
    an emulator, must not make us delete someone else's Job)."""
    names = []
    for item in listing.items or []:
        labels = (item.metadata.labels or {}) if item.metadata is not None else {}
        if labels.get(APP_LABEL) == APP and labels.get(STUDY_LABEL) == study_name:
            names.append(item.metadata.name)
    return sorted(names)


def _default_client() -> ApiClient:
    """An API client for the current kube context (KUBECONFIG or ~/.kube/config), or the pod's service account
    when running inside a cluster."""
    from kubernetes import client as k8s
    from kubernetes import config

    try:  # KUBECONFIG read now, as kubectl does (the client library reads it once, at import)
        return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG") or None)
    except (config.ConfigException, OSError, TypeError) as exc:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise HpoError(f"no Kubernetes context: {exc}. Set KUBECONFIG or run `kubectl config use-context "
                           "NAME`; --dry-run prints the manifests without a cluster") from None
        return k8s.ApiClient()


def _call(action: str, api: ApiClient, method: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return method(*args, **kwargs)
    except ApiException as exc:
        if missing_ok and exc.status == 404:
            return None
        raise HpoError(f"cannot {action}: {_api_reason(exc)}") from None
    except HTTPError as exc:
        raise HpoError(f"cannot {action}: the Kubernetes API server at {api.configuration.host} does not answer "
                       f"({type(exc).__name__})") from None


def _api_reason(exc: Any) -> str:
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")


def _quietly(method: Any, *args: Any) -> None:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    with contextlib.suppress(ApiException, HTTPError):
        method(*args)


def _check_db_secret(api: ApiClient, namespace: str, secret: str) -> str | None:
    """Refuse a launch whose pods could not start (no Secret, no key `url`) or would each get their own database
    (SQLite). A context that may not read Secrets skips the check and says so. The URL is never shown."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        found = k8s.CoreV1Api(api).read_namespaced_secret(secret, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise HpoError(f"--db-secret: no Secret {secret!r} in namespace {namespace!r}; create it with "
                           f"kubectl -n {namespace} create secret generic {secret} "
                           f"--from-literal={SECRET_KEY}='postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB'") from None
        if exc.status in (401, 403):
            return f"(Secret {secret!r} not checked: this context may not read Secrets)"
        raise HpoError(f"cannot read Secret {secret!r} in namespace {namespace!r}: {_api_reason(exc)}") from None
    data = found.data or {}
    if SECRET_KEY not in data:
        raise HpoError(f"--db-secret: Secret {secret!r} has no key {SECRET_KEY!r} (keys: {', '.join(data) or 'none'}); "
                       "the workers read the storage URL from it")
    try:
        url = base64.b64decode(data[SECRET_KEY]).decode()
    except ValueError:
        raise HpoError(f"--db-secret: key {SECRET_KEY!r} of Secret {secret!r} is not valid base64") from None
    if url.strip().startswith("sqlite"):
        raise HpoError(f"--db-secret: Secret {secret!r} holds a SQLite URL; every pod would get its own database "
                       "file. Workers on a cluster share PostgreSQL: postgresql+psycopg2://USER:PASSWORD@HOST/DB")
    return None


# --- the command ----------------------------------------------------------------------------------------------


def launch_options() -> tuple[str, ...]:
    """The launcher's options: render_job's keyword-only parameters, less the two that fix its output."""
    parameters = inspect.signature(render_job).parameters.values()
    return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in ("launched_at", "suffix"))


def launch_k8s(
    study_file: Path, *, dry_run: bool = False, check_secret: bool = True, api_client: ApiClient | None = None,
    **options: Any,
) -> str:
    """Render the study's Job; with `dry_run`, return the manifests as YAML; otherwise check the Secret (unless
    `check_secret` is false), create the ConfigMap and the Job, record the launch for `hpo stop`, and return what
    was done. `options` are render_job's; an unknown one is a TypeError listing the valid ones."""
    from hpo.spec import load_spec

    unknown = sorted(set(options) - set(launch_options()) - {"launched_at", "suffix"})
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(launch_options())}")
    spec = load_spec(study_file)
    docs = render_job(Path(study_file).read_text(), spec.name, **options)
    problems = validate_manifests(docs) + check_manifests(docs)
    if problems:  # render_job's own output: a bug, never the user's input
        raise HpoError("the rendered manifests are invalid (please report this):\n  " + "\n  ".join(problems))
    if dry_run:
        return to_yaml(docs)
    job = docs[-1]
    namespace, job_spec = job["metadata"]["namespace"], job["spec"]
    api = api_client or _default_client()
    note = _check_db_secret(api, namespace, options["db_secret"]) if check_secret else None
    name = apply_job(docs, namespace, api)
    record_launch(spec.name, "k8s", namespace=namespace, job=name, workers=job_spec["completions"],
                  image=options["image"])
    lines = [f"created ConfigMap {name} and Job {name} in namespace {namespace}: {job_spec['completions']} workers "
             f"on study {spec.name!r}, image {options['image']}, storage from Secret {options['db_secret']}"
             f" (key {SECRET_KEY})", *([note] if note else []),
             f"  pods:   kubectl -n {namespace} get pods -l batch.kubernetes.io/job-name={name}",
             f"  logs:   kubectl -n {namespace} logs -f -l batch.kubernetes.io/job-name={name} --prefix "
             f"--max-log-requests {job_spec['completions']}",
             f"  study:  hpo status {spec.name}   (with HPO_STORAGE set to the same database)",
             f"  stop:   hpo stop {spec.name}   (deletes the Job: running trials end FAIL `preempted`, retried later)"]
    return "\n".join(lines)
