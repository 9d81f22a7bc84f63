"""RDM6300 (EM4100, 125 kHz) frames: the datasheet example, resync, and property tests."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import rdm6300
from devices.rdm6300 import FRAME_LEN, Rdm6300Decoder, Rdm6300Frame

# The datasheet's example: card data 62 E3 08 6C ED, checksum 62^E3^08^6C^ED = 08.
EXAMPLE = b"\x02" + b"62E3086CED08" + b"\x03"


def test_datasheet_example() -> None:
    assert rdm6300.encode_frame("62E3086CED") == EXAMPLE
    assert rdm6300.encode_frame("62e3086ced") == EXAMPLE
    decoder = Rdm6300Decoder()
    (frame,) = decoder.feed(EXAMPLE)
    assert frame == Rdm6300Frame(0x62, 0xE3086CED)
    assert (frame.card_hex, frame.card_number) == ("62E3086CED", "3808980205")
    assert (decoder.frames_ok, decoder.frames_bad, decoder.bytes_skipped) == (1, 0, 0)


def test_lower_case_hex_is_accepted() -> None:
    assert Rdm6300Decoder().feed(EXAMPLE.lower()) == [Rdm6300Frame(0x62, 0xE3086CED)]


def test_repeated_frames_are_all_returned() -> None:
    # A card held at the reader: the same frame every ~100 ms. The decoder does not de-duplicate.
    assert Rdm6300Decoder().feed(EXAMPLE * 5) == [Rdm6300Frame(0x62, 0xE3086CED)] * 5


@pytest.mark.parametrize("card", ["62E3086C", "62E3086CEDFF", "zzE3086CED", ""])
def test_encoder_refuses_bad_cards(card: str) -> None:
    with pytest.raises(ValueError, match="10 hex"):
        rdm6300.encode_frame(card)


def test_resync_after_noise_bad_checksum_bad_end_and_non_hex() -> None:
    bad_checksum = EXAMPLE[:11] + b"09" + EXAMPLE[13:]
    bad_end = EXAMPLE[:-1] + b"\x04"
    non_hex = EXAMPLE[:3] + b"G" + EXAMPLE[4:]
    truncated = EXAMPLE[:9]  # an interrupted frame: the next STX must restart the search at once
    stream = b"\xff\x00noise" + bad_checksum + EXAMPLE + bad_end + non_hex + truncated + EXAMPLE
    decoder = Rdm6300Decoder()
    assert decoder.feed(stream) == [Rdm6300Frame(0x62, 0xE3086CED)] * 2
    assert decoder.frames_bad == 4
    assert decoder.bytes_skipped == len(stream) - 2 * FRAME_LEN
    assert decoder.buffered == 0


def test_truncated_frame_does_not_delay_the_next_one() -> None:
    decoder = Rdm6300Decoder()
    assert decoder.feed(EXAMPLE[:5]) == []
    assert decoder.feed(EXAMPLE) == [Rdm6300Frame(0x62, 0xE3086CED)]
    assert decoder.frames_bad == 1


# --------------------------------------------------------------------------- properties

card_st = st.binary(min_size=5, max_size=5).map(lambda b: b.hex().upper())


def _feed_in_chunks(decoder: Rdm6300Decoder, data: bytes, cuts: list[int]) -> list[Rdm6300Frame]:
    out: list[Rdm6300Frame] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(data[start:end]))
    return out


@given(st.lists(card_st, max_size=20), st.lists(st.integers(0, 1000), max_size=20))
def test_round_trip_split_anywhere(cards: list[str], cuts: list[int]) -> None:
    decoder = Rdm6300Decoder()
    frames = _feed_in_chunks(decoder, b"".join(map(rdm6300.encode_frame, cards)), cuts)
    assert [f.card_hex for f in frames] == cards
    assert (decoder.frames_bad, decoder.bytes_skipped, decoder.buffered) == (0, 0, 0)


@given(st.binary(max_size=40), st.lists(card_st, min_size=1, max_size=5), st.lists(st.integers(0, 500)))
def test_good_frames_after_noise_are_never_lost(noise: bytes, cards: list[str], cuts: list[int]) -> None:
    # 0x02 cannot occur inside a valid frame, so no noise can swallow one: no assumption needed.
    data = noise + b"".join(map(rdm6300.encode_frame, cards))
    frames = _feed_in_chunks(Rdm6300Decoder(), data, cuts)
    assert [f.card_hex for f in frames[len(frames) - len(cards) :]] == cards


@given(st.binary(max_size=1000), st.lists(st.integers(0, 2000), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_accounted_for(data: bytes, cuts: list[int]) -> None:
    decoder = Rdm6300Decoder()
    frames = _feed_in_chunks(decoder, data, cuts)
    assert len(frames) * FRAME_LEN + decoder.bytes_skipped + decoder.buffered == len(data)
    assert decoder.buffered < FRAME_LEN
    for frame in frames:
        assert rdm6300.encode_frame(frame.card_hex).upper() in data.upper()


@given(
    card_st,
    st.integers(1, 10),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
)
@settings(max_examples=300)
def test_mutated_streams_lose_at_most_the_frames_hit(
    card: str, repeats: int, mutations: list[tuple[int, int]]
) -> None:
    data = bytearray(rdm6300.encode_frame(card) * repeats)
    hit = set()
    for where, value in mutations:
        if data[where % len(data)] != value:
            hit.add(where % len(data) // FRAME_LEN)
        data[where % len(data)] = value
    frames = Rdm6300Decoder().feed(bytes(data))
    assert len(frames) >= repeats - len(hit)
    # A one-byte change can make another valid frame only by also fixing up the XOR checksum:
    # anything decoded is either the card or carries a consistent checksum of its own.
    for frame in frames:
        assert frame.card_hex == card or rdm6300.encode_frame(frame.card_hex) in data.upper()
