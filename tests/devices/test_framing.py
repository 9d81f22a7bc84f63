"""The scaffolding the serial frame decoders share (devices/framing.py): buffer, reset(), counters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devices import modbus, pn532, rdm6300, uhf
from devices.framing import StreamDecoder

# One valid frame per decoder, and a corrupted copy of it (one flipped bit in the middle).
CASES: dict[str, tuple[Callable[[], StreamDecoder], bytes]] = {
    "uhf": (uhf.UhfFrameDecoder, uhf.tag_notification("30340242201D8840009EFA9F", -52)),
    "pn532": (pn532.Pn532FrameDecoder, pn532.firmware_version_response()),
    "rdm6300": (rdm6300.Rdm6300Decoder, rdm6300.encode_frame("62E3086CED")),
    "modbus": (modbus.RtuRequestDecoder, modbus.read_input_registers_request(1, 0x0001, 2)),
}


def _counters(decoder: StreamDecoder) -> tuple[int, int, int]:
    return decoder.frames_ok, decoder.frames_bad, decoder.bytes_skipped


def _corrupt(frame: bytes) -> bytes:
    middle = len(frame) // 2
    return frame[:middle] + bytes((frame[middle] ^ 0x01,)) + frame[middle + 1 :]


@pytest.mark.parametrize("name", CASES)
def test_partial_frame_is_buffered_until_completed(name: str) -> None:
    make, frame = CASES[name]
    decoder = make()
    assert isinstance(decoder, StreamDecoder)
    assert decoder.feed(frame[:5]) == []
    assert decoder.buffered == 5
    assert len(decoder.feed(frame[5:])) == 1
    assert (decoder.buffered, *_counters(decoder)) == (0, 1, 0, 0)


@pytest.mark.parametrize("name", CASES)
def test_reset_drops_the_partial_frame_and_keeps_the_counters(name: str) -> None:
    make, frame = CASES[name]
    decoder = make()
    assert decoder.feed(_corrupt(frame) + frame + frame[:5]) != []
    before = _counters(decoder)
    assert before[1] >= 1 and before[2] >= 1  # the corrupted frame was counted
    decoder.reset()
    assert decoder.buffered == 0
    assert _counters(decoder) == before
    # Without the reset the five stale bytes would run into this frame and cost it.
    assert len(decoder.feed(frame)) == 1
    assert _counters(decoder) == (before[0] + 1, before[1], before[2])


def test_modbus_reset_also_restores_sync() -> None:
    # frames_bad counts losses of sync: after a reset, new noise is a new loss.
    decoder = modbus.RtuRequestDecoder()
    noise = bytes(range(0x20, 0x29))
    decoder.feed(noise)
    decoder.feed(noise)
    assert decoder.frames_bad == 1
    decoder.reset()
    decoder.feed(noise)
    assert decoder.frames_bad == 2
