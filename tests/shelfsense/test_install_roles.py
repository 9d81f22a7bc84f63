"""Install by role: the edge gateway's code imports nothing of the cloud's dependencies (it installs
``shelfsense[edge]`` without FastAPI, SQLAlchemy or matplotlib), and every import of each package
is covered by the extras of its role in pyproject.toml."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOUD_ONLY = (
    "fastapi",
    "sqlalchemy",
    "matplotlib",
    "asyncpg",
    "alembic",
    "uvicorn",
    "influxdb_client",
    "grafana_client",
    "numpy",
    "amqtt",
    "cloud",
)
# import name -> distribution name where they differ
DISTRIBUTION = {
    "serial": "pyserial",
    "paho": "paho-mqtt",
    "influxdb_client": "influxdb-client",
    "grafana_client": "grafana-client",
    "pydantic_settings": "pydantic-settings",
    "pydantic_core": "pydantic",
    "starlette": "fastapi",  # FastAPI's own dependency, imported for its types
    "urllib3": "influxdb-client",  # its transport, whose errors cloud/influx translates
    "prometheus_client": "prometheus-client",
    "swagger_ui": "swagger-ui-py",
}


def _loaded_after(code: str) -> list[str]:
    modules = "sorted({m.split('.')[0] for m in sys.modules})"
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps({modules}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_edge_agent_and_its_cli_pull_in_nothing_of_the_cloud() -> None:
    code = "import edge.agent, edge.status, shelfsense.cli\nshelfsense.cli.build_parser()"
    loaded = set(_loaded_after(code))
    assert "edge" in loaded and "pydantic" in loaded  # the probe really imported the edge
    assert loaded.isdisjoint(CLOUD_ONLY), sorted(loaded & set(CLOUD_ONLY))


def _third_party_imports(package: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    ours = {"shelfsense", "edge", "cloud", "devices", "simulators", "dashboards"}
    return {n for n in names - ours if n not in sys.stdlib_module_names}


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for req in requirements:
        name = req.split(">")[0].split("[")[0].split("=")[0].strip().lower()
        names.add(name)
    return names


def test_each_role_declares_what_its_packages_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = {
        name: core | _requirement_names(reqs) for name, reqs in project["optional-dependencies"].items()
    }
    roles = {"devices": core, "edge": extras["edge"], "simulators": extras["sim"], "cloud": extras["cloud"]}
    for package, declared in roles.items():
        needed = {DISTRIBUTION.get(name, name).lower() for name in _third_party_imports(package)}
        assert needed <= declared, f"{package} imports {sorted(needed - declared)} not in its extra"
    assert project["optional-dependencies"]["all"] == ["shelfsense[edge,cloud,sim]"]
