"""LLRP 1.0.1 codec: framing, reader-side encoders cross-checked with sllurp's decoder, ROSpec parsing."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sllurp.llrp import LLRPMessage
from sllurp.llrp_proto import LLRPROSpec

from devices import llrp
from devices.errors import DecodeError
from devices.llrp import LlrpFrameDecoder, LlrpMessage, MsgType, TagReport

EPC96 = "30340242201D8840009EFC38"


def sllurp_decode(data: bytes) -> tuple[str, dict[str, Any]]:
    msg = LLRPMessage(msgbytes=data)
    return msg.getName(), dict(msg.msgdict[msg.getName()])


def test_header_layout() -> None:
    data = llrp.keepalive(0x01020304)
    # rsvd 000, version 001, type 62 -> 0b000_001_0000111110 = 0x043E; length 10; id.
    assert data == bytes.fromhex("043E" + "0000000A" + "01020304")
    assert LlrpFrameDecoder().feed(data) == [LlrpMessage(MsgType.KEEPALIVE, 0x01020304)]


def test_connection_attempt_event_as_sllurp_sees_it() -> None:
    name, body = sllurp_decode(llrp.reader_event_notification(1, 1_764_064_800_000_000))
    assert name == "READER_EVENT_NOTIFICATION"
    data = body["ReaderEventNotificationData"]
    assert data == {
        "UTCTimestamp": {"Microseconds": 1_764_064_800_000_000},
        "ConnectionAttemptEvent": {"Status": "Success"},
    }
    assert (
        LLRPMessage(msgbytes=llrp.reader_event_notification(2, 0, connection_status=2)).isSuccess() is False
    )


def test_capabilities_response_has_what_a_client_needs() -> None:
    name, body = sllurp_decode(llrp.get_reader_capabilities_response(7, antennas=4))
    assert name == "GET_READER_CAPABILITIES_RESPONSE" and body["ID"] == 7
    assert body["LLRPStatus"]["StatusCode"] == "Success"
    assert body["GeneralDeviceCapabilities"]["MaxNumberOfAntennaSupported"] == 4
    band = body["RegulatoryCapabilities"]["UHFBandCapabilities"]
    assert band["TransmitPowerLevelTableEntry"][-1] == {"Index": 21, "TransmitPowerValue": 3000}
    assert band["UHFC1G2RFModeTable"]["UHFC1G2RFModeTableEntry"][0]["ModeIdentifier"] == 1000


@pytest.mark.parametrize(
    "response",
    [MsgType.ADD_ROSPEC_RESPONSE, MsgType.ENABLE_ROSPEC_RESPONSE, MsgType.DELETE_ACCESSSPEC_RESPONSE],
)
def test_status_responses(response: MsgType) -> None:
    ok = LLRPMessage(msgbytes=llrp.status_response(response, 9))
    assert (ok.getName(), ok.isSuccess(), ok.msgdict[ok.getName()]["ID"]) == (response.name, True, 9)
    bad = LLRPMessage(msgbytes=llrp.status_response(response, 9, 101, "no ROSpec 5"))
    assert bad.isSuccess() is False
    assert bad.msgdict[bad.getName()]["LLRPStatus"]["ErrorDescription"] == b"no ROSpec 5"


def test_ro_access_report_epc96_and_epcdata_cross_checked_with_sllurp() -> None:
    reports = [
        TagReport(
            EPC96, antenna=2, peak_rssi=-52, first_seen_us=10, last_seen_us=20, seen_count=3, rospec_id=1
        ),
        TagReport(
            "E2801160600002054CC2", antenna=1, peak_rssi=-71, first_seen_us=5, last_seen_us=6, seen_count=1
        ),
    ]
    data = llrp.ro_access_report(4, reports)
    name, body = sllurp_decode(data)
    tags = body["TagReportData"]
    assert name == "RO_ACCESS_REPORT"
    assert [t["EPC"].decode().upper() for t in tags] == [EPC96, "E2801160600002054CC2"]
    assert [(t["AntennaID"], t["PeakRSSI"], t["TagSeenCount"]) for t in tags] == [(2, -52, 3), (1, -71, 1)]
    assert "EPC-96" in tags[0] and "EPC-96" not in tags[1]
    (msg,) = LlrpFrameDecoder().feed(data)
    assert llrp.decode_ro_access_report(msg) == reports


def test_content_selector_leaves_fields_out() -> None:
    selector = llrp.ContentSelector(rospec_id=False, peak_rssi=False, first_seen=False, seen_count=False)
    (msg,) = LlrpFrameDecoder().feed(
        llrp.ro_access_report(1, [TagReport(EPC96, 1, -50, 1, 2, 3, 1)], selector)
    )
    assert llrp.decode_ro_access_report(msg) == [TagReport(EPC96, antenna=1, last_seen_us=2)]
    read = llrp.tag_report_to_read(TagReport(EPC96, antenna=3, peak_rssi=-48))
    assert (read.epc, read.rssi, read.antenna, read.pc >> 11) == (EPC96, -48.0, 3, 6)


def test_parse_rospec_of_sllurp_add_rospec() -> None:
    """The ROSpec exactly as sllurp's client sends it (the simulator must understand it)."""
    rospec = LLRPROSpec(
        None,
        7,
        antennas=(1, 2),
        report_every_n_tags=1,
        report_timeout_ms=500,
        tag_content_selector={
            "EnablePeakRSSI": True,
            "EnableFirstSeenTimestamp": True,
            "EnableROSpecID": False,
        },
    )
    data = LLRPMessage(msgdict={"ADD_ROSPEC": {"ID": 3, "ROSpec": rospec}}).msgbytes
    (msg,) = LlrpFrameDecoder().feed(data)
    assert (msg.type, msg.message_id) == (MsgType.ADD_ROSPEC, 3)
    info = llrp.parse_rospec(msg)
    assert (info.rospec_id, info.start_trigger, info.antennas) == (7, llrp.START_TRIGGER_IMMEDIATE, (1, 2))
    assert info.selector == llrp.ContentSelector(rospec_id=False)
    start = LLRPMessage(msgdict={"START_ROSPEC": {"ID": 4, "ROSpecID": 7}}).msgbytes
    assert llrp.rospec_id_of(LlrpFrameDecoder().feed(start)[0]) == 7


