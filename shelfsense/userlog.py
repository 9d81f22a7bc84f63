"""The CLI's logging defaults and which exceptions are the user's to fix (one line, exit 2).

Quiet by default: our loggers say INFO (one line per state change), chatty third-party loggers
(httpx's line per request, pymodbus' raw frames) only WARNING; ``-v`` shows everything at DEBUG.
"""

from __future__ import annotations

import logging
import sys

from shelfsense.config import ConfigError
from shelfsense.redact import mask_text

# Third-party loggers that log per request / per frame at INFO or DEBUG.
CHATTY_LOGGERS = ("httpx", "httpcore", "pymodbus", "asyncio", "aiosqlite", "multipart", "paho")


class _ClientDisconnectFilter(logging.Filter):
    """A client that went away mid-request is one line, not a traceback (Starlette's
    ``ClientDisconnect`` reaches the server's error log when a body read is cut off)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "ClientDisconnect":
            record.msg, record.args = "client disconnected mid-request", None
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(*, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ClientDisconnectFilter())
    # uvicorn logs with its own handlers (configured later, by the server); a logger filter stays.
    logging.getLogger("uvicorn.error").addFilter(_ClientDisconnectFilter())
    if not verbose:
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user causes and can fix (bad files, flags, config, an unreachable database).

    Our own error trees plus the OS and database errors a command meets at its boundary; imported
    only if the command already loaded them, so ``--help`` stays instant.
    """
    errors: list[type[BaseException]] = [ConfigError, OSError, ValueError]
    modules = sys.modules
    if "edge.errors" in modules:
        errors.append(modules["edge.errors"].EdgeError)
    if "cloud.core.errors" in modules:
        errors.append(modules["cloud.core.errors"].CloudError)
    if "sqlalchemy.exc" in modules:
        errors.append(modules["sqlalchemy.exc"].SQLAlchemyError)
    if "sqlite3" in modules:
        errors.append(modules["sqlite3"].Error)
    return tuple(errors)


def one_line(exc: BaseException) -> str:
    """The error's message on one line, secrets masked; a database error without its SQL dump."""
    text = str(exc).split("\n(Background on this error", 1)[0]
    orig = getattr(exc, "orig", None)
    if orig is not None:  # SQLAlchemy wraps the driver's error: its message is the useful part
        text = str(orig) or type(orig).__name__
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    return mask_text(" ".join(text.split()) or type(exc).__name__)
