"""`hpo launch k8s`: the study's Indexed Job (k8s_render.py), checked offline (k8s_checks.py), created through the
current kube context with the `kubernetes` client, recorded for `hpo stop`, and deleted by it."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from hpo.errors import HpoError
from hpo.launch.interface import Launch, StudyFile
from hpo.launch.k8s_checks import as_mapping, check_manifests, describe_doc, validate_manifests
from hpo.launch.k8s_render import (
    APP,
    APP_LABEL,
    NOT_OPTIONS,
    OPTION_HELP,
    OPTIONS_FROM,
    SECRET_KEY,
    STUDY_ANNOTATION,
    STUDY_LABEL,
    render_job,
    study_label,
    to_yaml,
)
from hpo.launch.records import KubernetesLaunchRecord, record_launch
from hpo.settings import StorageURL

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = ["KubernetesLauncher", "apply_job", "stop_job"]


class KubernetesLauncher:
    name: ClassVar[str] = "k8s"
    OPTIONS_FROM = staticmethod(OPTIONS_FROM)
    NOT_OPTIONS: ClassVar[tuple[str, ...]] = NOT_OPTIONS
    OPTION_HELP: ClassVar[dict[str, str]] = OPTION_HELP

    def check_storage(self, target: StorageURL) -> tuple[str, ...]:
        return ()  # the pods read the storage from --db-secret, checked when the launch is submitted

    def manifests(self, study: StudyFile, **options: Any) -> list[dict[str, Any]]:
        """The study's ConfigMap and Job, through both validators and the project's rules."""
        docs = render_job(study.text, study.name, n_trials=study.n_trials, **options)
        problems = validate_manifests(docs) + check_manifests(docs)
        if problems:  # render_job's own output: a bug, never the user's input
            raise HpoError("the rendered manifests are invalid (please report this):\n  " + "\n  ".join(problems))
        return docs

    def render(self, study: StudyFile, **options: Any) -> str:
        return to_yaml(self.manifests(study, **options))

    def submit(self, study: StudyFile, target: StorageURL, *, storage: str | None,
               api_client: ApiClient | None = None, check_secret: bool = True, **options: Any) -> Launch:
        """Check the Secret (unless `check_secret` is off), create the ConfigMap and the Job, record the launch."""
        docs = self.manifests(study, **options)
        job = docs[-1]
        namespace, spec = job["metadata"]["namespace"], job["spec"]
        api = api_client or _default_client()
        note = _check_db_secret(api, namespace, options["db_secret"]) if check_secret else None
        name = apply_job(docs, namespace, api)
        record = record_launch(KubernetesLaunchRecord(study=study.name, namespace=namespace, job=name,
                                                      workers=spec["completions"], image=options["image"]))
        lines = [f"created ConfigMap {name} and Job {name} in namespace {namespace}: {spec['completions']} workers "
                 f"on study {study.name!r}, image {options['image']}, storage from Secret {options['db_secret']} "
                 f"(key {SECRET_KEY})", *([note] if note else []),
                 f"  pods:   kubectl -n {namespace} get pods -l batch.kubernetes.io/job-name={name}",
                 f"  logs:   kubectl -n {namespace} logs -f -l batch.kubernetes.io/job-name={name} --prefix "
                 f"--max-log-requests {spec['completions']}",
                 f"  study:  hpo status {study.name}   (with HPO_STORAGE set to the same database)",
                 f"  stop:   hpo stop {study.name}   (deletes the Job: running trials end FAIL `preempted`, retried "
                 "later)"]
        return Launch(study.name, to_yaml(docs), "\n".join(lines), record=record)

    def stop(self, record: KubernetesLaunchRecord) -> str:
        return f"k8s: {stop_job(record.study, record.namespace)}"

    def logs(self, record: KubernetesLaunchRecord, worker: int) -> str:
        raise HpoError(f"the logs of Kubernetes pods are the cluster's: kubectl -n {record.namespace} logs -l "
                       f"batch.kubernetes.io/job-name={record.job},batch.kubernetes.io/job-completion-index={worker}")


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
        if as_mapping(doc.get("metadata")).get("namespace", namespace) != namespace:
            raise HpoError(f"{describe_doc(doc, 0)} is for namespace {doc['metadata']['namespace']!r}, "
                           f"not {namespace!r}")
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
    """Delete every Job of the study in `namespace` (labelled `app.kubernetes.io/name=transfer-hpo` and
    `hpo/study=<its label>`, annotated with its full name), with background propagation, and their ConfigMaps.
    The pods get SIGTERM: each worker marks its running trial FAIL `preempted`, queues its retry and exits 75;
    the next run picks the trials up."""
    from kubernetes import client as k8s

    selector = f"{APP_LABEL}={APP},{STUDY_LABEL}={study_label(study_name)}"
    api = api_client or _default_client()
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
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
    """Names of the listed objects that are really the study's: our labels, and its full name in the annotation
    (a server that ignores label selectors, such as an emulator, or another study whose cut label is the same,
    must not make us delete someone else's Job). Objects launched before the annotation carry the full name in
    the label."""
    names = []
    for item in listing.items or []:
        labels = (item.metadata.labels or {}) if item.metadata is not None else {}
        annotations = (item.metadata.annotations or {}) if item.metadata is not None else {}
        full_name = annotations.get(STUDY_ANNOTATION, labels.get(STUDY_LABEL))
        if labels.get(APP_LABEL) == APP and labels.get(STUDY_LABEL) == study_label(study_name) and \
                full_name == study_name:
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


