"""deploy/systemd: every unit passes ``systemd-analyze verify`` (unknown keys and bad values are
reported on stderr, missing executables fail it), runs a command our CLI accepts, is hardened, and
gives the edge more time to stop than its final flush takes."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_harness import DEPLOY

from edge.agent import FINAL_SYNC_TIMEOUT_S
from shelfsense.cli import build_parser

UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/opt/shelfsense/venv/bin/shelfsense"


def read_unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_the_three_units_are_there() -> None:
    assert [u.name for u in UNITS] == [
        "shelfsense-cloud.service",
        "shelfsense-edge.service",
        "shelfsense-sim.service",
    ]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies(unit: Path, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (scripts/test.sh apt-installs systemd)")
    # The installed path does not exist here: point ExecStart at this venv's console script.
    local = tmp_path / unit.name
    local.write_text(unit.read_text().replace(INSTALLED, str(Path(sys.executable).with_name("shelfsense"))))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert unit.name not in result.stderr and local.name not in result.stderr, result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_runs_a_valid_command_hardened(unit: Path) -> None:
    service = read_unit(unit)["Service"]
    argv = shlex.split(service["ExecStart"].replace("${SHELFSENSE_SIM_MQTT_URL}", "mqtt://127.0.0.1:1883"))
    assert argv[0] == INSTALLED
    build_parser().parse_args(argv[1:])  # exits (SystemExit) on a command the CLI does not have
    assert service["DynamicUser"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes" and service["CapabilityBoundingSet"] == ""
    assert service["StateDirectory"] == f"{unit.stem}" and service["ConfigurationDirectory"] == "shelfsense"
    assert service["EnvironmentFile"].startswith("-/etc/shelfsense/")
    assert service["Restart"] in {"on-failure", "always"}


def test_edge_stop_outlasts_its_final_flush() -> None:
    service = read_unit(DEPLOY / "systemd" / "shelfsense-edge.service")["Service"]
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert float(service["TimeoutStopSec"]) > FINAL_SYNC_TIMEOUT_S + 30  # group commit + last sync + slack
