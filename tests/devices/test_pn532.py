"""PN532 HSU frames: vectors from NXP UM0701-02, parsers, and property tests on mutated streams."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devices import pn532
from devices.errors import DecodeError
from devices.pn532 import NfcTag, Pn532Frame, Pn532FrameDecoder


def frame_by_hand(tfi: int, data: bytes) -> bytes:
    """A normal information frame built from the manual's definitions, independent of the encoder."""
    length = len(data) + 1
    lcs = (0x100 - length) % 0x100
    dcs = (0x100 - (tfi + sum(data)) % 0x100) % 0x100
    return bytes([0x00, 0x00, 0xFF, length, lcs, tfi, *data, dcs, 0x00])


# --------------------------------------------------------------------------- known vectors


def test_command_vectors_match_the_manual() -> None:
    assert pn532.get_firmware_version_command() == bytes.fromhex("0000FF02FED4022A00")
    assert pn532.in_list_passive_target_command() == bytes.fromhex("0000FF04FCD44A0100E100")
    assert pn532.sam_configuration_command() == bytes.fromhex("0000FF05FBD4140114010200")
    assert pn532.with_wakeup(b"\x01")[:3] == bytes.fromhex("555500")
    assert pn532.firmware_version_response() == bytes.fromhex("0000FF06FAD50332010607E800")


def test_special_frames_decode_to_their_kinds() -> None:
    decoder = Pn532FrameDecoder()
    stream = pn532.ACK_FRAME + pn532.NACK_FRAME + pn532.ERROR_FRAME
    assert decoder.feed(stream) == [Pn532Frame("ack"), Pn532Frame("nack"), Pn532Frame("error")]
    assert (decoder.frames_ok, decoder.frames_bad, decoder.bytes_skipped) == (3, 0, 0)


def test_firmware_version_response_from_the_manual() -> None:
    (frame,) = Pn532FrameDecoder().feed(bytes.fromhex("0000FF06FAD50332010607E800"))
    assert frame == Pn532Frame("info", 0xD5, bytes.fromhex("0332010607"))
    assert pn532.parse_firmware_version(frame) == pn532.FirmwareVersion(0x32, 1, 6, 7)


def test_mifare_classic_inlist_response() -> None:
    wire = frame_by_hand(0xD5, bytes.fromhex("4B01010004 08 04 DEADBEEF".replace(" ", "")))
    (frame,) = Pn532FrameDecoder().feed(wire)
    assert pn532.parse_inlist_response(frame) == [NfcTag("DEADBEEF", 0x0004, 0x08, 1)]
    assert pn532.inlist_response([pn532.nfc_tag("deadbeef")]) == wire


def test_desfire_inlist_response_carries_the_ats() -> None:
    data = bytes.fromhex("4B 01 01 0344 20 07 04112233445566 067577810280".replace(" ", ""))
    (frame,) = Pn532FrameDecoder().feed(frame_by_hand(0xD5, data))
    (tag,) = pn532.parse_inlist_response(frame)
    assert tag == NfcTag("04112233445566", 0x0344, 0x20, 1, bytes.fromhex("067577810280"))


def test_two_targets_and_no_target() -> None:
    tags = [pn532.nfc_tag("04A1B2C3D4E5F6"), pn532.nfc_tag("DEADBEEF")]
    (frame,) = Pn532FrameDecoder().feed(pn532.inlist_response(tags))
    got = pn532.parse_inlist_response(frame)
    assert [(t.uid_hex, t.atqa, t.sak, t.target) for t in got] == [
        ("04A1B2C3D4E5F6", 0x0044, 0x00, 1),
        ("DEADBEEF", 0x0004, 0x08, 2),
    ]
    (empty,) = Pn532FrameDecoder().feed(pn532.inlist_response([]))
    assert pn532.parse_inlist_response(empty) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("4B", "without NbTg"),
        ("4B03", "NbTg 3"),
        ("4B0101000408", "truncated"),
        ("4B01010004080501020304 05".replace(" ", ""), "NFCIDLength 5"),
        ("4B0101000408040102030400", "trailing"),
        ("4B010103442004 01020304 10".replace(" ", ""), "ATS truncated"),
        ("0332010607", "not a response to command 0x4A"),
    ],
)
def test_malformed_inlist_responses_are_decode_errors(data: str, message: str) -> None:
    (frame,) = Pn532FrameDecoder().feed(frame_by_hand(0xD5, bytes.fromhex(data)))
    with pytest.raises(DecodeError, match=message):
        pn532.parse_inlist_response(frame)


def test_extended_frame_round_trip_and_by_hand() -> None:
    data = bytes([0x41]) + bytes(range(256))  # 258 bytes with TFI: needs an extended frame
    wire = pn532.encode_information_frame(0xD5, data)
    lenm, lenl = divmod(len(data) + 1, 256)
    assert wire[:8] == bytes([0, 0, 0xFF, 0xFF, 0xFF, lenm, lenl, -(lenm + lenl) % 256])
    assert wire[-2:] == bytes([-(0xD5 + sum(data)) % 256, 0])
    (frame,) = Pn532FrameDecoder().feed(wire)
    assert frame == Pn532Frame("info", 0xD5, data, extended=True)
    # A short payload may be sent as an extended frame too.
    short = pn532.encode_information_frame(0xD4, b"\x02", extended=True)
    assert Pn532FrameDecoder().feed(short) == [Pn532Frame("info", 0xD4, b"\x02", extended=True)]


