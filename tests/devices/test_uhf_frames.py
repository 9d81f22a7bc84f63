"""M100/R200 frame codec: known vectors from the module manual plus property tests."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devices import uhf
from devices.readings import TagRead
from devices.uhf import UhfFrame, UhfFrameDecoder

# --------------------------------------------------------------------------- known vectors


def test_command_vectors_match_the_manual() -> None:
    assert uhf.single_poll_command() == bytes.fromhex("BB00220000227E")
    assert uhf.multi_poll_command(10000) == bytes.fromhex("BB00270003222710837E")
    assert uhf.stop_multi_poll_command() == bytes.fromhex("BB00280000287E")
    assert uhf.set_power_command(20) == bytes.fromhex("BB00B6000207D08F7E")
    assert uhf.set_region_command(uhf.REGION_CHINA_900) == bytes.fromhex("BB0007000101097E")
    assert uhf.error_response(uhf.ERR_NO_TAG) == bytes.fromhex("BB01FF000115167E")


def test_manual_notification_decodes_to_a_tag_read() -> None:
    wire = bytes.fromhex("BB02220011C9340030751FEB705C5904E3D50D703A76EF7E")
    frames = UhfFrameDecoder().feed(wire)
    assert frames == [UhfFrame(2, 0x22, wire[5:-2])]
    assert uhf.parse_tag_notification(frames[0]) == TagRead("30751FEB705C5904E3D50D70", -55.0, 0x3400)
    # and our encoder produces the very same bytes
    assert uhf.tag_notification("30751feb705c5904e3d50d70", -55, pc=0x3400) == wire


def test_gen2_crc_check_value() -> None:
    # CRC-16/GENIBUS catalogue check value: the EPC Gen2 CRC over ASCII "123456789".
    assert uhf.gen2_crc16(b"123456789") == 0xD64E


def test_wrong_epc_crc_makes_the_read_invalid_but_keeps_the_frame() -> None:
    wire = bytearray(uhf.tag_notification("E2801160600002054CC2096F", -60))
    wire[-3] ^= 0x01  # flip a CRC bit, then fix the frame checksum so only the EPC CRC is wrong
    wire[-2] = sum(wire[1:-2]) & 0xFF
    (frame,) = UhfFrameDecoder().feed(bytes(wire))
    assert uhf.is_tag_notification(frame)
    assert uhf.parse_tag_notification(frame) is None


def test_parsers_reject_other_frames() -> None:
    (err,) = UhfFrameDecoder().feed(uhf.error_response(0x15))
    assert uhf.parse_error(err) == 0x15
    assert uhf.parse_tag_notification(err) is None
    assert not uhf.is_tag_notification(err)
    (poll,) = UhfFrameDecoder().feed(uhf.multi_poll_command(300))
    assert uhf.parse_multi_poll(poll) == 300
    assert uhf.parse_error(poll) is None
    (power,) = UhfFrameDecoder().feed(uhf.set_power_command(26.5))
    assert uhf.parse_power(power) == 26.5


def test_notification_with_length_disagreeing_with_pc_is_invalid() -> None:
    good = uhf.tag_notification("30751FEB705C5904E3D50D70", -40)
    params = UhfFrameDecoder().feed(good)[0].params
    short = UhfFrame(2, 0x22, params[:-4] + params[-2:])  # PC still announces 6 words; 5 left
    assert uhf.parse_tag_notification(short) is None
    assert uhf.parse_tag_notification(UhfFrame(2, 0x22, b"\x00")) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epc_hex": "30751", "rssi_dbm": -50}, "whole 16-bit words"),
        ({"epc_hex": "zz00", "rssi_dbm": -50}, "hex"),
        ({"epc_hex": "3075", "rssi_dbm": -200}, "signed byte"),
        ({"epc_hex": "3075", "rssi_dbm": -50, "pc": 0x3000}, "does not announce"),
    ],
)
def test_tag_notification_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uhf.tag_notification(**kwargs)  # type: ignore[arg-type]


def test_resync_after_noise_bad_checksum_bad_end_and_absurd_length() -> None:
    good = uhf.tag_notification("30751FEB705C5904E3D50D70", -55)
    bad_checksum = bytearray(good)
    bad_checksum[-2] ^= 0xFF
    bad_end = bytearray(good)
    bad_end[-1] = 0x00
    absurd = bytes.fromhex("BB0222FFFF")  # 65535-byte payload announced
    stream = b"\x00\x13noise" + bytes(bad_checksum) + good + bytes(bad_end) + absurd + good
    decoder = UhfFrameDecoder()
    frames = decoder.feed(stream)
    assert len(frames) == 2
    assert decoder.frames_ok == 2
    assert decoder.frames_bad >= 3
    assert decoder.bytes_skipped == len(stream) - 2 * len(good)
    assert decoder.buffered == 0


def test_noise_header_with_long_length_does_not_hold_a_complete_frame_hostage() -> None:
    decoder = UhfFrameDecoder()
    good = uhf.error_response(0x15)
    # A stray 0xBB announcing 300 bytes, then a short complete response and nothing else:
    # the response must come out now, not after 300 more bytes arrive.
    assert decoder.feed(bytes.fromhex("BB01FF012C") + good) == [UhfFrame(1, 0xFF, b"\x15")]
    assert decoder.frames_bad == 1


def test_buffer_stays_bounded_on_endless_noise() -> None:
    decoder = UhfFrameDecoder()
    for _ in range(200):
        decoder.feed(bytes([0xBB, 0x00, 0x00, 0x01, 0xFF]) * 50)
    assert decoder.buffered <= uhf.MAX_PAYLOAD + 7 + 250


# --------------------------------------------------------------------------- properties

frame_st = st.builds(
    UhfFrame,
    frame_type=st.integers(0, 2),
    command=st.integers(0, 255),
    params=st.binary(max_size=64),
)
epc_st = st.binary(min_size=2, max_size=62).filter(lambda b: len(b) % 2 == 0).map(lambda b: b.hex().upper())


# Noise that looks like the protocol: raw bytes, truncated frames, frames with one byte changed.
garbage_st = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.tuples(frame_st, st.integers(1, 200)).map(lambda t: uhf.encode_frame(*t[0])[: t[1] % 30]),
        st.tuples(frame_st, st.integers(0, 200), st.integers(0, 255)).map(
            lambda t: _mutate(uhf.encode_frame(*t[0]), t[1], t[2])
        ),
    ),
    max_size=8,
).map(b"".join)


def _mutate(data: bytes, where: int, value: int) -> bytes:
    out = bytearray(data)
    out[where % len(out)] = value
    return bytes(out)


def _encode(frames: list[UhfFrame]) -> bytes:
    return b"".join(uhf.encode_frame(*f) for f in frames)


def _feed_in_chunks(decoder: UhfFrameDecoder, data: bytes, cuts: list[int]) -> list[UhfFrame]:
    out: list[UhfFrame] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(data[start:end]))
    return out


def _could_swallow(garbage: bytes, rest: bytes) -> bool:
    """True if a header inside ``garbage`` starts a *valid* frame reaching into ``rest``.

    Such a frame is indistinguishable from a real one, so no decoder can promise to recover
    the frame it overlaps; the properties below exclude exactly that (astronomically rare) case.
    """
    data = garbage + rest
    for pos in range(max(0, len(garbage) - 7 - uhf.MAX_PAYLOAD), len(garbage)):
        if data[pos] != 0xBB or len(data) - pos < 7:
            continue
        plen = (data[pos + 3] << 8) | data[pos + 4]
        end = pos + 7 + plen
        if (
            data[pos + 1] <= 2
            and plen <= uhf.MAX_PAYLOAD
            and len(garbage) < end <= len(data)
            and data[end - 1] == 0x7E
            and sum(data[pos + 1 : end - 2]) & 0xFF == data[end - 2]
        ):
            return True
    return False


@given(st.lists(frame_st, max_size=20))
def test_round_trip(frames: list[UhfFrame]) -> None:
    decoder = UhfFrameDecoder()
    assert decoder.feed(_encode(frames)) == frames
    assert (decoder.frames_ok, decoder.frames_bad, decoder.bytes_skipped) == (len(frames), 0, 0)


@given(epc=epc_st, rssi=st.integers(-128, 127))
def test_tag_notification_round_trip(epc: str, rssi: int) -> None:
    (frame,) = UhfFrameDecoder().feed(uhf.tag_notification(epc, rssi))
    read = uhf.parse_tag_notification(frame)
    assert read == TagRead(epc, float(rssi), (len(epc) // 4) << 11)


@given(st.lists(frame_st, max_size=12), garbage_st, st.lists(st.integers(0, 10_000)))
def test_chunk_splits_give_the_same_frames(frames: list[UhfFrame], noise: bytes, cuts: list[int]) -> None:
    data = noise + _encode(frames) + noise
    whole = UhfFrameDecoder()
    expected = whole.feed(data)
    split = UhfFrameDecoder()
    assert _feed_in_chunks(split, data, cuts) == expected
    assert (split.frames_ok, split.bytes_skipped, split.buffered) == (
        whole.frames_ok,
        whole.bytes_skipped,
        whole.buffered,
    )


@given(garbage_st, st.lists(frame_st, min_size=1, max_size=5), st.lists(st.integers(0, 999)))
def test_good_frames_after_garbage_are_never_lost(
    garbage: bytes, frames: list[UhfFrame], cuts: list[int]
) -> None:
    good = _encode(frames)
    assume(not _could_swallow(garbage, good))
    decoder = UhfFrameDecoder()
    out = _feed_in_chunks(decoder, garbage + good, cuts)
    assert out[len(out) - len(frames) :] == frames


@given(st.binary(max_size=2000), st.lists(st.integers(0, 5000), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_accounted_for(data: bytes, cuts: list[int]) -> None:
    decoder = UhfFrameDecoder()
    frames = _feed_in_chunks(decoder, data, cuts)
    consumed = sum(7 + len(f.params) for f in frames)
    assert consumed + decoder.bytes_skipped + decoder.buffered == len(data)
    for frame in frames:
        assert uhf.encode_frame(*frame) in data
        uhf.parse_tag_notification(frame)  # must not raise on any frame content
        uhf.parse_error(frame)


@given(
    st.lists(st.tuples(epc_st, st.integers(-100, -20)), min_size=1, max_size=20),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=10),
)
@settings(max_examples=200)
def test_mutated_notification_streams_never_raise(
    tags: list[tuple[str, int]], mutations: list[tuple[int, int]]
) -> None:
    data = bytearray(b"".join(uhf.tag_notification(epc, rssi) for epc, rssi in tags))
    for where, value in mutations:
        data[where % len(data)] = value
    decoder = UhfFrameDecoder()
    frames = decoder.feed(bytes(data))
    reads = [uhf.parse_tag_notification(f) for f in frames]
    originals = {epc for epc, _ in tags}
    for read in reads:
        # A corrupt read is None; a read that passed both checks is self-consistent.
        assert read is None or len(read.epc) == (read.pc >> 11) * 4
    if not mutations:
        assert {r.epc for r in reads if r} == originals
    consumed = sum(7 + len(f.params) for f in frames)
    assert consumed + decoder.bytes_skipped + decoder.buffered == len(data)
