"""End to end: `shelfsense demo` runs cloud, broker, simulators and edge, and its summary proves the flow."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shelfsense.services import MosquittoProcess

pytestmark = pytest.mark.integration

DEMO_SECONDS = 30


def run_demo(
    tmp_path: Path, env: dict[str, str] | None = None, seconds: int = DEMO_SECONDS
) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shelfsense",
            "demo",
            "--duration",
            str(seconds),
            "--json",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 90,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json must print exactly one object on stdout, got: {result.stdout!r}"
    summary: dict[str, Any] = json.loads(lines[0])
    summary["_stderr"] = result.stderr
    return summary


def assert_flow_complete(summary: dict[str, Any]) -> None:
    assert summary["tag_reads"] > 0
    assert summary["items_on_hand"] > 0, "pallets entered through the portal must be on hand in the cloud"
    assert summary["items_on_hand"] == summary["edge_items_on_hand"], "edge ledger and cloud stock disagree"
    assert summary["sensor_readings"] > 0
    assert summary["alerts_total"] >= 1, "the cold room warmed past its limit: a cold-chain alert must exist"
    assert summary["unsynced_events"] == 0
    assert summary["synced_events"] == summary["acked_through"] == summary["edge_last_seq"] > 0
    assert summary["edge_exit_code"] == 0


def test_demo_runs_end_to_end_on_mosquitto(tmp_path: Path) -> None:
    if not Path("/usr/sbin/mosquitto").exists() and not any(
        (Path(p) / "mosquitto").exists() for p in os.environ.get("PATH", "").split(":")
    ):
        pytest.skip("mosquitto not installed")
    summary = run_demo(tmp_path)
    assert summary["broker"].startswith("mosquitto child process")
    assert "API docs: http://127.0.0.1:" in summary["_stderr"]
    assert "operator page: http://127.0.0.1:" in summary["_stderr"]
    assert_flow_complete(summary)


def test_demo_falls_back_to_the_embedded_broker(tmp_path: Path) -> None:
    # A PATH without mosquitto: the demo must say so and use amqtt (MQTT 3.1.1 persistent session).
    python_dir = str(Path(sys.executable).parent)
    summary = run_demo(tmp_path, env={"PATH": f"{python_dir}:/usr/bin:/bin"}, seconds=20)
    if summary["broker"].startswith("mosquitto"):
        pytest.skip("mosquitto is on /usr/bin here; cannot hide it")
    assert summary["broker"].startswith("embedded amqtt")
    assert_flow_complete(summary)


def test_demo_uses_the_broker_named_in_the_environment(
    tmp_path: Path, mosquitto_broker: MosquittoProcess
) -> None:
    summary = run_demo(tmp_path, env={"SHELFSENSE_MQTT_URL": mosquitto_broker.url}, seconds=20)
    assert summary["broker"].startswith("external (SHELFSENSE_MQTT_URL)")
    assert_flow_complete(summary)


def test_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "shelfsense", "demo", "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    pids: list[int] = []
    deadline = time.monotonic() + 60
    for line in process.stdout:
        pids += [int(match) for match in re.findall(r"\(pid (\d+)", line)]
        if line.startswith("edge:") or time.monotonic() > deadline:
            break
    assert len(pids) >= 2, "the demo must report the cloud and edge child pids"
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-2000:]
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        ), f"child {pid} still running after Ctrl-C"
