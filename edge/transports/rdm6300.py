"""RDM6300 125 kHz (EM4100) card reader on a UART: a byte stream, no commands.

The module repeats the frame of the card in its field about every 100 ms. Bytes go through the
sans-I/O :class:`devices.rdm6300.Rdm6300Decoder`; each verified frame is a read for the
:class:`edge.transports.nfc.PresenceTracker`, and arrivals and departures become ``TagObservation``
events (see :mod:`edge.transports.nfc`). The card's 10 hex digits (version byte + 32-bit id) are its
``epc``.

Silence is normal (no card), so the link cannot be judged by it: only a failing port (unplugged
adapter, vanished pty) ends a run with :class:`TransportError`. Frames the decoder rejects (bad
checksum, non-hex characters, noise) are counted as bad frames in the device health.
"""

from __future__ import annotations

import asyncio
import logging

from devices.rdm6300 import Rdm6300Decoder
from edge.clock import Clock
from edge.supervisor import DeviceHealthState
from edge.transports.nfc import PresenceTracker, SerialLink, arrival_event, departure_event, uid_to_epc
from edge.transports.protocol import Emit, Events
from edge.transports.registry import Device, DeviceWiring, register_transport
from shelfsense.config import NfcReaderConfig
from shelfsense.contract import Event

log = logging.getLogger(__name__)

# Events waiting for the sink between ticks; one per card arrival, so this is generous.
MAX_PENDING_EVENTS = 256


class Rdm6300Transport:
    def __init__(
        self, config: NfcReaderConfig, health: DeviceHealthState, emit: Emit, *, clock: Clock
    ) -> None:
        self.config = config
        self.health = health
        self.emit = emit
        self.clock = clock
        self.presence = PresenceTracker(config.grace_s)
        self.decoder = Rdm6300Decoder()
        self._pending: list[Event] = []
        self.events_dropped = 0

    def _on_bytes(self, data: bytes) -> None:
        bad_before = self.decoder.frames_bad
        frames = self.decoder.feed(data)
        if bad := self.decoder.frames_bad - bad_before:
            self.health.frame_bad(bad)
        if not frames:
            return
        now = self.clock.now()
        self.health.frame_ok(len(frames), now)
        for frame in frames:
            arrived = self.presence.seen(uid_to_epc(frame.card_hex), now)
            if arrived is None:
                continue
            if len(self._pending) >= MAX_PENDING_EVENTS:
                self.events_dropped += 1  # the sink is stuck; newest arrival dropped, counted
                continue
            self._pending.append(arrival_event(self.config, arrived))

    async def run(self) -> None:
        """Read until the port fails (raises TransportError)."""
        self.decoder.reset()
        link = SerialLink(self.config.port, self.config.baudrate, self._on_bytes)
        tick = min(0.1, self.config.grace_s / 4)
        try:
            self.health.mark_connected()
            while True:
                await asyncio.wait({link.failed}, timeout=tick)
                link.check()
                # Departures first: a card that left while the reader was away and is back now.
                events: list[Event] = [
                    departure_event(self.config, p) for p in self.presence.expire(self.clock.now())
                ]
                events += self._pending
                self._pending = []
                if events:
                    await self.emit(Events(events))
        finally:
            link.close()


def _build(wiring: DeviceWiring, config: NfcReaderConfig) -> Device:
    health = DeviceHealthState(config.id)
    return config.id, health, Rdm6300Transport(config, health, wiring.emit, clock=wiring.clock)


register_transport("rdm6300", "nfc_readers", _build, lambda c: c.kind == "rdm6300")
