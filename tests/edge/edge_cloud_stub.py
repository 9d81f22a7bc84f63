"""A tiny real HTTP server standing in for the cloud in the edge tests (the real one may not exist yet)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from dataclasses import dataclass, field

from shelfsense.contract import Batch, parse_batch


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    batch: Batch


@dataclass
class FakeCloud:
    """A minimal HTTP/1.1 server: ``respond(request) -> (status, body)``, one request per connection."""

    respond: Callable[[Request], tuple[int, bytes]]
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    delay_s: float = 0.0  # how long the "cloud" takes to store a batch
    arrivals: list[float] = field(default_factory=list)  # loop time at which each request arrived

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.arrivals.append(asyncio.get_running_loop().time())
        lines = head.decode().split("\r\n")
        path = lines[0].split()[1]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers["content-length"]))
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = Request(path, headers, parse_batch(body))
        self.requests.append(request)
        await asyncio.sleep(self.delay_s)
        status, payload = self.respond(request)
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()
