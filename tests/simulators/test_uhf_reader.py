"""The simulated M100 module, driven over a real pty with pyserial like the edge does."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from simtest_helpers import running, serial_client

from devices.uhf import (
    CMD_GET_POWER,
    CMD_STOP_MULTI_POLL,
    ERR_INVALID_COMMAND,
    ERR_NO_TAG,
    FRAME_RESPONSE,
    UhfFrame,
    encode_frame,
    get_power_command,
    is_tag_notification,
    multi_poll_command,
    parse_error,
    parse_power,
    parse_tag_notification,
    set_power_command,
    single_poll_command,
    stop_multi_poll_command,
)
from simulators.uhf_reader import UhfReaderSimulator

FIELD = [("3034257BF7194E4000001A85", -52), ("E2801160600002054CC2F0AB", -61)]
RATE = 50.0


def tags(frames: list[UhfFrame]) -> list[tuple[str, float | None]]:
    reads = [parse_tag_notification(f) for f in frames if is_tag_notification(f)]
    return [(r.epc, r.rssi) for r in reads if r is not None]


def is_stop_response(frame: UhfFrame) -> bool:
    return frame.frame_type == FRAME_RESPONSE and frame.command == CMD_STOP_MULTI_POLL


async def test_multi_poll_streams_until_stop() -> None:
    sim = UhfReaderSimulator(lambda: FIELD, reads_per_s=RATE)
    async with running(sim):
        with serial_client(sim.port) as client:
            assert await client.collect(0.1) == []  # idle module says nothing
            client.write(multi_poll_command())
            await client.wait_for(lambda fs: len(tags(fs)) >= 20)
            assert set(tags(client.frames)) == {(epc, float(rssi)) for epc, rssi in FIELD}
            assert sim.multi_polling

            client.write(stop_multi_poll_command())
            frames = await client.wait_for(lambda fs: any(is_stop_response(f) for f in fs))
            stop = next(f for f in frames if is_stop_response(f))
            assert stop.params == b"\x00"
            assert not sim.multi_polling
            await client.collect(0.05)  # a round may have been on the wire already
            assert tags(await client.collect(0.2)) == []  # ... but then silence
            assert client.decoder.frames_bad == 0
            assert sim.notifications_sent == len(tags(client.frames))


async def test_multi_poll_count_is_honoured() -> None:
    sim = UhfReaderSimulator(lambda: FIELD[:1], reads_per_s=RATE)
    async with running(sim):
        with serial_client(sim.port) as client:
            client.write(multi_poll_command(count=5))
            await client.wait_for(lambda fs: len(tags(fs)) >= 5)
            await client.collect(0.2)
            assert len(tags(client.frames)) == 5
            assert not sim.multi_polling


async def test_field_changes_are_followed_while_streaming() -> None:
    field: list[tuple[str, int]] = []
    sim = UhfReaderSimulator(lambda: field, reads_per_s=RATE)
    async with running(sim):
        with serial_client(sim.port) as client:
            client.write(multi_poll_command())
            assert await client.collect(0.1) == []  # empty field: no frames, no errors
            field.append(FIELD[0])
            await client.wait_for(lambda fs: len(tags(fs)) >= 3)
            field.clear()
            await client.collect(0.05)
            assert tags(await client.collect(0.15)) == []


async def test_single_poll_and_error_responses() -> None:
    field: list[tuple[str, int]] = []
    sim = UhfReaderSimulator(lambda: field, reads_per_s=RATE)
    async with running(sim):
        with serial_client(sim.port) as client:
            client.write(single_poll_command())
            frames = await client.wait_for(lambda fs: len(fs) >= 1)
            assert parse_error(frames[0]) == ERR_NO_TAG

            field.extend(FIELD)
            client.write(single_poll_command())
            await client.wait_for(lambda fs: len(tags(fs)) >= 2)
            assert sorted(tags(client.frames)) == sorted((e, float(r)) for e, r in FIELD)

            client.write(encode_frame(0x00, 0x99, b"\x01"))  # a command the module does not know
            await client.wait_for(lambda fs: parse_error(fs[-1]) == ERR_INVALID_COMMAND)

            client.write(set_power_command(20.0))
            client.write(get_power_command())
            frames = await client.wait_for(lambda fs: fs[-1].command == CMD_GET_POWER)
            assert parse_power(frames[-1]) == 20.0
            assert await client.collect(0.1) == []  # single polls do not start a stream


async def test_commands_split_across_writes_and_noise_from_host() -> None:
    sim = UhfReaderSimulator(lambda: FIELD, reads_per_s=RATE)
    async with running(sim):
        with serial_client(sim.port) as client:
            command = single_poll_command()
            client.write(b"\x00\x13\xff")  # garbage from the host side first
            for byte in command:
                client.write(bytes([byte]))
                await asyncio.sleep(0.002)
            await client.wait_for(lambda fs: len(tags(fs)) >= 2)
            assert sim.commands_received == 1


async def test_faults_cost_frames_but_good_frames_keep_coming() -> None:
    sim = UhfReaderSimulator(lambda: FIELD[:1], reads_per_s=RATE, seed=3)
    async with running(sim):
        with serial_client(sim.port) as client:
            client.write(multi_poll_command())
            await client.wait_for(lambda fs: len(tags(fs)) >= 3)
            sim.corrupt_next(3)
            sim.inject_noise(64)
            sim.drop_next(2)
            before = len(tags(client.frames))
            await client.wait_for(lambda fs: len(tags(fs)) >= before + 10)
            assert client.decoder.frames_bad >= 3  # each corrupted frame is rejected, at least
            assert client.decoder.bytes_skipped >= 64
            assert sim.frames_corrupted == 3 and sim.frames_dropped == 2
            assert sim.noise_bytes_sent == 64
            # Nothing corrupt was turned into a tag that does not exist.
            assert set(tags(client.frames)) == {(FIELD[0][0], float(FIELD[0][1]))}


async def test_reboot_forgets_multi_poll() -> None:
    sim = UhfReaderSimulator(lambda: FIELD[:1], reads_per_s=RATE)
    async with running(sim):
        with serial_client(sim.port) as client:
            client.write(multi_poll_command())
            await client.wait_for(lambda fs: len(tags(fs)) >= 2)
            sim.set_rebooting(0.3)
            await client.collect(0.05)
            client.write(single_poll_command())  # deaf while booting
            assert tags(await client.collect(0.3)) == []
            assert not sim.rebooting
            assert tags(await client.collect(0.15)) == []  # still idle: the stream was forgotten
            client.write(multi_poll_command())  # the edge restarts it, as after a real reboot
            await client.wait_for(lambda fs: len(tags(fs)) >= 4)


async def test_client_reopens_port_and_simulator_keeps_serving() -> None:
    sim = UhfReaderSimulator(lambda: FIELD[:1], reads_per_s=RATE)
    async with running(sim):
        for _ in range(3):
            with serial_client(sim.port) as client:
                client.write(multi_poll_command())
                await client.wait_for(lambda fs: len(tags(fs)) >= 2)
        # The stream went on while nobody listened; a new session can stop it.
        with serial_client(sim.port) as client:
            client.write(stop_multi_poll_command())
            await client.wait_for(lambda fs: any(is_stop_response(f) for f in fs))
            assert client.decoder.frames_bad <= 1  # at most a frame cut by the reopen


@settings(max_examples=200, deadline=None)
@given(garbage=st.lists(st.binary(max_size=40), max_size=8))
def test_host_garbage_never_breaks_the_module(garbage: list[bytes]) -> None:
    sim = UhfReaderSimulator(lambda: FIELD, reads_per_s=RATE)
    try:
        for chunk in garbage:
            sim._on_data(chunk)  # the pty read callback, fed directly
        sim._on_data(single_poll_command())  # and it still answers afterwards
        assert sim.notifications_sent >= 2
    finally:
        sim.close()
