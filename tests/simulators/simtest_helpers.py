"""Helpers for the simulator tests: a pyserial client on the simulators' pty, read from asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import pytest
import serial

from devices.uhf import UhfFrame, UhfFrameDecoder


class SerialClient:
    """What the edge does: open the slave path with pyserial, write commands, decode what comes back."""

    def __init__(self, port: str) -> None:
        self.port = port
        self.ser = serial.Serial(port, baudrate=115200, timeout=0)
        self.decoder = UhfFrameDecoder()
        self.frames: list[UhfFrame] = []

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def poll(self) -> list[UhfFrame]:
        new = self.decoder.feed(self.ser.read(65536))
        self.frames.extend(new)
        return new

    async def wait_for(
        self, predicate: Callable[[list[UhfFrame]], bool], timeout: float = 3.0
    ) -> list[UhfFrame]:
        """Poll until ``predicate(all frames so far)`` holds; fail the test on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.frames):
            if loop.time() > deadline:
                pytest.fail(f"timed out after {timeout} s; got {len(self.frames)} frames")
            await asyncio.sleep(0.01)
            self.poll()
        return self.frames

    async def collect(self, seconds: float) -> list[UhfFrame]:
        """Frames arriving during the next ``seconds``."""
        start = len(self.frames)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            await asyncio.sleep(0.01)
            self.poll()
        return self.frames[start:]

    def close(self) -> None:
        self.ser.close()


@contextmanager
def serial_client(port: str) -> Iterator[SerialClient]:
    client = SerialClient(port)
    try:
        yield client
    finally:
        client.close()


@asynccontextmanager
async def running(simulator: Any) -> AsyncIterator[Any]:
    """Run ``simulator.run()`` as a task for the block; cancel and close it afterwards."""
    task = asyncio.create_task(simulator.run())
    await asyncio.sleep(0)  # let run() register its reader
    try:
        yield simulator
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        simulator.close()
