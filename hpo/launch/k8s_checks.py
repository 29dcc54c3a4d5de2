"""Checks of rendered Kubernetes manifests, offline: the `kubernetes` client's strict models (misspelt fields, wrong
types) and this project's own rules, which no schema expresses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpo.launch.k8s_names import DNS_LABEL, MAX_LABEL, label_key, label_value
from hpo.launch.k8s_render import APP_LABEL, STUDY_FILE, STUDY_LABEL, quantity

__all__ = ["as_mapping", "check_manifests", "describe_doc", "validate_manifests"]

_MODELS = {("v1", "ConfigMap"): "V1ConfigMap", ("batch/v1", "Job"): "V1Job"}


def validate_manifests(docs: Sequence[dict[str, Any]]) -> list[str]:
    """Each manifest through the `kubernetes` client's strict model (pydantic, unknown fields forbidden): misspelt
    fields and wrong types. One line per problem, empty when all are valid."""
    from pydantic import ValidationError

    problems: list[str] = []
    for number, doc in enumerate(docs, 1):
        where = describe_doc(doc, number)
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
    """The project's own rules, which no schema expresses: names and labels within Kubernetes' limits, an Indexed
    Job with restartPolicy Never, an image, quantities that parse, parallelism ≤ completions, the storage URL from
    a Secret, the study ConfigMap present. One line per problem, empty when all hold."""
    problems = [line for number, doc in enumerate(docs, 1) for line in _name_problems(doc, number)]
    jobs = [(number, doc) for number, doc in enumerate(docs, 1) if doc.get("kind") == "Job"]
    config_maps = {(doc.get("metadata") or {}).get("name"): doc for doc in docs if doc.get("kind") == "ConfigMap"}
    if len(jobs) != 1:
        problems.append(f"expected one Job, found {len(jobs)}")
    for number, job in jobs:
        where = describe_doc(job, number)
        spec = as_mapping(job.get("spec"))
        pod = as_mapping(as_mapping(spec.get("template")).get("spec"))
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
                               ("spec.template.metadata", as_mapping(spec.get("template")).get("metadata"))):
                if not as_mapping(as_mapping(meta).get("labels")).get(label):
                    problems.append(f"{where}: {part}.labels has no {label}")
        containers = pod.get("containers") or []
        if not containers:
            problems.append(f"{where}: spec.template.spec.containers is empty")
        for i, container in enumerate(containers):
            problems += _container_problems(f"{where}: spec.template.spec.containers[{i}]", as_mapping(container))
        for volume in pod.get("volumes") or []:
            referenced = as_mapping(as_mapping(volume).get("configMap")).get("name")
            if referenced is not None and STUDY_FILE not in as_mapping(as_mapping(config_maps.get(referenced))
                                                                     .get("data")):
                problems.append(f"{where}: volume {as_mapping(volume).get('name')!r} mounts ConfigMap {referenced!r}, "
                                f"but no ConfigMap of that name with key {STUDY_FILE} is among the manifests")
    return problems


def _name_problems(doc: dict[str, Any], number: int) -> list[str]:
    """What the API server would refuse, or what would break the Job's pods: a name that is no DNS label of at
    most 63 characters (a Job's name becomes its pods' `job-name` label and host names), a label that is no
    label key and value."""
    where = describe_doc(doc, number)
    name = as_mapping(doc.get("metadata")).get("name")
    problems = []
    if not isinstance(name, str) or len(name) > MAX_LABEL or not DNS_LABEL.fullmatch(name):
        problems.append(f"{where}: metadata.name {name!r} is not a DNS label of at most {MAX_LABEL} characters")
    template = as_mapping(as_mapping(as_mapping(doc.get("spec")).get("template")).get("metadata"))
    for part, meta in (("metadata", as_mapping(doc.get("metadata"))), ("spec.template.metadata", template)):
        for key, value in as_mapping(meta.get("labels")).items():
            if not label_key(str(key)) or not isinstance(value, str) or not label_value(value):
                problems.append(f"{where}: {part}.labels.{key}: {value!r} is not a label value (at most "
                                f"{MAX_LABEL} characters, a letter or digit at both ends)")
    return problems


def _container_problems(where: str, container: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        problems.append(f"{where}.image is missing or empty")
    resources = as_mapping(container.get("resources"))
    for kind in ("requests", "limits"):
        for resource, value in as_mapping(resources.get(kind)).items():
            parsed = quantity(value)
            if parsed is None or parsed < 0:
                problems.append(f"{where}.resources.{kind}.{resource}: {value!r} is not a Kubernetes quantity")
            elif resource == "nvidia.com/gpu" and parsed != int(parsed):
                problems.append(f"{where}.resources.{kind}.{resource}: GPUs come whole (got {value!r})")
    requests, limits = as_mapping(resources.get("requests")), as_mapping(resources.get("limits"))
    if "nvidia.com/gpu" in requests and requests["nvidia.com/gpu"] != limits.get("nvidia.com/gpu"):
        problems.append(f"{where}.resources: nvidia.com/gpu requests and limits must be equal")
    env = {item.get("name"): item for item in (container.get("env") or []) if isinstance(item, dict)}
    storage = env.get("HPO_STORAGE")
    if storage is None or "value" in storage or not as_mapping(storage.get("valueFrom")).get("secretKeyRef"):
        problems.append(f"{where}.env: HPO_STORAGE must come from a Secret (valueFrom.secretKeyRef), never a value")
    return problems


def _model(doc: dict[str, Any]) -> Any:
    from kubernetes import client as k8s

    name = _MODELS.get((doc.get("apiVersion"), doc.get("kind")))
    return getattr(k8s, name) if name else None


def as_mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def describe_doc(doc: dict[str, Any], number: int) -> str:
    name = as_mapping(doc.get("metadata")).get("name")
    return f"{doc.get('kind', 'document')} {name}" if name else f"document {number} ({doc.get('kind', '?')})"


