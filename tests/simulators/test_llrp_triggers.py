"""The LLRP reader simulator honours ROSpec / AISpec triggers and reports them (issue 14 item 4).

Field report: sllurp's ROSpec with a 3,000 ms duration trigger kept receiving tag reports after
3.3 s, until the client quit. LLRP 1.0.1 references: ROSpecStartTrigger 16.2.4.1.1.1 (0 Null,
1 Immediate, 2 Periodic with PeriodicTriggerValue 16.2.4.1.1.1.1), ROSpecStopTrigger 16.2.4.1.1.2
(1 Duration), AISpecStopTrigger 16.2.4.2.1 (3 Tag observation) with TagObservationTrigger
16.2.4.2.1.1 (0 N tags, 2 N attempts, 3 N unique tags), READER_EVENT_NOTIFICATION with ROSpecEvent
16.2.7.6.3 and AISpecEvent 16.2.7.6.7, enabled through ReaderEventNotificationSpec 16.2.6.3.

The client side is sllurp (a third-party LLRP implementation): its reader client for the duration
case, its message encoder and decoder for ROSpecs sllurp's client cannot express (periodic start,
N-attempts / N-unique-tags AISpecs).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sllurp.llrp import LLRPMessage, LLRPReaderClient, LLRPReaderConfig
from sllurp.llrp_proto import LLRPROSpec

from devices import llrp_triggers as trig
from devices.llrp import LlrpFrameDecoder, encode_message
from simulators.llrp_reader import LlrpReaderSimulator

pytestmark = pytest.mark.integration
EPC = "3034257BF46DB64000000190"
OTHER = "3034257BF46DB64000000191"
DURATION_S = 1.0


@pytest.fixture
async def simulator() -> AsyncIterator[LlrpReaderSimulator]:
    sim = LlrpReaderSimulator(lambda: [(EPC, -50, 1), (OTHER, -60, 1)], reads_per_s=20)
    await sim.start()
    yield sim
    await sim.stop()


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_sllurp_duration_trigger_ends_the_rospec_and_reports_it(simulator: LlrpReaderSimulator) -> None:
    """sllurp's ``duration`` = ROSpecStopTrigger Duration (and the AISpec's): reports stop, the
    reader says End_of_ROSpec, and nothing is read after it while the link stays up."""
    log: list[tuple[str, Any]] = []  # in arrival order, from sllurp's thread
    lock = threading.Lock()

    def record(kind: str, value: Any) -> None:
        with lock:
            log.append((kind, value))

    config = LLRPReaderConfig(
        {
            "antennas": [1],
            "duration": DURATION_S,
            "keepalive_interval": 200,
            "start_inventory": True,
            "reset_on_connect": True,
            "event_selector": {"ROSpecEvent": True, "AISpecEvent": True},
            "tag_content_selector": {"EnableLastSeenTimestamp": True, "EnableAntennaID": True},
        }
    )
    client = LLRPReaderClient("127.0.0.1", simulator.port, config, timeout=10)
    client.add_tag_report_callback(lambda _c, tags: record("tags", tags))
    client.add_message_callback("READER_EVENT_NOTIFICATION", lambda _c, msg: record("event", msg.msgdict))
    client.add_message_callback("KEEPALIVE", lambda _c, _m: record("keepalive", None))

    def kinds() -> list[str]:
        with lock:
            return [k for k, _ in log]

    await asyncio.to_thread(client.connect)
    try:

        def ended() -> bool:
            return any(k == "event" and "End_of_ROSpec" in str(v) for k, v in list(log))

        await until(ended)
        end_at = next(i for i, (k, v) in enumerate(log) if k == "event" and "End_of_ROSpec" in str(v))
        await until(lambda: kinds()[end_at:].count("keepalive") >= 2)  # time passed, link alive
    finally:
        await asyncio.to_thread(client.hard_disconnect)
        await asyncio.to_thread(client.join, 5)
    with lock:
        events = [
            v["READER_EVENT_NOTIFICATION"]["ReaderEventNotificationData"] for k, v in log if k == "event"
        ]
        after_end = [k for k, _ in log[end_at:] if k == "tags"]
        tags = [t for k, v in log[:end_at] if k == "tags" for t in v]
    rospec = [e["ROSpecEvent"] for e in events if "ROSpecEvent" in e]
    assert [e["EventType"] for e in rospec] == ["Start_of_ROSpec", "End_of_ROSpec"]
    assert any("AISpecEvent" in e for e in events)  # the AISpec ended with its ROSpec
    assert after_end == []  # nothing after End_of_ROSpec (the field bug: reports went on)
    assert tags and all(t["EPC-96"].decode().upper() in (EPC, OTHER) for t in tags)
    stamps = [e["UTCTimestamp"]["Microseconds"] for e in events if "ROSpecEvent" in e]
    assert stamps[1] - stamps[0] >= DURATION_S * 1e6  # it ran its whole duration
    assert simulator.rospec_events == [(rospec[0]["ROSpecID"], 0), (rospec[0]["ROSpecID"], 1)]


class RawClient:
    """A bare LLRP client: messages encoded and decoded by sllurp, framed by our decoder."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = LlrpFrameDecoder()
        self.received: list[dict[str, Any]] = []
        self.next_id = 0

    def send(self, name: str, body: dict[str, Any]) -> None:
        self.next_id += 1
        self.writer.write(LLRPMessage(msgdict={name: {**body, "ID": self.next_id}}).msgbytes)

    async def pump(self) -> None:
        while data := await self.reader.read(65536):
            for msg in self.decoder.feed(data):
                raw = encode_message(msg.type, msg.message_id, msg.body)
                self.received.append(LLRPMessage(msgbytes=raw).msgdict)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for m in self.received:
            data = m.get("READER_EVENT_NOTIFICATION", {}).get("ReaderEventNotificationData", {})
            for key in ("ROSpecEvent", "AISpecEvent"):
                if key in data:
                    out.append({"kind": key, **data[key]})
        return out

    def sequence(self) -> list[str]:
        """'R+' ROSpec start, 'R-' end, 'A' AISpec end, 't' a tag report, in arrival order."""
        out = []
        for m in self.received:
            data = m.get("READER_EVENT_NOTIFICATION", {}).get("ReaderEventNotificationData", {})
            if "ROSpecEvent" in data:
                out.append("R+" if data["ROSpecEvent"]["EventType"] == "Start_of_ROSpec" else "R-")
            elif "AISpecEvent" in data:
                out.append("A")
            elif "RO_ACCESS_REPORT" in m:
                out.append("t")
        return out