def test_framing_errors() -> None:
    decoder = LlrpFrameDecoder()
    with pytest.raises(DecodeError, match="version 2"):
        decoder.feed(struct.pack(">HII", 2 << 10 | 62, 10, 1))
    with pytest.raises(DecodeError, match="length 3"):
        LlrpFrameDecoder().feed(struct.pack(">HII", 1 << 10 | 62, 3, 1))
    with pytest.raises(DecodeError, match="length"):
        LlrpFrameDecoder(max_message_bytes=1000).feed(struct.pack(">HII", 1 << 10 | 61, 5000, 1))
    assert decoder.messages_bad == 1
    with pytest.raises(DecodeError, match=r"truncated|length"):
        list(llrp.iter_params(bytes.fromhex("00F0 0010 8D")))
    with pytest.raises(DecodeError, match="unknown TV"):
        list(llrp.iter_params(bytes.fromhex("FF00")))
    with pytest.raises(DecodeError, match="without a ROSpec"):
        llrp.parse_rospec(LlrpMessage(MsgType.ADD_ROSPEC, 1, b""))
    with pytest.raises(DecodeError, match="EPCData says"):
        llrp.decode_ro_access_report(
            LlrpMessage(MsgType.RO_ACCESS_REPORT, 1, llrp.tlv(240, llrp.tlv(241, b"\x00\x60\x01")))
        )


_reports = st.lists(
    st.builds(
        TagReport,
        epc=st.binary(min_size=2, max_size=62)
        .filter(lambda b: len(b) % 2 == 0)
        .map(lambda b: b.hex().upper()),
        antenna=st.integers(1, 65535),
        peak_rssi=st.integers(-128, 127),
        first_seen_us=st.integers(0, 2**64 - 1),
        last_seen_us=st.integers(0, 2**64 - 1),
        seen_count=st.integers(1, 65535),
        rospec_id=st.integers(1, 2**32 - 1),
    ),
    max_size=20,
)


@given(_reports, st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_report_round_trip_in_any_chunking(reports: list[TagReport], chunk: int, message_id: int) -> None:
    data = llrp.keepalive(1) + llrp.ro_access_report(message_id, reports) + llrp.keepalive(2)
    decoder = LlrpFrameDecoder()
    messages = [m for i in range(0, len(data), chunk) for m in decoder.feed(data[i : i + chunk])]
    assert [m.type for m in messages] == [MsgType.KEEPALIVE, MsgType.RO_ACCESS_REPORT, MsgType.KEEPALIVE]
    assert llrp.decode_ro_access_report(messages[1]) == reports
    assert decoder.buffered == 0


@given(st.binary(max_size=300))
def test_random_streams_only_raise_decode_error(data: bytes) -> None:
    decoder = LlrpFrameDecoder(max_message_bytes=4096)
    try:
        messages = decoder.feed(data)
    except DecodeError:
        return
    for msg in messages:
        try:
            llrp.decode_ro_access_report(LlrpMessage(MsgType.RO_ACCESS_REPORT, 0, msg.body))
            llrp.parse_rospec(LlrpMessage(MsgType.ADD_ROSPEC, 0, msg.body))
        except DecodeError:
            pass


@given(st.data())
def test_mutated_reports_only_raise_decode_error(data: st.DataObject) -> None:
    good = llrp.ro_access_report(
        1, [TagReport(EPC96, 1, -50, 1, 2, 3, 1), TagReport("E280116060000205", 2, -60)]
    )
    i = data.draw(st.integers(10, len(good) - 1))
    body = (good[:i] + data.draw(st.binary(min_size=1, max_size=2)) + good[i + 1 :])[10:]
    try:
        reports = llrp.decode_ro_access_report(LlrpMessage(MsgType.RO_ACCESS_REPORT, 1, body))
    except DecodeError:
        return
    assert all(isinstance(r, TagReport) for r in reports)
