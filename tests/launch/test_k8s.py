"""`hpo launch k8s`: the rendered Indexed Job and ConfigMap against golden files, two real validators (the
`kubernetes` client's strict models and kubernetes-validate --strict) and the project's own rules; then apply,
launch and stop against kmock's Kubernetes emulator on loopback (tests/launch/conftest.py), through a real
`kubernetes.client.ApiClient`.

The golden files under tests/golden/k8s/ are written only by `python scripts/update-goldens.py`, never by a test;
when the rendering changes on purpose, run it and review the difference.

kmock's emulator stores what it is sent and serves it back; it runs no controllers and ignores label selectors,
so these tests check the requests and the flow, not Kubernetes semantics (the validators and rules do that).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as k8s

from hpo.errors import HpoError
from hpo.launch.flow import launch, options_of
from hpo.launch.interface import StudyFile
from hpo.launch.k8s import KubernetesLauncher, apply_job, stop_job
from hpo.launch.k8s_checks import check_manifests, validate_manifests
from hpo.launch.k8s_render import KUBERNETES_VERSIONS, job_name, render_job, to_yaml
from tests.golden import (
    K8S_CASES,
    K8S_IMAGE,
    K8S_ISSUE_COMMAND,
    K8S_LAUNCHED,
    K8S_STUDY,
    K8S_SUFFIX,
    golden_path,
    render_k8s,
)

GOLDEN = golden_path("k8s", "")
STUDY = K8S_STUDY
IMAGE = K8S_IMAGE
NAME = "hpo-r8-from-20ng-20250601-120000-3f9a"
ISSUE_COMMAND = K8S_ISSUE_COMMAND
CASES = K8S_CASES
render = render_k8s


def submit(api: Any, **options: Any) -> str:
    """The launcher's real submit, through `api` (the emulator), with the study file's name and text."""
    study = StudyFile("r8-from-20ng", STUDY, STUDY.read_text())
    return KubernetesLauncher().submit(study, None, storage=None, api_client=api, **options).message


def versions() -> list[str]:
    """Every Kubernetes minor version from the oldest to the newest in KUBERNETES_VERSIONS."""
    (major, oldest), (_, newest) = (tuple(map(int, v.split("."))) for v in KUBERNETES_VERSIONS)
    return [f"{major}.{minor}.0" for minor in range(oldest, newest + 1)]


def job_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == "Job")


def container_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return job_of(docs)["spec"]["template"]["spec"]["containers"][0]


# --- rendering ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("golden", sorted(CASES))
def test_rendered_manifests_match_the_golden_files(golden):
    assert to_yaml(render(**CASES[golden])) == (GOLDEN / golden).read_text()


def test_every_golden_file_is_tested():
    assert sorted(p.name for p in GOLDEN.glob("*.yaml")) == sorted(CASES)


def test_the_job_is_what_the_issue_asks_for():
    docs = render(**ISSUE_COMMAND)
    config_map, job = docs  # created in this order: the Job's pods mount the ConfigMap
    assert config_map["kind"] == "ConfigMap" and config_map["data"] == {"study.yaml": STUDY.read_text()}
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 16, 16)
    assert spec["backoffLimitPerIndex"] == 3 and "maxFailedIndexes" not in spec
    assert pod["restartPolicy"] == "Never"
    container = container_of(docs)
    assert container["command"] == ["hpo", "run", "/etc/hpo/study.yaml"]
    assert {"name": "study", "mountPath": "/etc/hpo", "readOnly": True} in container["volumeMounts"]
    assert {"configMap": {"name": NAME}, "name": "study"} in pod["volumes"]
    env = {item["name"]: item for item in container["env"]}
    assert env["HPO_STORAGE"]["valueFrom"] == {"secretKeyRef": {"name": "hpo-db", "key": "url"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["HPO_CACHE"]["value"] == "/cache" and {"emptyDir": {}, "name": "cache"} in pod["volumes"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == container["resources"]["requests"]["nvidia.com/gpu"]
    labels = {"app.kubernetes.io/name": "transfer-hpo", "hpo/study": "r8-from-20ng"}
    assert config_map["metadata"]["labels"] == job["metadata"]["labels"] == spec["template"]["metadata"]["labels"]
    assert job["metadata"]["labels"] == labels and job["metadata"]["name"] == config_map["metadata"]["name"] == NAME
    annotations = {"hpo/study-name": "r8-from-20ng"}
    assert job["metadata"]["annotations"] == config_map["metadata"]["annotations"] == annotations
    assert spec["ttlSecondsAfterFinished"] == 86400


def test_no_gpu_means_no_gpu_resource():
    resources = container_of(render(**CASES["r8-from-20ng-cpu.yaml"]))["resources"]
    assert "nvidia.com/gpu" not in resources["requests"] and "nvidia.com/gpu" not in resources["limits"]


def test_each_launch_gets_a_new_name_that_fits():
    names = {job_of(render_job("n_trials: 1\n", "r8-from-20ng", workers=1, image=IMAGE, db_secret="s"))
             ["metadata"]["name"] for _ in range(5)}
    assert len(names) == 5
    assert all(re.fullmatch(r"hpo-r8-from-20ng-\d{8}-\d{6}-[0-9a-f]{4}", name) for name in names)
    long = job_name("A_Very.Long_study-name-" + "x" * 40 + "9", K8S_LAUNCHED, K8S_SUFFIX)
    assert len(long) <= 52 and re.fullmatch(r"hpo-a-very-long-study-[0-9a-f]{8}-20250601-120000-3f9a", long)


@pytest.mark.parametrize(("options", "message"), [
    ({"image": ""}, "--image is required"),
    ({"image": "   "}, "--image is required"),
    ({"image": None}, "--image is required"),
    ({"workers": 0}, "--workers must be a whole number ≥ 1 (got 0)"),
    ({"workers": None}, "--workers is required"),
    ({"gpus_per_worker": -1}, "--gpus-per-worker must be a whole number ≥ 0 (got -1)"),
    ({"db_secret": ""}, "--db-secret is required"),
    ({"db_secret": "Hpo_DB"}, "--db-secret 'Hpo_DB' is not a valid Kubernetes name"),
    ({"cpu": "four"}, "--cpu must be a positive Kubernetes quantity"),
    ({"memory": "0"}, "--memory must be a positive Kubernetes quantity"),
    ({"namespace": "ML Team"}, "--namespace 'ML Team' is not a valid Kubernetes name"),
    ({"node_selector": ["gpu"]}, "--node-selector 'gpu': write KEY=VALUE"),
    ({"toleration": ["gpu=yes:Sometimes"]}, "--toleration 'gpu=yes:Sometimes'"),
    ({"backoff_per_index": -1}, "--backoff-per-index must be a whole number ≥ 0"),
])
def test_bad_options_are_refused_naming_the_option(options, message):
    with pytest.raises(HpoError, match=re.escape(message)):
        render(**{**ISSUE_COMMAND, **options})


def test_an_unknown_option_is_refused_with_the_valid_ones():
    with pytest.raises(TypeError, match="gpus"):
        render(**ISSUE_COMMAND, gpus=2)
    with pytest.raises(HpoError, match=r"unknown k8s launch option\(s\) gpus; valid: workers, image, db_secret"):
        launch("k8s", STUDY, dry_run=True, gpus=2, **ISSUE_COMMAND)
    options, _ = options_of("k8s")
    assert "launched_at" not in options and "n_trials" not in options and "cache_pvc" in options


def test_a_study_name_that_is_no_label_value_gets_a_label_and_a_name_that_fit():
    docs = render_job("", "Study_-", workers=1, image=IMAGE, db_secret="s", launched_at=K8S_LAUNCHED,
                      suffix=K8S_SUFFIX)
    assert validate_manifests(docs) == [] and check_manifests(docs) == []
    job = job_of(docs)
    assert re.fullmatch(r"Study-[0-9a-f]{8}", job["metadata"]["labels"]["hpo/study"])
    assert re.fullmatch(r"hpo-study-[0-9a-f]{8}-20250601-120000-3f9a", job["metadata"]["name"])
    assert job["metadata"]["annotations"] == {"hpo/study-name": "Study_-"}
    with pytest.raises(HpoError, match=re.escape("'../x' is not a study name")):
        render_job("", "../x", workers=1, image=IMAGE, db_secret="s")


def test_dry_run_prints_the_manifests_of_the_study_file():
    text = launch("k8s", STUDY, dry_run=True, **ISSUE_COMMAND).rendered
    config_map, job = yaml.safe_load_all(text)
    assert config_map["data"]["study.yaml"] == STUDY.read_text()
    assert re.fullmatch(r"hpo-r8-from-20ng-\d{8}-\d{6}-[0-9a-f]{4}", job["metadata"]["name"])
    assert job["spec"]["completions"] == 16


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("golden", sorted(CASES))
def test_golden_manifests_pass_both_validators_and_the_rules(golden):
    docs = list(yaml.safe_load_all((GOLDEN / golden).read_text()))
    assert validate_manifests(docs) == []
    assert check_manifests(docs) == []
    for version in versions():
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


def _misspelt(job: dict[str, Any]) -> None:
    job["spec"]["completionMod"] = job["spec"].pop("completionMode")


def _wrong_type(job: dict[str, Any]) -> None:
    job["spec"]["parallelism"] = "four"


@pytest.mark.parametrize(("break_it", "field", "schema_says"), [
    (_misspelt, "spec.completionMod", "'completionMod' was unexpected"),
    (_wrong_type, "spec.parallelism", "'four' is not of type 'integer'"),
])
def test_both_validators_reject_a_misspelt_field_and_a_wrong_type(break_it, field, schema_says):
    docs = render(**ISSUE_COMMAND)
    break_it(job_of(docs))
    problems = validate_manifests(docs)
    assert len(problems) == 1 and problems[0].startswith(f"Job {NAME}: {field}: "), problems
    for version in (versions()[0], versions()[-1]):
        with pytest.raises(kubernetes_validate.ValidationError, match=re.escape(schema_says)):
            kubernetes_validate.validate(job_of(docs), version, strict=True)


def _set(path: str | tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or with None, delete) the field at a dotted path of the Job; a tuple for keys holding dots."""

    def change(job: dict[str, Any]) -> None:
        *parents, last = path.split(".") if isinstance(path, str) else path
        node: Any = job
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        elif value is None:
            del node[last]
        else:
            node[last] = value
    return change