def rospec(rospec_id: int, *, start: dict[str, Any], stop_ms: int | None, observation: dict[str, Any]) -> Any:
    spec = LLRPROSpec(None, rospec_id, antennas=(1,), report_every_n_tags=None)
    spec["ROBoundarySpec"]["ROSpecStartTrigger"] = start
    if stop_ms is not None:
        spec["ROBoundarySpec"]["ROSpecStopTrigger"] = {
            "ROSpecStopTriggerType": "Duration",
            "DurationTriggerValue": stop_ms,
        }
    spec["AISpec"][0]["AISpecStopTrigger"] = {
        "AISpecStopTriggerType": "Tag observation",
        "DurationTriggerValue": 0,
        "TagObservationTrigger": {
            "NumberOfTags": 0,
            "NumberOfAttempts": 0,
            "T": 0,
            "Timeout": 0,
            **observation,
        },
    }
    spec["ROReportSpec"]["N"] = 0  # one report per inventory round
    return spec


@pytest.fixture
async def raw(simulator: LlrpReaderSimulator) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    client = RawClient(reader, writer)
    pump = asyncio.create_task(client.pump())
    events = {"ROSpecEvent": True, "AISpecEvent": True}
    client.send(
        "SET_READER_CONFIG",
        {"ResetToFactoryDefaults": False, "ReaderEventNotificationSpec": {"EventNotificationState": events}},
    )
    yield client
    writer.close()
    pump.cancel()
    await asyncio.gather(pump, return_exceptions=True)


async def test_aispec_n_attempts_repeats_until_the_stop_command(
    raw: RawClient, simulator: LlrpReaderSimulator
) -> None:
    """Immediate start, Null ROSpec stop, AISpec ends after 3 attempts (rounds): the reader reports
    3 rounds, an AISpec end, 3 rounds, ... until STOP_ROSPEC ends the ROSpec."""
    immediate = {"ROSpecStartTriggerType": "Immediate"}
    raw.send(
        "ADD_ROSPEC",
        {
            "ROSpecID": 5,
            "ROSpec": rospec(
                5,
                start=immediate,
                stop_ms=None,
                observation={"TriggerType": "UponNAttempts", "NumberOfAttempts": 3},
            ),
        },
    )
    raw.send("ENABLE_ROSPEC", {"ROSpecID": 5})
    await until(lambda: raw.sequence().count("A") >= 3)
    raw.send("STOP_ROSPEC", {"ROSpecID": 5})
    await until(lambda: "R-" in raw.sequence())
    seq = raw.sequence()
    assert seq[0] == "R+" and seq[-1] == "R-"
    rounds = "".join(s for s in seq[1:-1])
    assert rounds.split("A")[:3] == ["ttt"] * 3  # each AISpec run: exactly three rounds
    assert {e["ROSpecID"] for e in raw.events()} == {5}


