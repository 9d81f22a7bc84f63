"""Read a request body with a hard size limit, before and after gzip decoding.

The limit is checked three times: against ``Content-Length`` (cheap refusal), against the bytes
actually streamed (a lying or absent header), and against the decompressed size, produced at most
``limit + 1`` bytes at a time, so a gzip bomb is refused after inflating only ``limit`` bytes.
"""

from __future__ import annotations

import zlib

from fastapi import Request

from cloud.core.errors import ApiError


def too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body exceeds the limit of {limit} bytes")


class BoundedGunzip:
    """Incremental gzip decoder that refuses to produce more than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._limit = limit
        self.size = 0

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            if self._inflater.eof:
                raise ApiError(400, "bad_encoding", "unexpected data after the end of the gzip stream")
            try:
                piece = self._inflater.decompress(data, self._limit - self.size + 1)
            except zlib.error as exc:
                raise ApiError(400, "bad_encoding", f"body is not valid gzip: {exc}") from exc
            self.size += len(piece)
            if self.size > self._limit:
                raise too_large(self._limit)
            out.append(piece)
            data = self._inflater.unconsumed_tail or self._inflater.unused_data
        return b"".join(out)

    def finish(self) -> None:
        if not self._inflater.eof:
            raise ApiError(400, "bad_encoding", "gzip body is truncated")


def _declared_length(request: Request) -> int | None:
    header = request.headers.get("content-length")
    if header is None:
        return None
    try:
        return int(header)
    except ValueError as exc:
        raise ApiError(400, "bad_request", "Content-Length is not an integer") from exc


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The decoded body (identity or gzip), or an :class:`ApiError` (413, 415, 400)."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise too_large(limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise ApiError(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported (use gzip)"
        )
    gunzip = BoundedGunzip(limit) if encoding == "gzip" else None
    received = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        chunks.append(gunzip.feed(chunk) if gunzip else chunk)
    if gunzip:
        gunzip.finish()
    return b"".join(chunks)


__all__ = ["BoundedGunzip", "read_limited_body", "too_large"]
