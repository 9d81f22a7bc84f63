"""Start and stop the real servers ShelfSense runs next to: Mosquitto and InfluxDB 1.x.

Used by ``shelfsense demo`` (a private broker when none is configured) and by the test fixtures, so
the tests exercise exactly the start-up path users get. Each server runs as a child process on a free
loopback port with its own temporary config and data folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A child server could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"process exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listening on {host}:{port} after {timeout_s:.0f} s")


def _terminate(process: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


@dataclass
class MosquittoProcess:
    """A private Mosquitto broker. ``restart()`` keeps the port and the persistence file."""

    port: int = 0
    host: str = "127.0.0.1"
    password_file: Path | None = None
    acl_file: Path | None = None
    max_queued_messages: int = 100_000
    # QoS 1 messages sent to one client and not yet PUBACKed (Mosquitto's default is 20). None keeps
    # the broker default; an edge that PUBACKs after its commit needs far more (see docs/edge.md).
    max_inflight_messages: int | None = None
    # Seconds between saves of the in-memory state (queued messages, sessions) to disk. 1 s suits
    # tests that restart the broker; a site uses 60 (docs/edge.md), as bench/mqtt_to_cloud.py does.
    autosave_interval_s: int = 1
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="shelfsense-mosquitto-")))
    process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("mosquitto") is not None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            f"persistence_location {self.workdir}/",
            "persistence true",
            f"autosave_interval {self.autosave_interval_s}",
            # Mosquitto's default of 1000 silently drops QoS 1 messages queued for a slow subscriber.
            f"max_queued_messages {self.max_queued_messages}",
            f"log_dest file {self.workdir}/mosquitto.log",
        ]
        if self.max_inflight_messages is not None:
            lines.append(f"max_inflight_messages {self.max_inflight_messages}")
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to 'mosquitto', who cannot write our folder
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout_s: float = 10.0) -> MosquittoProcess:
        if not self.available():
            raise ServiceError("mosquitto is not installed (apt-get install -y mosquitto)")
        if self.port == 0:
            self.port = free_port(self.host)
        config = self._write_config()
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.host, self.port, timeout_s, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class InfluxdProcess:
    """A private InfluxDB 1.x server (Debian's ``influxdb``), HTTP API on a free loopback port."""

    port: int = 0
    database: str = "shelfsense"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="shelfsense-influxd-")))
    process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("influxd") is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self, rpc_port: int) -> Path:
        config = self.workdir / "influxdb.conf"
        config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{self.workdir}/meta"
[data]
  dir = "{self.workdir}/data"
  wal-dir = "{self.workdir}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
"""
        )
        return config

    def start(self, timeout_s: float = 30.0) -> InfluxdProcess:
        if not self.available():
            raise ServiceError("influxd is not installed (apt-get install -y influxdb)")
        if self.port == 0:
            self.port = free_port()
        config = self._write_config(free_port())
        log = (self.workdir / "influxd.log").open("wb")
        self.process = subprocess.Popen(["influxd", "-config", str(config)], stdout=log, stderr=log)
        wait_for_port("127.0.0.1", self.port, timeout_s, self.process)
        self.query(f'CREATE DATABASE "{self.database}"')
        return self

    def query(self, q: str, database: str | None = None) -> bytes:
        """Run an InfluxQL statement over the 1.x HTTP API; returns the JSON body."""
        params = urllib.parse.urlencode({"q": q, **({"db": database} if database else {})})
        request = urllib.request.Request(f"{self.url}/query", data=params.encode(), method="POST")
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return bytes(response.read())
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
