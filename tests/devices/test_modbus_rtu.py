"""Modbus RTU codec for the XY-MD02 / SHT20 probes: vectors, decoding, properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from devices import modbus
from devices.errors import DecodeError
from devices.modbus import RtuRequest, RtuRequestDecoder
from devices.readings import Measurement


def test_crc_check_value_and_probe_request_vector() -> None:
    assert modbus.crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS catalogue check value
    # The XY-MD02 datasheet's "read temperature and humidity" request.
    assert modbus.read_input_registers_request(1, 0x0001, 2) == bytes.fromhex("010400010002200B")


def test_probe_response_decodes_to_measurements() -> None:
    wire = modbus.read_input_registers_response(1, [0x0105, 0x01DD])
    assert wire[:7] == bytes.fromhex("010404010501DD")
    decoded = modbus.decode_rtu_frame(wire)
    assert decoded["kind"] == "response"
    assert decoded["registers"] == [261, 477]
    assert decoded["as_th_probe"] == {"temperature": 26.1, "humidity": 47.7}
    assert modbus.decode_th_registers(decoded["registers"]) == [
        Measurement("temperature", 26.1, "degC"),
        Measurement("humidity", 47.7, "%RH"),
    ]


def test_negative_temperature_is_signed() -> None:
    assert modbus.decode_th_registers([0xFFEC, 850])[0].value == -2.0
    assert modbus.decode_th_registers([0xFE70])[0].value == -40.0  # temperature-only read


@pytest.mark.parametrize(
    ("registers", "message"),
    [
        ([0x0321, 500], "temperature 80.1"),
        ([0xFE6F, 500], "temperature -40.1"),
        ([200, 1001], "humidity 100.1"),
        ([200, 0xFFFF], "humidity"),
        ([], "expected 1 or 2"),
        ([1, 2, 3], "expected 1 or 2"),
        ([0x10000, 1], "16-bit"),
        ([-1, 1], "16-bit"),
    ],
)
def test_absurd_registers_are_rejected(registers: list[int], message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        modbus.decode_th_registers(registers)


def test_exception_response_encoding_and_decoding() -> None:
    wire = modbus.exception_response(1, 0x04, modbus.ILLEGAL_DATA_ADDRESS)
    assert wire[:3] == bytes.fromhex("018402")
    decoded = modbus.decode_rtu_frame(wire)
    assert decoded["kind"] == "exception"
    assert decoded["exception"] == "illegal data address"
    assert decoded["function_name"] == "read_input_registers"


def test_decode_rtu_frame_request_and_errors() -> None:
    assert modbus.decode_rtu_frame(bytes.fromhex("010400010002200B")) == {
        "slave": 1,
        "function": 4,
        "crc": "0x0B20",
        "function_name": "read_input_registers",
        "kind": "request",
        "address": 1,
        "count": 2,
    }
    with pytest.raises(DecodeError, match="CRC mismatch"):
        modbus.decode_rtu_frame(bytes.fromhex("010400010002200C"))
    with pytest.raises(DecodeError, match="at least 4"):
        modbus.decode_rtu_frame(b"\x01\x04")


def test_request_decoder_resyncs_after_noise_and_bad_crc() -> None:
    good = modbus.read_input_registers_request(1, 1, 2)
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    decoder = RtuRequestDecoder()
    requests = decoder.feed(b"\x00\xff\x13" + bytes(bad) + good + good[:5])
    assert requests == [RtuRequest(1, 4, 1, 2)]
    assert decoder.feed(good[5:]) == [RtuRequest(1, 4, 1, 2)]
    assert decoder.frames_ok == 2
    assert decoder.frames_bad == 1  # one loss of sync, however many bytes it took
    assert decoder.bytes_skipped == 3 + 8


def test_encoders_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError):
        modbus.read_input_registers_request(248, 1, 2)
    with pytest.raises(ValueError):
        modbus.read_input_registers_request(1, 1, 126)
    with pytest.raises(ValueError):
        modbus.read_input_registers_response(1, [])


# --------------------------------------------------------------------------- properties

request_st = st.builds(
    RtuRequest,
    slave=st.integers(0, 247),
    function=st.sampled_from([3, 4]),
    address=st.integers(0, 0xFFFF),
    count=st.integers(1, 125),
)


def _encode(requests: list[RtuRequest]) -> bytes:
    encoders = {3: modbus.read_holding_registers_request, 4: modbus.read_input_registers_request}
    return b"".join(encoders[r.function](r.slave, r.address, r.count) for r in requests)


def _feed_in_chunks(decoder: RtuRequestDecoder, data: bytes, cuts: list[int]) -> list[RtuRequest]:
    out: list[RtuRequest] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(data[start:end]))
    return out


def _valid_at(data: bytes, pos: int) -> bool:
    frame = data[pos : pos + 8]
    return (
        len(frame) == 8
        and 1 <= frame[1] <= 6
        and modbus.crc16(frame[:6]) == int.from_bytes(frame[6:], "little")
    )


@given(st.lists(request_st, max_size=20))
def test_request_round_trip(requests: list[RtuRequest]) -> None:
    decoder = RtuRequestDecoder()
    assert decoder.feed(_encode(requests)) == requests
    assert (decoder.frames_bad, decoder.bytes_skipped) == (0, 0)


@given(st.lists(request_st, max_size=10), st.binary(max_size=40), st.lists(st.integers(0, 500)))
def test_chunk_splits_give_the_same_requests(
    requests: list[RtuRequest], noise: bytes, cuts: list[int]
) -> None:
    data = noise + _encode(requests)
    whole = RtuRequestDecoder()
    split = RtuRequestDecoder()
    assert _feed_in_chunks(split, data, cuts) == whole.feed(data)
    assert (split.frames_ok, split.frames_bad, split.bytes_skipped) == (
        whole.frames_ok,
        whole.frames_bad,
        whole.bytes_skipped,
    )


@given(st.binary(max_size=64), st.lists(request_st, min_size=1, max_size=5))
def test_good_requests_after_garbage_are_never_lost(garbage: bytes, requests: list[RtuRequest]) -> None:
    good = _encode(requests)
    data = garbage + good
    # A CRC-valid 8-byte window straddling the boundary is indistinguishable from a request.
    assume(not any(_valid_at(data, p) for p in range(max(0, len(garbage) - 7), len(garbage))))
    out = RtuRequestDecoder().feed(data)
    assert out[len(out) - len(requests) :] == requests


@given(st.binary(max_size=600))
def test_random_bytes_never_raise_and_are_accounted_for(data: bytes) -> None:
    decoder = RtuRequestDecoder()
    requests = decoder.feed(data)
    assert 8 * len(requests) + decoder.bytes_skipped + decoder.buffered == len(data)


@given(slave=st.integers(1, 247), t=st.floats(-40, 80), h=st.floats(0, 100))
def test_th_registers_round_trip(slave: int, t: float, h: float) -> None:
    registers = modbus.encode_th_registers(t, h)
    wire = modbus.read_input_registers_response(slave, registers)
    decoded = modbus.decode_rtu_frame(wire)
    temperature, humidity = modbus.decode_th_registers(decoded["registers"])
    assert abs(temperature.value - t) <= 0.05 + 1e-9
    assert abs(humidity.value - h) <= 0.05 + 1e-9


@given(st.binary(max_size=300))
def test_decode_rtu_frame_raises_only_decode_error(data: bytes) -> None:
    try:
        result = modbus.decode_rtu_frame(data)
    except DecodeError:
        return
    assert result["slave"] == data[0]


@given(st.binary(min_size=1, max_size=60))
def test_decode_rtu_frame_on_crc_valid_random_frames(body: bytes) -> None:
    data = body + modbus.crc16(body).to_bytes(2, "little")
    try:
        result = modbus.decode_rtu_frame(data)
    except DecodeError as exc:
        assert "CRC" not in str(exc)
        return
    assert result["kind"] in {"request", "response", "exception"}


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=3))
def test_decode_th_registers_raises_only_decode_error(registers: list[int]) -> None:
    try:
        out = modbus.decode_th_registers(registers)
    except DecodeError:
        return
    assert [m.quantity for m in out] == ["temperature", "humidity"][: len(registers)]


def test_decode_rtu_frame_single_write_echo_and_implausible_th_view() -> None:
    pdu = bytes.fromhex("010601010005")  # XY-MD02: set slave address register 0x0101 to 5
    decoded = modbus.decode_rtu_frame(pdu + modbus.crc16(pdu).to_bytes(2, "little"))
    assert (decoded["kind"], decoded["address"], decoded["value"], decoded["echo"]) == (
        "request",
        0x0101,
        5,
        True,
    )
    # A holding-register read of two config values is shown raw, not as a bogus T/H reading.
    decoded = modbus.decode_rtu_frame(modbus.read_registers_response(1, 3, [0x0101, 0x2580]))
    assert decoded["registers"] == [0x0101, 0x2580]
    assert "as_th_probe" not in decoded
