"""The simulated PN532 and RDM6300 readers, driven over a real pty with pyserial like the edge does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import serial
from simtest_helpers import running

from devices import pn532
from devices.pn532 import NfcTag, Pn532Frame, Pn532FrameDecoder
from devices.rdm6300 import Rdm6300Decoder, Rdm6300Frame
from simulators.pn532_reader import Pn532ReaderSimulator
from simulators.rdm6300_reader import Rdm6300ReaderSimulator

UID7 = "04A1B2C3D4E5F6"
UID4 = "DEADBEEF"


class Client:
    """pyserial on the slave side plus one of our decoders."""

    def __init__(self, port: str, decoder: Any) -> None:
        self.ser = serial.Serial(port, baudrate=115200, timeout=0)
        self.decoder = decoder
        self.frames: list[Any] = []

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def poll(self) -> None:
        self.frames.extend(self.decoder.feed(self.ser.read(65536)))

    async def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 3.0) -> list[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.poll()
        while not predicate(self.frames):
            if loop.time() > deadline:
                pytest.fail(f"timed out after {timeout} s; got {self.frames}")
            await asyncio.sleep(0.01)
            self.poll()
        return self.frames

    async def collect(self, seconds: float) -> list[Any]:
        start = len(self.frames)
        await asyncio.sleep(seconds)
        self.poll()
        return self.frames[start:]

    async def transact(self, command: bytes) -> list[Pn532Frame]:
        """Send one command; return [ACK, response] as the host sees them."""
        start = len(self.frames)
        self.write(command)
        await self.wait_for(lambda fs: len(fs) >= start + 2)
        return self.frames[start:]


@contextmanager
def client(port: str, decoder: Any) -> Iterator[Client]:
    c = Client(port, decoder)
    try:
        yield c
    finally:
        c.ser.close()


def responses(frames: list[Pn532Frame]) -> list[Pn532Frame]:
    return [f for f in frames if f.kind != "ack"]


# --------------------------------------------------------------------------- PN532


async def test_pn532_session_wakeup_sam_firmware_and_polling() -> None:
    field: list[NfcTag] = []
    sim = Pn532ReaderSimulator(lambda: field)
    async with running(sim):
        with client(sim.port, Pn532FrameDecoder()) as host:
            # Asleep after power-up: a command without the wake-up preamble goes unheard.
            host.write(pn532.get_firmware_version_command())
            assert await host.collect(0.15) == []
            assert not sim.awake

            ack, done = await host.transact(pn532.with_wakeup(pn532.sam_configuration_command()))
            assert ack == Pn532Frame("ack")
            assert done == Pn532Frame("info", 0xD5, b"\x15")

            _, version = await host.transact(pn532.get_firmware_version_command())
            assert pn532.parse_firmware_version(version) == pn532.FirmwareVersion(0x32, 1, 6, 7)

            _, nothing = await host.transact(pn532.in_list_passive_target_command())
            assert pn532.parse_inlist_response(nothing) == []

            field[:] = [pn532.nfc_tag(UID7), pn532.nfc_tag(UID4)]
            _, one = await host.transact(pn532.in_list_passive_target_command(max_targets=1))
            assert [t.uid_hex for t in pn532.parse_inlist_response(one)] == [UID7]
            _, two = await host.transact(pn532.in_list_passive_target_command(max_targets=2))
            tags = pn532.parse_inlist_response(two)
            assert [(t.uid_hex, t.atqa, t.sak, t.target) for t in tags] == [
                (UID7, 0x0044, 0x00, 1),
                (UID4, 0x0004, 0x08, 2),
            ]
            # Type B / FeliCa polling finds nothing: there are only type A cards here.
            _, other = await host.transact(pn532.in_list_passive_target_command(baud=0x03))
            assert pn532.parse_inlist_response(other) == []
            assert sim.commands_received == 6


async def test_pn532_unknown_command_gets_ack_and_error_frame_and_nack_repeats() -> None:
    sim = Pn532ReaderSimulator(lambda: [pn532.nfc_tag(UID4)], require_wakeup=False)
    async with running(sim):
        with client(sim.port, Pn532FrameDecoder()) as host:
            ack, error = await host.transact(pn532.encode_command(0x60, b"\x01"))
            assert (ack.kind, error.kind) == ("ack", "error")
            assert sim.errors_sent == 1

            _, first = await host.transact(pn532.in_list_passive_target_command())
            host.write(pn532.NACK_FRAME)  # "say that again"
            frames = await host.wait_for(lambda fs: len(fs) >= 5)
            assert frames[4:] == [first]


async def test_pn532_corrupt_host_frames_are_ignored_and_the_next_is_answered() -> None:
    sim = Pn532ReaderSimulator(lambda: [], require_wakeup=False)
    async with running(sim):
        with client(sim.port, Pn532FrameDecoder()) as host:
            bad = bytearray(pn532.get_firmware_version_command())
            bad[-2] ^= 0x01  # DCS
            host.write(bytes(bad) + b"\x13\x37")
            assert await host.collect(0.15) == []
            _, version = await host.transact(pn532.get_firmware_version_command())
            assert pn532.parse_firmware_version(version).ic == 0x32
            assert sim.commands_bad >= 1


async def test_pn532_faults_noise_corrupt_and_drop() -> None:
    sim = Pn532ReaderSimulator(lambda: [pn532.nfc_tag(UID4)], require_wakeup=False)
    decoder = Pn532FrameDecoder()
    async with running(sim):
        with client(sim.port, decoder) as host:
            sim.inject_noise(64)
            sim.corrupt_next(2)  # the ACK and the response of the next command
            host.write(pn532.get_firmware_version_command())
            assert responses(await host.collect(0.2)) == []
            assert decoder.frames_bad >= 2

            sim.drop_next(1)  # the ACK is lost, the response still arrives
            host.write(pn532.in_list_passive_target_command())
            (response,) = await host.wait_for(lambda fs: len(fs) >= 1)
            assert [t.uid_hex for t in pn532.parse_inlist_response(response)] == [UID4]
            assert (sim.frames_corrupted, sim.frames_dropped, sim.noise_bytes_sent) == (2, 1, 64)


async def test_pn532_power_down_needs_a_new_wakeup() -> None:
    sim = Pn532ReaderSimulator(lambda: [], require_wakeup=False)
    async with running(sim):
        with client(sim.port, Pn532FrameDecoder()) as host:
            _, down = await host.transact(pn532.encode_command(pn532.CMD_POWER_DOWN, b"\x10"))
            assert down.data == b"\x17\x00"
            assert not sim.awake
            host.write(pn532.get_firmware_version_command())
            assert await host.collect(0.15) == []
            _, version = await host.transact(pn532.with_wakeup(pn532.get_firmware_version_command()))
            assert pn532.parse_firmware_version(version).version == 1


# --------------------------------------------------------------------------- RDM6300


async def test_rdm6300_streams_the_card_in_the_field_and_is_silent_without_one() -> None:
    card: list[str | None] = [None]
    sim = Rdm6300ReaderSimulator(lambda: card[0], repeat_s=0.02)
    async with running(sim):
        with client(sim.port, Rdm6300Decoder()) as reader:
            assert await reader.collect(0.1) == []
            card[0] = "62E3086CED"
            frames = await reader.wait_for(lambda fs: len(fs) >= 5)
            assert set(frames) == {Rdm6300Frame(0x62, 0xE3086CED)}  # repeated, never de-duplicated here
            card[0] = None
            await reader.collect(0.05)  # a frame may have been on the wire already
            assert await reader.collect(0.1) == []


async def test_rdm6300_faults_are_counted_and_good_frames_follow() -> None:
    sim = Rdm6300ReaderSimulator(lambda: "0A00001234", repeat_s=0.02)
    decoder = Rdm6300Decoder()
    async with running(sim):
        with client(sim.port, decoder) as reader:
            sim.inject_noise(50)
            sim.corrupt_next(3)
            sim.drop_next(2)
            frames = await reader.wait_for(lambda fs: len(fs) >= 3)
            assert {f.card_hex for f in frames} == {"0A00001234"}
            assert decoder.frames_bad >= 3
            assert (sim.frames_corrupted, sim.frames_dropped) == (3, 2)
