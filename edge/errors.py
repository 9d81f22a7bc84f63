"""The edge agent's small error tree.

Third-party exceptions (sqlite3, httpx, sllurp, pyserial, pymodbus) are translated into these at the
boundary where they occur, so the rest of the agent only ever catches our own types. Device-side
failures use :class:`devices.errors.TransportError` / :class:`devices.errors.DecodeError`.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error the edge agent raises on purpose."""


class OutboxError(EdgeError):
    """The local SQLite database (outbox + ledger) failed; events may not have been stored."""


class DiskFullError(OutboxError):
    """The edge database's file system is full: nothing of the failed call was stored.

    Not fatal: the agent holds events in memory (bounded), stops acknowledging MQTT and retries
    until space comes back (see :mod:`edge.diskfull`).
    """


class SyncError(EdgeError):
    """Sending a batch to the cloud failed.

    ``permanent`` failures (401/403/413/422 and other client errors) will not heal by retrying the
    same request; they are logged loudly and retried with the maximum back-off, never by dropping
    events. Transient ones (network, timeouts, 5xx, 429) are retried with exponential back-off.
    """

    def __init__(self, message: str, *, permanent: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class TransientSyncError(SyncError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, permanent=False, status=status)


class PermanentSyncError(SyncError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, permanent=True, status=status)


class EdgeStatusUnavailable(EdgeError):
    """The edge database could not be read for a status report (missing, not yet initialised)."""
