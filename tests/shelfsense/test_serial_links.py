"""Both ways of faking a serial line carry bytes exactly like a real port does, through pyserial."""

from __future__ import annotations

import os

import serial


def test_openpty_pair_carries_bytes_both_ways(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with serial.Serial(path, 115200, timeout=1) as port:
        os.write(master, b"\xbb\x00\x03\x00\x00\x03\x7e")
        assert port.read(7) == b"\xbb\x00\x03\x00\x00\x03\x7e"
        port.write(b"\x01\x04")
        port.flush()
        assert os.read(master, 2) == b"\x01\x04"


def test_socat_link_carries_bytes_both_ways(socat_pty_link: tuple[str, str]) -> None:
    a, b = socat_pty_link
    with serial.Serial(a, 9600, timeout=1) as left, serial.Serial(b, 9600, timeout=1) as right:
        left.write(bytes(range(256)))
        left.flush()
        received = bytearray()
        while len(received) < 256:
            chunk = right.read(256 - len(received))
            assert chunk, "socat link stopped carrying bytes"
            received += chunk
        assert bytes(received) == bytes(range(256))
