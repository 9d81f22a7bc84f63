"""Real parts of a production deployment for the deploy tests: a test CA (openssl), Debian's nginx
running the shipped ``deploy/nginx`` site, and cloud replicas (``shelfsense cloud serve``) as
processes. The shipped files are used as they are, only paths and addresses are rewritten, and each
rewrite must match (a config that drifted from the test fails here)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from edge.tls import certificate_sha256

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# The cloud tests' real webhook receiver (tests/cloud/webhook_receiver.py) is shared with these tests.
CLOUD_TESTS = Path(__file__).resolve().parents[1] / "cloud"
if str(CLOUD_TESTS) not in sys.path:
    sys.path.append(str(CLOUD_TESTS))


@contextlib.contextmanager
def fresh_pg_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``admin_url`` (SQLAlchemy async URL)."""
    import asyncpg

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(admin_url, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    name = f"shelfsense_d_{secrets.token_hex(6)}"
    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class DeployCa:
    ca_crt: Path
    cert: Path
    key: Path

    @property
    def cert_sha256(self) -> str:
        return certificate_sha256(ssl.PEM_cert_to_DER_cert(self.cert.read_text()))


def make_test_ca(directory: Path, hosts: Sequence[str] = ("127.0.0.1",)) -> DeployCa:
    """A CA and a server certificate for ``hosts`` (IP addresses or DNS names), made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    openssl("req", *ec, "-keyout", "cloud.key", "-out", "cloud.csr", "-subj", "/CN=shelfsense cloud")
    names = ",".join(f"IP:{h}" if h[0].isdigit() else f"DNS:{h}" for h in hosts)
    (directory / "ext.cnf").write_text(
        f"subjectAltName={names}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "cloud.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cloud.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return DeployCa(directory / "ca.crt", directory / "cloud.crt", directory / "cloud.key")


def rewrite(text: str, replacements: dict[str, str], source: str) -> str:
    for old, new in replacements.items():
        assert old in text, f"{source} no longer contains {old!r}: update the deploy test"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    """Debian's nginx running deploy/nginx/shelfsense.conf in ``workdir``."""

    workdir: Path
    tls: DeployCa
    replicas: list[str]  # host:port of each cloud replica
    listen: str  # address:port for TLS
    netns: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        (w / "shelfsense-replicas.conf").write_text(
            "".join(f"server {r} max_fails=2 fail_timeout=10s;\n" for r in self.replicas)
        )
        site = rewrite(
            (DEPLOY / "nginx" / "shelfsense.conf").read_text(),
            {
                "/etc/nginx/shelfsense-replicas.conf": str(w / "shelfsense-replicas.conf"),
                "/etc/shelfsense/tls/cloud.crt": str(self.tls.cert),
                "/etc/shelfsense/tls/cloud.key": str(self.tls.key),
                "listen 443 ssl;": f"listen {self.listen} ssl;",
                "listen 80;": f"listen unix:{w / 'http.sock'};",  # the redirect server, out of the way
            },
            "deploy/nginx/shelfsense.conf",
        )
        (w / "site.conf").write_text(site)
        temp = " ".join(
            f"{kind}_temp_path {w / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (w / "nginx.conf").write_text(
            f"daemon off;\nuser root;\nworker_processes 1;\npid {w / 'nginx.pid'};\n"
            f"error_log {w / 'error.log'} info;\n"
            f"events {{ worker_connections 512; }}\n"
            f"http {{\n access_log {w / 'access.log'};\n {temp}\n include {w / 'site.conf'};\n}}\n"
        )
        return w / "nginx.conf"

    def start(self) -> Nginx:
        conf = self.write_config()
        argv = ["nginx", "-c", str(conf), "-p", str(self.workdir), "-e", str(self.workdir / "error.log")]
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            [*prefix, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(
            lambda: (self.workdir / "nginx.pid").exists() or self.process.poll() is not None, 30, "nginx"
        )
        assert self.process.poll() is None, (self.workdir / "error.log").read_text()[-2000:]
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests in flight
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        (self.workdir / "nginx.pid").unlink(missing_ok=True)

    def access_log(self) -> str:
        path = self.workdir / "access.log"
        return path.read_text() if path.exists() else ""

    @staticmethod
    def available() -> bool:
        return shutil.which("nginx") is not None and shutil.which("openssl") is not None


def shelfsense(
    argv: Sequence[str],
    cwd: Path,
    netns: str | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "shelfsense", *argv],
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )


@dataclass
class CloudReplica:
    """One ``shelfsense cloud serve`` process on a shared database."""

    workdir: Path
    db_url: str
    host: str
    port: int
    netns: str | None = None
    extra_toml: str = ""
    # True: run the shipped deploy/cloud.toml as production does, with the address and database
    # from the environment (as /etc/shelfsense/cloud.env gives them) plus ``extra_env``.
    shipped_config: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return DEPLOY / "cloud.toml" if self.shipped_config else self.workdir / "cloud.toml"

    def env(self) -> dict[str, str]:
        if not self.shipped_config:
            return {}
        values = {"HOST": self.host, "PORT": str(self.port), "DB_URL": self.db_url}
        return {**{f"SHELFSENSE_CLOUD__{k}": v for k, v in values.items()}, **self.extra_env}

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.shipped_config:
            return
        self.config.write_text(
            f'[cloud]\nhost = "{self.host}"\nport = {self.port}\ndb_url = "{self.db_url}"\n{self.extra_toml}'
        )

    def start(self) -> CloudReplica:
        self.write_config()
        self.process = shelfsense(
            ["cloud", "serve", "--config", str(self.config)],
            self.workdir,
            self.netns,
            self.workdir / "cloud.log",
            self.env(),
        )
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"cloud replica exited:\n{self.log_tail()}")
        try:
            return httpx.get(f"http://{self.host}:{self.port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self) -> str:
        path = self.workdir / "cloud.log"
        return path.read_text()[-3000:] if path.exists() else ""


def create_edge(replica: CloudReplica, site: str, edge_id: str) -> str:
    """``cloud admin create-edge`` against the replica's database; returns the token."""
    argv = [sys.executable, "-m", "shelfsense", "cloud", "admin", "create-edge", site, edge_id, "--json"]
    out = subprocess.run(
        [*argv, "--config", str(replica.config)],
        cwd=replica.workdir,
        capture_output=True,
        check=True,
        timeout=60,
        env={**os.environ, **replica.env()},
    )
    return str(json.loads(out.stdout)["token"])
