"""The cloud FastAPI application: ``create_app(settings)`` and ``serve(settings)``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cloud.alerts import routes as alerts
from cloud.api import health, summary
from cloud.api.handlers import install_error_handlers
from cloud.api.http_metrics import HttpMetrics
from cloud.api.openapi import install_docs
from cloud.api.read_gate import ReadGate, ReadLoop
from cloud.coldchain import sensor_routes as sensors
from cloud.coldchain.runtime import ColdChainOptions, coldchain_runtime
from cloud.core import db
from cloud.core.config import zone_limits
from cloud.core.metrics import Metrics
from cloud.core.migrate import migrate, upgrade_to_head
from cloud.core.pools import create_read_engine
from cloud.epcis import routes as epcis
from cloud.ingest import edge_routes as edges
from cloud.ingest import routes as ingest
from cloud.lots import routes as lots
from cloud.lots.expiry import expiry_job
from cloud.lots.readmodel import read_model_job
from cloud.masterdata import routes as masterdata
from cloud.notify.notifier import running_notifier
from cloud.replenish import kpi_routes as kpis
from cloud.replenish import routes as proposals
from cloud.replenish.dead_stock import dead_stock_job, dead_stock_options
from cloud.replenish.options import ReplenishOptions
from cloud.replenish.service import background_job as replenish_job
from cloud.retention.job import retention_job
from cloud.stock import routes as stock
from cloud.stocktake import routes as stocktakes
from cloud.stocktake.service import StocktakeOptions, background_job
from cloud.users import routes as users
from cloud.web import install as web_install
from cloud.whatif import routes as whatif_routes
from shelfsense.config import Settings
from shelfsense.process import tune_gc
from shelfsense.redact import install_log_masking, register_settings_secrets

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001


def create_app(
    settings: Settings,
    *,
    stocktake: StocktakeOptions | None = None,
    coldchain: ColdChainOptions | None = None,
) -> FastAPI:
    """The application; the lifespan migrates the database to head, runs the shared stocktake job
    (``stocktake``; default every 300 s) and disposes the engine at the end."""
    stocktake_options = stocktake or StocktakeOptions()
    register_settings_secrets(settings)  # masked in every log line and delivery record
    install_log_masking()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.create_engine(settings.cloud.db_url)
        read_loop = ReadLoop()
        try:
            await upgrade_to_head(engine)  # serialised across replicas, see cloud.core.migrate
            app.state.engine = engine
            app.state.read_engine = read_engine(settings)
            read_loop.start(heavy_read_engines(settings))
            app.state.read_loop = read_loop
            log.info("cloud database ready (%s)", engine.url.get_backend_name())
            # The notifier first: it delivers for everything after it, so it stops last.
            options = coldchain or ColdChainOptions()
            jobs_engine = read_loop.engines[0] if read_loop.engines else engine
            async with (
                running_notifier(
                    app,
                    settings.cloud.coldchain,
                    engine,
                    clock=options.clock,
                    drain_timeout_s=options.drain_timeout_s,
                ) as notifier,
                coldchain_runtime(app, settings, engine, notifier, options),  # InfluxDB, gaps, escalation
                read_loop.hosting(  # off the API loop: these two need nothing of it
                    lambda: background_job(jobs_engine, stocktake_options),
                    lambda: read_model_job(jobs_engine),  # the lot-evidence read model's catch-up
                ),
                replenish_job(engine, app.state.replenish, notifier=notifier),  # rules' notify actions
                expiry_job(engine, notifier=notifier),  # lot expiry alerts (cloud.lots.expiry)
                dead_stock_job(engine, dead_stock_options(settings), notifier=notifier),  # dead stock alerts
                retention_job(engine, settings.cloud.retention),  # readings roll-up, partitions
            ):
                yield
        finally:
            await read_loop.stop()
            if getattr(app.state, "read_engine", None) is not None:
                await app.state.read_engine.dispose()
            await engine.dispose()

    app = FastAPI(
        title="ShelfSense cloud",
        version="0.1.0",
        summary="Edge sync ingest, stock, sensors and cold-chain alerts",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by install_docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.zones = zone_limits(settings)
    app.state.stocktake = stocktake_options
    app.state.replenish = ReplenishOptions.from_settings(settings.cloud.replenish)
    install_error_handlers(app)
    # lots before masterdata: /lots/{lot_id}/report must win over master data's /lots/{sku}/{lot_code},
    # and its GET /lots is a superset of master data's listing (cloud.lots.routes).
    for module in (health, ingest, stock, sensors, alerts, edges, summary, lots, masterdata, stocktakes):
        app.include_router(module.router)
    for module in (proposals, kpis, epcis):  # restocking (issue 7)
        app.include_router(module.router)
    app.include_router(whatif_routes.router)  # what-if simulation (issue 17)
    app.include_router(users.router)  # user administration (issue 12)
    web_install(app)  # the operator page (/ui/) and its session login
    if settings.cloud.trusted_proxies:
        # Only a configured proxy may name the client (X-Forwarded-For) and scheme (-Proto);
        # uvicorn's own handling is off (build_server), it would believe any loopback peer.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.cloud.trusted_proxies))
    install_docs(app)  # /docs without internet, openapi.json with the real error body
    app.add_middleware(ReadGate, settings=settings.cloud.reads)  # heavy reads bounded, off this loop
    app.add_middleware(HttpMetrics)  # request counts and latencies per route on /metrics
    return app


def read_engine(settings: Settings) -> AsyncEngine:
    """The API loop's read pool (the ``DbConn`` dependency)."""
    reads = settings.cloud.reads
    return create_read_engine(
        settings.cloud.db_url, pool_size=reads.pool_size, statement_timeout_s=reads.statement_timeout_s
    )


