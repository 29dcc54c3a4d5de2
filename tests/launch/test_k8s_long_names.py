"""A study name as long as a study name may be (128 characters) on Kubernetes: every object name and label value
the launch renders within Kubernetes' limits, two such names that differ only at their end kept apart, and
`hpo launch k8s` then `hpo stop` finding the study's Job against kmock's emulator (tests/launch/conftest.py)."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from hpo.launch.flow import launch
from hpo.launch.k8s import apply_job
from hpo.launch.k8s_checks import check_manifests, validate_manifests
from hpo.launch.k8s_render import KUBERNETES_VERSIONS, render_job
from hpo.launch.records import KubernetesLaunchRecord, launches
from tests.builders import cli, study_from
from tests.golden import K8S_IMAGE, K8S_ISSUE_COMMAND, K8S_LAUNCHED, K8S_STUDY, K8S_SUFFIX, render_k8s

LONG = "R8_from.20ng-" + "x" * 114 + "9"  # 128 characters, upper case, '_' and '.': a valid study name
TWIN = LONG[:-1] + "8"  # the same but for its last character
LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")  # Kubernetes' own rule for a label value
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _render(name: str, **options: Any) -> list[dict[str, Any]]:
    return render_job(K8S_STUDY.read_text(), name, launched_at=K8S_LAUNCHED, suffix=K8S_SUFFIX,
                      **{**K8S_ISSUE_COMMAND, **options})


def _labels(doc: dict[str, Any]) -> list[dict[str, str]]:
    template = doc.get("spec", {}).get("template", {}).get("metadata", {})
    return [doc["metadata"]["labels"], *([template["labels"]] if template else [])]


def test_a_128_character_study_name_fits_every_name_and_label():
    assert len(LONG) == 128
    docs = _render(LONG)
    assert validate_manifests(docs) == [] and check_manifests(docs) == []
    (major, oldest), (_, newest) = (tuple(map(int, v.split("."))) for v in KUBERNETES_VERSIONS)
    for minor in range(oldest, newest + 1):
        for doc in docs:
            kubernetes_validate.validate(doc, f"{major}.{minor}.0", strict=True)
    for doc in docs:
        name = doc["metadata"]["name"]
        # the Job's name is also its pods' job-name label, and `<name>-<index>` their host names
        assert len(name) <= 52 and DNS_LABEL.fullmatch(name), name
        for labels in _labels(doc):
            for value in labels.values():
                assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
        assert doc["metadata"]["annotations"] == {"hpo/study-name": LONG}
    label = docs[1]["metadata"]["labels"]["hpo/study"]
    assert re.fullmatch(r"R8_from\.20ng-x{41}-[0-9a-f]{8}", label), label


def test_two_long_names_that_differ_only_at_their_end_stay_apart():
    (long_map, long_job), (_, twin_job) = _render(LONG), _render(TWIN)  # same clock, same suffix
    assert long_job["metadata"]["labels"]["hpo/study"] != twin_job["metadata"]["labels"]["hpo/study"]
    assert long_job["metadata"]["name"] != twin_job["metadata"]["name"]
    assert long_map["metadata"]["name"] == long_job["metadata"]["name"]
    assert _render(LONG)[1]["metadata"]["labels"] == long_job["metadata"]["labels"], "the same every time"


NOT_A_LABEL = "' is not a label value (at most 63 characters, a letter or digit at both ends)"


@pytest.mark.parametrize(("part", "change", "problem"), [
    ("label", "x" * 64, "metadata.labels.hpo/study: '" + "x" * 64 + NOT_A_LABEL),
    ("label", "study-", "metadata.labels.hpo/study: 'study-" + NOT_A_LABEL),
    ("name", "a" * 64, "metadata.name '" + "a" * 64 + "' is not a DNS label of at most 63 characters"),
])
def test_the_rules_refuse_a_label_or_a_name_over_kubernetes_limits(part, change, problem):
    docs = render_k8s(**K8S_ISSUE_COMMAND)
    if part == "label":
        docs[1]["metadata"]["labels"] = {**docs[1]["metadata"]["labels"], "hpo/study": change}
    else:
        docs[1]["metadata"]["name"] = change
    problems = check_manifests(docs)
    assert [line for line in problems if problem in line] == [f"Job {docs[1]['metadata']['name']}: {problem}"]


def test_launch_and_stop_of_a_128_character_study(cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the launch records go to .hpo/launches/ here
    kubeconfig = cluster.kubeconfig(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    cluster.secret("postgresql+psycopg2://hpo:pw@db:5432/hpo")
    for name in (LONG, TWIN):
        launch("k8s", study_from(K8S_STUDY, tmp_path / f"{name[-1]}.yaml", {"name": name}), workers=2,
               image=K8S_IMAGE, db_secret="hpo-db")
    (record,) = launches(LONG)
    assert isinstance(record, KubernetesLaunchRecord) and record.study == LONG and record.workers == 2
    label = cluster.stored("jobs")[record.job]["metadata"]["labels"]["hpo/study"]
    # another study's Job whose cut label is the same (a hash collision): its annotation spares it
    impostor = _render("other-study", workers=1)
    for doc in impostor:
        doc["metadata"]["labels"] = {**doc["metadata"]["labels"], "hpo/study": label}
    apply_job(impostor, "default", cluster.api)

    stopped = cli("stop", LONG, cwd=tmp_path, env={"KUBECONFIG": str(kubeconfig)})
    assert stopped.returncode == 0 and "deleted 1 Job(s)" in stopped.stdout, stopped.stderr
    assert record.job not in cluster.stored("jobs") and record.job not in cluster.stored("configmaps")
    assert sorted(cluster.stored("jobs")) == sorted([launches(TWIN)[0].job, impostor[1]["metadata"]["name"]])
    selectors = {r.params.get("labelSelector") for r in cluster.requests("GET") if r.url.path.endswith("/jobs")}
    assert selectors == {f"app.kubernetes.io/name=transfer-hpo,hpo/study={label}"}
