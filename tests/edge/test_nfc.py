"""NFC transports (PN532 HSU, RDM6300) against the simulators over real ptys, supervised."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from edge_cloud_stub import FakeCloud, Request

from devices.pn532 import NfcTag, nfc_tag
from edge.agent import EdgeAgent
from edge.clock import EdgeClock
from edge.status import read_status
from edge.supervisor import DeviceHealthState, supervise
from edge.transports.nfc import PresenceTracker, uid_to_epc
from edge.transports.pn532 import Pn532Transport
from edge.transports.protocol import Committed, Emission, Events
from edge.transports.rdm6300 import Rdm6300Transport
from shelfsense.config import EdgeSettings, NfcReaderConfig, Settings
from shelfsense.contract import DeviceHealth, Event, TagObservation
from simulators.pn532_reader import Pn532ReaderSimulator
from simulators.rdm6300_reader import Rdm6300ReaderSimulator

UID = "04A2241A6B5E80"  # a 7-byte NTAG UID
CARD = "0A00B1C2D3"  # RDM6300: version byte + 32-bit id
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Sink:
    """The transports' ``emit``: NFC readers emit events (not durable), never raw tag reads."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, emission: Emission) -> asyncio.Future[Committed]:
        assert isinstance(emission, Events) and not emission.durable
        self.events.extend(emission.events)
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        future.set_result([])
        return future

    def observations(self) -> list[TagObservation]:
        return [e for e in self.events if isinstance(e, TagObservation)]


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def serving(sim: Any) -> AsyncIterator[Any]:
    task = asyncio.create_task(sim.run())
    try:
        yield sim
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sim.close()


