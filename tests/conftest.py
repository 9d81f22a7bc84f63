"""Session fixtures that start REAL servers on free loopback ports.

- ``mosquitto_broker``: one anonymous Mosquitto for the session; ``mosquitto_factory`` for tests that
  stop/restart a broker of their own.
- ``influxdb``: Debian's InfluxDB 1.x with a temporary config and data folder.
- ``pg_url``: a fresh PostgreSQL database per test on ``SHELFSENSE_TEST_PG_URL`` or 127.0.0.1:5432
  (database ``test``); skips with a visible reason only if no server is reachable.
- ``pty_pair``: a raw pseudo-terminal pair ``(master_fd, slave_path)``.
- ``socat_pty_link``: two linked pseudo-terminal *paths* made by ``socat`` (both ends open like real ports,
  as a USB-RS485 adapter and its device would be).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from shelfsense.services import InfluxdProcess, MosquittoProcess

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def mosquitto_broker() -> Iterator[MosquittoProcess]:
    if not MosquittoProcess.available():
        pytest.skip("mosquitto binary not installed (the test command apt-get installs it)")
    broker = MosquittoProcess().start()
    yield broker
    broker.cleanup()


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., MosquittoProcess]]:
    if not MosquittoProcess.available():
        pytest.skip("mosquitto binary not installed (the test command apt-get installs it)")
    started: list[MosquittoProcess] = []

    def start(**kwargs: object) -> MosquittoProcess:
        broker = MosquittoProcess(**kwargs).start()  # type: ignore[arg-type]
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.cleanup()


@pytest.fixture(scope="session")
def influxdb() -> Iterator[InfluxdProcess]:
    if not InfluxdProcess.available():
        pytest.skip("influxd not installed (the test command apt-get installs Debian's influxdb)")
    server = InfluxdProcess().start()
    yield server
    server.cleanup()


def _pg_admin_url() -> str:
    return os.environ.get("SHELFSENSE_TEST_PG_URL", DEFAULT_PG_ADMIN_URL)


async def _pg_execute(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = _pg_admin_url()
    try:
        asyncio.run(_pg_execute(url, "SELECT 1"))
    except (TimeoutError, OSError, ImportError) as exc:
        pytest.skip(f"no PostgreSQL reachable at {url} ({exc}); set SHELFSENSE_TEST_PG_URL")
    except Exception as exc:  # noqa: BLE001 - asyncpg's error tree is wide; any failure means "not usable"
        pytest.skip(f"PostgreSQL at {url} not usable: {exc}")
    return url


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """SQLAlchemy async URL of a fresh, empty database, dropped after the test."""
    name = f"shelfsense_t_{secrets.token_hex(6)}"
    asyncio.run(_pg_execute(pg_admin_url, f'CREATE DATABASE "{name}"'))
    parts = urlsplit(pg_admin_url)
    yield urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
    asyncio.run(_pg_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def socat_pty_link() -> Iterator[tuple[str, str]]:
    if shutil.which("socat") is None:
        pytest.skip("socat not installed (the test command apt-get installs it)")
    folder = Path(tempfile.mkdtemp(prefix="shelfsense-socat-"))
    a, b = folder / "a", folder / "b"
    process = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("socat did not create its pty links")
        time.sleep(0.02)
    yield str(a), str(b)
    process.terminate()
    process.wait(timeout=5)
    shutil.rmtree(folder, ignore_errors=True)
