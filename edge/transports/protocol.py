"""What a transport is and the one way it hands data to the agent.

A transport is built by its registered factory (:mod:`edge.transports.registry`) with the agent's
``emit`` and ``clock``; its :meth:`Transport.run` opens one connection and raises
:class:`devices.errors.TransportError` when that fails (the supervisor reruns it).

Everything a transport delivers goes through ``emit(emission)``, one call shape for every reader:

* :class:`TagReads` -- raw reads of one (logical) reader, stamped with the receive time. They go to
  the reader's smoother and the portals, are *accepted* at once (the returned future is already
  done) and become events at the agent's next cycle. Safe to call from a loop callback (no await).
* :class:`Events` -- contract events (readings, tag observations) that enter the pipeline
  (quality -> alarms -> commit). The returned future resolves with the events' sequence numbers
  once they are committed. ``durable=False`` (serial devices): on a full disk they are held in
  memory and their numbers are None. ``durable=True`` (MQTT): the future resolves only once they
  are on disk, waiting for space if need be, so a PUBACK sent after it never loses a message;
  ``extras`` (receipts, rejects) commit in the same transaction.

The future of an emission can be awaited, kept (MQTT pipelines several commits) or dropped
(a serial callback); it is created when ``emit`` is called, so a dropped one still commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from devices.readings import TagRead
from shelfsense.contract import Event

if TYPE_CHECKING:
    from edge.outbox import LedgerWrite
    from edge.supervisor import DeviceHealthState

__all__ = ["Committed", "Emission", "Emit", "Events", "TagReads", "Transport"]

# The sequence numbers the outbox gave the committed events (None: held in memory, disk full).
Committed = list[int | None]


@dataclass(frozen=True, slots=True)
class TagReads:
    """Raw reads of one logical reader (its configured id, or an LLRP antenna group's)."""

    reader_id: str
    reads: Sequence[TagRead]
    at: datetime  # receive time, from the clock the transport was given


@dataclass(frozen=True, slots=True)
class Events:
    """Contract events for the pipeline; see the module docstring for ``durable`` and ``extras``."""

    events: Sequence[Event]
    durable: bool = False
    extras: Sequence[LedgerWrite] = ()

    def __post_init__(self) -> None:
        if self.extras and not self.durable:
            raise ValueError("extras commit only with durable events (they cannot be held in memory)")


Emission = TagReads | Events


class Emit(Protocol):
    """The agent's intake (``EdgeAgent.emit``); tests pass their own."""

    def __call__(self, emission: Emission, /) -> asyncio.Future[Committed]: ...


class Transport(Protocol):
    """One device connection: ``run`` opens it and returns or raises TransportError when it fails
    (the supervisor reruns it with back-off); ``health`` is what the supervisor and the agent's
    counters read."""

    health: DeviceHealthState

    def run(self) -> Awaitable[None]: ...