CONTAINER = "spec.template.spec.containers.0"


@pytest.mark.parametrize(("change", "problem"), [
    (_set("spec.template.spec.restartPolicy", "OnFailure"),
     "spec.template.spec.restartPolicy must be Never: backoffLimitPerIndex needs it (got 'OnFailure')"),
    (_set(f"{CONTAINER}.image", None), "spec.template.spec.containers[0].image is missing or empty"),
    (_set(f"{CONTAINER}.image", " "), "spec.template.spec.containers[0].image is missing or empty"),
    (_set("spec.completionMode", "NonIndexed"), "spec.completionMode must be Indexed (got 'NonIndexed')"),
    (_set("spec.parallelism", 17), "spec.parallelism must be between 1 and completions (16) (got 17)"),
    (_set(f"{CONTAINER}.resources.requests.cpu", "four"), "resources.requests.cpu: 'four' is not a Kubernetes"),
    (_set((*CONTAINER.split("."), "resources", "limits", "nvidia.com/gpu"), "one"),
     "resources.limits.nvidia.com/gpu: 'one' is not a Kubernetes quantity"),
    (_set(f"{CONTAINER}.resources.requests.memory", "16 GB"), "memory: '16 GB' is not a Kubernetes quantity"),
    (_set(f"{CONTAINER}.env.0", {"name": "HPO_STORAGE", "value": "postgresql://u:pw@db/hpo"}),
     "HPO_STORAGE must come from a Secret"),
    (_set("spec.template.metadata.labels.hpo/study", None), "spec.template.metadata.labels has no hpo/study"),
])
def test_project_rules_catch_what_the_schemas_let_through(change, problem):
    docs = render(**ISSUE_COMMAND)
    change(job_of(docs))
    problems = check_manifests(docs)
    assert any(problem in line for line in problems), problems
    assert all(line.startswith(f"Job {NAME}: ") for line in problems)


