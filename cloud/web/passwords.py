"""Password hashing with ``hashlib.scrypt`` (memory-hard, in the standard library).

A stored hash is self-describing, ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the cost can be
raised later without invalidating existing passwords (:func:`needs_rehash` tells when to re-hash
at the next successful login).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

# n=2**14, r=8: 16 MiB and ~50 ms per hash here; enough to make offline guessing expensive while
# a login stays fast. maxmem must allow 128 * n * r bytes plus slack.
N, R, P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MIN_LENGTH, MAX_LENGTH = 8, 1024  # the max bounds the work one request can cause


class PasswordError(ValueError):
    """A password that is not acceptable (too short or too long)."""


@dataclass(frozen=True, slots=True)
class _Params:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 1024 * 1024, dklen=length
    )


def check_acceptable(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_acceptable(password)
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P, KEY_BYTES)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> _Params | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    # Refuse absurd parameters from a tampered row instead of burning memory on them.
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and key):
        return None
    return _Params(n, r, p, salt, key)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False (never an exception) for a malformed hash."""
    params = _parse(stored)
    if params is None or len(password) > MAX_LENGTH:
        return False
    key = _derive(password, params.salt, params.n, params.r, params.p, len(params.key))
    return hmac.compare_digest(key, params.key)


def needs_rehash(stored: str) -> bool:
    params = _parse(stored)
    return params is None or (params.n, params.r, params.p) != (N, R, P)


# Verified against when the user does not exist, so a login takes as long either way.
DUMMY_HASH = f"scrypt${N}${R}${P}${_b64(b'0' * SALT_BYTES)}${_b64(b'0' * KEY_BYTES)}"

__all__ = [
    "DUMMY_HASH",
    "PasswordError",
    "check_acceptable",
    "hash_password",
    "needs_rehash",
    "verify_password",
]
