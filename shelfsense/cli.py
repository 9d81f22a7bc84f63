"""The ``shelfsense`` command line.

Sub-commands import their heavy modules lazily, so ``shelfsense config check`` does not start to
import FastAPI and ``shelfsense --help`` stays instant.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shelfsense.config import ConfigError, Settings, effective_config, load_settings

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    config = getattr(args, "config", None)
    return load_settings(Path(config) if config else None, **overrides)


# --- config -------------------------------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(Path(args.file))
    print(json.dumps(effective_config(settings), indent=2, sort_keys=True))
    return 0


# --- cloud --------------------------------------------------------------------------------------


def _cloud_overrides(args: argparse.Namespace) -> dict[str, Any]:
    cloud: dict[str, Any] = {}
    if getattr(args, "host", None):
        cloud["host"] = args.host
    if getattr(args, "port", None) is not None:
        cloud["port"] = args.port
    if getattr(args, "db", None):
        cloud["db_url"] = normalise_db_url(args.db)
    if getattr(args, "workers", None):
        cloud["workers"] = args.workers
    return {"cloud": cloud} if cloud else {}


def normalise_db_url(url: str) -> str:
    """Accept plain ``sqlite:///x.db`` / ``postgresql://...`` and pick the async drivers we ship."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def cmd_cloud_serve(args: argparse.Namespace) -> int:
    from cloud.main import serve

    serve(_settings_from(args, **_cloud_overrides(args)))
    return 0


def cmd_cloud_create_edge(args: argparse.Namespace) -> int:
    from cloud.admin import create_edge

    settings = _settings_from(args, **_cloud_overrides(args))
    edge_id, token = create_edge(settings.cloud.db_url, args.site, args.name)
    # The token is shown once, here, and stored only as a hash.
    print(json.dumps({"edge_id": edge_id, "site_id": args.site, "token": token}))
    return 0


def cmd_cloud_create_user(args: argparse.Namespace) -> int:
    from cloud.admin import create_user

    settings = _settings_from(args, **_cloud_overrides(args))
    token = create_user(settings.cloud.db_url, args.name, args.role)
    print(json.dumps({"user": args.name, "role": args.role, "token": token}))
    return 0