def test_the_rules_want_the_study_config_map():
    docs = render(**ISSUE_COMMAND)[1:]
    assert check_manifests(docs) == [
        f"Job {NAME}: volume 'study' mounts ConfigMap '{NAME}', but no ConfigMap of that name with key study.yaml "
        "is among the manifests"]


# --- the cluster: kmock's emulator on loopback ----------------------------------------------------------------


def test_apply_creates_the_config_map_then_the_job(cluster):
    docs = render(**ISSUE_COMMAND)
    assert apply_job(docs, "default", cluster.api) == NAME
    job = cluster.stored("jobs")[NAME]
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 16, 16)
    env = {item["name"]: item for item in spec["template"]["spec"]["containers"][0]["env"]}
    assert env["HPO_STORAGE"]["valueFrom"]["secretKeyRef"] == {"name": "hpo-db", "key": "url"}
    sent = copy.deepcopy(job)
    del sent["metadata"]["uid"]
    assert sent == docs[1]  # exactly what was rendered
    config_map = cluster.stored("configmaps")[NAME]
    assert config_map["data"]["study.yaml"] == STUDY.read_text()
    owner = config_map["metadata"]["ownerReferences"]
    assert owner == [{"apiVersion": "batch/v1", "kind": "Job", "name": NAME, "uid": job["metadata"]["uid"]}]
    posts = [r.url.path for r in cluster.requests("POST")]
    assert posts == ["/api/v1/namespaces/default/configmaps", "/apis/batch/v1/namespaces/default/jobs"]


