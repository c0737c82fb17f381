"""The deployment files agree with the code: the Dockerfile runs `serve` as a non-root user and
checks /healthz; the compose file migrates once, runs two instances on PostgreSQL behind one
port, and names only variables the bot reads; the README documents every variable.

(No Docker engine runs where the tests run, so these read the files; `docker build` is checked
by hand where Docker is available: see the README.)"""

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTINGS = {name.upper() for name in Settings.model_fields}


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into build stages."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    stages: list[list[str]] = []
    for line in lines:
        if line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def bot_services() -> dict[str, Any]:
    return {name: s for name, s in SERVICES.items() if s.get("image", "").startswith("vpsbot")}


def test_the_image_runs_serve_as_an_unprivileged_user_and_checks_healthz() -> None:
    final = dockerfile_stages()[-1]
    [user] = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user.split(":")[0] not in ("root", "0")
    assert final[-1] == 'CMD ["python", "-m", "bot", "serve"]'
    [health] = [line for line in final if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in health
    assert any(line.startswith("EXPOSE 3000") for line in final)


def test_the_image_python_satisfies_the_project_and_its_sources_are_not_ignored() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = tuple(int(p) for p in project["requires-python"].removeprefix(">=").split("."))
    for stage in dockerfile_stages():
        image = stage[0].split()[1]
        version = re.search(r"python:(\d+)\.(\d+)", image)
        assert version is not None, image
        assert (int(version[1]), int(version[2])) >= minimum
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    copied = [
        source
        for stage in dockerfile_stages()
        for line in stage
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") not in ignored, source


def test_compose_migrates_once_then_starts_two_instances_on_postgresql() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["python", "-m", "bot", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    instances = {n: s for n, s in bot_services().items() if "command" not in s}  # image CMD: serve
    assert len(instances) == 2
    for service in instances.values():
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert "ports" not in service  # reached only through the proxy


def test_one_public_port_reaches_every_instance_through_the_proxy() -> None:
    published = {name: s["ports"] for name, s in SERVICES.items() if "ports" in s}
    assert list(published) == ["proxy"]
    [mapping] = published["proxy"]
    container_port = mapping.rsplit(":", 1)[1]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert f"listen {container_port};" in nginx
    upstreams = set(re.findall(r"server (\S+):3000", nginx))
    instances = {n for n, s in bot_services().items() if "command" not in s}
    assert upstreams == instances
    for volume in SERVICES["proxy"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).exists()


def test_compose_and_the_env_example_name_only_variables_the_bot_reads() -> None:
    for name, service in bot_services().items():
        unknown = set(service["environment"]) - SETTINGS
        assert unknown == set(), f"{name} sets variables the bot never reads: {unknown}"
    example = (ROOT / "deploy" / "env.example").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert named - SETTINGS == {"POSTGRES_PASSWORD", "PUBLIC_PORT"}


def test_the_readme_documents_every_variable_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    rows = {
        match[1]: match[2].strip()
        for match in re.finditer(r"^\| `([A-Z][A-Z0-9_]+)` \|[^|]+\|([^|]+)\|$", table, re.M)
    }
    assert SETTINGS - set(rows) == set()
    assert all(rows[name] for name in SETTINGS), rows
