"""``shelfsense sim llrp`` and ``sim scenario`` fault events, as real processes read by real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from devices import uhf
from devices.readings import TagRead
from edge.clock import EdgeClock
from edge.supervisor import DeviceHealthState, supervise
from edge.transports.llrp import LlrpTransport
from edge.transports.protocol import Committed, Emission, TagReads
from shelfsense.cli_sim import parse_llrp_tags
from shelfsense.cli_tools import BadInput
from shelfsense.config import LlrpAntennaConfig, LlrpReaderConfig

EPC_A = "3074257BF7194E4000001A85"
EPC_B = "E2801160600002054CC2096F"


@contextlib.contextmanager
def llrp_sim(*args: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shelfsense", "sim", "llrp", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield line
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_parse_llrp_tags() -> None:
    assert parse_llrp_tags(f"{EPC_A.lower()}:2, {EPC_B}", -50) == [(EPC_A, -50, 2), (EPC_B, -50, 1)]
    for bad in ("3074:x", "307", f"{EPC_A}:0", f"{EPC_A}:65"):
        with pytest.raises(BadInput):
            parse_llrp_tags(bad, -50)


def test_sim_llrp_prints_host_port_and_streams_tags_to_the_edge_transport() -> None:
    with llrp_sim("--tags", f"{EPC_A}:1,{EPC_B}:2", "--rssi", "-52", "--rate", "20") as where:
        host, _, port = where.rpartition(":")
        assert host == "127.0.0.1" and port.isdigit() and int(port) > 0
        reads = asyncio.run(read_llrp(host, int(port)))
    assert {(rid, r.epc, r.antenna, r.rssi) for rid, r in reads} == {
        ("outer", EPC_A, 1, -52.0),
        ("inner", EPC_B, 2, -52.0),
    }


async def read_llrp(host: str, port: int) -> list[tuple[str, TagRead]]:
    config = LlrpReaderConfig(
        id="sim-llrp",
        host=host,
        port=port,
        keepalive_s=1.0,
        connect_timeout_s=5.0,
        antennas=[
            LlrpAntennaConfig(antenna=1, reader_id="outer"),
            LlrpAntennaConfig(antenna=2, reader_id="inner"),
        ],
    )
    reads: list[tuple[str, TagRead]] = []

    def on_read(emission: Emission) -> asyncio.Future[Committed]:
        assert isinstance(emission, TagReads)
        reads.extend((emission.reader_id, read) for read in emission.reads)
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        future.set_result([])
        return future

    health = DeviceHealthState("sim-llrp")
    stop = asyncio.Event()
    task = asyncio.create_task(
        supervise(
            "sim-llrp", LlrpTransport(config, health, on_read, clock=EdgeClock()).run, health, 0.1, 1, stop
        )
    )
    try:
        async with asyncio.timeout(20):
            while {r.epc for _, r in reads} != {EPC_A, EPC_B}:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    return reads


def test_sim_llrp_bad_tags_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shelfsense", "sim", "llrp", "--tags", "30742"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "EPC" in result.stderr and result.stdout == ""


def test_sim_scenario_applies_its_fault_events(tmp_path: Path) -> None:
    """A corrupt event in the file reaches the reader: a client decoding its stream counts bad frames."""
    scenario = tmp_path / "faulty.toml"
    scenario.write_text(
        "cycle_s = 20.0\n"
        '[[portals]]\nid = "d"\npallets_in = 1\nentry_window = [0.0, 0.0]\nexits = []\n'
        '[[events]]\nkind = "corrupt"\nat_s = 0.5\ntarget = "d.outer"\ncount = 4\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "shelfsense", "sim", "scenario", "--json", str(scenario)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        where = json.loads(proc.stdout.readline())
        assert where["events"] == 1
        decoder = uhf.UhfFrameDecoder()
        good = 0
        with serial.Serial(where["portals"]["d"]["outer"], 115200, timeout=0.05) as port:
            port.write(uhf.multi_poll_command())
            deadline = time.monotonic() + 15
            while not (decoder.frames_bad >= 4 and good > 40):
                assert time.monotonic() < deadline, (decoder.frames_bad, good)
                good += len(decoder.feed(port.read(4096)))
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_sim_scenario_with_an_event_for_no_simulator_exits_2(tmp_path: Path) -> None:
    scenario = tmp_path / "bad_event.toml"
    scenario.write_text('[[events]]\nkind = "collision"\nat = 0.5\ntarget = "probe"\n')
    result = subprocess.run(
        [sys.executable, "-m", "shelfsense", "sim", "scenario", "--json", str(scenario)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "collision" in result.stderr and result.stdout == ""
