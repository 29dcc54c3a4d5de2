"""docker-compose.yml, the Dockerfile and .env.example, checked offline (no Docker engine runs on our machines).

Two real validators read the compose file with `.env.example`: Debian's `docker-compose` (v1, `config -q`: schema,
interpolation and cross-references) and `check-jsonschema` against the compose-spec schema. Without them these
tests skip, except under CI=true, where they fail. The project's own rules follow: no secret in clear, nothing
published beyond 127.0.0.1, a GPU reservation on the worker, a healthy PostgreSQL before anything uses it, and
every `hpo` command parsed by the real CLI parser (nothing is executed).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from hpo.cli import app
from tests.ci import unavailable

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)
# A value that only refers to a variable: ${VAR}, or ${VAR:?message} / ${VAR?message} (required, no default).
# ${VAR:-default} is refused for secrets: the default would be a password in clear.
SECRET_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*)?\}")
URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:([^/@\s]*)@")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
STORAGE_URL = "postgresql+psycopg2://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_DB}"


# --- reading the files --------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())  # anchors and `<<` merge keys resolved, as compose does
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "docker-compose.yml has no services"
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()), f".env.example:{number}: not KEY=VALUE"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def environment(svc: dict[str, Any]) -> dict[str, str | None]:
    """A service's `environment`, mapping or list form."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (str(item).partition("=") for item in env)}
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def scalars(node: Any, path: str = "") -> Iterator[tuple[str, str | None, Any]]:
    """Every scalar in the tree: (path, key it sits under or None, value). `KEY=VALUE` list items count as keys."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(value, dict | list):
                yield from scalars(value, where)
            else:
                yield where, str(key), value
    elif isinstance(node, list):
        for index, item in enumerate(node):
            where = f"{path}[{index}]"
            if isinstance(item, dict | list):
                yield from scalars(item, where)
            elif isinstance(item, str) and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", item):
                key, _, value = item.partition("=")
                yield where, key, value
            else:
                yield where, None, item


def variables(text: str) -> set[str]:
    """The variables compose interpolates in a value: $VAR, ${VAR}, ${VAR:-x}, ${VAR:?x}…; `$$` is a literal $."""
    text = text.replace("$$", "")
    return {braced or bare for braced, bare in VARIABLE.findall(text)}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation, enough for these checks: ${VAR}, $VAR, ${VAR:-default}, ${VAR:?error}, $$."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, word = match.group(2) or "", match.group(3) or ""
        current = env.get(name)
        if operator in {":-", "-"} and not (current if operator == ":-" else current is not None):
            return word
        if operator in {":?", "?"}:
            assert current, f"${{{name}}} is required ({word})"
        if operator in {":+", "+"}:
            return word if current else ""
        return current or ""

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)", value, text)


def as_args(command: Any) -> list[str]:
    return [str(arg) for arg in command] if isinstance(command, list) else shlex.split(str(command))


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_exec_form(value: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return ["/bin/sh", "-c", value]
    assert isinstance(parsed, list), f"Dockerfile: cannot read {value!r}"
    return [str(arg) for arg in parsed]


def ports_of(svc: dict[str, Any]) -> list[Any]:
    """A service's `ports:`, interpolated with .env.example."""
    env = env_example()
    ports = []
    for port in svc.get("ports") or []:
        if isinstance(port, str):
            port = interpolate(port, env)
        elif isinstance(port, dict):
            port = {k: interpolate(v, env) if isinstance(v, str) else v for k, v in port.items()}
        ports.append(port)
    return ports


def host_ip(port: Any) -> str | None:
    """The host address a `ports:` entry binds to; None when it binds every interface."""
    if isinstance(port, dict):
        return port.get("host_ip")
    text = str(port)
    if text.startswith("["):  # [::1]:8080:8080
        return text[1:text.index("]")]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else None


def container_port(port: Any) -> str:
    if isinstance(port, dict):
        return str(port["target"])
    return str(port).rsplit(":", 1)[-1].split("/")[0]


# --- the real validators ------------------------------------------------------------------------------------


def tool(name: str, install: str) -> str:
    """Path of a validator; fails under CI=true, skips elsewhere, when it is missing."""
    beside_python = Path(sys.executable).parent / name  # `.venv/bin/python -m pytest` without an activated venv
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found:
        return found
    unavailable(f"{name} is not installed ({install})")


