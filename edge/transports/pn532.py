"""NXP PN532 NFC controller on a UART (HSU mode), polled for ISO 14443A cards.

One :meth:`Pn532Transport.run` = one session on the port:

1. wake the chip (HSU wake-up preamble ``55 55 00 ...`` in front of the first frame) with
   SAMConfiguration (normal mode), then RFConfiguration MaxRetries so InListPassiveTarget answers
   "no card" instead of waiting for one forever;
2. every ``poll_interval_s``: InListPassiveTarget (106 kbps type A, up to 2 targets); each UID is
   a read for the :class:`edge.transports.nfc.PresenceTracker`; arrivals and departures become
   ``TagObservation`` events (see :mod:`edge.transports.nfc`).

Every command follows the HSU handshake: the chip ACKs within ``ack_timeout_s``, then answers
within ``response_timeout_s``. A lost or corrupted ACK is tolerated when the answer itself arrives;
a lost or corrupted answer is asked for again with a NACK (the chip repeats its last answer); a
command with neither is retried after an ACK (which aborts whatever the chip was doing) and a
fresh wake-up preamble (a rebooted chip is asleep). ``max_consecutive_failures`` commands without a
valid answer in a row mean the reader is gone: :class:`TransportError`, and the supervisor reopens
the port with back-off.

Health: every valid answer is a good frame; frames the decoder rejects (checksums, noise), error
frames and malformed target lists are bad frames. Timeouts are counted in ``timeouts``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from devices import pn532
from devices.errors import DecodeError, TransportError
from edge.clock import Clock
from edge.supervisor import DeviceHealthState
from edge.transports.nfc import PresenceTracker, SerialLink, arrival_event, departure_event, uid_to_epc
from edge.transports.protocol import Emit, Events
from edge.transports.registry import Device, DeviceWiring, register_transport
from shelfsense.config import NfcReaderConfig
from shelfsense.contract import Event

log = logging.getLogger(__name__)

# Frames waiting for the command loop; the chip only talks when asked, so more is garbage.
MAX_PENDING_FRAMES = 16


class _NoAnswer(Exception):
    """One command got no valid answer (internal: retried, then TransportError)."""


class Pn532Transport:
    def __init__(
        self,
        config: NfcReaderConfig,
        health: DeviceHealthState,
        emit: Emit,
        *,
        clock: Clock,
        ack_timeout_s: float = 0.2,
        response_timeout_s: float = 0.5,
        max_consecutive_failures: int = 3,
        max_targets: int = 2,
    ) -> None:
        self.config = config
        self.health = health
        self.emit = emit
        self.clock = clock
        self.ack_timeout_s = ack_timeout_s
        self.response_timeout_s = response_timeout_s
        self.max_consecutive_failures = max_consecutive_failures
        self.max_targets = max_targets
        self.presence = PresenceTracker(config.grace_s)
        self.decoder = pn532.Pn532FrameDecoder()
        self._frames: deque[pn532.Pn532Frame] = deque(maxlen=MAX_PENDING_FRAMES)
        self._arrived = asyncio.Event()
        self.polls = 0
        self.timeouts = 0
        self.nacks_sent = 0
        self.error_frames = 0
        self.frames_overflowed = 0

    # ------------------------------------------------------------------ byte intake

    def _on_bytes(self, data: bytes) -> None:
        bad_before = self.decoder.frames_bad
        frames = self.decoder.feed(data)
        if bad := self.decoder.frames_bad - bad_before:
            self.health.frame_bad(bad)
        for frame in frames:
            if len(self._frames) == self._frames.maxlen:
                self.frames_overflowed += 1  # oldest dropped (deque maxlen): nobody asked for it
            self._frames.append(frame)
        if frames:
            self._arrived.set()

    async def _next_frame(self, timeout: float) -> pn532.Pn532Frame | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._frames:
            self._arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return None
        return self._frames.popleft()

    # ------------------------------------------------------------------ command handshake

    async def _exchange(
        self, link: SerialLink, command: int, frame: bytes, *, wakeup: bool
    ) -> pn532.Pn532Frame:
        """Send one command; return its answer or raise :class:`_NoAnswer`."""
        self._frames.clear()  # anything unsolicited before our command is stale
        link.write(pn532.with_wakeup(frame) if wakeup else frame)
        nacked = False
        timeout = self.ack_timeout_s + self.response_timeout_s
        while True:
            link.check()
            reply = await self._next_frame(timeout)
            if reply is None:
                if nacked:
                    raise _NoAnswer(f"no answer to command 0x{command:02X}")
                # ACK (or answer) lost or corrupted: ask the chip to repeat its answer.
                nacked = True
                self.nacks_sent += 1
                link.write(pn532.NACK_FRAME)
                timeout = self.response_timeout_s
                continue
            if reply.kind == "ack":
                timeout = self.response_timeout_s
                continue
            if reply.kind == "error":
                self.error_frames += 1
                self.health.frame_bad()
                raise _NoAnswer(f"PN532 answered command 0x{command:02X} with an error frame")
            if reply.kind == "info" and reply.tfi == pn532.TFI_PN532 and reply.command == command + 1:
                return reply
            self.health.frame_bad()  # a NACK or an answer to something else: not ours

    async def _command(
        self, link: SerialLink, command: int, frame: bytes, *, count_ok: bool = True
    ) -> pn532.Pn532Frame:
        """:meth:`_exchange` with retries; :class:`TransportError` when the chip stays silent.

        ``count_ok=False``: the caller still parses the answer and counts it good or bad itself.
        """
        for attempt in range(self.max_consecutive_failures):
            try:
                answer = await self._exchange(link, command, frame, wakeup=attempt > 0)
            except _NoAnswer as exc:
                self.timeouts += 1
                log.debug("reader %s: %s (attempt %d)", self.config.id, exc, attempt + 1)
                link.write(pn532.ACK_FRAME)  # abort whatever the chip is still busy with
                continue
            if count_ok:
                self.health.frame_ok(1, self.clock.now())
            return answer
        raise TransportError(
            f"PN532 {self.config.id} on {self.config.port}: no answer to command 0x{command:02X} "
            f"after {self.max_consecutive_failures} attempts"
        )

    # ------------------------------------------------------------------ session

    async def _initialise(self, link: SerialLink) -> None:
        link.write(pn532.WAKEUP_PREAMBLE)  # the first command below goes out after a wake-up too
        await self._command(link, pn532.CMD_SAM_CONFIGURATION, pn532.sam_configuration_command())
        await self._command(link, pn532.CMD_RF_CONFIGURATION, pn532.rf_configuration_max_retries_command())

    async def _poll(self, link: SerialLink) -> list[Event]:
        """One InListPassiveTarget; returns the events of arrivals and departures."""
        answer = await self._command(
            link,
            pn532.CMD_IN_LIST_PASSIVE_TARGET,
            pn532.in_list_passive_target_command(self.max_targets),
            count_ok=False,
        )
        self.polls += 1
        now = self.clock.now()
        events: list[Event] = []
        try:
            tags = pn532.parse_inlist_response(answer)
            self.health.frame_ok(1, now)
        except DecodeError as exc:
            self.health.frame_bad()
            log.debug("reader %s: malformed target list: %s", self.config.id, exc)
            tags = []
        arrivals = [self.presence.seen(uid_to_epc(tag.uid_hex), now, antenna=tag.target) for tag in tags]
        # Departures first: a card that left while the reader was away and is back now.
        events.extend(departure_event(self.config, p) for p in self.presence.expire(now))
        events.extend(arrival_event(self.config, p) for p in arrivals if p is not None)
        return events

    async def run(self) -> None:
        """Open, initialise and poll until the reader fails (raises TransportError)."""
        self.decoder.reset()
        self._frames.clear()
        link = SerialLink(self.config.port, self.config.baudrate, self._on_bytes)
        try:
            await self._initialise(link)
            self.health.mark_connected()
            loop = asyncio.get_running_loop()
            while True:
                started = loop.time()
                events = await self._poll(link)
                if events:
                    await self.emit(Events(events))
                link.check()
                await asyncio.sleep(max(0.0, self.config.poll_interval_s - (loop.time() - started)))
        finally:
            link.close()


def _build(wiring: DeviceWiring, config: NfcReaderConfig) -> Device:
    # Cards become TagObservations (UID as epc) straight from the transport: see edge.transports.nfc.
    health = DeviceHealthState(config.id)
    return config.id, health, Pn532Transport(config, health, wiring.emit, clock=wiring.clock)


register_transport("pn532", "nfc_readers", _build, lambda c: c.kind == "pn532")
