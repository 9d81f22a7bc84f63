"""What the NFC / 125 kHz card readers share: card presence, contract events and the serial port.

**How cards enter the contract.** A card is a tag: it becomes a :class:`TagObservation` whose ``epc``
is the card's UID in upper-case hex (PN532: the 4, 7 or 10-byte NFCID1, i.e. 8, 14 or 20 hex digits;
RDM6300: the 5 data bytes, version byte + 32-bit id, 10 hex digits), ``reader`` the configured reader
id, ``antenna`` 1 (PN532: the target number), ``rssi`` ``None`` (neither module reports one) and
``location`` the reader's. UIDs shorter than the contract's 8 hex digits are left-padded with zeros
(none of the supported modules produces one; the rule exists so the event is always valid).

**Arrived / left.** A reader reports a card in its field over and over (RDM6300 every ~100 ms, the
PN532 on every poll). :class:`PresenceTracker` turns that into presences: the first read of a card
is an *arrival*, and a card unseen for ``grace_s`` has *left*. The transport emits one observation
per arrival (``count = 1``, ``first_seen == last_seen``: "a card was presented", without waiting for
it to go) and one per departure covering the whole stay (``first_seen`` = arrival, ``last_seen`` =
last read, ``count`` = reads). A short gap (a read lost to noise) inside the grace period is not a
new arrival.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import serial

from devices.errors import TransportError
from shelfsense.config import NfcReaderConfig
from shelfsense.contract import TagObservation

log = logging.getLogger(__name__)

MIN_EPC_DIGITS = 8  # shelfsense.contract.EPC_PATTERN: 8..124 upper-case hex digits
MAX_EPC_DIGITS = 124
# More cards at once than any UART reader can hold: beyond this, new ones are refused (counted).
MAX_PRESENT_CARDS = 256
_HEX = re.compile(r"^[0-9A-F]+$")


def uid_to_epc(uid_hex: str) -> str:
    """A card UID as the contract's ``epc``: upper-case hex, left-padded to 8 digits.

    Raises :class:`ValueError` for non-hex, odd-length or over-long UIDs.
    """
    uid = uid_hex.strip().upper()
    if not uid or len(uid) % 2 or not _HEX.match(uid) or len(uid) > MAX_EPC_DIGITS:
        raise ValueError(
            f"card UID must be whole bytes of hex (at most {MAX_EPC_DIGITS} digits), got {uid_hex!r}"
        )
    return uid.rjust(MIN_EPC_DIGITS, "0")


@dataclass(slots=True)
class Presence:
    """One card's stay in the field."""

    epc: str
    antenna: int
    first_seen: datetime
    last_seen: datetime
    reads: int = 1


class PresenceTracker:
    """Reads in, arrivals and departures out; pure (the caller passes ``now``).

    It lives as long as the transport object, not one connection: a reconnect shorter than the grace
    period does not make the cards in the field arrive again.
    """

    def __init__(self, grace_s: float, max_cards: int = MAX_PRESENT_CARDS) -> None:
        if grace_s <= 0:
            raise ValueError("grace_s must be positive")
        self.grace = timedelta(seconds=grace_s)
        self.max_cards = max_cards
        self.present: dict[str, Presence] = {}
        self._left: list[Presence] = []
        self.refused = 0

    def seen(self, epc: str, now: datetime, antenna: int = 1) -> Presence | None:
        """Record one read; returns the new presence if the card just arrived.

        A card whose last read is older than the grace period left meanwhile (e.g. while the
        reader was unplugged) and arrives again; its old presence comes out of :meth:`expire`.
        """
        presence = self.present.get(epc)
        if presence is not None and now - presence.last_seen > self.grace:
            self._left.append(self.present.pop(epc))
            presence = None
        if presence is not None:
            presence.last_seen = max(presence.last_seen, now)
            presence.reads += 1
            return None
        if len(self.present) >= self.max_cards:
            self.refused += 1
            return None
        presence = Presence(epc, antenna, now, now)
        self.present[epc] = presence
        return presence

    def expire(self, now: datetime) -> list[Presence]:
        """Cards unseen for longer than the grace period: they left (removed, oldest first)."""
        gone = [p for p in self.present.values() if now - p.last_seen > self.grace]
        for presence in gone:
            del self.present[presence.epc]
        gone += self._left
        self._left = []
        return sorted(gone, key=lambda p: p.last_seen)


def arrival_event(reader: NfcReaderConfig, presence: Presence) -> TagObservation:
    return TagObservation(
        epc=presence.epc,
        reader=reader.id,
        antenna=presence.antenna,
        first_seen=presence.first_seen,
        last_seen=presence.first_seen,
        count=1,
        location=reader.location,
    )


def departure_event(reader: NfcReaderConfig, presence: Presence) -> TagObservation:
    return TagObservation(
        epc=presence.epc,
        reader=reader.id,
        antenna=presence.antenna,
        first_seen=presence.first_seen,
        last_seen=presence.last_seen,
        count=presence.reads,
        location=reader.location,
    )


class SerialLink:
    """A non-blocking pyserial port watched by the event loop (no thread).

    ``on_bytes`` runs on the loop for every chunk read. A read or write failure (the USB adapter
    was unplugged, the pty vanished) resolves :attr:`failed` with a :class:`TransportError`;
    pyserial's exceptions never leave this class.
    """

    def __init__(self, port: str, baudrate: int, on_bytes: Callable[[bytes], None]) -> None:
        self.port_name = port
        self._on_bytes = on_bytes
        self._loop = asyncio.get_running_loop()
        self.failed: asyncio.Future[None] = self._loop.create_future()
        # Retrieved by check(); a failure nobody checks any more (the run ended) needs no reader.
        self.failed.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            self._port = serial.Serial(port, baudrate, timeout=0, write_timeout=1)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open {port}: {exc}") from exc
        self._fd = self._port.fileno()
        self._loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self._port.read(4096)
        except (serial.SerialException, OSError) as exc:
            self._fail(TransportError(f"read from {self.port_name} failed: {exc}"))
            return
        if data:
            self._on_bytes(data)

    def _fail(self, exc: TransportError) -> None:
        self._loop.remove_reader(self._fd)
        if not self.failed.done():
            self.failed.set_exception(exc)

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"write to {self.port_name} failed: {exc}") from exc

    def check(self) -> None:
        """Raise the port's failure, if it failed."""
        if self.failed.done():
            self.failed.result()

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        self._port.close()
        if not self.failed.done():
            self.failed.cancel()
