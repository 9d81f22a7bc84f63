"""Typed configuration: TOML + environment, clear errors naming the key, insecure settings refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shelfsense.config import ConfigError, load_settings

GOOD = """
[cloud]
port = 9100

[edge]
edge_id = "edge-7"
cloud_url = "https://cloud.example.com"
token = "sse_secret_value"

[[edge.uhf_readers]]
id = "outer"
port = "/dev/ttyUSB0"

[[edge.uhf_readers]]
id = "inner"
port = "/dev/ttyUSB1"

[[edge.portals]]
id = "door-1"
outer_reader = "outer"
inner_reader = "inner"
inside_location = "cold-room"

[[zones]]
id = "cold-room"
max_temp_c = 8.0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shelfsense.toml"
    path.write_text(text)
    return path


def test_file_values_are_loaded(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.cloud.port == 9100
    assert settings.edge.portals[0].inside_location == "cold-room"
    assert settings.zones[0].max_temp_c == 8.0


def test_environment_overrides_one_nested_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFSENSE_CLOUD__PORT", "9200")
    monkeypatch.setenv("SHELFSENSE_EDGE__EDGE_ID", "edge-env")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.cloud.port == 9200
    assert settings.edge.edge_id == "edge-env"
    assert settings.edge.cloud_url == "https://cloud.example.com"  # the rest of [edge] is kept


def test_flags_override_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFSENSE_CLOUD__PORT", "9200")
    assert load_settings(write(tmp_path, GOOD), cloud={"port": 9300}).cloud.port == 9300


def test_error_names_the_bad_key(tmp_path: Path) -> None:
    bad = GOOD.replace('port = "/dev/ttyUSB1"', "port = 5\nbogus = 1")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, bad))
    assert "edge.uhf_readers.1.bogus" in str(info.value)


def test_portal_must_name_configured_readers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reader 'inner' that is not in uhf_readers"):
        load_settings(write(tmp_path, GOOD.replace('id = "inner"', 'id = "other"')))


def test_insecure_settings_refused_outside_demo(tmp_path: Path) -> None:
    insecure = GOOD.replace("https://cloud.example.com", "http://cloud.example.com")
    with pytest.raises(ConfigError, match=r"edge\.cloud_url is not https"):
        load_settings(write(tmp_path, insecure))
    assert load_settings(write(tmp_path, "demo = true\n" + insecure)).demo


def test_loopback_http_is_allowed(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, GOOD.replace("https://cloud.example.com", "http://127.0.0.1:8600"))
    )
    assert settings.edge.cloud_url.startswith("http://127.0.0.1")


def test_config_check_cli_prints_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shelfsense", "config", "check", "--json", str(write(tmp_path, GOOD))],
        capture_output=True,
        text=True,
        check=True,
    )
    effective = json.loads(result.stdout)
    assert effective["edge"]["edge_id"] == "edge-7"
    assert "sse_secret_value" not in result.stdout


def test_config_check_cli_exits_2_naming_the_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shelfsense",
            "config",
            "check",
            str(write(tmp_path, GOOD.replace("9100", '"x"'))),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "cloud.port" in result.stderr


@pytest.mark.parametrize("name", ["edge.toml", "cloud.toml"])
def test_shipped_examples_are_valid(name: str) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / name
    settings = load_settings(example)
    assert settings.zones[0].id == "cold-room"


def test_set_password_cli_reads_stdin_and_refuses_unknown_users(tmp_path: Path) -> None:
    from cloud.admin import create_user
    from cloud.web.sessions import set_password  # noqa: F401  (the CLI uses it)

    db = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    create_user(db, "olga", "operator")
    command = [sys.executable, "-m", "shelfsense", "cloud", "admin", "set-password", "--db", db]
    ok = subprocess.run(
        [*command, "olga"], input="correct horse battery staple\n", capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "correct horse" not in ok.stdout + ok.stderr
    unknown = subprocess.run(
        [*command, "nobody"], input="whatever-long-pass\n", capture_output=True, text=True
    )
    assert unknown.returncode == 2
    assert "no user 'nobody'" in unknown.stderr
