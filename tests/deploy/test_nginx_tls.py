"""TLS and a reverse proxy, for real: Debian's nginx runs the shipped deploy/nginx/shelfsense.conf
with a test CA (openssl) in front of two ``cloud serve`` replicas on one PostgreSQL database, and the
edge's own sync code (outbox + SyncClient + sync_loop) drains through it while a replica is killed
and the proxy is restarted: every acknowledged event is stored exactly once. The edge pins the CA or
the certificate's SHA-256; on a mismatch it fails in the handshake, before its token is sent."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_harness import (
    CloudReplica,
    DeployCa,
    Nginx,
    create_edge,
    fresh_pg_database,
    make_test_ca,
    shelfsense,
    wait_until,
)
from netns_edge import readings
from sqlalchemy import func, select

from cloud.core import db
from cloud.ingest import tables as ingest_db
from edge.errors import TransientSyncError
from edge.outbox import Outbox
from edge.sync import SyncClient, sync_loop, sync_once
from edge.tls import cloud_ssl_context
from shelfsense.config import ConfigError, load_settings
from shelfsense.services import MosquittoProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@dataclass
class Stack:
    tls: DeployCa
    replicas: list[CloudReplica]
    nginx: Nginx
    tokens: dict[str, str]
    db_url: str

    @property
    def url(self) -> str:
        return f"https://{self.nginx.listen}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str) -> Iterator[Stack]:
    """Shared by the tests of this module (each uses its own edge): starting replicas is the slow part."""
    if not Nginx.available():
        pytest.skip("nginx or openssl not installed (scripts/test.sh apt-installs nginx-light)")
    tmp_path = tmp_path_factory.mktemp("stack")
    tls = make_test_ca(tmp_path / "tls")
    with fresh_pg_database(pg_admin_url) as db_url:
        replicas = [CloudReplica(tmp_path / f"cloud-{i}", db_url, "127.0.0.1", free_port()) for i in range(2)]
        nginx = Nginx(
            tmp_path / "nginx", tls, [f"127.0.0.1:{r.port}" for r in replicas], f"127.0.0.1:{free_port()}"
        )
        try:
            for replica in replicas:
                replica.start()
            wait_until(lambda: all(r.ready() for r in replicas), 90, "two cloud replicas")
            tokens = {e: create_edge(replicas[0], "site-1", e) for e in ("edge-pin", "edge-ha")}
            nginx.start()
            yield Stack(tls, replicas, nginx, tokens, db_url)
        finally:
            nginx.stop()
            for replica in replicas:
                replica.kill()


async def stored_events(db_url: str, edge: str) -> tuple[int, int]:
    engine = db.create_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.scalar(
                select(func.count()).select_from(ingest_db.events).where(ingest_db.events.c.edge_id == edge)
            )
            acked = await conn.scalar(
                select(ingest_db.edges.c.acked_through).where(ingest_db.edges.c.edge_id == edge)
            )
    finally:
        await engine.dispose()
    return int(rows or 0), int(acked or 0)


async def wait_acked(outbox: Outbox, through: int, timeout_s: float = 90.0) -> None:
    async with asyncio.timeout(timeout_s):
        while (await outbox.progress())[1] < through:
            await asyncio.sleep(0.05)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with Outbox(tmp_path / "edge.db") as box:
        yield box


async def test_the_edge_pins_the_certificate_and_sends_nothing_on_a_mismatch(
    stack: Stack, outbox: Outbox, tmp_path: Path
) -> None:
    await outbox.append(readings("probe-1", 0, 10))
    token = stack.tokens["edge-pin"]
    posts = stack.nginx.access_log().count("POST ")
    wrong_pin = "00" * 32
    other_ca = make_test_ca(tmp_path / "other").ca_crt
    for ca, pin, why in ((None, wrong_pin, "pinned"), (other_ca, None, "CERTIFICATE_VERIFY_FAILED")):
        client = SyncClient(stack.url, "edge-pin", token, verify=cloud_ssl_context(ca, pin))
        with pytest.raises(TransientSyncError, match=why):
            await sync_once(outbox, client, 100)
        await client.aclose()
    assert stack.nginx.access_log().count("POST ") == posts  # no request, so no token, went out
    # The right pin alone (no CA: a self-signed cloud) and the CA alone both work.
    for ca, pin in ((None, stack.tls.cert_sha256), (stack.tls.ca_crt, None)):
        client = SyncClient(stack.url, "edge-pin", token, verify=cloud_ssl_context(ca, pin))
        await sync_once(outbox, client, 100)
        await client.aclose()
    assert await stored_events(stack.db_url, "edge-pin") == (10, 10)


async def test_edge_syncs_through_nginx_across_a_replica_kill_and_a_proxy_restart(
    stack: Stack, outbox: Outbox
) -> None:
    token = stack.tokens["edge-ha"]
    client = SyncClient(stack.url, "edge-ha", token, verify=cloud_ssl_context(stack.tls.ca_crt, None))
    stop = asyncio.Event()
    task = asyncio.create_task(sync_loop(outbox, client, 0.05, 100, stop, backoff_max=0.5))
    try:
        await outbox.append(readings("probe-1", 0, 600))
        await wait_acked(outbox, 600)
        stack.replicas[0].kill()  # nginx moves on to the other replica
        await outbox.append(readings("probe-1", 600, 600))
        await wait_acked(outbox, 1200)
        await asyncio.to_thread(stack.nginx.stop)  # the proxy restarts while events keep coming
        await outbox.append(readings("probe-1", 1200, 600))
        await asyncio.to_thread(stack.nginx.start)
        await wait_acked(outbox, 1800)
    finally:
        stop.set()
        await task
        await client.aclose()
    assert (await outbox.stats()).pending == 0
    assert await stored_events(stack.db_url, "edge-ha") == (1800, 1800)  # every event once, none missing
    assert stack.nginx.access_log().count('POST /api/v1/edges/edge-ha/batches HTTP/1.1" 200') >= 18


def test_pinning_needs_https(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        '[edge]\ncloud_url = "http://127.0.0.1:8600"\ncloud_cert_sha256 = "' + "ab:" * 31 + 'ab"\n'
    )
    with pytest.raises(ConfigError, match="need an https:// cloud_url"):
        load_settings(config)
    config.write_text('[edge]\ncloud_url = "https://cloud.example"\ncloud_cert_sha256 = "not-hex"\n')
    with pytest.raises(ConfigError, match="cloud_cert_sha256"):
        load_settings(config)


def test_edge_agent_uses_its_configured_ca(
    stack: Stack, tmp_path: Path, mosquitto_broker: MosquittoProcess
) -> None:
    """`shelfsense edge run` itself, configured with cloud_ca_file: an MQTT reading goes through
    nginx's TLS to the cloud; with a wrong pin instead, nothing arrives and the log says why."""
    token = create_edge(stack.replicas[1], "site-1", "edge-agent")

    def start_edge(tls_line: str, workdir: Path) -> subprocess.Popen[bytes]:
        workdir.mkdir()
        (workdir / "edge.toml").write_text(
            f'[edge]\nedge_id = "edge-agent"\nsite_id = "site-1"\ncloud_url = "{stack.url}"\n{tls_line}\n'
            f'db_path = "{workdir / "edge.db"}"\nsync_interval_s = 0.2\n'
            f'[edge.mqtt]\nurl = "{mosquitto_broker.url}"\nclient_id = "agent-{workdir.name}"\n'
            '[[edge.mqtt.sensors]]\ntopic = "zigbee2mqtt/fridge"\nformat = "zigbee2mqtt"\n'
            'sensor_id = "fridge-1"\nzone = "cold-1"\n'
        )
        return shelfsense(
            ["edge", "run", "--config", str(workdir / "edge.toml")],
            workdir,
            log=workdir / "edge.log",
            env={"SHELFSENSE_EDGE__TOKEN": token},
        )

    def publish() -> None:
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto_broker.port), "-q", "1"]
        payload = '{"temperature": 4.5, "humidity": 61}'
        subprocess.run([*argv, "-t", "zigbee2mqtt/fridge", "-m", payload], check=True, timeout=10)

    def stored() -> int:
        return asyncio.run(stored_events(stack.db_url, "edge-agent"))[0]

    pinned_wrong = start_edge(f'cloud_cert_sha256 = "{"00" * 32}"', tmp_path / "wrong")
    log = tmp_path / "wrong" / "edge.log"
    try:
        wait_until(lambda: publish() or "is not the pinned" in log.read_text(errors="replace"), 60, "refusal")
        assert stored() == 0
    finally:
        pinned_wrong.terminate()
        pinned_wrong.wait(timeout=30)
    agent = start_edge(f'cloud_ca_file = "{stack.tls.ca_crt}"', tmp_path / "ca")
    try:
        wait_until(lambda: publish() or stored() > 0, 60, "the reading in the cloud")
    finally:
        agent.terminate()
        assert agent.wait(timeout=30) == 0  # SIGTERM: a clean stop
