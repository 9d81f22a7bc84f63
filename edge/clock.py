"""Clock sanity: the edge's own clock checked against the cloud's, and corrected while it is off.

Embedded gateways boot without a real-time clock, lose NTP when the uplink is down, or get stepped
by hours when it comes back. Events stamped by the edge itself (Modbus polls, MQTT sensors without
a time of their own, tag reads) would silently carry that error.

Each sync response carries the cloud's ``Date`` header (1 s resolution). :meth:`EdgeClock.observe`
bounds the skew NTP-style from the request's send and receive times (a slow response widens the
bounds, it never looks like a skewed clock) and anchors the cloud time to the edge's *monotonic*
clock at the middle of the request. From then on
:meth:`EdgeClock.now` is ``cloud time at the anchor + monotonic time elapsed since``, immune to
steps of the edge's wall clock, but only while the measured skew exceeds ``warn_s``: below it the
system clock (NTP-disciplined, sub-second) is the better source. Transitions are logged once
("skewed" / "back in sync"), and a device time ahead of the corrected edge time by more than
``warn_s`` is flagged ``clock_skew`` on its reading (the sensor's clock is wrong, not ours).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol

__all__ = ["Clock", "EdgeClock", "ManualClock", "SyncedClock"]

log = logging.getLogger(__name__)


class Clock(Protocol):
    """What the edge asks of a clock. There is no process-wide one: the agent makes one (an
    :class:`EdgeClock`) and hands it to its transports, health reports, pipeline and sync client;
    a test that needs controlled time passes its own (:class:`ManualClock`)."""

    # Tolerance for clock skew (s): device times further ahead are flagged ``clock_skew``.
    warn_s: float

    def now(self) -> datetime:
        """The current UTC time (aware)."""
        ...


class SyncedClock(Clock, Protocol):
    """A clock the sync client checks against the cloud's (the agent's clock is one)."""

    skewed: bool  # the last conclusive observation found it off by more than warn_s
    skew_s: float | None  # edge minus cloud at the last observation

    def observe(self, date_header: str | None, sent_mono: float, received_mono: float) -> None: ...


class EdgeClock:
    """The skew-correcting clock (see the module docstring); fed by :class:`edge.sync.SyncClient`."""

    def __init__(
        self,
        warn_s: float = 5.0,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.warn_s = warn_s
        self._wall = wall
        self._monotonic = monotonic
        self._anchor: tuple[float, float] | None = None  # (cloud unix time, monotonic) at the anchor
        self.skew_s: float | None = None  # edge wall clock minus cloud clock at the last observation
        self.skewed = False
        self.uncertain = 0  # observations whose round trip was too long to decide anything

    def observe(self, date_header: str | None, sent_mono: float, received_mono: float) -> None:
        """Record the cloud's ``Date`` of a response received between the two monotonic instants."""
        if not date_header:
            return
        try:
            cloud = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            return  # a proxy's odd header is not worth an error; the next response will do
        if cloud.tzinfo is None:
            cloud = cloud.replace(tzinfo=UTC)
        self._update(cloud.timestamp(), sent_mono, received_mono)

    def _update(self, cloud_s: float, sent_mono: float, received_mono: float) -> None:
        """NTP-style: the cloud stamped its ``Date`` (truncated to ``[cloud_s, cloud_s + 1)``)
        somewhere between our send and our receive, so the skew lies in
        ``[wall(sent) - (cloud_s + 1), wall(received) - cloud_s]``. The state changes only when that
        whole interval says so: a slow response widens the interval by its round trip and can
        never make a right clock look skewed (or a skewed one look right)."""
        wall_now, mono_now = self._wall(), self._monotonic()
        low = wall_now - (mono_now - sent_mono) - (cloud_s + 1.0)
        high = wall_now - (mono_now - received_mono) - cloud_s
        self.skew_s = (low + high) / 2
        if low > self.warn_s or high < -self.warn_s:
            skewed = True
        elif -self.warn_s <= low and high <= self.warn_s:
            skewed = False
        else:
            self.uncertain += 1  # too slow a round trip to tell: keep the state and the anchor
            return
        # The header is truncated to whole seconds: +0.5 s is its expected value.
        self._anchor = (cloud_s + 0.5, (sent_mono + received_mono) / 2)
        if skewed and not self.skewed:
            log.warning(
                "edge clock skewed: %+.1f s against the cloud's; edge-stamped times are corrected "
                "from the cloud's clock and the monotonic clock until it is fixed (check NTP)",
                self.skew_s,
            )
        elif self.skewed and not skewed:
            log.warning("edge clock back in sync with the cloud (%+.1f s)", self.skew_s)
        self.skewed = skewed

    def now(self) -> datetime:
        """The best available UTC time: corrected while the edge clock is known to be skewed."""
        if self.skewed and self._anchor is not None:
            cloud_unix, mono = self._anchor
            return datetime.fromtimestamp(cloud_unix + (self._monotonic() - mono), UTC)
        return datetime.fromtimestamp(self._wall(), UTC)

    def ahead(self, when: datetime) -> bool:
        """True if ``when`` lies further in the future than the skew tolerance (a wrong device clock)."""
        return when - self.now() > timedelta(seconds=self.warn_s)


class ManualClock:
    """A clock that moves only when told (tests, replays): ``now()`` is ``start`` plus what
    :meth:`advance` added."""

    def __init__(self, start: datetime, warn_s: float = 5.0) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware start time")
        self._now = start
        self.warn_s = warn_s
        self.skewed = False
        self.skew_s: float | None = None

    def observe(self, date_header: str | None, sent_mono: float, received_mono: float) -> None:
        """Ignored: a manual clock is the test's truth, the cloud's ``Date`` does not move it."""

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now
