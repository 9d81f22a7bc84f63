"""Real processes for the edge proof tests and the edge benchmarks: a cloud child and edge children.

Everything goes through the command line users run (``python -m shelfsense cloud serve``,
``... cloud admin create-edge``, ``... edge run --config``), so the tests prove the shipped start-up
path. The cloud's SQLite database is read directly (read-only) to check what it stored: the
``events`` table holds exactly one row per ``(edge_id, seq)`` it accepted.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shelfsense.services import free_port

SITE_ID = "site-1"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def toml_table(name: str, values: Mapping[str, Any], array: bool = False) -> str:
    header = f"[[{name}]]" if array else f"[{name}]"
    body = "\n".join(f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None)
    return f"{header}\n{body}\n"


def shelfsense(args: Sequence[str], workdir: Path, log_name: str) -> subprocess.Popen[bytes]:
    """Start ``python -m shelfsense ARGS`` with its output in ``workdir/log_name``."""
    log = (workdir / log_name).open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "shelfsense", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 20.0) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a running process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process and its running children (``cloud.workers``) have
    used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_seconds(int(child)) for child in children)


@dataclass
class CloudChild:
    """The cloud service on SQLite in ``workdir``, on a port that stays the same across restarts."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    workers: int = 1

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.db_path = self.workdir / "cloud.db"
        self.config = self.workdir / "cloud.toml"
        values = {"host": "127.0.0.1", "port": self.port, "db_url": f"sqlite+aiosqlite:///{self.db_path}"}
        self.config.write_text(toml_table("cloud", {**values, "workers": self.workers}))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _cfg(self) -> list[str]:
        return ["--config", str(self.config)]

    def register_edge(self, edge_id: str, site_id: str = SITE_ID) -> str:
        """``cloud admin create-edge``; returns the edge's token."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "shelfsense",
                "cloud",
                "admin",
                "create-edge",
                site_id,
                edge_id,
                "--json",
                *self._cfg(),
            ],
            cwd=self.workdir,
            capture_output=True,
            check=True,
            timeout=60,
        )
        token = str(json.loads(out.stdout)["token"])
        self.tokens[edge_id] = token
        return token

    def start(self, timeout_s: float = 60.0) -> CloudChild:
        self.process = shelfsense(["cloud", "serve", "--config", str(self.config)], self.workdir, "cloud.log")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cloud exited during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"cloud did not become ready:\n{self.log_tail()}")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "cloud.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` on a read-only connection to the cloud's database."""
        conn = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def seqs(self, edge_id: str) -> list[int]:
        """Every stored sequence number of the edge, ascending (one row per (edge, seq) by key)."""
        return [
            int(r[0]) for r in self.query("SELECT seq FROM events WHERE edge_id = ? ORDER BY seq", [edge_id])
        ]

    def event_count(self, edge_id: str) -> int:
        return int(self.query("SELECT COUNT(*) FROM events WHERE edge_id = ?", [edge_id])[0][0])

    def acked_through(self, edge_id: str) -> int:
        rows = self.query("SELECT acked_through FROM edges WHERE edge_id = ?", [edge_id])
        return int(rows[0][0]) if rows else 0

    def duplicates_received(self, edge_id: str) -> int:
        """How many already-stored events the edge sent again (retries; harmless, but counted)."""
        rows = self.query("SELECT duplicates FROM edges WHERE edge_id = ?", [edge_id])
        return int(rows[0][0]) if rows else 0

    def payloads(self, edge_id: str, kind: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT payload FROM events WHERE edge_id = ? AND kind = ? ORDER BY seq", [edge_id, kind]
        )
        return [json.loads(r[0]) for r in rows]


@dataclass
class EdgeChild:
    """``shelfsense edge run`` with a generated config; restartable with the same database."""

    workdir: Path
    cloud_url: str
    token: str
    edge_id: str = "edge-1"
    extra: str = ""  # more TOML (devices, zones), appended to the generated [edge] table
    edge_values: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.workdir / "edge.db"
        self.config = self.workdir / "edge.toml"

    def write_config(self) -> None:
        values: dict[str, Any] = {
            "edge_id": self.edge_id,
            "site_id": SITE_ID,
            "cloud_url": self.cloud_url,
            "token": self.token,
            "db_path": str(self.db_path),
            "sync_interval_s": 0.2,
            "health_interval_s": 2.0,
            **self.edge_values,
        }
        self.config.write_text(toml_table("edge", values) + "\n" + self.extra)

    def start(self) -> EdgeChild:
        self.write_config()
        self.starts += 1
        self.process = shelfsense(["edge", "run", "--config", str(self.config)], self.workdir, "edge.log")
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no clean close, like a power cut of the process (not of the disk)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        code = stop_process(self.process, timeout_s)
        self.process = None
        return code

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "edge.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
