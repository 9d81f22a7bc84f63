"""Chafon / UHFReader18-family reader over real pseudo-terminals: answer mode, active mode, faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from serial_helpers import CLOCK, Collector, wait_until

from devices import chafon
from edge.agent import EdgeAgent
from edge.supervisor import DeviceHealthState
from edge.transports.chafon import ChafonSerialTransport
from shelfsense.config import (
    ChafonReaderConfig,
    EdgeSettings,
    PortalConfig,
    Settings,
    describe_validation_error,
)
from simulators.chafon_reader import ChafonReaderSimulator

EPC_A = "3074257BF7194E4000001A85"
EPC_B = "E2801160600002084F6C8A11"


async def _running(
    sim: ChafonReaderSimulator, transport: ChafonSerialTransport, body: Callable[[], Awaitable[None]]
) -> None:
    tasks = [asyncio.create_task(sim.run()), asyncio.create_task(transport.run())]
    try:
        await body()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sim.close()


def _config(sim: ChafonReaderSimulator, **overrides: object) -> ChafonReaderConfig:
    fields: dict[str, object] = {
        "protocol": "chafon", "id": "dock", "port": sim.port, "poll_interval_s": 0.02,
        "response_timeout_s": 0.3, **overrides,
    }  # fmt: skip
    return ChafonReaderConfig.model_validate(fields)


async def test_answer_mode_polls_reads_and_survives_noise_corruption_and_lost_answers() -> None:
    sim = ChafonReaderSimulator(lambda: [(EPC_A, -48), (EPC_B, -71)], address=0x00, variant="288", antenna=2)
    collector = Collector()
    health = DeviceHealthState("dock")
    transport = ChafonSerialTransport(_config(sim, variant="288"), health, collector, clock=CLOCK)

    async def body() -> None:
        await wait_until(lambda: len(collector.reads) >= 10)
        assert health.connected
        assert {(r.epc, r.rssi, r.antenna) for _, r in collector.reads} == {
            (EPC_A, -48.0, 2),
            (EPC_B, -71.0, 2),
        }
        sim.inject_noise(41)
        sim.corrupt_next(2)
        bad_before = health.frames_bad
        await wait_until(lambda: health.frames_bad > bad_before)  # one resync may skip both
        sim.drop_next(1)  # an answer lost on the line: that round times out, the next one goes on
        await wait_until(lambda: transport.rounds_unanswered >= 1)
        count = len(collector.reads)
        await wait_until(lambda: len(collector.reads) >= count + 10)

    await _running(sim, transport, body)
    assert transport.tag_reads == len(collector.reads)
    assert sim.inventories >= transport.rounds - 1
    assert health.frames_ok >= len(collector.reads) // 2


async def test_active_mode_listens_without_polling() -> None:
    sim = ChafonReaderSimulator(lambda: [(EPC_A, -50)], mode="active", reads_per_s=50)
    collector = Collector()
    transport = ChafonSerialTransport(
        _config(sim, mode="active"), DeviceHealthState("dock"), collector, clock=CLOCK
    )

    async def body() -> None:
        await wait_until(lambda: len(collector.reads) >= 5)

    await _running(sim, transport, body)
    assert {r.epc for _, r in collector.reads} == {EPC_A}
    assert (transport.rounds, sim.commands_received) == (0, 0)


async def test_a_reader_at_another_address_stays_silent() -> None:
    sim = ChafonReaderSimulator(lambda: [(EPC_A, -50)], address=0x07)
    collector = Collector()
    transport = ChafonSerialTransport(
        _config(sim, address=0x03), DeviceHealthState("dock"), collector, clock=CLOCK
    )

    async def body() -> None:
        await wait_until(lambda: transport.rounds_unanswered >= 2)

    await _running(sim, transport, body)
    assert collector.reads == [] and sim.commands_received == 0


def test_config_union_and_agent_pick_the_chafon_transport(tmp_path: Path) -> None:
    edge = EdgeSettings.model_validate(
        {
            "db_path": str(tmp_path / "edge.db"),
            "uhf_readers": [
                {"id": "outer", "port": "/dev/ttyUSB0"},
                {"id": "inner", "port": "/dev/ttyUSB1", "protocol": "chafon", "variant": "288"},
            ],
            "portals": [
                PortalConfig(id="dock-1", outer_reader="outer", inner_reader="inner", inside_location="store")
            ],
        }
    )
    inner = edge.uhf_readers[1]
    assert isinstance(inner, ChafonReaderConfig) and (inner.baudrate, inner.mode) == (57600, "answer")
    devices = EdgeAgent(Settings(demo=True, edge=edge))._devices()
    kinds = {device_id: type(run.__self__).__name__ for device_id, _, run in devices}  # type: ignore[attr-defined]
    assert kinds == {"outer": "UhfSerialTransport", "inner": "ChafonSerialTransport"}


def test_config_errors_name_the_key_the_user_wrote() -> None:
    bad = {"uhf_readers": [{"id": "a", "port": "/dev/ttyUSB0", "protocol": "chafon", "mode": "scan"}]}
    with pytest.raises(ValidationError) as info:
        EdgeSettings.model_validate(bad)
    assert describe_validation_error(info.value).startswith("uhf_readers.0.mode: ")
    with pytest.raises(ValidationError, match="m100"):  # an unknown protocol names the known default
        EdgeSettings.model_validate({"uhf_readers": [{"id": "a", "port": "/dev/x", "protocol": "rfid"}]})


def test_error_answers_are_counted_and_end_the_round_and_corrupt_lists_are_bad_frames() -> None:
    health = DeviceHealthState("dock")
    collector = Collector()
    config = ChafonReaderConfig(protocol="chafon", id="dock", port="/dev/null")
    transport = ChafonSerialTransport(config, health, collector, clock=CLOCK)
    transport._on_bytes(chafon.encode_response(0, chafon.CMD_INVENTORY, 0xFE))  # illegal command
    assert transport.reader_errors == 1 and transport._round_done.is_set()
    corrupt = chafon.encode_response(
        0, chafon.CMD_INVENTORY, chafon.STATUS_INVENTORY_DONE, b"\x02\x0c" + b"\0" * 12
    )
    transport._on_bytes(corrupt + chafon.encode_response(0, chafon.CMD_INVENTORY, chafon.STATUS_NO_TAG))
    assert (health.frames_bad, collector.reads, transport.tag_reads) == (1, [], 0)