async def test_aispec_n_unique_tags_and_a_periodic_start_with_a_duration(
    raw: RawClient, simulator: LlrpReaderSimulator
) -> None:
    """Periodic start (offset 0, every 800 ms), ROSpec duration 300 ms, AISpec ends upon 2 unique
    tags (both tags answer in the first round): runs repeat on their period, each bounded by the
    duration, the AISpec ending after every round."""
    periodic = {"ROSpecStartTriggerType": "Periodic", "PeriodicTriggerValue": {"Offset": 0, "Period": 800}}
    raw.send(
        "ADD_ROSPEC",
        {
            "ROSpecID": 9,
            "ROSpec": rospec(
                9,
                start=periodic,
                stop_ms=300,
                observation={"TriggerType": "UponNUniqueTags", "NumberOfTags": 2},
            ),
        },
    )
    raw.send("ENABLE_ROSPEC", {"ROSpecID": 9})
    await until(lambda: raw.sequence().count("R-") >= 2)
    raw.send("DISABLE_ROSPEC", {"ROSpecID": 9})
    seq = raw.sequence()
    first_run = seq[seq.index("R+") : seq.index("R-") + 1]
    assert first_run[1:3] == ["t", "A"]  # 2 unique tags seen in one round: the AISpec ends
    assert set(first_run[1:-1]) <= {"t", "A"}
    assert seq.count("R+") >= 2 and simulator.rospec_events[:4] == [(9, 0), (9, 1), (9, 0), (9, 1)]
    # A periodic ROSpec waits for its next period: between runs there is no inventory.
    between = seq[seq.index("R-") + 1 : seq.index("R+", seq.index("R-"))]
    assert between == []


async def test_events_are_only_sent_when_enabled(simulator: LlrpReaderSimulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.port)
    client = RawClient(reader, writer)
    pump = asyncio.create_task(client.pump())
    try:
        client.send(
            "ADD_ROSPEC",
            {
                "ROSpecID": 3,
                "ROSpec": rospec(
                    3,
                    start={"ROSpecStartTriggerType": "Immediate"},
                    stop_ms=200,
                    observation={"TriggerType": "UponNTags", "NumberOfTags": 1000},
                ),
            },
        )
        client.send("ENABLE_ROSPEC", {"ROSpecID": 3})
        await until(lambda: (3, 1) in simulator.rospec_events)
        client.send(
            "GET_READER_CONFIG", {"AntennaID": 0, "RequestedData": 0, "GPIPortNum": 0, "GPOPortNum": 0}
        )
        await until(lambda: any("GET_READER_CONFIG_RESPONSE" in m for m in client.received))
    finally:
        writer.close()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
    assert client.events() == []  # ReaderEventNotificationSpec never enabled them
    assert "t" in client.sequence()


@given(
    start=st.sampled_from(["Null", "Immediate", "Periodic"]),
    offset=st.integers(0, 2**32 - 1),
    period=st.integers(0, 2**32 - 1),
    stop_ms=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    observation=st.sampled_from(
        ["UponNTags", "UponSilenceMs", "UponNAttempts", "UponNUniqueTags", "UponUniqueSilenceMs"]
    ),
    n=st.integers(0, 0xFFFF),
    t=st.integers(0, 0xFFFF),
    timeout=st.integers(0, 2**32 - 1),
)
def test_triggers_encoded_by_sllurp_decode_to_the_same_values(
    start: str, offset: int, period: int, stop_ms: int | None, observation: str, n: int, t: int, timeout: int
) -> None:
    """devices.llrp_triggers.parse_triggers against sllurp's encoder (LLRP 1.0.1 16.2.4.1.1.x)."""
    start_trigger: dict[str, Any] = {"ROSpecStartTriggerType": start}
    if start == "Periodic":
        start_trigger["PeriodicTriggerValue"] = {"Offset": offset, "Period": period}
    obs = {"TriggerType": observation, "NumberOfTags": n, "NumberOfAttempts": n, "T": t, "Timeout": timeout}
    spec = rospec(4, start=start_trigger, stop_ms=stop_ms, observation=obs)
    raw = LLRPMessage(msgdict={"ADD_ROSPEC": {"ROSpecID": 4, "ROSpec": spec, "ID": 1}}).msgbytes
    (msg,) = LlrpFrameDecoder().feed(raw)
    parsed = trig.parse_triggers(msg)
    kinds = {"Null": trig.START_NULL, "Immediate": trig.START_IMMEDIATE, "Periodic": trig.START_PERIODIC}
    assert parsed.start.kind == kinds[start]
    if start == "Periodic":
        assert (parsed.start.offset_ms, parsed.start.period_ms) == (offset, period)
    assert (parsed.stop.kind, parsed.stop.duration_ms) == (
        (trig.STOP_NULL, 0) if stop_ms is None else (trig.STOP_DURATION, stop_ms)
    )
    (ai,) = parsed.aispecs
    assert ai.kind == trig.AI_STOP_TAG_OBSERVATION and ai.observation is not None
    names = ["UponNTags", "UponSilenceMs", "UponNAttempts", "UponNUniqueTags", "UponUniqueSilenceMs"]
    assert ai.observation == trig.TagObservation(names.index(observation), n, n, t, timeout)
