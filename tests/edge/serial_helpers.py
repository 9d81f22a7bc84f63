"""What the serial reader transport tests share: a tag-read collector and a condition poll."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from devices.readings import TagRead


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


class Collector:
    """A transport's ``on_read`` handler that keeps every ``(reader_id, read)``."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, TagRead]] = []

    def __call__(self, reader_id: str, read: TagRead, now: datetime) -> None:
        self.reads.append((reader_id, read))
