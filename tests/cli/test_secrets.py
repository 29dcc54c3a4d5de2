"""A storage URL's secrets never leave it: a password given as `user:pw@`, `?password=` or `?sslpassword=` is absent
from every command's output, from every file the commands write, and from the database itself."""

from __future__ import annotations

import subprocess

import pytest

from hpo.errors import SpecError
from hpo.settings import StorageURL, mask_url
from hpo.spec import load_spec
from tests.builders import hpo_cli, write_study

SECRETS = ("Upw-user-8841", "Qpw-query-5523", "Spw-ssl-9071")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg2://hpo:Upw-user-8841@db:5432/hpo", "postgresql+psycopg2://hpo:***@db:5432/hpo"),
    ("postgresql+psycopg2://hpo@db/hpo?password=Qpw-query-5523", "postgresql+psycopg2://hpo@db/hpo?password=***"),
    ("postgresql+psycopg2://hpo@db/hpo?sslmode=require&sslpassword=Spw-ssl-9071",
     "postgresql+psycopg2://hpo@db/hpo?sslmode=require&sslpassword=***"),
    ("postgresql+psycopg2://hpo@db/hpo?PWD=Qpw-query-5523&api_key=Spw-ssl-9071",
     "postgresql+psycopg2://hpo@db/hpo?PWD=***&api_key=***"),
    ("sqlite:///hpo.db", "sqlite:///hpo.db"),
    ("not a url Upw-user-8841", "<unparseable storage URL>"),
])
def test_every_secret_of_a_url_is_masked(url, shown):
    assert mask_url(url) == shown


def test_driver_messages_are_scrubbed_of_every_secret():
    target = StorageURL.parse(f"postgresql+psycopg2://hpo:{SECRETS[0]}@db/hpo?password={SECRETS[1]}")
    assert target.scrub(f"auth failed for {SECRETS[0]} and {SECRETS[1]}") == "auth failed for *** and ***"


@pytest.mark.parametrize("storage", ["postgresql+psycopg2://hpo:pw@db/hpo", "postgresql+psycopg2://hpo@db/hpo?password=x",
                                     "postgresql+psycopg2://hpo@db/hpo?sslpassword=x",
                                     "postgresql+psycopg2://hpo@db/hpo?passwd=x", "postgresql://hpo@db/hpo?token=x"])
def test_a_study_file_refuses_a_storage_url_with_a_secret(tmp_path, storage):
    path = write_study(tmp_path / "s.yaml", tmp_path, extra=f"storage: '{storage}'")
    with pytest.raises(SpecError, match=r"\[storage\] must not hold a password or other secret") as caught:
        load_spec(path)
    assert "=x" not in str(caught.value) and ":pw@" not in str(caught.value)


def test_no_secret_in_any_output_file_or_the_database(tmp_path, tiny_model_dir, pg_url):
    database = pg_url.rsplit("/", 1)[1]
    url = pg_url.replace("postgres@", f"postgres:{SECRETS[0]}@") + f"?password={SECRETS[1]}&sslpassword={SECRETS[2]}"
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=1, epochs=1)
    launched = write_study(tmp_path / "launched.yaml", tiny_model_dir, name="launched", n_trials=1, epochs=1)
    outputs = [
        hpo_cli("run", str(spec), "--storage", url, cwd=tmp_path),
        hpo_cli("studies", "--storage", url, cwd=tmp_path),
        hpo_cli("status", "tiny", "--storage", url, cwd=tmp_path),
        hpo_cli("report", "tiny", "-o", "report.html", "--storage", url, cwd=tmp_path),
        hpo_cli("export", "tiny", "-o", "best.yaml", "--storage", url, cwd=tmp_path),
        hpo_cli("launch", "local", str(launched), "--workers", "1", "--storage", url, cwd=tmp_path),
        hpo_cli("launch", "slurm", str(spec), "--array", "2", "--time", "10", "--dry-run", "--storage", url,
                cwd=tmp_path),
        hpo_cli("launch", "k8s", str(spec), "--workers", "1", "--image", "hpo:1", "--db-secret", "db", "--dry-run",
                cwd=tmp_path),
    ]
    for done in outputs:
        assert done.returncode == 0, (done.args, done.stderr[-2000:])
        text = done.stdout + done.stderr
        assert "Traceback" not in text
        for secret in SECRETS:
            assert secret not in text, (done.args, secret)
    shown = "postgresql+psycopg2://postgres:***@127.0.0.1:5432/"
    assert shown in outputs[0].stdout  # the run's summary
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".db"]
    assert {"report.html", "best.yaml", "launched.json", "worker-0.log"} <= {p.name for p in written}
    assert shown in (tmp_path / ".hpo" / "logs" / "launched" / "worker-0.log").read_text()  # the worker's header
    for path in written:
        content = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in content, (path, secret)
    dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", database], capture_output=True, text=True,
                          timeout=120)
    assert dump.returncode == 0 and "provenance" in dump.stdout, dump.stderr
    for secret in SECRETS:
        assert secret not in dump.stdout