def cmd_cloud_set_password(args: argparse.Namespace) -> int:
    from cloud.admin import AdminError
    from cloud.web.sessions import set_password

    # Read from stdin, never from argv: command lines end up in shell history and `ps`.
    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("password: ")
    settings = _settings_from(args, **_cloud_overrides(args))
    try:
        set_password(settings.cloud.db_url, args.name, password)
    except AdminError as exc:
        print(f"shelfsense: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"user": args.name, "password": "set"}))
    return 0


def cmd_cloud_migrate(args: argparse.Namespace) -> int:
    from cloud.core.migrate import migrate

    settings = _settings_from(args, **_cloud_overrides(args))
    print(json.dumps({"revision": migrate(settings.cloud.db_url)}))
    return 0


def cmd_cloud_import(args: argparse.Namespace) -> int:
    from cloud.services.masterdata import MasterDataError, import_file_sync

    settings = _settings_from(args, **_cloud_overrides(args))
    try:
        count = import_file_sync(settings.cloud.db_url, args.kind, Path(args.file))
    except MasterDataError as exc:  # all-or-nothing: nothing was written
        print(f"shelfsense: import refused, nothing written: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"kind": args.kind, "imported": count}))
    return 0


def cmd_cloud_export(args: argparse.Namespace) -> int:
    from cloud.services.masterdata import export_dir_sync

    settings = _settings_from(args, **_cloud_overrides(args))
    paths = export_dir_sync(settings.cloud.db_url, Path(args.dir), args.format)
    print(json.dumps({"files": [str(p) for p in paths]}))
    return 0


def cmd_cloud_replenish(args: argparse.Namespace) -> int:
    from datetime import date

    from cloud.replenish.errors import ReplenishError
    from cloud.replenish.service import replenish_sync

    settings = _settings_from(args, **_cloud_overrides(args))
    today = date.fromisoformat(args.today) if args.today else None
    try:
        report = replenish_sync(
            settings.cloud.db_url, settings.cloud.replenish, site=args.site, dry_run=args.dry_run, today=today
        )
    except ReplenishError as exc:  # bad rules file, unusable demand or policy input
        print(f"shelfsense: replenish refused: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0


def cmd_cloud_lot_report(args: argparse.Namespace) -> int:
    from cloud.core.errors import CloudError
    from cloud.services.lot_report import report_sync

    settings = _settings_from(args, **_cloud_overrides(args))
    try:
        data = report_sync(settings.cloud.db_url, args.lot, args.format)
    except CloudError as exc:  # unknown or ambiguous lot, PNG without matplotlib
        print(f"shelfsense: {exc}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_bytes(data)
        print(json.dumps({"lot": args.lot, "format": args.format, "out": args.out, "bytes": len(data)}))
    elif args.format == "png":
        print("shelfsense: a PNG needs --out FILE", file=sys.stderr)
        return EXIT_USAGE
    else:
        sys.stdout.write(data.decode())
    return 0


# --- edge ---------------------------------------------------------------------------------------


def cmd_edge_run(args: argparse.Namespace) -> int:
    from edge.agent import run_edge

    return run_edge(_settings_from(args))


def cmd_edge_status(args: argparse.Namespace) -> int:
    from edge.status import read_status

    db_path = Path(args.db) if args.db else _settings_from(args).edge.db_path
    print(json.dumps(read_status(db_path), indent=2, sort_keys=True, default=str))
    return 0


def cmd_edge_new_incarnation(args: argparse.Namespace) -> int:
    """After restoring an edge database from a backup (agent stopped): see edge.incarnation."""
    from edge.errors import OutboxError
    from edge.incarnation import start_new

    db_path = Path(args.db) if args.db else _settings_from(args).edge.db_path
    try:
        print(json.dumps({"db": str(db_path), "incarnation": start_new(db_path)}))
    except OutboxError as exc:
        print(f"shelfsense: {exc}", file=sys.stderr)
        return 1
    return 0


# --- demo ---------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from shelfsense.demo import DemoOptions, run_demo

    options = DemoOptions(
        duration_s=args.duration,
        json_summary=args.json,
        workdir=Path(args.workdir) if args.workdir else None,
    )
    return run_demo(options)


# --- coldchain / dashboards ---------------------------------------------------------------------


def cmd_coldchain_mkt(args: argparse.Namespace) -> int:
    from cloud.coldchain.mkt import MktError, mean_kinetic_temperature, read_readings_csv

    try:
        times, temps = read_readings_csv(Path(args.file))
        mkt = mean_kinetic_temperature(times, temps, activation_energy_kj=args.activation_energy)
    except MktError as exc:
        print(f"shelfsense: {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"mkt_c": round(mkt, 4), "readings": len(times)}))
    return 0


def cmd_dashboards_export(args: argparse.Namespace) -> int:
    from dashboards.provision import export_provisioning

    try:
        paths = export_provisioning(Path(args.dir), influx_url=args.influx_url, database=args.database)
    except OSError as exc:
        print(f"shelfsense: cannot write to {args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"files": [str(p) for p in paths]}))
    return 0


def cmd_dashboards_push(args: argparse.Namespace) -> int:
    from dashboards.provision import ProvisionError, push_to_grafana

    try:
        result = push_to_grafana(
            args.grafana_url, args.token, influx_url=args.influx_url, database=args.database
        )
    except ProvisionError as exc:
        print(f"shelfsense: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _add_coldchain_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    coldchain = commands.add_parser("coldchain", help="cold-chain evidence").add_subparsers(
        dest="coldchain_command", required=True
    )
    mkt = coldchain.add_parser("mkt", help="mean kinetic temperature of a timestamp,temperature CSV")
    mkt.add_argument("file", help="CSV of timestamp (ISO-8601 or epoch seconds),temperature (°C)")
    mkt.add_argument(
        "--activation-energy", type=float, default=83.144, metavar="KJ_PER_MOL", help="ΔH (default 83.144)"
    )
    mkt.set_defaults(handler=cmd_coldchain_mkt)

    dashboards = commands.add_parser("dashboards", help="Grafana dashboards").add_subparsers(
        dest="dashboards_command", required=True
    )
    export = dashboards.add_parser("export", help="write Grafana provisioning files to DIR")
    export.add_argument("dir")
    push = dashboards.add_parser("push", help="upload the datasource and dashboards to Grafana")
    push.add_argument("--grafana-url", required=True)
    push.add_argument("--token", required=True, help="Grafana service account token")
    for sub in (export, push):
        sub.add_argument("--influx-url", default="http://127.0.0.1:8086", help="InfluxDB 1.x URL for Grafana")
        sub.add_argument("--database", default="shelfsense", help="InfluxDB database")
    export.set_defaults(handler=cmd_dashboards_export)
    push.set_defaults(handler=cmd_dashboards_push)


# --- forecast -----------------------------------------------------------------------------------


def cmd_forecast(args: argparse.Namespace) -> int:
    """Forecast one demand series from a file so planners can check a series by hand."""
    from cloud.replenish.forecast import forecast
    from cloud.replenish.series_io import parse_series

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"shelfsense: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        series = parse_series(text)
        result = forecast(series, args.method, horizon=args.horizon, alpha=args.alpha, beta=args.beta)
    except ValueError as exc:  # ForecastInputError is a ValueError
        print(f"shelfsense: {args.file}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(result.series(0)))
    return 0


# --- parser -------------------------------------------------------------------------------------


def _add_cloud_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file")
    parser.add_argument("--host", help="listen address (default from config: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (0 picks a free one)")
    parser.add_argument("--db", help="database URL: sqlite:///FILE or postgresql://USER@HOST/DB")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shelfsense", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run cloud, broker, simulators and an edge on embedded defaults")
    demo.add_argument("--duration", type=float, help="stop after SECONDS and print a summary")
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    demo.add_argument("--workdir", help="keep databases and logs here (default: a temporary folder)")
    demo.set_defaults(handler=cmd_demo)

    cloud = commands.add_parser("cloud", help="the cloud service").add_subparsers(
        dest="cloud_command", required=True
    )
    serve = cloud.add_parser("serve", help="run the HTTP API")
    _add_cloud_flags(serve)
    serve.add_argument("--workers", type=int, help="server processes sharing the port (default 1)")
    serve.set_defaults(handler=cmd_cloud_serve)
    migrate = cloud.add_parser("migrate", help="upgrade the database schema to the latest revision")
    _add_cloud_flags(migrate)
    migrate.set_defaults(handler=cmd_cloud_migrate)
    import_ = cloud.add_parser("import", help="import master data from a CSV or JSON file (all rows or none)")
    import_.add_argument("file", help="FILE.csv or FILE.json")
    import_.add_argument(
        "--kind",
        required=True,
        choices=[
            "products",
            "locations",
            "lots",
            "items",
            "suppliers",
            "product_suppliers",
            "params",
            "purchase_orders",
            "demand",
        ],
        help="columns of each kind: docs/import-formats.md",
    )
    _add_cloud_flags(import_)
    import_.set_defaults(handler=cmd_cloud_import)
    export = cloud.add_parser("export", help="export master data to DIR/<kind>.csv|json")
    export.add_argument("dir")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    _add_cloud_flags(export)
    export.set_defaults(handler=cmd_cloud_export)
    replenish = cloud.add_parser("replenish", help="run the restocking planner once (JSON report)")
    replenish.add_argument("--dry-run", action="store_true", help="print the proposals, write nothing")
    replenish.add_argument("--site", help="only this site")
    replenish.add_argument("--today", help="plan as of this day (YYYY-MM-DD; default: today, UTC)")
    _add_cloud_flags(replenish)
    replenish.set_defaults(handler=cmd_cloud_replenish)
    lot_report = cloud.add_parser(
        "lot-report", help="a lot's cold-chain report (stays, readings, excursions, MKT)"
    )
    lot_report.add_argument("lot", help="SKU:LOT_CODE (or a lot code only one product uses)")
    lot_report.add_argument("--format", choices=["json", "csv", "png"], default="json")
    lot_report.add_argument("--out", help="write to FILE instead of stdout (required for png)")
    _add_cloud_flags(lot_report)
    lot_report.set_defaults(handler=cmd_cloud_lot_report)
    admin = cloud.add_parser("admin", help="tokens and edges").add_subparsers(
        dest="admin_command", required=True
    )
    create_edge = admin.add_parser("create-edge", help="register an edge of a site; prints its token once")
    create_edge.add_argument("site")
    create_edge.add_argument("name")
    _add_cloud_flags(create_edge)
    create_edge.set_defaults(handler=cmd_cloud_create_edge)
    create_user = admin.add_parser("create-user", help="create an API user token; prints it once")
    create_user.add_argument("name")
    create_user.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    _add_cloud_flags(create_user)
    create_user.set_defaults(handler=cmd_cloud_create_user)
    set_password = admin.add_parser(
        "set-password", help="set a user's operator-page password (read from stdin)"
    )
    set_password.add_argument("name")
    _add_cloud_flags(set_password)
    set_password.set_defaults(handler=cmd_cloud_set_password)

    edge = commands.add_parser("edge", help="the edge gateway").add_subparsers(
        dest="edge_command", required=True
    )
    run = edge.add_parser("run", help="run the gateway agent")
    run.add_argument("--config", required=True, help="TOML config file")
    run.set_defaults(handler=cmd_edge_run)
    status = edge.add_parser("status", help="print local stock, sensors, alarms and sync state")
    status.add_argument("--config", help="TOML config file (to find the database)")
    status.add_argument("--db", help="edge database file")
    status.set_defaults(handler=cmd_edge_status)
    reincarnate = edge.add_parser(
        "new-incarnation", help="give a restored edge database a new sequence stream (agent stopped)"
    )
    reincarnate.add_argument("--config", help="TOML config file (to find the database)")
    reincarnate.add_argument("--db", help="edge database file")
    reincarnate.set_defaults(handler=cmd_edge_new_incarnation)

    config = commands.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", required=True
    )
    check = config.add_parser("check", help="validate a config file and print the effective config")
    check.add_argument("file")
    check.set_defaults(handler=cmd_config_check)

    _add_coldchain_commands(commands)
    fc = commands.add_parser("forecast", help="forecast one daily demand series (qty or date,qty lines)")
    fc.add_argument("file", help="FILE.csv: one quantity per line, or date,qty")
    fc.add_argument(
        "--method", choices=["ses", "holt_winters", "croston", "sba", "tsb", "auto"], default="auto"
    )
    fc.add_argument("--alpha", type=float, help="smoothing of level / demand size (fitted if omitted)")
    fc.add_argument("--beta", type=float, help="TSB probability / Holt-Winters trend smoothing")
    fc.add_argument("--horizon", type=int, default=7, help="days to forecast (default 7)")
    fc.set_defaults(handler=cmd_forecast)

    _add_optional_commands(commands)
    return parser


def _add_optional_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands owned by other packages (sim, decode) register themselves here."""
    from shelfsense.cli_tools import add_tool_commands

    add_tool_commands(commands)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"shelfsense: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
