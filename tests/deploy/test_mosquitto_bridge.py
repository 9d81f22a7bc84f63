"""deploy/mosquitto: a site broker running site.conf + bridge-to-central.conf bridges over TLS (test
CA, password, ACL from central.conf/central.acl) to a central broker. Checked with Mosquitto's own
clients (mosquitto_pub / mosquitto_sub, eclipse/mosquitto): a sensor message published at the site
arrives centrally under sites/site-1/, an alert published centrally for the site arrives at the
site, and the bridge's ACL keeps it out of another site's alerts."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_harness import DEPLOY, DeployCa, make_test_ca, rewrite

from shelfsense.services import ServiceError, free_port, wait_for_port

SECRET = "bridge-secret-1"
CLOUD_SECRET = "cloud-secret-1"


def _broker(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _common(workdir: Path) -> dict[str, str]:
    return {"persistence_location /var/lib/mosquitto/": f"persistence_location {workdir}/"}


def _tail(workdir: Path) -> str:
    log = workdir / "mosquitto.log"
    return log.read_text()[-2000:] if log.exists() else ""


def _run_as_root(workdir: Path) -> str:
    return f"\nlog_dest file {workdir}/mosquitto.log\n" + ("user root\n" if os.geteuid() == 0 else "")


class Brokers:
    def __init__(self, tmp_path: Path, tls: DeployCa) -> None:
        self.tls = tls
        self.central_dir, self.site_dir = tmp_path / "central", tmp_path / "site"
        self.central_dir.mkdir()
        self.site_dir.mkdir()
        self.central_port, self.site_port, self.site_tls_port = free_port(), free_port(), free_port()
        passwd = tmp_path / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "site-1-bridge", SECRET], check=True)
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), "cloud", CLOUD_SECRET], check=True)
        acl = tmp_path / "central.acl"
        shutil.copy(DEPLOY / "mosquitto" / "central.acl", acl)
        certs = {
            "/etc/mosquitto/certs/central-ca.crt": str(tls.ca_crt),
            "/etc/mosquitto/certs/central.crt": str(tls.cert),
            "/etc/mosquitto/certs/central.key": str(tls.key),
        }
        central = rewrite(
            (DEPLOY / "mosquitto" / "central.conf").read_text(),
            {
                "listener 8883": f"listener {self.central_port} 127.0.0.1",
                **certs,
                "/etc/mosquitto/shelfsense.passwd": str(passwd),
                "/etc/mosquitto/shelfsense-central.acl": str(acl),
                **_common(self.central_dir),
            },
            "central.conf",
        )
        site = rewrite(
            (DEPLOY / "mosquitto" / "site.conf").read_text(),
            {
                "listener 1883 127.0.0.1": f"listener {self.site_port} 127.0.0.1",
                "listener 8883": f"listener {self.site_tls_port} 127.0.0.1",
                "/etc/mosquitto/certs/site-ca.crt": str(tls.ca_crt),
                "/etc/mosquitto/certs/site-broker.crt": str(tls.cert),
                "/etc/mosquitto/certs/site-broker.key": str(tls.key),
                "/etc/mosquitto/shelfsense.passwd": str(passwd),
                **_common(self.site_dir),
            },
            "site.conf",
        )
        bridge = rewrite(
            (DEPLOY / "mosquitto" / "bridge-to-central.conf").read_text(),
            {
                "central.example.com:8883": f"127.0.0.1:{self.central_port}",
                "/etc/mosquitto/certs/central-ca.crt": str(tls.ca_crt),
                "CHANGE-ME": SECRET,
            },
            "bridge-to-central.conf",
        )
        (self.central_dir / "mosquitto.conf").write_text(central + _run_as_root(self.central_dir))
        # Debian's mosquitto.conf includes conf.d/*: the site file, then the bridge.
        (self.site_dir / "mosquitto.conf").write_text(site + _run_as_root(self.site_dir) + bridge)
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for workdir, port in ((self.central_dir, self.central_port), (self.site_dir, self.site_port)):
            process = _broker(workdir / "mosquitto.conf")
            self.processes.append(process)
            try:
                wait_for_port("127.0.0.1", port, 15, process)
            except ServiceError as exc:
                raise AssertionError(f"broker did not start: {exc}\n{_tail(workdir)}") from exc

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)

    def central_args(self) -> list[str]:
        tls = ["--cafile", str(self.tls.ca_crt)]
        return ["-h", "127.0.0.1", "-p", str(self.central_port), *tls, "-u", "cloud", "-P", CLOUD_SECRET]

    def site_args(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.site_port)]


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Brokers]:
    if not all(shutil.which(t) for t in ("mosquitto", "mosquitto_pub", "mosquitto_sub", "mosquitto_passwd")):
        pytest.skip("mosquitto and mosquitto-clients not installed (scripts/test.sh apt-installs them)")
    pair = Brokers(tmp_path, make_test_ca(tmp_path / "tls", hosts=("127.0.0.1", "localhost")))
    pair.start()
    yield pair
    pair.stop()


def _until_received(subscriber: list[str], publish: list[str], timeout_s: float = 40.0) -> str:
    """Start ``mosquitto_sub -C 1``, publish until it got a message (the bridge connects meanwhile)."""
    sub = subprocess.Popen(["mosquitto_sub", "-C", "1", "-v", *subscriber], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while sub.poll() is None and time.monotonic() < deadline:
            subprocess.run(["mosquitto_pub", "-q", "1", *publish], check=True, timeout=10)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sub.wait(timeout=0.5)
        assert sub.poll() == 0, "nothing arrived through the bridge"
        assert sub.stdout is not None
        return sub.stdout.read().strip()
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


def test_site_telemetry_goes_up_and_alerts_come_down(brokers: Brokers) -> None:
    up = _until_received(
        [*brokers.central_args(), "-t", "sites/site-1/#"],
        [*brokers.site_args(), "-t", "zigbee2mqtt/cold-room-1", "-m", '{"temperature":4.2}'],
    )
    assert up == 'sites/site-1/zigbee2mqtt/cold-room-1 {"temperature":4.2}'
    down = _until_received(
        [*brokers.site_args(), "-t", "shelfsense/alerts/#"],
        [*brokers.central_args(), "-t", "shelfsense/alerts/site-1", "-m", '{"alert":1}'],
    )
    assert down == 'shelfsense/alerts/site-1 {"alert":1}'


def test_central_acl_keeps_a_site_bridge_in_its_lane(brokers: Brokers) -> None:
    """The bridge's credentials cannot read another site's alerts (a subscribe the ACL denies)."""
    args = ["-h", "127.0.0.1", "-p", str(brokers.central_port), "--cafile", str(brokers.tls.ca_crt)]
    args += ["-u", "site-1-bridge", "-P", SECRET, "-i", "probe", "-t", "shelfsense/alerts/site-2", "-W", "3"]
    sub = subprocess.Popen(["mosquitto_sub", "-C", "1", *args], stdout=subprocess.PIPE, text=True)
    for _ in range(5):
        subprocess.run(
            ["mosquitto_pub", *brokers.central_args(), "-t", "shelfsense/alerts/site-2", "-m", "x", "-r"],
            check=True,
            timeout=10,
        )
    sub.wait(timeout=30)
    assert sub.stdout is not None and sub.stdout.read() == ""  # the retained alert is not delivered