def docker_compose() -> str:
    return tool("docker-compose", "apt-get install -y docker-compose")


def check_jsonschema() -> str:
    return tool("check-jsonschema", "pip install check-jsonschema")


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # The compose variables are taken from the env file only: a value in this process's environment would win
    # over it and could hide a variable that the env file lacks.
    used = {var for _, _, value in scalars(compose()) if isinstance(value, str) for var in variables(value)}
    env = {k: v for k, v in os.environ.items() if k not in used and not k.startswith("COMPOSE_")}
    env["HOME"] = str(tmp_path)  # no user-level docker config is read
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_docker_compose_config_accepts_the_file_with_env_example(tmp_path):
    done = run([docker_compose(), "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "-q"], tmp_path)
    assert done.returncode == 0, f"docker-compose config -q failed:\n{done.stdout}{done.stderr}"


def test_docker_compose_refuses_a_missing_env_file(tmp_path):
    """Without .env the credentials are unset: compose must stop, not start PostgreSQL with empty values."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = run([docker_compose(), "--env-file", str(empty), "-f", str(COMPOSE_FILE), "config", "-q"], tmp_path)
    assert done.returncode != 0, "docker-compose config accepted the file with no variables set"
    assert "POSTGRES_" in done.stdout + done.stderr


def test_docker_compose_config_catches_a_broken_reference(tmp_path):
    """The validator is not vacuous: a dangling depends_on in an otherwise identical file is refused."""
    data = compose()
    data["services"]["worker"]["depends_on"] = {"no-such-service": {"condition": "service_healthy"}}
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data))
    done = run([docker_compose(), "--env-file", str(ENV_EXAMPLE), "-f", str(broken), "config", "-q"], tmp_path)
    assert done.returncode != 0, "docker-compose config accepted a depends_on on a missing service"


def test_compose_spec_schema_accepts_the_file(tmp_path):
    done = run([check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)], tmp_path)
    assert done.returncode == 0, f"check-jsonschema (compose-spec) failed:\n{done.stdout}{done.stderr}"


def test_compose_spec_schema_catches_a_bad_key(tmp_path):
    data = compose()
    data["services"]["worker"]["deploy"]["resources"]["reservations"]["gpus"] = 1  # not a compose key
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data))
    done = run([check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(broken)], tmp_path)
    assert done.returncode != 0, "check-jsonschema accepted an unknown key"


# --- no secret in clear -------------------------------------------------------------------------------------


def secret_problems(tree: Any, password: str) -> list[str]:
    problems = []
    for where, key, value in scalars(tree):
        if value is None:
            continue
        text = str(value)
        if key is not None and SECRET_KEY.search(key) and not SECRET_REFERENCE.fullmatch(text):
            problems.append(f"{where}: {key} has a literal value; use ${{{key}}} from .env")
        credentials = URL_CREDENTIALS.findall(text)
        if any(not SECRET_REFERENCE.fullmatch(secret) for secret in credentials):
            problems.append(f"{where}: a URL with a password in clear")
        if text == password or password in credentials:
            problems.append(f"{where}: holds the password of .env.example")
    return problems


def test_no_secret_in_clear_in_the_compose_file():
    problems = secret_problems(compose(), env_example()["POSTGRES_PASSWORD"])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("leak", [
    {"environment": {"POSTGRES_PASSWORD": "hunter2"}},
    {"environment": ["DB_TOKEN=abc"]},
    {"environment": {"API_SECRET": "${API_SECRET:-a-default-in-clear}"}},
    {"environment": {"HPO_STORAGE": "postgresql+psycopg2://hpo:${PW:-x}@postgres:5432/hpo"}},
    {"environment": {"HPO_STORAGE": "postgresql+psycopg2://hpo:hunter2@postgres:5432/hpo"}},
    {"healthcheck": {"test": ["CMD", "check", "the-example-password"]}},
], ids=["key", "list", "default", "url-default", "url", "value"])
def test_the_secret_rules_catch_a_password_in_clear(leak):
    """The rules are not vacuous: each kind of leak is found."""
    assert secret_problems(leak, "the-example-password")


def test_interpolation_reads_like_compose():
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("${A}:$A:${B:-x}:${EMPTY:-y}:${EMPTY-z}:$$A:${A:?need A}", env) == "1:1:x:y::$A:1"
    assert variables("${A}:$B:${C:-x}:${D:?y}:$$E") == {"A", "B", "C", "D"}


def test_the_password_reaches_postgres_and_the_storage_url_from_env():
    assert variables(environment(service("postgres"))["POSTGRES_PASSWORD"] or "") == {"POSTGRES_PASSWORD"}
    for name in ("dashboard", "worker"):
        assert environment(service(name)).get("HPO_STORAGE") == STORAGE_URL, f"{name}: HPO_STORAGE"


def test_env_example_defines_every_variable_the_compose_file_uses():
    defined = env_example()
    used = {var for _, _, value in scalars(compose()) if isinstance(value, str) for var in variables(value)}
    assert used, "the compose file interpolates nothing: where do the credentials come from?"
    missing = sorted(used - defined.keys())
    assert not missing, f".env.example lacks {missing}"
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= used
    assert all(defined[name] for name in used), "a variable in .env.example is empty"


def test_secrets_stay_out_of_git_and_of_the_image():
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert ".env" in ignored, ".dockerignore must exclude .env, or the password is copied into the image"
    for keyword, rest in dockerfile_instructions():
        if keyword in {"ENV", "ARG"}:
            assert not SECRET_KEY.search(rest), f"Dockerfile: {keyword} {rest}: a secret is no build setting"
    assert env_example()["POSTGRES_PASSWORD"] not in DOCKERFILE.read_text()


def test_env_file_is_ignored_by_git():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", ".env"], cwd=REPO)
    assert done.returncode == 0, ".env holds the password but git does not ignore it: add `.env` to .gitignore"


# --- network, GPU, health -----------------------------------------------------------------------------------


def test_published_ports_are_bound_to_localhost_only():
    dashboard_ports = ports_of(service("dashboard"))
    assert dashboard_ports, "the dashboard publishes no port"
    for name, svc in compose()["services"].items():
        for port in ports_of(svc):
            assert host_ip(port) == "127.0.0.1", f"{name}: port {port!r} is not bound to 127.0.0.1"


def test_dashboard_listens_on_all_interfaces_inside_its_container_on_the_published_port():
    svc = service("dashboard")
    args = as_args(svc["command"])
    assert args[:2] == ["hpo", "dashboard"], args
    options = dict(zip(args[2::2], args[3::2], strict=False))
    assert options.get("--host") == "0.0.0.0", "inside the container the dashboard must listen on 0.0.0.0"
    assert {container_port(p) for p in ports_of(svc)} == {options.get("--port")}
    assert "--storage" not in args, "the storage URL holds the password: it comes from HPO_STORAGE"


@pytest.mark.parametrize("name", ["dashboard", "worker"])
def test_services_wait_for_a_healthy_postgres(name):
    depends = service(name).get("depends_on")
    assert isinstance(depends, dict), f"{name}: depends_on must be the long form with a condition"
    assert depends.get("postgres", {}).get("condition") == "service_healthy"


def test_postgres_has_a_pinned_major_a_healthcheck_and_a_named_volume():
    svc = service("postgres")
    assert re.fullmatch(r"postgres:\d+(\.\d+)*(-[a-z0-9.]+)?", svc["image"]), f"unpinned image {svc['image']!r}"
    test = svc.get("healthcheck", {}).get("test")
    assert test and "pg_isready" in " ".join(as_args(test)), "postgres needs a pg_isready healthcheck"
    declared = compose().get("volumes") or {}
    named = []
    for volume in svc.get("volumes") or []:
        source, target = (
            (volume.get("source"), volume.get("target")) if isinstance(volume, dict) else str(volume).split(":")[:2]
        )
        if target and target.startswith("/var/lib/postgresql") and source in declared:
            named.append(source)
    assert named, "postgres' data must live in a named volume declared under the top-level volumes:"


def test_worker_reserves_an_nvidia_gpu_and_can_scale():
    svc = service("worker")
    devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices") or []
    assert any(
        d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or [])
        and (d.get("count") == "all" or (isinstance(d.get("count"), int) and d["count"] >= 1))
        for d in devices
    ), f"worker: no deploy.resources.reservations.devices GPU reservation in {devices}"
    assert "container_name" not in svc, "a container_name prevents --scale worker=N"
    assert not ports_of(svc), "a published port prevents --scale worker=N"
    assert "build" in svc, "the worker's image is built from the repository's Dockerfile"
    assert Path(svc["build"]["context"] if isinstance(svc["build"], dict) else svc["build"]) == Path(".")


def test_worker_cache_is_a_volume_at_hpo_cache():
    svc = service("worker")
    assert environment(svc).get("HPO_CACHE") == "/cache"
    targets = [v.get("target") if isinstance(v, dict) else str(v).split(":")[1] for v in svc.get("volumes") or []]
    assert "/cache" in targets, "the worker's cache must be a volume, shared and kept across runs"


# --- the commands that run ----------------------------------------------------------------------------------


def hpo_commands() -> list[tuple[str, list[str]]]:
    found = []
    for name, svc in compose()["services"].items():
        for field in ("entrypoint", "command"):
            if svc.get(field) is not None:
                args = as_args(svc[field])
                if args and Path(args[0]).name == "hpo":
                    found.append((f"docker-compose.yml: {name}.{field}", args))
    for keyword, rest in dockerfile_instructions():
        if keyword in {"CMD", "ENTRYPOINT"}:
            args = dockerfile_exec_form(rest)
            if args and Path(args[0]).name == "hpo":
                found.append((f"Dockerfile: {keyword}", args))
    return found


def parse(command: Any, name: str, args: list[str], parent: Any = None) -> Any:
    """Parse like click does before invoking, down to the leaf command; runs no callback.

    Duck-typed: typer ≥ 0.25 builds its commands on a click of its own (typer._click), not on `click`.
    """
    ctx = command.make_context(name, list(args), parent=parent)
    if hasattr(command, "resolve_command"):  # a group: the first token left is the subcommand
        leading = getattr(ctx, "_protected_args", None)
        if leading is None:  # click < 8.2
            leading = ctx.protected_args
        rest = [*leading, *ctx.args]
        if rest:
            sub_name, sub, sub_args = command.resolve_command(ctx, rest)
            assert sub is not None and sub_name is not None
            return parse(sub, sub_name, sub_args, ctx)
    return ctx


def test_the_cli_parser_refuses_what_it_should():
    """parse() is not vacuous: unknown commands and options, missing arguments are errors."""
    root = typer.main.get_command(app)
    for args in (["no-such-command"], ["run"], ["run", "x.yaml", "--no-such-option"], ["studies", "--bogus"]):
        with pytest.raises(Exception, match=r"(?i)no such|missing|usage"):
            parse(root, "hpo", args)
    assert parse(root, "hpo", ["--debug", "run", "x.yaml", "--n-trials", "3"]).params["n_trials"] == 3


def test_the_image_has_commands_to_run():
    where = {w.rsplit(".", 1)[0] for w, _ in hpo_commands()}
    assert {"docker-compose.yml: dashboard", "docker-compose.yml: worker"} <= where


@pytest.mark.parametrize("where,args", hpo_commands(), ids=[w for w, _ in hpo_commands()])
def test_every_hpo_command_parses_with_the_real_cli(where, args):
    root = typer.main.get_command(app)
    try:
        ctx = parse(root, "hpo", args[1:])
    except Exception as exc:  # click's UsageError, BadParameter, NoSuchOption…: the command would not start
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        pytest.fail(f"{where}: `{shlex.join(args)}` does not parse: {message}")
    for value in ctx.params.values():
        if isinstance(value, Path):
            assert (REPO / value).is_file(), f"{where}: {value} is not in the repository"


def test_the_study_files_the_commands_run_are_valid_and_in_the_image():
    from hpo.spec import load_spec

    copied = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword in {"COPY", "ADD"})
    studies = [arg for _, args in hpo_commands() for arg in args if arg.endswith((".yaml", ".yml"))]
    assert studies, "the worker runs no study file"
    for study in studies:
        load_spec(REPO / study)  # raises SpecError naming each problem
        assert re.search(rf"(^|\s)(\./)?{re.escape(study.split('/')[0])}/?(\s|$)", copied), (
            f"the Dockerfile does not COPY {study}'s folder into the image"
        )
        ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
        assert study.split("/")[0] not in ignored, f".dockerignore excludes {study}"
