"""The one place secrets are masked: log records, error texts, delivery records, config printouts.

Two layers, because neither alone is enough:

- shape: in any text, a URL's password (``scheme://user:PASSWORD@host``) and the values of query
  parameters that carry credentials (DingTalk's ``access_token``, WeCom's ``key``, ``sign``, ...)
  are replaced by ``***``, whoever wrote the text (our code, httpx's request log, an exception);
- value: every secret the configuration holds (each ``SecretStr``, URL passwords, credential query
  values) is registered by :func:`register_settings_secrets` and masked wherever it appears, even
  outside a URL.

:func:`install_log_masking` applies :func:`mask_text` to every log record when it is created (a
log-record factory, so records reaching any handler, including ones added later, are masked).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, SecretStr

MASK = "***"
# Query parameters whose value is a credential (compared lower-case).
SECRET_QUERY_KEYS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "sig",
        "sign",
        "signature",
        "token",
    }
)
# Registered values shorter than this are not masked by value (they would mask ordinary words);
# the insecure-settings check refuses such short secrets outside demo mode anyway.
MIN_REGISTERED_LENGTH = 6

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/@:\s]*:)([^/@\s]*)(@)")
_QUERY_PARAM = re.compile(r"([?&;])([^=&#;\s]+)=([^&#;\s]*)")

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first, so a secret containing another is masked whole


def mask_url(url: str) -> str:
    """``url`` with its password and credential query values replaced by ``***``."""
    masked = _USERINFO_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), url)

    def query(match: re.Match[str]) -> str:
        sep, key, value = match.groups()
        if key.lower() in SECRET_QUERY_KEYS and value:
            return f"{sep}{key}={MASK}"
        return match.group(0)

    return _QUERY_PARAM.sub(query, masked)


def mask_text(text: str) -> str:
    """Every URL in ``text`` masked (:func:`mask_url`), then every registered secret value."""
    masked = _URL.sub(lambda m: mask_url(m.group(0)), text)
    for secret in _secrets:
        if secret in masked:
            masked = masked.replace(secret, MASK)
    return masked


def register_secrets(values: Iterable[str]) -> None:
    """Mask these values wherever they appear from now on (process-wide)."""
    global _secrets
    new = {v for v in values if len(v) >= MIN_REGISTERED_LENGTH}
    with _lock:
        _secrets = tuple(sorted(set(_secrets) | new, key=len, reverse=True))


def url_secrets(url: str) -> list[str]:
    """The password and credential query values inside a URL."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = [password] if password else []
    found += [v for k, v in parse_qsl(parts.query) if k.lower() in SECRET_QUERY_KEYS and v]
    return found


def _walk(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        yield secret
        yield from url_secrets(secret)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, str) and "://" in value:
        yield from url_secrets(value)


def settings_secrets(settings: BaseModel) -> list[str]:
    """Every secret a settings object holds: ``SecretStr`` values and credentials inside URLs."""
    return list(_walk(settings))


def register_settings_secrets(settings: BaseModel) -> None:
    register_secrets(settings_secrets(settings))


def mask_data(value: Any) -> Any:
    """A JSON-like structure with :func:`mask_text` applied to every string in it."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_data(v) for v in value]
    return value


def _mask_arg(arg: Any) -> Any:
    return arg if isinstance(arg, int | float) else mask_text(str(arg))


def _mask_record(record: logging.LogRecord) -> None:
    message = record.getMessage()
    masked = mask_text(message)
    if masked == message:
        return
    # Keep the record's shape (msg + args) where possible: some formatters read the args (uvicorn's
    # access log unpacks them). Fall back to the whole masked message.
    if isinstance(record.args, tuple) and isinstance(record.msg, str):
        record.msg, record.args = mask_text(record.msg), tuple(_mask_arg(a) for a in record.args)
        try:
            if mask_text(record.getMessage()) == record.getMessage():
                return
        except (TypeError, ValueError):  # e.g. %d of an argument that had to become text
            pass
    record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)


_installed = False


def install_log_masking() -> None:
    """Mask every log record of this process from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _mask_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


__all__ = [
    "MASK",
    "install_log_masking",
    "mask_data",
    "mask_text",
    "mask_url",
    "register_secrets",
    "register_settings_secrets",
    "settings_secrets",
    "url_secrets",
]