def test_a_refused_job_leaves_no_config_map_behind(cluster):
    docs = render(**ISSUE_COMMAND)
    k8s.BatchV1Api(cluster.api).create_namespaced_job("default", k8s.V1Job.model_validate(docs[1]))
    with pytest.raises(HpoError, match=f"cannot create Job {NAME} in namespace default: 409"):
        apply_job(docs, "default", cluster.api)
    assert cluster.stored("configmaps") == {}


def test_stop_deletes_the_study_s_jobs_and_config_maps_and_nothing_else(cluster):
    apply_job(render(**ISSUE_COMMAND), "default", cluster.api)
    second = render_job(STUDY.read_text(), "r8-from-20ng", workers=2, image=IMAGE, db_secret="hpo-db",
                        launched_at=datetime(2025, 6, 2, tzinfo=UTC), suffix="beef")
    other_study = render_job("n_trials: 1\n", "quickstart", workers=1, image=IMAGE, db_secret="hpo-db")
    elsewhere = render(**{**ISSUE_COMMAND, "namespace": "ml"})
    for docs in (second, other_study):
        apply_job(docs, "default", cluster.api)
    apply_job(elsewhere, "ml", cluster.api)

    message = stop_job("r8-from-20ng", "default", cluster.api)
    assert "deleted 2 Job(s) of study 'r8-from-20ng' in namespace default" in message
    assert list(cluster.stored("jobs")) == list(cluster.stored("configmaps")) == [other_study[1]["metadata"]["name"]]
    assert list(cluster.stored("jobs", "ml")) == [NAME]  # another namespace: untouched
    deletes = cluster.requests("DELETE")
    jobs = [r for r in deletes if "/jobs/" in r.url.path]
    assert len(jobs) == 2 and all(r.params.get("propagationPolicy") == "Background" for r in jobs)
    lists = [r for r in cluster.requests("GET") if r.url.path.endswith(("/jobs", "/configmaps"))]
    selector = "app.kubernetes.io/name=transfer-hpo,hpo/study=r8-from-20ng"
    assert len(lists) == 2 and {r.params.get("labelSelector") for r in lists} == {selector}
    assert stop_job("r8-from-20ng", "default", cluster.api) == "no Job of study 'r8-from-20ng' in namespace default"


def test_launch_checks_the_secret_applies_and_records_the_launch(cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the launch record goes to .hpo/launches/ in the working directory
    options = {**ISSUE_COMMAND, "workers": 2}
    with pytest.raises(HpoError, match="--db-secret: no Secret 'hpo-db' in namespace 'default'"):
        submit(cluster.api, **options)
    cluster.secret("sqlite:///hpo.db")
    with pytest.raises(HpoError, match="holds a SQLite URL") as refused:
        submit(cluster.api, **options)
    assert "hpo.db" not in str(refused.value)
    assert cluster.stored("jobs") == {}

    k8s.CoreV1Api(cluster.api).delete_namespaced_secret("hpo-db", "default")
    cluster.secret("postgresql+psycopg2://hpo:s3cret@db:5432/hpo")
    message = submit(cluster.api, **options)
    assert "s3cret" not in message and "2 workers on study 'r8-from-20ng'" in message
    (name,) = cluster.stored("jobs")
    assert cluster.stored("jobs")[name]["spec"]["completions"] == 2
    record = json.loads((tmp_path / ".hpo" / "launches" / "r8-from-20ng.json").read_text())
    assert record[-1]["launcher"] == "k8s" and record[-1]["namespace"] == "default" and record[-1]["job"] == name


def test_the_current_kube_context_is_the_default(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig(tmp_path)))
    assert apply_job(render(**ISSUE_COMMAND), "default") == NAME
    assert list(cluster.stored("jobs")) == [NAME]
    assert "deleted 1 Job(s)" in stop_job("r8-from-20ng", "default")
    assert cluster.stored("jobs") == {}


def test_no_kube_context_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(HpoError, match=r"no Kubernetes context: .*--dry-run prints the manifests"):
        stop_job("r8-from-20ng", "default")
