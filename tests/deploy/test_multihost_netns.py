"""Several hosts, for real: network namespaces joined by veths and a bridge (see netns_lab).

    db  (10.213.x.2)   PostgreSQL 15, its own cluster
    c1, c2 (.11, .12)  `shelfsense cloud serve` replicas, fast cold-chain ticks
    px  (.30)          Debian's nginx with deploy/nginx/shelfsense.conf, TLS from a test CA
    e1, e2 (.41, .42)  edges (real outbox + sync loop, CA pinned) behind tc netem delay, jitter, loss

While the edges stream readings, replica c1 is killed, edge e2 is partitioned for a while, and the
proxy is stopped and started again. Afterwards every acknowledged event is stored exactly once,
each edge's acknowledged sequence equals what it sent, and the cold-chain tick was claimed at most
once per interval across the replicas. Skips visibly where namespaces cannot be made.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_harness import CloudReplica, Nginx, create_edge, make_test_ca, wait_until
from netns_lab import Lab
from sqlalchemy import func, select

from cloud.coldchain import sensor_tables as sensors_db
from cloud.coldchain.service import JOB_NAME
from cloud.core import db
from cloud.ingest import tables as ingest_db

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
PER_PHASE = 500
PHASES = 3
TICK_S = 0.3
EDGE_SCRIPT = Path(__file__).with_name("netns_edge.py")
NETEM = "delay 20ms 10ms loss 1%"
# Where the kernel has no sch_netem (some VM kernels): 4 Mbit/s with a 20 ms queue that drops bursts.
TBF = "rate 4mbit burst 16kb latency 20ms"


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = Lab.unavailable_reason()
    if reason:
        pytest.skip(f"multi-host test needs network namespaces: {reason}")
    lab = Lab().start()
    try:
        yield lab
    finally:
        lab.cleanup()


async def _state(db_url: str) -> dict[str, object]:
    engine = db.create_engine(db_url)
    try:
        async with engine.connect() as conn:
            acked = dict(
                (await conn.execute(select(ingest_db.edges.c.edge_id, ingest_db.edges.c.acked_through))).all()
            )
            per_edge = dict(
                (
                    await conn.execute(
                        select(ingest_db.events.c.edge_id, func.count()).group_by(ingest_db.events.c.edge_id)
                    )
                ).all()
            )
            readings = dict(
                (
                    await conn.execute(
                        select(sensors_db.sensor_readings.c.sensor_id, func.count()).group_by(
                            sensors_db.sensor_readings.c.sensor_id
                        )
                    )
                ).all()
            )
            job = (await conn.execute(select(db.jobs).where(db.jobs.c.name == JOB_NAME))).one_or_none()
    finally:
        await engine.dispose()
    runs = (job.runs, job.last_started_at.timestamp()) if job is not None else (0, 0.0)
    return {"acked": acked, "events": per_edge, "readings": readings, "job": runs}


def state(db_url: str) -> dict[str, object]:
    return asyncio.run(_state(db_url))


def acked(db_url: str, edge: str) -> int:
    value = state(db_url)["acked"]
    assert isinstance(value, dict)
    return int(value.get(edge, 0))


def test_replicas_proxy_and_edges_on_separate_hosts(lab: Lab, tmp_path: Path) -> None:
    addr = {
        h: lab.add_host(h, o)
        for h, o in (("db", 2), ("c1", 11), ("c2", 12), ("px", 30), ("e1", 41), ("e2", 42))
    }
    db_url = lab.start_postgres("db")
    tls = make_test_ca(tmp_path / "tls", hosts=(addr["px"],))
    # The replicas run deploy/cloud.toml (as the systemd unit and compose do), environment on top.
    fast_ticks = {"SHELFSENSE_CLOUD__COLDCHAIN__TICK_S": str(TICK_S)}
    replicas = [
        CloudReplica(
            tmp_path / h, db_url, addr[h], 8600, lab.ns(h), shipped_config=True, extra_env=fast_ticks
        )
        for h in ("c1", "c2")
    ]
    proxy = Nginx(
        tmp_path / "px", tls, [f"{addr[h]}:8600" for h in ("c1", "c2")], f"{addr['px']}:8443", lab.ns("px")
    )
    edges: dict[str, subprocess.Popen[str]] = {}
    try:
        for replica in replicas:
            replica.start()
        wait_until(lambda: all(r.ready() for r in replicas), 120, "cloud replicas on c1 and c2")
        proxy.start()
        for host in ("e1", "e2"):
            if not (applied := lab.shape(host, NETEM, TBF)).startswith("netem"):
                warnings.warn(
                    f"no tc netem in this kernel: {host}'s link shaped with {applied}", stacklevel=1
                )
            edge_id = f"edge-{host}"
            token = create_edge(replicas[0], "site-1", edge_id)
            workdir = tmp_path / host
            workdir.mkdir()
            argv = [
                sys.executable,
                str(EDGE_SCRIPT),
                "--dir",
                str(workdir),
                "--cloud-url",
                f"https://{addr['px']}:8443",
            ]
            argv += [
                "--edge-id",
                edge_id,
                "--token",
                token,
                "--ca",
                str(tls.ca_crt),
                "--per-phase",
                str(PER_PHASE),
            ]
            edges[host] = subprocess.Popen([*lab.exec_prefix(host), *argv], stdout=subprocess.PIPE, text=True)

        def release(phase: int, *hosts: str) -> None:
            for host in hosts:
                (tmp_path / host / f"go-{phase}").touch()

        release(1, "e1", "e2")
        wait_until(
            lambda: min(acked(db_url, "edge-e1"), acked(db_url, "edge-e2")) >= PER_PHASE, 90, "phase 1"
        )
        first_job = state(db_url)["job"]
        replicas[0].kill()  # c1 dies; nginx fails over to c2
        lab.partition("e2", down=True)  # e2 loses its link while e1 goes on
        release(2, "e1", "e2")
        wait_until(lambda: acked(db_url, "edge-e1") >= 2 * PER_PHASE, 90, "phase 2 through c2")
        lab.partition("e2", down=False)
        wait_until(
            lambda: acked(db_url, "edge-e2") >= 2 * PER_PHASE, 90, "e2 catching up after the partition"
        )
        proxy.stop()  # the proxy restarts while both edges append
        release(3, "e1", "e2")
        wait_until(
            lambda: all((tmp_path / h / "appended-3").exists() for h in ("e1", "e2")), 60, "phase 3 appended"
        )
        proxy.start()
        results = []
        for process in edges.values():
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0
            results.append(json.loads(out.strip().splitlines()[-1]))
        final = state(db_url)
    finally:
        for process in edges.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        proxy.stop()
        for replica in replicas:
            replica.kill()
    total = PHASES * PER_PHASE
    assert sorted((r["edge"], r["acked"]) for r in results) == [("edge-e1", total), ("edge-e2", total)]
    assert final["acked"] == {"edge-e1": total, "edge-e2": total}
    assert final["events"] == {"edge-e1": total, "edge-e2": total}  # exactly once, none missing
    assert final["readings"] == {"probe-edge-e1": total, "probe-edge-e2": total}
    (runs0, start0), (runs1, start1) = first_job, final["job"]  # type: ignore[misc]
    assert runs1 > runs0 and runs1 - runs0 <= (start1 - start0) / TICK_S + 0.01  # once per interval