def heavy_read_engines(settings: Settings) -> tuple[AsyncEngine, AsyncEngine]:
    """The read loop's engines: a small main pool (authentication) and one read connection per
    admitted heavy read."""
    reads = settings.cloud.reads
    url, slots = settings.cloud.db_url, reads.heavy_concurrency
    main = db.create_engine(url, pool_size=2, max_overflow=slots)
    heavy = create_read_engine(url, pool_size=slots, statement_timeout_s=reads.statement_timeout_s)
    return main, heavy


def build_server(settings: Settings, *, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for the app; ``await server.serve()`` runs it inside an existing loop."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.cloud.host,
        port=settings.cloud.port,
        log_level=log_level,
        # One access-log line per request (an edge syncs every few seconds) only with `-v`.
        access_log=logging.getLogger().isEnabledFor(logging.DEBUG),
        proxy_headers=False,  # create_app trusts forwarded headers from cloud.trusted_proxies only
    )
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    """Run the cloud service until interrupted (``shelfsense cloud serve``)."""
    if settings.cloud.workers > 1:
        serve_workers(settings)
    else:
        _run_server(settings)


def _run_server(settings: Settings, sockets: list[socket.socket] | None = None) -> None:
    server = build_server(settings)
    tune_gc()  # this process is the server: its start-up objects live as long as it does
    # The heavy reads' loop (cloud.api.read_gate) is CPU-bound; the API loop waits on I/O many times
    # per batch and, after each wait, for the interpreter lock: up to the switch interval (5 ms by
    # default) every time, the convoy effect. 1 ms bounds that wait for ingest and /healthz.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    server.run(sockets=sockets)


def serve_workers(settings: Settings) -> None:
    """``cloud.workers`` server processes accepting on one listening socket (the kernel spreads the
    connections); this process only supervises them.

    The schema is migrated here first, so the workers start on a current database instead of
    queueing on the migration lock. The socket is bound before forking and nothing else (no event
    loop, no thread) exists yet, so each child starts clean. SIGTERM/SIGINT are passed on; when a
    worker dies the others are stopped too and the exit is non-zero, for the service manager
    (systemd, a container runtime) to restart the whole service.
    """
    migrate(settings.cloud.db_url)
    listener = socket.create_server((settings.cloud.host, settings.cloud.port), backlog=2048)
    log.info("cloud listening on %s:%d with %d workers", *listener.getsockname()[:2], settings.cloud.workers)
    children = [_fork_worker(settings, listener) for _ in range(settings.cloud.workers)]
    listener.close()
    stop = _pass_on_signals(children)
    failed = False
    while children:
        pid, status = os.wait()
        if pid in children:
            children.remove(pid)
            if os.waitstatus_to_exitcode(status) != 0 and not stop:
                failed = True
                log.error("cloud worker %d exited with %d; stopping the others", pid, status)
                for other in children:
                    os.kill(other, signal.SIGTERM)
    if failed:
        raise SystemExit(1)


def _fork_worker(settings: Settings, listener: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _run_server(settings, [listener])
        code = 0
    finally:
        os._exit(code)  # never return into the parent's code path


def _pass_on_signals(children: list[int]) -> list[int]:
    """Forward SIGTERM/SIGINT to the workers; the returned list gets the signal once one came."""
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return received


__all__ = ["build_server", "create_app", "serve", "serve_workers"]
