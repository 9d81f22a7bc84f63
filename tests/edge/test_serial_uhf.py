"""UHF reader over real pseudo-terminals: the simulator, raw frames, reboot, vanished port."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from serial_helpers import CLOCK, Collector, wait_until

from devices import uhf
from devices.errors import TransportError
from edge.supervisor import DeviceHealthState
from edge.transports.serial_uhf import UhfSerialTransport
from shelfsense.config import UhfReaderConfig
from simulators.uhf_reader import UhfReaderSimulator

EPC_A = "3034ABCD0000000000000001"
EPC_B = "E2801160600002084F6C8A11"


async def test_reads_the_simulator_and_survives_noise_corruption_and_reboot() -> None:
    sim = UhfReaderSimulator(lambda: [(EPC_A, -50), (EPC_B, -62)], reads_per_s=50)
    sim_task = asyncio.create_task(sim.run())
    collector = Collector()
    health = DeviceHealthState("outer")
    transport = UhfSerialTransport(
        UhfReaderConfig(id="outer", port=sim.port), health, collector, clock=CLOCK, repoll_s=0.3
    )
    task = asyncio.create_task(transport.run())
    try:
        await wait_until(lambda: len(collector.reads) >= 10)
        assert health.connected
        assert {read.epc for _, read in collector.reads} == {EPC_A, EPC_B}
        assert {read.rssi for _, read in collector.reads if read.epc == EPC_A} == {-50.0}
        sim.inject_noise(37)
        sim.corrupt_next(3)
        bad_before = health.frames_bad
        await wait_until(lambda: health.frames_bad >= bad_before + 3)
        # A rebooted reader forgets multi-poll; the transport notices the silence and re-issues it.
        sim.set_rebooting(0.2)
        await asyncio.sleep(0.25)
        count = len(collector.reads)
        await wait_until(lambda: len(collector.reads) > count + 10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sim_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim_task
        sim.close()
    assert health.frames_ok >= len(collector.reads)
    assert transport.tag_reads == len(collector.reads)


async def test_raw_frames_on_a_pty_and_the_multi_poll_command(pty_pair: tuple[int, str]) -> None:
    master, slave_path = pty_pair
    collector = Collector()
    health = DeviceHealthState("inner")
    transport = UhfSerialTransport(
        UhfReaderConfig(id="inner", port=slave_path), health, collector, clock=CLOCK
    )
    task = asyncio.create_task(transport.run())
    try:
        await wait_until(lambda: health.connected)
        loop = asyncio.get_running_loop()
        wanted = uhf.multi_poll_command() + uhf.module_info_command()  # start, then a heartbeat
        command = b""
        while len(command) < len(wanted):
            command += await asyncio.wait_for(loop.run_in_executor(None, os.read, master, 64), 2)
        assert command[: len(wanted)] == wanted
        good = uhf.tag_notification(EPC_A, -45)
        corrupt = bytearray(uhf.tag_notification(EPC_B, -70))
        corrupt[-2] ^= 0xFF  # bad checksum
        # Split a frame across writes, add noise and a frame with a bad checksum.
        os.write(master, b"\x00\x13" + good[:5])
        os.write(master, good[5:] + bytes(corrupt) + uhf.error_response(0x15) + good)
        await wait_until(lambda: len(collector.reads) == 2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [(rid, r.epc, r.rssi) for rid, r in collector.reads] == [("inner", EPC_A, -45.0)] * 2
    assert health.frames_bad == 1
    assert health.frames_ok == 3  # two notifications and the error response
    assert transport.reader_errors == 1


async def test_missing_port_and_vanished_port_raise_transport_error(pty_pair: tuple[int, str]) -> None:
    health = DeviceHealthState("r")
    with pytest.raises(TransportError, match="cannot open"):
        await UhfSerialTransport(
            UhfReaderConfig(id="r", port="/dev/does-not-exist"), health, Collector(), clock=CLOCK
        ).run()
    master, slave_path = pty_pair
    transport = UhfSerialTransport(UhfReaderConfig(id="r", port=slave_path), health, Collector(), clock=CLOCK)
    task = asyncio.create_task(transport.run())
    await wait_until(lambda: health.connected)
    os.close(master)  # the USB adapter is unplugged
    with pytest.raises(TransportError):
        await asyncio.wait_for(task, 5)


async def test_a_silent_reader_is_probed_and_an_unplugged_one_is_no_longer_heard() -> None:
    """Issue 14 item 5: a pulled cable raises no error on a tty, so liveness comes from frames.
    The heartbeat (cmd 0x03, module info) keeps an idle reader heard; unplugged it is not."""
    sim = UhfReaderSimulator(lambda: [], reads_per_s=20)  # empty field: no tag notifications
    sim_task = asyncio.create_task(sim.run())
    health = DeviceHealthState("idle")
    transport = UhfSerialTransport(
        UhfReaderConfig(id="idle", port=sim.port), health, Collector(), clock=CLOCK, heartbeat_s=0.2
    )
    task = asyncio.create_task(transport.run())
    try:
        await wait_until(lambda: sim.responses_sent >= 3)  # heartbeats answered
        heard = health.last_frame_at
        assert heard is not None
        await wait_until(lambda: health.last_frame_at is not None and health.last_frame_at > heard)
        sim.disconnect(60)
        await wait_until(lambda: not health.alive(CLOCK.now(), 1.0), timeout=10)
        assert health.connected  # the transport saw no error: only the silence tells
    finally:
        for t in (task, sim_task):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        sim.close()
