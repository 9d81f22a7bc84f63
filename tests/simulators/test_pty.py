"""The pty plumbing: raw bytes both ways, clients that come and go, no spinning on hang-up."""

from __future__ import annotations

import asyncio
import os
import termios
from collections.abc import Callable
from typing import Any

import serial

from simulators.pty import MAX_PENDING_OUTPUT, AsyncPtyEndpoint, open_pty_pair

ALL_BYTES = bytes(range(256))


async def _until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_pair_is_raw_and_master_non_blocking() -> None:
    pair = open_pty_pair()
    try:
        assert os.path.exists(pair.slave_path)
        assert os.get_blocking(pair.master_fd) is False
        lflag = termios.tcgetattr(pair.keepalive_fd)[3]
        assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)
    finally:
        pair.close()
    pair.close()  # idempotent
    assert pair.closed


async def test_all_byte_values_cross_both_ways() -> None:
    received = bytearray()
    pair = open_pty_pair()
    endpoint = AsyncPtyEndpoint(pair, received.extend)
    endpoint.start()
    client = serial.Serial(pair.slave_path, 115200, timeout=0)
    try:
        client.write(ALL_BYTES)
        await _until(lambda: len(received) >= 256)
        assert bytes(received) == ALL_BYTES  # no echo, no CR/LF mangling, no XON/XOFF eaten

        endpoint.write(ALL_BYTES)
        got = bytearray()

        def read_some() -> bool:
            got.extend(client.read(1024))
            return len(got) >= 256

        await _until(read_some)
        assert bytes(got) == ALL_BYTES
        assert endpoint.bytes_out == 256 and endpoint.bytes_in == 256
    finally:
        client.close()
        endpoint.stop()
        pair.close()


async def test_client_can_close_and_reopen() -> None:
    received = bytearray()
    pair = open_pty_pair()
    endpoint = AsyncPtyEndpoint(pair, received.extend)
    endpoint.start()
    try:
        for session in range(3):
            client = serial.Serial(pair.slave_path, 115200, timeout=0)
            greeting = f"hello {session}".encode()
            client.write(greeting)
            await _until(lambda: greeting in received)  # noqa: B023 - awaited within the iteration
            endpoint.write(b"ack")
            await _until(lambda: client.in_waiting >= 3)  # noqa: B023
            assert client.read(3) == b"ack"
            client.close()
            # Between sessions nobody has the slave open: the loop must keep running normally
            # (no EIO storm, no busy loop) and writes must not fail.
            endpoint.write(b"into the void")
            await asyncio.sleep(0.05)
        assert endpoint.failure is None
    finally:
        endpoint.stop()
        pair.close()


class CountingEndpoint(AsyncPtyEndpoint):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_calls = 0
        self.pauses = 0

    def _readable(self) -> None:
        self.read_calls += 1
        super()._readable()

    def _pause_reading(self) -> None:
        self.pauses += 1
        super()._pause_reading()


async def test_hangup_without_keepalive_is_retried_not_spun() -> None:
    """With no slave fd open the master reports EIO (hang-up); the endpoint pauses and retries."""
    received = bytearray()
    pair = open_pty_pair()
    os.close(pair.keepalive_fd)  # simulate the pty with nobody on the slave side
    pair.keepalive_fd = os.open("/dev/null", os.O_RDONLY)  # keep close() balanced
    endpoint = CountingEndpoint(pair, received.extend)
    endpoint.start()
    try:
        endpoint.write(b"nobody listens")  # must not raise
        await asyncio.sleep(0.35)
        assert endpoint.pauses >= 2  # EIO seen and retried ...
        assert endpoint.read_calls < 20  # ... at the retry pace, not in a busy loop
        assert endpoint.failure is None
        client = serial.Serial(pair.slave_path, 115200, timeout=0)
        try:
            client.write(b"back again")
            await _until(lambda: b"back again" in received, timeout=2.0)
        finally:
            client.close()
    finally:
        endpoint.stop()
        pair.close()


async def test_output_is_bounded_when_nobody_reads() -> None:
    pair = open_pty_pair()
    endpoint = AsyncPtyEndpoint(pair, lambda data: None)
    endpoint.start()
    try:
        chunk = b"x" * 1024
        for _ in range(512):  # 512 KiB: far more than the kernel plus our buffer hold
            endpoint.write(chunk)
        assert endpoint.bytes_dropped > 0
        assert endpoint.bytes_out + endpoint.bytes_dropped <= 512 * 1024
        assert len(endpoint._pending) <= MAX_PENDING_OUTPUT
    finally:
        endpoint.stop()
        pair.close()
