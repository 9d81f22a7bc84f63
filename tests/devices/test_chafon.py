"""Chafon / UHFReader18-family frames: published vectors, captures, and codec properties.

Vectors not written here:
* Host commands ``04 FF 01 1B B4`` (Inventory, broadcast), ``04 00 01 DB 4B`` (Inventory, address 0)
  and ``04 00 21 D9 6A`` (Get Reader Information): the UHFReader18 user manual's examples, as used by
  many public drivers (e.g. github.com/wabson/chafon-rfid, and the Go ``reader18`` package tests).
* UHFReader18 inventory answers ``13000103010C...133F39`` and the two-tag ``20000103020C...9AC9``:
  github.com/wabson/chafon-rfid tests/test_uhfreader18.py.
* UHFReader288-style answers (antenna, RSSI) captured from a reader:
  github.com/Timereversal/rfidtime transport/packet.go comments.
* CRC-16/MCRF4XX check value 0x6F91 over "123456789" (the CRC catalogue).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devices import chafon
from devices.chafon import ChafonDecoder, ChafonFrame
from devices.readings import TagRead

WABSON_ONE = "13000103010c0000000000000000000003133f39"
WABSON_TWO = "20000103020c0000000000000000000003130c0000000000000000000003149ac9"
CAPTURED_288 = [
    ("1500010301010ce28068940000400a9d22a9eb5df9c3", "E28068940000400A9D22A9EB", -93.0),
    ("1500010301010ce28068940000400a9d22acff60d3e2", "E28068940000400A9D22ACFF", -96.0),
    ("0d000103010104111001ba465d27", "111001BA", -70.0),
    ("1500010301010c3034b708ac397e0000000649421ab7", "3034B708AC397E0000000649", -66.0),
]


def test_crc_check_value_and_manual_commands() -> None:
    assert chafon.crc16_mcrf4xx(b"123456789") == 0x6F91
    assert chafon.inventory_command() == bytes.fromhex("04FF011BB4")
    assert chafon.inventory_command(0x00) == bytes.fromhex("040001DB4B")
    assert chafon.get_reader_info_command(0x00) == bytes.fromhex("040021D96A")
    (frame,) = ChafonDecoder(responses=False).feed(bytes.fromhex("04FF011BB4"))
    assert frame == ChafonFrame(0xFF, chafon.CMD_INVENTORY, None, b"")


def test_uhfreader18_answers() -> None:
    decoder = ChafonDecoder()
    one, two = decoder.feed(bytes.fromhex(WABSON_ONE + WABSON_TWO))
    assert (one.address, one.command, one.status) == (0, chafon.CMD_INVENTORY, chafon.STATUS_MORE_FRAMES)
    assert chafon.parse_inventory(one) == [TagRead("000000000000000000000313", None, 6 << 11)]
    assert [r.epc for r in chafon.parse_inventory(two) or []] == [
        "000000000000000000000313",
        "000000000000000000000314",
    ]
    assert not chafon.is_final_inventory(one)
    assert chafon.parse_inventory(one, "288") is None  # the other layout does not add up


@pytest.mark.parametrize(("hex_", "epc", "rssi"), CAPTURED_288)
def test_uhfreader288_captures(hex_: str, epc: str, rssi: float) -> None:
    (frame,) = ChafonDecoder().feed(bytes.fromhex(hex_))
    assert chafon.parse_inventory(frame, "288") == [TagRead(epc, rssi, (len(epc) // 4) << 11, 1)]


def test_no_tag_errors_and_active_frames() -> None:
    decoder = ChafonDecoder()
    no_tag, illegal, active = decoder.feed(
        chafon.encode_response(0, chafon.CMD_INVENTORY, chafon.STATUS_NO_TAG)
        + chafon.encode_response(0, 0x77, 0xFE)
        + chafon.active_tag_frame(0, "3074257BF7194E4000001A85")
    )
    assert chafon.parse_inventory(no_tag) == [] and chafon.is_final_inventory(no_tag)
    assert chafon.parse_inventory(illegal) is None and illegal.status == 0xFE
    assert chafon.parse_active_tag(active) == TagRead("3074257BF7194E4000001A85", None, 6 << 11)


@pytest.mark.parametrize(
    "data",
    [
        "010D" + "00" * 12,  # EPC length 13: odd
        "020C" + "00" * 12,  # count says 2, one entry
        "010C" + "00" * 11,  # entry runs past the frame
        "0100",  # empty EPC
    ],
)
def test_corrupt_tag_lists_are_refused(data: str) -> None:
    frame = ChafonFrame(0, chafon.CMD_INVENTORY, chafon.STATUS_INVENTORY_DONE, bytes.fromhex(data))
    assert chafon.parse_inventory(frame) is None


def test_resync_after_noise_bad_crc_and_unknown_status() -> None:
    good = bytes.fromhex(WABSON_ONE)
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF
    unknown_status = chafon.encode_response(0, 1, 0x80, b"\x00")
    stream = b"\x00\x01\x02noise" + bytes(bad_crc) + unknown_status + good
    decoder = ChafonDecoder()
    frames = decoder.feed(stream)
    assert [bytes.fromhex(WABSON_ONE)] == [_encode(f) for f in frames]
    assert decoder.frames_bad > 0
    assert decoder.bytes_skipped == len(stream) - len(good)


def test_noise_length_byte_does_not_hold_a_complete_frame_hostage() -> None:
    decoder = ChafonDecoder()
    frames = decoder.feed(b"\xf0" + bytes.fromhex(WABSON_ONE))  # 0xF0: "240 bytes follow"
    assert len(frames) == 1 and decoder.frames_bad == 1 and decoder.buffered == 0


def test_many_tags_split_over_frames() -> None:
    tags = [(f"{i:024X}", -50 - i % 40) for i in range(40)]
    for variant in ("18", "288"):
        frames = ChafonDecoder().feed(b"".join(chafon.inventory_responses(3, tags, variant, antenna=2)))
        assert len(frames) > 1
        assert [chafon.is_final_inventory(f) for f in frames] == [False] * (len(frames) - 1) + [True]
        reads = [r for f in frames for r in chafon.parse_inventory(f, variant) or []]
        assert [r.epc for r in reads] == [epc for epc, _ in tags]
        if variant == "288":
            assert [(r.rssi, r.antenna) for r in reads] == [(float(rssi), 2) for _, rssi in tags]


# --------------------------------------------------------------------------- properties

epc_st = (
    st.integers(1, 31)
    .flatmap(lambda words: st.binary(min_size=2 * words, max_size=2 * words))
    .map(lambda b: b.hex().upper())
)
response_st = st.builds(
    ChafonFrame,
    st.integers(0, 255),
    st.integers(0, 255),
    st.sampled_from([0x00, 0x01, 0x03, 0xFB, 0xFE]),
    st.binary(max_size=240),
)


def _encode(frame: ChafonFrame) -> bytes:
    if frame.status is None:
        return chafon.encode_command(frame.address, frame.command, frame.data)
    return chafon.encode_response(frame.address, frame.command, frame.status, frame.data)


def _feed_in_chunks(decoder: ChafonDecoder, data: bytes, cuts: list[int]) -> list[ChafonFrame]:
    out: list[ChafonFrame] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(data[start:end]))
    return out


def _could_swallow(garbage: bytes, rest: bytes) -> bool:
    """True if a position in ``garbage`` starts a valid frame reaching into ``rest`` (about 2^-16
    per position: no decoder of a protocol without start byte can tell it from a real frame)."""
    data = garbage + rest
    for pos in range(len(garbage)):
        end = pos + data[pos] + 1
        if data[pos] >= 5 and len(garbage) < end <= len(data) and (ChafonDecoder().feed(data[pos:end])):
            return True
    return False


@given(st.lists(response_st, max_size=10))
def test_round_trip(frames: list[ChafonFrame]) -> None:
    decoder = ChafonDecoder()
    assert decoder.feed(b"".join(_encode(f) for f in frames)) == frames
    assert (decoder.frames_ok, decoder.frames_bad, decoder.bytes_skipped) == (len(frames), 0, 0)


@settings(deadline=None)
@given(st.lists(st.tuples(epc_st, st.integers(-255, 0)), max_size=30), st.sampled_from(["18", "288"]))
def test_inventory_round_trip(tags: list[tuple[str, int]], variant: chafon.Variant) -> None:
    frames = ChafonDecoder().feed(b"".join(chafon.inventory_responses(0, tags, variant)))
    reads = [r for f in frames for r in chafon.parse_inventory(f, variant) or []]
    assert [r.epc for r in reads] == [epc for epc, _ in tags]
    assert chafon.is_final_inventory(frames[-1])


@settings(
    derandomize=True, deadline=None
)  # garbage may hold a valid frame by chance (2^-16): keep runs identical
@given(st.binary(max_size=300), st.lists(response_st, min_size=1, max_size=4), st.lists(st.integers(0, 999)))
def test_frames_after_noise_are_recovered_and_none_invented(
    garbage: bytes, frames: list[ChafonFrame], cuts: list[int]
) -> None:
    good = b"".join(_encode(f) for f in frames)
    assume(not _could_swallow(garbage, good))
    decoder = ChafonDecoder()
    out = _feed_in_chunks(decoder, garbage + good, cuts)
    assert out[len(out) - len(frames) :] == frames
    for frame in out[: len(out) - len(frames)]:
        assert _encode(frame) in garbage  # anything else was really in the noise, CRC and all


@settings(deadline=None)
@given(st.binary(max_size=1500), st.lists(st.integers(0, 3000), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_accounted_for(data: bytes, cuts: list[int]) -> None:
    decoder = ChafonDecoder()
    frames = _feed_in_chunks(decoder, data, cuts)
    consumed = sum(len(_encode(f)) for f in frames)
    assert consumed + decoder.bytes_skipped + decoder.buffered == len(data)
    assert decoder.buffered <= 255  # at most one frame still arriving
    for frame in frames:
        assert _encode(frame) in data
        chafon.parse_inventory(frame, "18")  # never raise on any content
        chafon.parse_inventory(frame, "288")
        chafon.parse_active_tag(frame)
        chafon.frame_to_dict(frame)
