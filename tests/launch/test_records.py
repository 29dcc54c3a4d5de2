"""Launch records (.hpo/launches/NAME.json): typed and frozen, written and read back as they were, and a file
that was cut short or edited by hand is one error naming the file and what is wrong in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest

from hpo.errors import HpoError
from hpo.launch.records import (
    KubernetesLaunchRecord,
    LocalLaunchRecord,
    SlurmLaunchRecord,
    WorkerProcess,
    launches,
    record_launch,
)
from tests.builders import cli

AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
RECORDS = [
    LocalLaunchRecord(study="s", at=AT, host="box", storage="postgresql+psycopg2://hpo:***@db/hpo", workers=(
        WorkerProcess(pid=4242, start_time="ticks:123456", command=("/venv/bin/python", "-m", "hpo", "run", "/s.yaml"),
                      log=".hpo/logs/s/worker-0.log"),)),
    SlurmLaunchRecord(study="s", at=AT, host="login1", job_id="42", log_dir="/shared/logs", tasks=16,
                      study_file="/shared/s.yaml"),
    KubernetesLaunchRecord(study="s", at=AT, namespace="ml", job="hpo-s-20250601-120000-3f9a", workers=4,
                           image="registry.example/hpo:1.0"),
]


def _written(tmp_path: Path) -> Path:
    for record in RECORDS:
        record_launch(record, root=tmp_path / ".hpo")
    return tmp_path / ".hpo" / "launches" / "s.json"


def test_records_are_read_back_as_they_were_written(tmp_path):
    path = _written(tmp_path)
    assert launches("s", root=tmp_path / ".hpo") == RECORDS
    assert [r["launcher"] for r in json.loads(path.read_text())] == ["local", "slurm", "k8s"]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        RECORDS[1].job_id = "43"  # type: ignore[misc]


def _edit(path: Path, change) -> None:
    records = json.loads(path.read_text())
    change(records)
    path.write_text(json.dumps(records))


@pytest.mark.parametrize(("change", "problem"), [
    (lambda r: r[1].pop("job_id"), "record 1 -> job_id: Field required"),
    (lambda r: r[1].update(tasks="many"), "record 1 -> tasks: Input should be a valid integer"),
    (lambda r: r[0]["workers"][0].update(pid="me"), "record 0 -> workers -> 0 -> pid: Input should be a valid "
                                                    "integer"),
    (lambda r: r[2].update(launcher="pbs"), "record 2: Input tag 'pbs' found using 'launcher' does not match"),
    (lambda r: r[2].update(replicas=3), "record 2 -> replicas: Extra inputs are not permitted"),
    (lambda r: r[0].update(study="other"), "record 0 is for study 'other', not 's'"),
    (lambda r: r.clear() or r.append("local"), "record 0: Input should be a valid dictionary or object"),
], ids=["missing", "wrong-type", "nested", "launcher", "unknown-field", "other-study", "not-a-record"])
def test_a_hand_edited_file_is_one_error_naming_the_file(tmp_path, change, problem):
    path = _written(tmp_path)
    _edit(path, change)
    with pytest.raises(HpoError) as refused:
        launches("s", root=tmp_path / ".hpo")
    message = str(refused.value)
    assert message.startswith(f"{path}: not a launch record file (") and problem in message
    assert "\n" not in message


def test_a_file_cut_short_is_refused_by_hpo_stop_and_hpo_logs(tmp_path):
    path = _written(tmp_path)
    path.write_text(path.read_text()[:200])
    for command in (["stop", "s"], ["logs", "s"]):
        done = cli(*command, cwd=tmp_path)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith(f"error: {Path('.hpo/launches/s.json')}: not a launch record file (JSON "
                                      "broken at line ")
        assert done.stderr.count("\n") == 1, done.stderr
