"""deploy/docker + deploy/compose: the image runs the same command as the systemd unit, the
compose file has every service and mounts only files the repository ships (or documents as the
user's), the replicas run deploy/cloud.toml (the file the multi-host test runs), and that file
is a valid production config. Building and starting it needs a Docker daemon: skipped visibly
where none is reachable."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_harness import DEPLOY, CloudReplica
from test_systemd_units import read_unit

from shelfsense.config import load_settings

COMPOSE = DEPLOY / "compose" / "compose.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
REPO = DEPLOY.parent
# Files the user provides (secrets, certificates, generated dashboards); each has a documented source.
USER_PROVIDED = {
    "cloud.env",
    "pg_password.txt",
    "tls",
    "mosquitto/certs",
    "mosquitto/shelfsense.passwd",
    "grafana",
}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def dockerfile_json(instruction: str) -> list[str]:
    [line] = [ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith(instruction + " ")]
    value: list[str] = json.loads(line[len(instruction) + 1 :])
    return value


def test_compose_has_the_stack_and_runs_the_units_command() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "cloud", "nginx", "mosquitto", "influxdb", "grafana"}
    unit = read_unit(DEPLOY / "systemd" / "shelfsense-cloud.service")["Service"]
    unit_args = shlex.split(unit["ExecStart"])[1:]
    assert services["cloud"]["command"] == unit_args == dockerfile_json("CMD")
    assert dockerfile_json("ENTRYPOINT") == ["shelfsense"]
    assert services["cloud"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert services["cloud"]["deploy"]["replicas"] >= 2
    assert "../cloud.toml:/etc/shelfsense/cloud.toml:ro" in services["cloud"]["volumes"]


def test_compose_mounts_only_shipped_or_documented_files() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "$")):
                continue  # a named volume
            relative = source.replace("${PWD}/", "./")
            if (COMPOSE.parent / relative).exists():
                continue
            parts = Path(relative).parts  # "./tls" -> ("tls",)
            assert parts[0] in USER_PROVIDED or str(Path(*parts)) in USER_PROVIDED, (name, volume)
    assert (DEPLOY / "compose" / "cloud.env.example").exists()
    assert (DEPLOY / "compose" / "pg_password.txt.example").exists()


def test_dockerfile_copies_what_the_package_needs() -> None:
    copied = [ln.split()[1] for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("COPY ")]
    assert {"shelfsense", "devices", "simulators", "edge", "cloud", "dashboards", "pyproject.toml"} <= set(
        copied
    )
    assert all((REPO / c).exists() for c in copied)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not set(copied) & set(ignored)


def test_the_shared_cloud_config_is_a_valid_production_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SHELFSENSE_CLOUD__DB_URL", "postgresql+asyncpg://shelfsense:pw@postgres:5432/shelfsense"
    )
    settings = load_settings(DEPLOY / "cloud.toml")
    assert (
        not settings.demo
        and settings.cloud.host == "0.0.0.0"
        and settings.cloud.web.secure_cookies == "always"
    )
    assert settings.cloud.db_url.startswith("postgresql+asyncpg://")
    edge = load_settings(DEPLOY / "edge.toml")
    assert edge.edge.cloud_url.startswith("https://") and edge.edge.cloud_ca_file is not None


def _docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0


def test_image_builds_and_answers_help() -> None:
    if not _docker_daemon():
        pytest.skip("no Docker daemon reachable: image build and compose up not exercised here")
    tag = "shelfsense:test"
    subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(REPO)], check=True, timeout=1200)
    out = subprocess.run(["docker", "run", "--rm", tag, "--help"], capture_output=True, text=True, check=True)
    assert "cloud" in out.stdout and "edge" in out.stdout


def test_the_multihost_test_runs_the_image_command_on_the_mounted_config(tmp_path: Path) -> None:
    """The namespace test's replicas run `cloud serve --config deploy/cloud.toml`; the image runs
    the same command on /etc/shelfsense/cloud.toml, which compose mounts from deploy/cloud.toml."""
    replica = CloudReplica(tmp_path, "postgresql+asyncpg://h/db", "10.0.0.11", 8600, shipped_config=True)
    cmd = dockerfile_json("CMD")
    mounted = {v.split(":")[1]: v.split(":")[0] for v in compose()["services"]["cloud"]["volumes"]}
    assert (COMPOSE.parent / mounted[cmd[cmd.index("--config") + 1]]).resolve() == replica.config
    assert replica.env()["SHELFSENSE_CLOUD__DB_URL"] == "postgresql+asyncpg://h/db"