def test_encoder_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="TFI"):
        pn532.encode_information_frame(0x7F, b"\x00")
    with pytest.raises(ValueError, match="at least"):
        pn532.encode_information_frame(0xD4, b"")
    with pytest.raises(ValueError, match="too long"):
        pn532.encode_information_frame(0xD4, bytes(300))
    with pytest.raises(ValueError, match="4, 7 or 10"):
        pn532.nfc_tag("0102")
    with pytest.raises(ValueError, match="ATS"):
        pn532.inlist_response([NfcTag("01020304", 4, 0x20)])
    with pytest.raises(ValueError, match="ATS"):
        pn532.inlist_response([NfcTag("01020304", 4, 0x08, ats=b"\x02\x00")])
    with pytest.raises(ValueError, match="at most 2"):
        pn532.inlist_response([pn532.nfc_tag("01020304")] * 3)


def test_resync_after_noise_and_bad_checksums() -> None:
    good = pn532.firmware_version_response()
    bad_dcs = bytearray(good)
    bad_dcs[-2] ^= 0x01
    bad_lcs = bytearray(good)
    bad_lcs[4] ^= 0x01
    bad_post = bytearray(good)
    bad_post[-1] = 0x55
    unknown_tfi = frame_by_hand(0xD6, b"\x03")
    stream = b"\x55\x55\x13noise" + bad_dcs + good + bad_lcs + bad_post + unknown_tfi + pn532.ACK_FRAME
    decoder = Pn532FrameDecoder()
    frames = decoder.feed(bytes(stream))
    assert [f.kind for f in frames] == ["info", "ack"]
    assert frames[0].data == bytes.fromhex("0332010607")
    assert decoder.frames_bad >= 4
    assert decoder.buffered == 0


def test_noise_start_code_with_long_length_does_not_hold_the_ack_hostage() -> None:
    decoder = Pn532FrameDecoder()
    # A stray start code announcing 200 bytes, then the ACK the host is waiting for, then silence.
    assert decoder.feed(bytes.fromhex("00FFC838") + pn532.ACK_FRAME) == [Pn532Frame("ack")]
    assert decoder.frames_bad == 1


def test_wakeup_preamble_is_skipped_and_a_frame_split_anywhere_decodes() -> None:
    wire = pn532.with_wakeup(pn532.sam_configuration_command())
    decoder = Pn532FrameDecoder()
    frames = [f for byte in wire for f in decoder.feed(bytes([byte]))]
    assert frames == [Pn532Frame("info", 0xD4, bytes.fromhex("14011401"))]
    assert decoder.bytes_skipped == len(pn532.WAKEUP_PREAMBLE)


def test_buffer_stays_bounded_on_endless_noise() -> None:
    decoder = Pn532FrameDecoder()
    for _ in range(200):
        decoder.feed(bytes.fromhex("00FFFFFF0109F5") * 40)
    assert decoder.buffered <= pn532.MAX_EXTENDED_LEN + 9 + 280


# --------------------------------------------------------------------------- properties

info_st = st.builds(
    Pn532Frame,
    kind=st.just("info"),
    tfi=st.sampled_from([0xD4, 0xD5]),
    data=st.binary(min_size=1, max_size=300),
    extended=st.booleans(),
).map(lambda f: f._replace(extended=f.extended or len(f.data) > 254))
frame_st = st.one_of(
    info_st,
    st.sampled_from([Pn532Frame("ack"), Pn532Frame("nack"), Pn532Frame("error")]),
)


def encode(frame: Pn532Frame) -> bytes:
    if frame.kind == "info":
        return pn532.encode_information_frame(frame.tfi, frame.data, extended=frame.extended)
    return {"ack": pn532.ACK_FRAME, "nack": pn532.NACK_FRAME, "error": pn532.ERROR_FRAME}[frame.kind]


def _mutate(data: bytes, where: int, value: int) -> bytes:
    out = bytearray(data)
    out[where % len(out)] = value
    return bytes(out)


garbage_st = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.tuples(frame_st, st.integers(1, 400)).map(lambda t: encode(t[0])[: t[1] % 30]),
        st.tuples(frame_st, st.integers(0, 400), st.integers(0, 255)).map(
            lambda t: _mutate(encode(t[0]), t[1], t[2])
        ),
    ),
    max_size=8,
).map(b"".join)


def _feed_in_chunks(decoder: Pn532FrameDecoder, data: bytes, cuts: list[int]) -> list[Pn532Frame]:
    out: list[Pn532Frame] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(data[start:end]))
    return out


