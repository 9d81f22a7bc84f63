"""The edge -> cloud wire contract: versioning, validation, round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shelfsense.contract import (
    Batch,
    ContractError,
    PortalPassage,
    SensorReading,
    SequencedEvent,
    StockMovement,
    TagObservation,
    UnsupportedContractVersion,
    parse_batch,
    parse_event,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def sample_events() -> list[SequencedEvent]:
    events = [
        TagObservation(
            epc="3074257bf7194e4000001a85",
            reader="dock-outer",
            antenna=1,
            rssi=-48.0,
            first_seen=T0,
            last_seen=T0 + timedelta(seconds=1),
            count=12,
        ),
        PortalPassage(epc="3074257BF7194E4000001A85", portal="door-1", direction="in", at=T0),
        StockMovement(epc="3074257BF7194E4000001A85", from_location="dock", to_location="cold-room", at=T0),
        SensorReading(
            sensor_id="probe-1", quantity="temperature", value=4.2, unit="degC", time=T0, zone="cold-room"
        ),
    ]
    return [SequencedEvent(seq=i + 1, event=e) for i, e in enumerate(events)]


def test_batch_round_trips_through_json() -> None:
    batch = Batch(edge_id="edge-1", created_at=T0, events=sample_events())
    parsed = parse_batch(batch.model_dump_json())
    assert parsed == batch
    assert isinstance(parsed.events[0].event, TagObservation)
    assert parsed.events[0].event.epc == "3074257BF7194E4000001A85"  # normalised to upper case


def test_unknown_version_is_refused_with_a_clear_error() -> None:
    body = json.loads(Batch(edge_id="edge-1", created_at=T0, events=[]).model_dump_json())
    body["v"] = 2
    with pytest.raises(UnsupportedContractVersion, match="unsupported sync contract version v=2"):
        parse_batch(json.dumps(body))


@pytest.mark.parametrize("body", [b"\xff\xfe", b"[1,2]", b'{"edge_id": "x"}', b"not json"])
def test_malformed_bodies_raise_contract_errors(body: bytes) -> None:
    with pytest.raises(ContractError):
        parse_batch(body)


def test_sequence_numbers_must_strictly_increase() -> None:
    events = sample_events()
    with pytest.raises(ValidationError, match="strictly increase"):
        Batch(edge_id="edge-1", created_at=T0, events=[events[1], events[0]])


def test_nan_values_and_bad_epcs_are_refused() -> None:
    with pytest.raises(ValidationError):
        SensorReading(sensor_id="p", quantity="temperature", value=float("nan"), unit="degC", time=T0)
    with pytest.raises(ValidationError):
        PortalPassage(epc="not-hex!", portal="door-1", direction="in", at=T0)


def test_unknown_event_kind_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        parse_event({"kind": "teleport", "epc": "AB"})
    assert "kind" in str(info.value)


@given(
    value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    seq=st.integers(min_value=1, max_value=2**53),
)
def test_sensor_readings_round_trip(value: float, seq: int) -> None:
    reading = SensorReading(sensor_id="probe-1", quantity="temperature", value=value, unit="degC", time=T0)
    batch = Batch(edge_id="e", created_at=T0, events=[SequencedEvent(seq=seq, event=reading)])
    assert parse_batch(batch.model_dump_json()) == batch


def test_absurdly_nested_json_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="nested too deeply"):
        parse_batch(b"[" * 100_000 + b"]" * 100_000)