@contextlib.asynccontextmanager
async def supervised(
    name: str, run: Callable[[], Awaitable[None]], health: DeviceHealthState
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(supervise(name, run, health, 0.05, 0.2, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def relink(link: Path, target: str) -> None:
    """Point the stable device path at a (new) pty, as udev does after a USB re-enumeration."""
    tmp = link.with_suffix(".new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


# ------------------------------------------------------------------ pure parts


def test_uid_to_epc_pads_and_validates() -> None:
    assert uid_to_epc("04a2241a") == "04A2241A"  # 4-byte UID: exactly the contract minimum
    assert uid_to_epc("0a0b") == "00000A0B"
    assert uid_to_epc(UID) == UID
    for bad in ("", "0G", "123", "00" * 63):
        with pytest.raises(ValueError):
            uid_to_epc(bad)


def test_presence_tracker_arrival_gap_and_departure() -> None:
    tracker = PresenceTracker(grace_s=0.5)
    assert tracker.seen("AABBCCDD", T0) is not None
    assert tracker.seen("AABBCCDD", T0 + timedelta(seconds=0.1)) is None
    # A gap inside the grace period is not a departure.
    assert tracker.expire(T0 + timedelta(seconds=0.5)) == []
    assert tracker.seen("AABBCCDD", T0 + timedelta(seconds=0.5)) is None
    gone = tracker.expire(T0 + timedelta(seconds=1.2))
    assert [(p.epc, p.reads, p.first_seen, p.last_seen) for p in gone] == [
        ("AABBCCDD", 3, T0, T0 + timedelta(seconds=0.5))
    ]
    assert tracker.seen("AABBCCDD", T0 + timedelta(seconds=2)) is not None  # a new presence


def test_rdm6300_baudrate_defaults_to_the_module() -> None:
    assert NfcReaderConfig(kind="rdm6300", port="/dev/ttyS0", id="r").baudrate == 9600
    assert NfcReaderConfig(kind="pn532", port="/dev/ttyS0", id="p").baudrate == 115200


# ------------------------------------------------------------------ PN532


async def test_pn532_card_arrives_and_leaves_despite_faults() -> None:
    field: list[NfcTag] = []
    sim = Pn532ReaderSimulator(lambda: field)
    # The grace period outlasts the retries of a few lost answers (~0.7 s each).
    config = NfcReaderConfig(
        kind="pn532", port=sim.port, id="desk-nfc", location="office", poll_interval_s=0.05, grace_s=3.0
    )
    health, sink = DeviceHealthState("desk-nfc"), Sink()
    transport = Pn532Transport(config, health, sink, clock=EdgeClock())
    async with serving(sim), supervised("desk-nfc", transport.run, health):
        await until(lambda: health.connected and transport.polls > 0)
        assert sim.awake
        field.append(nfc_tag(UID))
        await until(lambda: len(sink.observations()) == 1)
        arrival = sink.observations()[0]
        assert (arrival.epc, arrival.reader, arrival.location, arrival.count) == (
            UID,
            "desk-nfc",
            "office",
            1,
        )
        # Corrupted and lost answers: the transport NACKs / retries and keeps polling.
        sim.corrupt_next(2)
        sim.drop_next(2)
        polls = transport.polls
        await until(lambda: transport.polls > polls + 3)
        field.clear()
        await until(lambda: len(sink.observations()) == 2)
    departure = sink.observations()[1]
    assert departure.epc == UID and departure.first_seen == arrival.first_seen
    assert departure.count > 3 and departure.last_seen > departure.first_seen
    assert health.frames_bad >= 2  # the corrupted frames are in the device health
    assert transport.nacks_sent >= 1
    assert health.frames_ok > 5
    assert health.reconnects == 0  # the faults were absorbed without losing the reader


async def test_pn532_reconnects_after_the_reader_goes_away_and_comes_back(tmp_path: Path) -> None:
    field = [nfc_tag("04A2241A")]
    link = tmp_path / "ttyNFC0"
    first = Pn532ReaderSimulator(lambda: field)
    relink(link, first.port)
    config = NfcReaderConfig(kind="pn532", port=str(link), id="gate", poll_interval_s=0.05, grace_s=0.3)
    health, sink = DeviceHealthState("gate"), Sink()
    transport = Pn532Transport(config, health, sink, clock=EdgeClock(), response_timeout_s=0.2)
    async with supervised("gate", transport.run, health):
        async with serving(first):
            await until(lambda: len(sink.observations()) == 1)
        await until(lambda: health.reconnects >= 1 and not health.connected)
        await asyncio.sleep(2 * config.grace_s)  # away for longer than the grace period
        second = Pn532ReaderSimulator(lambda: field)  # power-up: asleep until woken
        relink(link, second.port)
        async with serving(second):
            await until(lambda: health.connected and second.awake and transport.polls > 5)
            await until(lambda: len(sink.observations()) >= 3)
    # Unseen for longer than the grace period while the reader was away: it left, and arrived again.
    first_stay, departure, second_stay = sink.observations()[:3]
    assert [o.epc for o in (first_stay, departure, second_stay)] == ["04A2241A"] * 3
    assert (first_stay.count, second_stay.count) == (1, 1)
    assert departure.first_seen == first_stay.first_seen <= departure.last_seen < second_stay.first_seen
    assert health.reconnects >= 1


# ------------------------------------------------------------------ RDM6300


async def test_rdm6300_repeats_become_one_presence_and_bad_frames_are_counted() -> None:
    card: list[str | None] = [None]
    sim = Rdm6300ReaderSimulator(lambda: card[0], repeat_s=0.02)
    config = NfcReaderConfig(kind="rdm6300", port=sim.port, id="tool-crib", grace_s=0.3)
    health, sink = DeviceHealthState("tool-crib"), Sink()
    transport = Rdm6300Transport(config, health, sink, clock=EdgeClock())
    async with serving(sim), supervised("tool-crib", transport.run, health):
        await until(lambda: health.connected)
        card[0] = CARD
        await until(lambda: health.frames_ok >= 5)
        sim.corrupt_next(3)
        sim.inject_noise(20)
        ok = health.frames_ok
        await until(lambda: health.frames_bad >= 3 and health.frames_ok >= ok + 5)
        card[0] = None
        await until(lambda: len(sink.observations()) == 2)
    arrival, departure = sink.observations()
    assert (arrival.epc, arrival.count) == (CARD, 1)
    assert departure.epc == CARD and departure.count == health.frames_ok
    assert health.reconnects == 0


async def test_rdm6300_reconnects_after_the_port_vanishes(tmp_path: Path) -> None:
    link = tmp_path / "ttyRFID"
    first = Rdm6300ReaderSimulator(lambda: CARD, repeat_s=0.02)
    relink(link, first.port)
    config = NfcReaderConfig(kind="rdm6300", port=str(link), id="door", grace_s=5.0)
    health, sink = DeviceHealthState("door"), Sink()
    transport = Rdm6300Transport(config, health, sink, clock=EdgeClock())
    async with supervised("door", transport.run, health):
        async with serving(first):
            await until(lambda: len(sink.observations()) == 1)
        await until(lambda: health.reconnects >= 1)
        second = Rdm6300ReaderSimulator(lambda: CARD, repeat_s=0.02)
        relink(link, second.port)
        async with serving(second):
            ok = health.frames_ok
            await until(lambda: health.connected and health.frames_ok > ok + 3)
    # Back within the grace period: the same presence, not a second arrival.
    assert len(sink.observations()) == 1


# ------------------------------------------------------------------ through the agent


async def test_agent_turns_nfc_cards_into_tag_observations(
    cloud: Callable[[Callable[[Request], tuple[int, bytes]]], Awaitable[FakeCloud]], tmp_path: Path
) -> None:
    fake = await cloud(
        lambda r: (
            200,
            json.dumps({"acked_through": r.batch.events[-1].seq, "accepted": 0, "duplicates": 0}).encode(),
        )
    )
    pn = Pn532ReaderSimulator(lambda: [nfc_tag("04A2241A")])
    rdm = Rdm6300ReaderSimulator(lambda: CARD, repeat_s=0.05)
    db = tmp_path / "edge.db"
    settings = Settings(
        demo=True,
        edge=EdgeSettings(
            cloud_url=fake.url,
            db_path=db,
            sync_interval_s=0.05,
            health_interval_s=0.2,
            nfc_readers=[
                NfcReaderConfig(
                    kind="pn532", port=pn.port, id="nfc-1", location="office", poll_interval_s=0.05
                ),
                NfcReaderConfig(kind="rdm6300", port=rdm.port, id="rfid-1", location="gate"),
            ],
        ),
    )
    stop = asyncio.Event()

    def observed() -> set[tuple[str, str, str | None]]:
        return {
            (se.event.reader, se.event.epc, se.event.location)
            for r in fake.requests
            for se in r.batch.events
            if isinstance(se.event, TagObservation)
        }

    async with serving(pn), serving(rdm):
        agent = asyncio.create_task(EdgeAgent(settings, cycle_s=0.1).run(stop))
        try:
            await until(lambda: len(observed()) == 2, timeout=15)
            # Damaged only now that the edge reads the port: frames sent before it opened are lost unseen.
            rdm.corrupt_next(2)
            await until(lambda: health_counts_frames(fake), timeout=15)  # a health round with the bad frames
        finally:
            stop.set()
            await asyncio.wait_for(agent, 10)
    assert observed() == {("nfc-1", "04A2241A", "office"), ("rfid-1", CARD, "gate")}
    status = read_status(db)
    devices = status["devices"]
    assert devices["rfid-1"]["frames_bad"] >= 1 and devices["rfid-1"]["frames_ok"] > 0
    assert devices["nfc-1"]["frames_ok"] > 0


def health_counts_frames(fake: FakeCloud) -> bool:
    """The cloud got device health with the damaged RDM6300 frames and good frames of both readers.

    Two damaged frames that reach the decoder in one read are one bad stretch to resynchronise over,
    so at least one bad frame is counted, not necessarily two."""
    latest = {
        se.event.device_id: se.event
        for r in fake.requests
        for se in r.batch.events
        if isinstance(se.event, DeviceHealth)
    }
    rfid, nfc = latest.get("rfid-1"), latest.get("nfc-1")
    return bool(rfid and nfc and rfid.frames_bad >= 1 and rfid.frames_ok > 0 and nfc.frames_ok > 0)


def test_presence_tracker_a_stale_card_read_again_is_a_new_presence() -> None:
    tracker = PresenceTracker(grace_s=0.5)
    tracker.seen("AABBCCDD", T0)
    again = tracker.seen("AABBCCDD", T0 + timedelta(seconds=3))  # the reader was away meanwhile
    assert again is not None and again.first_seen == T0 + timedelta(seconds=3)
    assert [(p.first_seen, p.reads) for p in tracker.expire(T0 + timedelta(seconds=3))] == [(T0, 1)]
