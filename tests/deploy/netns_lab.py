"""Hosts in network namespaces for the multi-host test: one namespace per host, each joined by a veth
pair to a bridge living in its own "switch" namespace, plus one leg from the root namespace so the
test itself can reach every host (readiness probes, the database). ``tc netem`` shapes a host's link;
``partition`` takes it down. Everything is named with a random tag and removed by :meth:`cleanup`.

PostgreSQL runs as its own cluster (initdb + pg_ctl as user postgres) inside the database host's
namespace, listening on that host's address only."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class LabError(RuntimeError):
    pass


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {result.stderr.strip()}")


class Lab:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.subnet = f"10.213.{secrets.randbelow(200) + 20}"
        self.namespaces: list[str] = []
        self.root_links: list[str] = []
        self.addresses: dict[str, str] = {}
        self.interfaces: dict[str, str] = {}
        self.pg_dir: Path | None = None

    def ns(self, host: str) -> str:
        return f"ss{self.tag}-{host}"

    def start(self) -> Lab:
        switch = self.ns("sw")
        _run("ip", "netns", "add", switch)
        self.namespaces.append(switch)
        _run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", switch, "link", "set", "br0", "up")
        self.add_host("root", 254, in_root=True)
        return self

    def add_host(self, host: str, octet: int, *, in_root: bool = False) -> str:
        """A host joined to the switch; returns its address."""
        inner, outer = f"h{self.tag}{host}"[:15], f"s{self.tag}{host}"[:15]
        address = f"{self.subnet}.{octet}"
        _run("ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
        if in_root:
            self.root_links.append(inner)
        _run("ip", "link", "set", outer, "netns", self.ns("sw"))
        _run("ip", "-n", self.ns("sw"), "link", "set", outer, "master", "br0", "up")
        prefix: list[str] = []
        if not in_root:
            _run("ip", "netns", "add", self.ns(host))
            self.namespaces.append(self.ns(host))
            _run("ip", "link", "set", inner, "netns", self.ns(host))
            prefix = ["-n", self.ns(host)]
            _run("ip", *prefix, "link", "set", "lo", "up")
        _run("ip", *prefix, "addr", "add", f"{address}/24", "dev", inner)
        _run("ip", *prefix, "link", "set", inner, "up")
        self.addresses[host], self.interfaces[host] = address, inner
        return address

    def shape(self, host: str, netem: str, fallback_tbf: str) -> str:
        """Shape the host's outgoing link with ``tc netem`` (e.g. ``delay 20ms 10ms loss 1%``); a
        kernel without sch_netem gets ``tbf`` instead (a slow link whose short queue drops bursts).
        Returns the qdisc applied, for the test to report."""
        for kind, spec in (("netem", netem), ("tbf", fallback_tbf)):
            try:
                _run(
                    *self.exec_prefix(host),
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    self.interfaces[host],
                    "root",
                    kind,
                    *spec.split(),
                )
            except LabError as exc:
                if "unknown" not in str(exc):
                    raise
                continue
            return f"{kind} {spec}"
        raise LabError("neither netem nor tbf qdisc available in this kernel")

    def partition(self, host: str, down: bool) -> None:
        _run("ip", "-n", self.ns(host), "link", "set", self.interfaces[host], "down" if down else "up")

    def exec_prefix(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns(host)]

    def start_postgres(self, host: str) -> str:
        """A fresh cluster on ``host``; returns its SQLAlchemy URL."""
        self.pg_dir = Path(tempfile.mkdtemp(prefix="shelfsense-netns-pg-"))
        shutil.chown(self.pg_dir, "postgres", "postgres")
        data = self.pg_dir / "data"
        as_pg = ["runuser", "-u", "postgres", "--"]
        _run(*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.subnet}.0/24 trust\n")
        address = self.addresses[host]
        # fsync off: a throw-away cluster; what is tested is the network between the hosts.
        options = f"-c listen_addresses={address} -c unix_socket_directories={self.pg_dir} -c fsync=off"
        _run(
            *self.exec_prefix(host),
            *as_pg,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.pg_dir / "pg.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return f"postgresql+asyncpg://postgres@{address}:5432/postgres"

    def cleanup(self) -> None:
        if self.pg_dir is not None:
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.pg_dir / "data"),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
            shutil.rmtree(self.pg_dir, ignore_errors=True)
        for link in self.root_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30, check=False)
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30, check=False)

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why namespaces cannot be used here (None: they can)."""
        for tool in ("ip", "tc", "runuser"):
            if shutil.which(tool) is None:
                return f"{tool} not installed"
        if not (PG_BIN / "initdb").exists():
            return f"PostgreSQL server binaries not at {PG_BIN}"
        probe = f"ssprobe-{secrets.token_hex(3)}"
        result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            return f"ip netns add failed (needs root and CAP_SYS_ADMIN): {result.stderr.strip()}"
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
        return None
