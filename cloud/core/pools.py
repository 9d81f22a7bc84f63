"""Read pools: reads get their own connections and a statement timeout, so they cannot starve ingest.

The main engine (:func:`cloud.core.db.create_engine`) serves ingest, writes, authentication and the
background jobs. Reads (the ``DbConn`` dependency) use a *read engine* made here: its own bounded
pool (``pool_timeout`` bounds the wait for a connection) and a per-statement time limit:

- PostgreSQL: the server's ``statement_timeout`` on every read connection (SQLSTATE 57014);
- SQLite: a progress handler that interrupts a statement past its deadline (``interrupted``). It
  also interrupts at once when the request that runs it was abandoned (:func:`abandon`): SQLite
  runs a statement in the driver's thread, where cancelling the awaiting task does not reach it.

:func:`is_query_timeout` recognises both errors, for the one handler that answers 503.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db

# Progress-handler period in SQLite VM instructions: a callback costs a Python call under the GIL,
# so not too often (at this period a busy statement checks its deadline about every millisecond).
_SQLITE_CHECK_EVERY = 100_000
_PG_QUERY_CANCELED = "57014"


@dataclass(slots=True)
class RequestToken:
    """Set on the request's context by the read gate; ``abandoned`` once the client has gone."""

    abandoned: bool = False


_current: contextvars.ContextVar[RequestToken | None] = contextvars.ContextVar("request", default=None)


def bind_request(token: RequestToken) -> None:
    """Make ``token`` the current request's (tasks created afterwards in this context inherit it)."""
    _current.set(token)


def abandon(token: RequestToken) -> None:
    token.abandoned = True


@dataclass(slots=True)
class _Deadline:
    """Per SQLite connection: when the running statement must stop, and for which request."""

    timeout_s: float
    at: float = float("inf")
    token: RequestToken | None = field(default=None)

    def expired(self) -> int:
        token = self.token
        return 1 if time.monotonic() > self.at or (token is not None and token.abandoned) else 0


def create_read_engine(db_url: str, *, pool_size: int, statement_timeout_s: float) -> AsyncEngine:
    """A read engine on ``db_url``: ``pool_size`` connections, no overflow, statements cut off after
    ``statement_timeout_s``; waiting for a free connection is bounded by the same time."""
    backend = make_url(db_url).get_backend_name()
    pool: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": statement_timeout_s}
    if backend == "postgresql":
        ms = str(max(1, round(statement_timeout_s * 1000)))
        return db.create_engine(db_url, connect_args={"server_settings": {"statement_timeout": ms}}, **pool)
    engine = db.create_engine(db_url, **pool)  # SQLite: WAL, busy_timeout and the BEGIN hook
    _sqlite_deadlines(engine, statement_timeout_s)
    return engine


def _sqlite_deadlines(engine: AsyncEngine, timeout_s: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _install(dbapi_connection: Any, record: Any) -> None:
        deadline = _Deadline(timeout_s)
        record.info["shelfsense_deadline"] = deadline
        handler = deadline.expired
        dbapi_connection.run_async(lambda conn: conn.set_progress_handler(handler, _SQLITE_CHECK_EVERY))

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _arm(conn: Any, *_args: Any) -> None:
        deadline: _Deadline | None = conn.info.get("shelfsense_deadline")
        if deadline is not None:
            deadline.at = time.monotonic() + deadline.timeout_s
            deadline.token = _current.get()


def is_query_timeout(exc: BaseException) -> bool:
    """A statement stopped by its time limit (PostgreSQL 57014, SQLite ``interrupted``)."""
    if not isinstance(exc, StatementError):
        return False
    cause: BaseException | None = exc.orig
    while cause is not None:
        if str(getattr(cause, "sqlstate", "") or "") == _PG_QUERY_CANCELED:
            return True
        if type(cause).__name__ == "OperationalError" and str(cause) == "interrupted":
            return True
        cause = cause.__cause__
    return False


__all__ = ["RequestToken", "abandon", "bind_request", "create_read_engine", "is_query_timeout"]
