"""A storage URL's secrets never leave it: a password given as `user:pw@`, `?password=` or `?sslpassword=` is absent
from every command's output, from every file the commands write, and from the database itself."""

from __future__ import annotations

import subprocess

import pytest

from hpo.errors import SpecError, StorageError
from hpo.settings import StorageURL, mask_url
from hpo.spec import load_spec
from tests.builders import cli, hpo_cli, write_study

SECRETS = ("Upw-user-8841", "Qpw-query-5523", "Spw-ssl-9071")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg2://hpo:Upw-user-8841@db:5432/hpo", "postgresql+psycopg2://hpo:***@db:5432/hpo"),
    ("postgresql+psycopg2://hpo@db/hpo?password=Qpw-query-5523", "postgresql+psycopg2://hpo@db/hpo?password=***"),
    ("postgresql+psycopg2://hpo@db/hpo?sslmode=require&sslpassword=Spw-ssl-9071",
     "postgresql+psycopg2://hpo@db/hpo?sslmode=require&sslpassword=***"),
    ("postgresql+psycopg2://hpo@db/hpo?PWD=Qpw-query-5523&api_key=Spw-ssl-9071",
     "postgresql+psycopg2://hpo@db/hpo?PWD=***&api_key=***"),
    ("postgresql+psycopg2://hpo:Upw%40user-8841@db/hpo", "postgresql+psycopg2://hpo:***@db/hpo"),  # '@' encoded
    ("postgresql+psycopg2://hpo:Upw/user?8841@db/hpo", "postgresql+psycopg2://hpo:***@db/hpo"),  # '/', '?': fine
    ("sqlite:///hpo.db", "sqlite:///hpo.db"),
    ("not a url Upw-user-8841", "<unparseable storage URL>"),
])
def test_every_secret_of_a_url_is_masked(url, shown):
    assert mask_url(url) == shown


# A password holding a raw '@' (and '/', '?', ':' after it): SQLAlchemy ends the password at the first '@' and
# makes the rest host, database or query. Each password here is two fragments around its '@'.
RAW_AT = [
    ("postgresql://u:Kx7@Vw93@db/hpo", ("Kx7", "Vw93")),
    ("postgresql+psycopg2://u:Kx7@Vw93@127.0.0.1:5432/hpo?sslmode=require", ("Kx7", "Vw93")),
    ("postgresql://u:Kx7@Vw/93@db/hpo", ("Kx7", "Vw", "93")),  # the tail would become the database
    ("postgresql://u:Kx7@Vw?93@db/hpo", ("Kx7", "Vw", "93")),  # the tail would become the query
    ("postgresql://u:Kx7@Vw:93@db/hpo", ("Kx7", "Vw", "93")),  # the tail would become a port
    ("postgresql://u:K?x7@Vw93@db/hpo", ("K?x7", "Vw93")),
    ("postgresql://u:Kx7@Vw93@db/hpo?application_name=Qa1", ("Kx7", "Vw93")),
    ("postgresql://u/r:Kx7Vw93@db/hpo", ("Kx7Vw93",)),  # a '/' in the user name: SQLAlchemy sees no password
]


@pytest.mark.parametrize(("url", "fragments"), RAW_AT)
def test_no_part_of_a_password_holding_a_raw_at_is_shown(url, fragments, tmp_path):
    with pytest.raises(StorageError) as caught:
        StorageURL.parse(url)
    refused = cli("studies", "--storage", url, cwd=tmp_path)
    assert refused.returncode == 1 and "%40" in refused.stderr, refused.stderr
    for fragment in fragments:
        for shown in (mask_url(url), str(caught.value), refused.stdout + refused.stderr):
            assert fragment not in shown, (fragment, shown)


def test_driver_messages_are_scrubbed_of_every_secret():
    target = StorageURL.parse(f"postgresql+psycopg2://hpo:{SECRETS[0]}@db/hpo?password={SECRETS[1]}")
    assert target.scrub(f"auth failed for {SECRETS[0]} and {SECRETS[1]}") == "auth failed for *** and ***"
    encoded = StorageURL.parse("postgresql+psycopg2://hpo:Kx7%40Vw93@db/hpo")  # as decoded, and as written
    assert encoded.scrub("auth failed for Kx7@Vw93 in Kx7%40Vw93") == "auth failed for *** in ***"


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
