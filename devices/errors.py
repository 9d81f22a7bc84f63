"""The small error tree every device boundary translates its failures into.

Codecs raise :class:`DecodeError` for input that cannot be decoded (the message says why, so
it can be logged once and counted); transports raise :class:`TransportError` when a port or
connection fails or vanishes. Callers catch :class:`DeviceError` at a device boundary and never
need to know about pyserial, paho or pymodbus exception types.
"""

from __future__ import annotations

__all__ = ["DecodeError", "DeviceError", "TransportError"]


class DeviceError(Exception):
    """Base of all device-side errors."""


class DecodeError(DeviceError, ValueError):
    """A frame or payload that cannot be decoded; the message says why.

    It is also a :class:`ValueError` so generic "bad value" handling (for example a CLI that
    reports ``ValueError`` to the user) treats it as bad input rather than a crash.
    """


class TransportError(DeviceError):
    """A serial port or network connection failed or vanished (retry with backoff)."""
