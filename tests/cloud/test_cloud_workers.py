"""``cloud serve --workers N``: N server processes on one port, supervised, stopped together
(SQLite and PostgreSQL: the parent migrates, then forks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shelfsense.services import free_port


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    config = tmp_path / "cloud.toml"
    config.write_text(f'[cloud]\nhost = "127.0.0.1"\nport = {port}\ndb_url = "{db_url}"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "shelfsense", "cloud", "serve", "--config", str(config), "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200 and len(_children(process.pid)) == 2:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("cloud serve --workers 2 did not become ready")
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait()


def test_two_workers_serve_one_port_and_stop_together_on_sigterm(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, url = server
    workers = _children(process.pid)
    assert len(workers) == 2
    # Fresh connections are spread by the kernel; all of them are answered.
    assert all(httpx.get(f"{url}/healthz", timeout=5).status_code == 200 for _ in range(20))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()  # stopped and reaped by the supervisor


def test_a_dead_worker_stops_the_service_with_an_error(server: tuple[subprocess.Popen[bytes], str]) -> None:
    process, _ = server
    first, second = _children(process.pid)
    os.kill(first, signal.SIGKILL)  # for the service manager to restart everything, not half of it
    assert process.wait(timeout=30) == 1
    assert not Path(f"/proc/{second}").exists()
