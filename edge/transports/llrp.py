"""Fixed UHF portal readers over LLRP (Impinj, Zebra, ...) via sllurp, for the edge agent.

sllurp's :class:`LLRPReaderClient` owns a socket and a reader thread; it connects, reads the
reader's capabilities, sets its config, deletes stale ROSpecs, adds and enables ours and then
calls us back with each RO_ACCESS_REPORT -- on ITS thread. Everything reaches asyncio through
``loop.call_soon_threadsafe``.

One :meth:`LlrpTransport.run` = one connection: it returns only by raising
:class:`TransportError` (refused, timed out, connection lost, reader silent, sllurp's thread gone),
and :func:`edge.supervisor.supervise` reconnects with back-off. sllurp's own reconnect is off.

Dead-peer detection: sllurp asks the reader for a KEEPALIVE every ``keepalive_s``; if neither
a keepalive nor a report nor an event arrives for three intervals (cable pulled, reader hung,
garbage on the stream that sllurp's framing swallows) the link is declared dead.

Hand-over bound: at most ``max_pending_reports`` reports may wait for the event loop. Beyond
that the NEWEST report is dropped and counted (``reports_dropped``): a reader re-reads every tag
several times a second, so a dropped report costs nothing, while blocking sllurp's thread would
delay its keepalive acks and make the reader drop us.

Each antenna's reads count for a logical reader (``LlrpAntennaConfig.reader_id``): that is how
one reader with an outer and an inner antenna serves as both sides of a portal. Reads are stamped
with the edge's receive time, like the serial readers (a reader's clock may be unsynced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sllurp.llrp import LLRPReaderClient, LLRPReaderConfig, LLRPReaderState
from sllurp.llrp_errors import LLRPError

from devices.errors import TransportError
from devices.readings import TagRead
from edge.clock import Clock
from edge.smoothing import TagSmoother
from edge.supervisor import DeviceHealthState
from edge.transports.protocol import Emit, TagReads
from edge.transports.registry import Device, DeviceWiring, register_transport
from shelfsense.config import LlrpReaderConfig

log = logging.getLogger(__name__)

_Reads = list[tuple[str, TagRead]]
SILENT_KEEPALIVES = 3
_ALIVE_MESSAGES = ("KEEPALIVE", "RO_ACCESS_REPORT", "READER_EVENT_NOTIFICATION")


def tag_read_from_report(tag: Mapping[str, Any], default_antenna: int) -> TagRead:
    """A sllurp TagReportData dict -> :class:`TagRead`; KeyError/ValueError/TypeError if malformed."""
    raw = tag["EPC"] if "EPC" in tag else tag["EPC-96"]
    epc = (raw.decode("ascii") if isinstance(raw, bytes) else str(raw)).upper()
    if not epc or len(epc) % 4 or any(c not in "0123456789ABCDEF" for c in epc):
        raise ValueError(f"EPC {epc!r} is not whole 16-bit words of hex")
    rssi = tag.get("PeakRSSI")
    pc = tag.get("C1G2PC")
    return TagRead(
        epc=epc,
        rssi=None if rssi is None else float(rssi),
        # Readers omit the PC word unless asked; derive its length field from the EPC.
        pc=int(pc) if pc is not None else ((len(epc) // 4) & 0x1F) << 11,
        antenna=int(tag.get("AntennaID", default_antenna)),
    )


class LlrpTransport:
    def __init__(
        self,
        config: LlrpReaderConfig,
        health: DeviceHealthState,
        emit: Emit,
        *,
        clock: Clock,
        max_pending_reports: int = 1000,
    ) -> None:
        self.config = config
        self.health = health
        self.emit = emit
        self.clock = clock  # read on sllurp's thread too: now() only reads attributes
        self.max_pending_reports = max_pending_reports
        self._reader_of = {a.antenna: a.reader_id or config.id for a in config.antennas}
        self._default_antenna = config.antennas[0].antenna
        self._last_message = time.monotonic()
        # Not heard for this long: the portals treat the reader as down (the transport itself
        # gives up after SILENT_KEEPALIVES keepalive intervals).
        self.silence_limit_s = SILENT_KEEPALIVES * config.keepalive_s
        self.tag_reads = 0
        self.reports_dropped = 0
        self.malformed_tags = 0

    def reader_id_for(self, antenna: int) -> str:
        """The logical reader of an antenna (reads of unconfigured antennas count for the reader)."""
        return self._reader_of.get(antenna, self.config.id)

    def _sllurp_config(self) -> LLRPReaderConfig:
        cfg = self.config
        antennas = [a.antenna for a in cfg.antennas]
        settings: dict[str, Any] = {
            "antennas": antennas,
            "tx_power": 0,  # 0 = the reader's maximum
            "report_every_n_tags": 1,
            "report_timeout_ms": 500,
            "keepalive_interval": int(cfg.keepalive_s * 1000),
            "reconnect": False,  # the edge's supervisor reconnects
            "reset_on_connect": True,  # delete ROSpecs a previous client left behind
            "start_inventory": True,
            "tag_content_selector": {
                "EnableROSpecID": False,
                "EnableAntennaID": True,
                "EnablePeakRSSI": True,
                "EnableFirstSeenTimestamp": True,
                "EnableLastSeenTimestamp": True,
                "EnableTagSeenCount": True,
            },
        }
        if cfg.tx_power_dbm is not None:
            settings["tx_power_dbm"] = float(cfg.tx_power_dbm)
        return LLRPReaderConfig(settings)

    async def run(self) -> None:
        """Connect, start inventory, deliver reads until the link fails (raises TransportError)."""
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[None] = loop.create_future()
        # sllurp reports "disconnected" also after our own close: that failure needs no reader.
        failed.add_done_callback(lambda f: f.cancelled() or f.exception())
        inventorying: asyncio.Future[None] = loop.create_future()
        slots = threading.BoundedSemaphore(self.max_pending_reports)

        def post(callback: Callable[..., None], *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: this run is over anyway
                loop.call_soon_threadsafe(callback, *args)

        def resolve(future: asyncio.Future[None], exc: BaseException | None = None) -> None:
            if future.done():
                return
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

        def touch(_client: Any, _msg: Any) -> None:
            self._last_message = time.monotonic()  # a float store: atomic under the GIL
            post(self.health.heard, self.clock.now())  # keepalives prove the link to the portals

        def on_tags(_client: Any, tags: list[dict[str, Any]]) -> None:
            if not slots.acquire(blocking=False):
                self.reports_dropped += 1
                return
            reads: _Reads = []
            bad = 0
            for tag in tags:
                try:
                    read = tag_read_from_report(tag, self._default_antenna)
                except (KeyError, ValueError, TypeError, UnicodeDecodeError):
                    bad += 1
                    continue
                reads.append((self.reader_id_for(read.antenna), read))
            post(self._deliver, reads, bad, self.clock.now(), slots)

        client = LLRPReaderClient(
            self.config.host, self.config.port, self._sllurp_config(), timeout=self.config.connect_timeout_s
        )
        client.add_tag_report_callback(on_tags)
        client.add_state_callback(LLRPReaderState.STATE_INVENTORYING, lambda *_: post(resolve, inventorying))
        client.add_disconnected_callback(
            lambda *_: post(resolve, failed, TransportError(f"LLRP reader {self.config.id}: connection lost"))
        )
        for name in _ALIVE_MESSAGES:
            client.add_message_callback(name, touch)
        self._last_message = time.monotonic()
        where = f"{self.config.host}:{self.config.port}"
        try:
            await asyncio.to_thread(client.connect)
        except (OSError, LLRPError) as exc:
            await asyncio.to_thread(client.hard_disconnect)
            raise TransportError(f"cannot connect to LLRP reader at {where}: {exc}") from exc
        clean = False
        try:
            await self._until_inventorying(inventorying, failed, where)
            self.health.mark_connected()
            await self._watch(client, failed)
        except asyncio.CancelledError:
            clean = True  # the agent is stopping: say goodbye to the reader properly
            raise
        finally:
            await asyncio.to_thread(self._close, client, clean)

    async def _until_inventorying(
        self, inventorying: asyncio.Future[None], failed: asyncio.Future[None], where: str
    ) -> None:
        timeout = self.config.connect_timeout_s
        done, _ = await asyncio.wait(
            {inventorying, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if failed in done:
            failed.result()
        if inventorying not in done:
            raise TransportError(f"LLRP reader at {where} did not start inventory within {timeout} s")

    async def _watch(self, client: LLRPReaderClient, failed: asyncio.Future[None]) -> None:
        """Wait for a failure; meanwhile check sllurp's thread and the keepalive deadline."""
        silent_limit = SILENT_KEEPALIVES * self.config.keepalive_s
        period = min(1.0, self.config.keepalive_s / 2)
        while True:
            await asyncio.wait({failed}, timeout=period)
            if failed.done():
                failed.result()
            if not client.is_alive():
                raise TransportError(f"LLRP reader {self.config.id}: sllurp's connection thread ended")
            silent = time.monotonic() - self._last_message
            if silent > silent_limit:
                raise TransportError(
                    f"LLRP reader {self.config.id}: silent for {silent:.0f} s (keepalive missed)"
                )

    def _close(self, client: LLRPReaderClient, clean: bool) -> None:
        """Polite stop (delete ROSpecs, close) when the agent stops; otherwise just drop the socket."""
        if clean:
            with contextlib.suppress(OSError, LLRPError):
                client.disconnect(timeout=2.0)
        client.hard_disconnect()
        client.join(2.0)

    def _deliver(self, reads: _Reads, bad: int, now: datetime, slots: threading.BoundedSemaphore) -> None:
        slots.release()
        by_reader: dict[str, list[TagRead]] = {}
        for reader_id, read in reads:
            by_reader.setdefault(reader_id, []).append(read)
        for reader_id, group in by_reader.items():  # accepted at once: nothing to await
            self.emit(TagReads(reader_id, group, now))
        self.tag_reads += len(reads)
        if reads:
            self.health.frame_ok(len(reads), now)
        if bad:
            self.malformed_tags += bad
            self.health.frame_bad(bad)


def _build(wiring: DeviceWiring, config: LlrpReaderConfig) -> Device:
    # One smoother per logical reader (antenna group), e.g. a portal's outer and inner side.
    for logical_id, location in config.logical_readers().items():
        smoother = TagSmoother(
            logical_id, wiring.cycle_s, location, min_reads=config.min_reads, grace_s=config.grace_s
        )
        wiring.smoothers.setdefault(logical_id, smoother)
    health = DeviceHealthState(config.id)
    transport = LlrpTransport(config, health, wiring.emit, clock=wiring.clock)
    for logical_id in {config.id, *config.logical_readers()}:
        wiring.reader_liveness[logical_id] = (health, transport.silence_limit_s)
    return config.id, health, transport


register_transport("llrp", "llrp_readers", _build)