def _could_swallow(garbage: bytes, rest: bytes) -> bool:
    """True if a start code in ``garbage`` begins a *valid* frame that reaches into ``rest``.

    Such a frame is indistinguishable from a real one; no decoder can recover what it overlaps.
    """
    data = bytearray(garbage + rest)
    for pos in range(len(garbage)):
        if data[pos : pos + 2] == b"\x00\xff":
            end, frame = pn532._parse_at(data, pos, len(data))
            if frame is not None and end > len(garbage):
                return True
    return False


@given(st.lists(frame_st, max_size=12), st.lists(st.integers(0, 10_000), max_size=30))
def test_round_trip_split_anywhere(frames: list[Pn532Frame], cuts: list[int]) -> None:
    decoder = Pn532FrameDecoder()
    assert _feed_in_chunks(decoder, b"".join(map(encode, frames)), cuts) == frames
    assert (decoder.frames_ok, decoder.frames_bad, decoder.bytes_skipped, decoder.buffered) == (
        len(frames),
        0,
        0,
        0,
    )


tag_st = st.builds(
    NfcTag,
    uid_hex=st.sampled_from([4, 7, 10])
    .flatmap(lambda n: st.binary(min_size=n, max_size=n))
    .map(lambda b: b.hex().upper()),
    atqa=st.integers(0, 0xFFFF),
    sak=st.integers(0, 0xFF).map(lambda sak: sak & ~0x20),  # not ISO 14443-4: no ATS
    target=st.just(1),
    ats=st.just(b""),
)


@given(st.lists(tag_st, max_size=2))
def test_inlist_round_trip(tags: list[NfcTag]) -> None:
    (frame,) = Pn532FrameDecoder().feed(pn532.inlist_response(tags))
    assert pn532.parse_inlist_response(frame) == [t._replace(target=i) for i, t in enumerate(tags, 1)]


@given(st.lists(frame_st, max_size=8), garbage_st, st.lists(st.integers(0, 10_000)))
def test_chunk_splits_give_the_same_frames(frames: list[Pn532Frame], noise: bytes, cuts: list[int]) -> None:
    good = b"".join(map(encode, frames))
    assume(not _could_swallow(noise, good + noise))
    data = noise + good + noise
    whole = Pn532FrameDecoder()
    expected = whole.feed(data)
    split = Pn532FrameDecoder()
    assert _feed_in_chunks(split, data, cuts) == expected
    assert (split.frames_ok, split.bytes_skipped, split.buffered) == (
        whole.frames_ok,
        whole.bytes_skipped,
        whole.buffered,
    )


@given(garbage_st, st.lists(frame_st, min_size=1, max_size=5), st.lists(st.integers(0, 999)))
def test_good_frames_after_garbage_are_never_lost(
    garbage: bytes, frames: list[Pn532Frame], cuts: list[int]
) -> None:
    good = b"".join(map(encode, frames))
    assume(not _could_swallow(garbage, good))
    out = _feed_in_chunks(Pn532FrameDecoder(), garbage + good, cuts)
    assert out[len(out) - len(frames) :] == frames


@given(st.binary(max_size=2000), st.lists(st.integers(0, 5000), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_accounted_for(data: bytes, cuts: list[int]) -> None:
    decoder = Pn532FrameDecoder()
    frames = _feed_in_chunks(decoder, data, cuts)
    wire = sum(len(encode(f)) - 1 for f in frames)  # from the start code on; preambles may be absent
    accounted = wire + decoder.bytes_skipped + decoder.buffered
    assert len(data) - len(frames) <= accounted <= len(data)
    for frame in frames:
        assert encode(frame)[1:] in data
        for parse in (pn532.parse_inlist_response, pn532.parse_firmware_version):
            with contextlib.suppress(DecodeError):  # the only exception a parser may raise
                parse(frame)
        pn532.frame_to_dict(frame)


@given(
    st.lists(st.sampled_from(["04A1B2C3D4E5F6", "DEADBEEF", "0102030405060708090A"]), min_size=1, max_size=2),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    st.integers(1, 6),
)
@settings(max_examples=200)
def test_mutated_response_streams_never_raise(
    uids: list[str], mutations: list[tuple[int, int]], repeats: int
) -> None:
    one = pn532.ACK_FRAME + pn532.inlist_response([pn532.nfc_tag(u) for u in uids])
    data = bytearray(one * repeats)
    for where, value in mutations:
        data[where % len(data)] = value
    decoder = Pn532FrameDecoder()
    frames = decoder.feed(bytes(data))
    # Every frame that survives its checksums either parses or is refused with DecodeError.
    for frame in frames:
        if frame.kind == "info" and frame.command == 0x4B:
            try:
                tags = pn532.parse_inlist_response(frame)
            except DecodeError:
                continue
            assert all(len(t.uid_hex) in (8, 14, 20) for t in tags)
    # One changed byte costs at most the frame it hits and, via a false length, the one after it.
    assert decoder.frames_ok >= 2 * repeats - 2 * len(mutations)
