"""Opening storages: a malformed URL, an unreachable server and a wrong password each give one clear line, and
the password appears nowhere in what the commands print. The wrong-password case runs against a PostgreSQL
cluster this module creates with password (scram-sha-256) authentication, since the machine's own cluster
trusts local connections."""

from __future__ import annotations

import subprocess

import pytest

from tests.builders import hpo_cli, write_study
from tests.pg import own_cluster

RIGHT = "Right-pass-4821"
WRONG = "Wrong-pass-9377"


@pytest.fixture(scope="module")
def password_cluster():
    with own_cluster(auth_host="scram-sha-256") as cluster:
        cluster.psql(f"CREATE ROLE hpo LOGIN PASSWORD '{RIGHT}'")
        cluster.psql("ALTER DATABASE hpo OWNER TO hpo")
        yield f"postgresql+psycopg2://hpo:{{password}}@127.0.0.1:{cluster.port}/hpo"


def _assert_clean(done: subprocess.CompletedProcess, *secrets: str) -> str:
    text = done.stdout + done.stderr
    assert "Traceback" not in text
    for secret in secrets:
        assert secret not in text
    return text


def test_malformed_url_is_one_clear_line(tmp_path):
    for url in ("not a url", f"postgresql+psycopg2://hpo:{WRONG}@127.0.0.1:notaport/hpo"):
        done = hpo_cli("studies", "--storage", url, cwd=tmp_path)
        assert done.returncode == 1
        text = _assert_clean(done, WRONG)
        assert "the storage URL is not a database URL" in text


def test_unreachable_server_is_one_clear_line(tmp_path):
    done = hpo_cli("studies", "--storage", f"postgresql+psycopg2://hpo:{WRONG}@127.0.0.1:5999/hpo", cwd=tmp_path)
    assert done.returncode == 1
    text = _assert_clean(done, WRONG)
    assert "cannot open storage postgresql+psycopg2://hpo:***@127.0.0.1:5999/hpo" in text
    assert 'connection to server at "127.0.0.1", port 5999 failed: Connection refused' in text


def test_wrong_password_is_one_clear_line(tmp_path, password_cluster):
    done = hpo_cli("status", "any", "--storage", password_cluster.format(password=WRONG), cwd=tmp_path)
    assert done.returncode == 1
    text = _assert_clean(done, WRONG)
    assert 'password authentication failed for user "hpo"' in text
    assert len(done.stderr.strip().splitlines()) == 1


def test_run_never_prints_the_password(tmp_path, tiny_model_dir, password_cluster):
    spec = write_study(tmp_path / "tiny.yaml", tiny_model_dir, n_trials=1)
    url = password_cluster.format(password=RIGHT)
    done = hpo_cli("run", str(spec), "--storage", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = _assert_clean(done, RIGHT)
    assert "postgresql+psycopg2://hpo:***@127.0.0.1" in text  # the summary's storage row
    listing = hpo_cli("studies", "--storage", url, cwd=tmp_path)
    assert "tiny" in _assert_clean(listing, RIGHT)
