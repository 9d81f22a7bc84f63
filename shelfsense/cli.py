"""The ``shelfsense`` command line.

Sub-commands import their heavy modules lazily, so ``shelfsense config check`` does not start to
import FastAPI and ``shelfsense --help`` stays instant.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from shelfsense import cli_render as render
from shelfsense.cli_analytics import add_analytics_commands
from shelfsense.config import ConfigError, Settings, effective_config, load_settings, require_edge_token
from shelfsense.output import add_json_flags, emit, key_values, progress_bars
from shelfsense.redact import install_log_masking
from shelfsense.userlog import configure_logging, one_line, user_errors

T = TypeVar("T")

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    config = getattr(args, "config", None)
    return load_settings(Path(config) if config else None, **overrides)


# --- config -------------------------------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(Path(args.file))
    emit(args, effective_config(settings), render.config_check, indent=2, sort_keys=True)
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
    emit(args, {"edge_id": edge_id, "site_id": args.site, "token": token})
    return 0


def _admin_call(operation: Callable[[], T]) -> T:
    """Run an admin operation; its refusals (AdminError) become a usage error naming the problem."""
    from cloud.core.errors import AdminError

    try:
        return operation()
    except AdminError as exc:
        raise ConfigError(str(exc)) from exc


def cmd_cloud_create_user(args: argparse.Namespace) -> int:
    from cloud.admin import create_user

    settings = _settings_from(args, **_cloud_overrides(args))
    sites = args.sites.split(",") if args.sites is not None else None
    token = _admin_call(lambda: create_user(settings.cloud.db_url, args.name, args.role, sites=sites))
    emit(
        args,
        {"user": args.name, "role": args.role, "sites": sites, "token": token},
        lambda d: key_values({**d, "sites": d["sites"] or "every site (or unchanged)"}),
    )
    return 0


def cmd_cloud_revoke_token(args: argparse.Namespace) -> int:
    from cloud.admin import revoke_token, revoke_user_tokens

    settings = _settings_from(args, **_cloud_overrides(args))
    if args.user is not None:
        revoked = _admin_call(lambda: revoke_user_tokens(settings.cloud.db_url, args.user))
        emit(args, {"user": args.user, "revoked": revoked})
        return 0
    # Read from stdin, never from argv: command lines end up in shell history and `ps`.
    token = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("token: ").strip()
    found = revoke_token(settings.cloud.db_url, token)
    emit(args, {"revoked": found})
    return 0 if found else 1


def cmd_cloud_set_disabled(args: argparse.Namespace) -> int:
    from cloud.admin import set_user_disabled

    settings = _settings_from(args, **_cloud_overrides(args))
    _admin_call(lambda: set_user_disabled(settings.cloud.db_url, args.name, args.disabled))
    emit(args, {"user": args.name, "disabled": args.disabled})
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
    emit(args, {"user": args.name, "password": "set"})
    return 0


def cmd_cloud_migrate(args: argparse.Namespace) -> int:
    from cloud.core.migrate import migrate

    settings = _settings_from(args, **_cloud_overrides(args))
    emit(args, {"revision": migrate(settings.cloud.db_url)})
    return 0


def cmd_cloud_import(args: argparse.Namespace) -> int:
    from cloud.masterdata.records import MasterDataError
    from cloud.masterdata.service import import_file_sync

    settings = _settings_from(args, **_cloud_overrides(args))
    try:
        count = import_file_sync(settings.cloud.db_url, args.kind, Path(args.file))
    except MasterDataError as exc:  # all-or-nothing: nothing was written
        print(f"shelfsense: import refused, nothing written: {exc}", file=sys.stderr)
        return 1
    emit(args, {"kind": args.kind, "imported": count}, lambda d: f"imported {d['imported']} {d['kind']}")
    return 0


def cmd_cloud_export(args: argparse.Namespace) -> int:
    from cloud.masterdata.records import MasterDataError
    from cloud.masterdata.service import export_dir_sync

    settings = _settings_from(args, **_cloud_overrides(args))
    try:
        paths = export_dir_sync(settings.cloud.db_url, Path(args.dir), args.format)
    except MasterDataError as exc:  # e.g. a symlink where a file would go
        print(f"shelfsense: export refused: {exc}", file=sys.stderr)
        return 1
    emit(args, {"files": [str(p) for p in paths]}, render.files_written)
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
    emit(args, report, render.replenish_report, indent=2, sort_keys=True)
    return 0


def cmd_cloud_lot_report(args: argparse.Namespace) -> int:
    from cloud.core.errors import CloudError
    from cloud.lots.report import report_sync

    settings = _settings_from(args, **_cloud_overrides(args))
    fmt: str = args.format or ("json" if args.json or args.out else "text")
    try:
        data = report_sync(settings.cloud.db_url, args.lot, args.format or "json")
    except CloudError as exc:  # unknown or ambiguous lot, PNG without matplotlib
        print(f"shelfsense: {exc}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_bytes(data)
        emit(args, {"lot": args.lot, "format": fmt, "out": args.out, "bytes": len(data)})
    elif fmt == "png":
        print("shelfsense: a PNG needs --out FILE", file=sys.stderr)
        return EXIT_USAGE
    elif fmt == "text":
        print(render.lot_report(data))
    else:
        sys.stdout.write(data.decode())
    return 0


def cmd_cloud_backup_restore(args: argparse.Namespace) -> int:
    """``cloud backup DIR`` and ``cloud restore DIR`` (cloud.backup)."""
    from cloud import backup as ops

    settings = _settings_from(args, **_cloud_overrides(args))
    restoring = args.cloud_command == "restore"
    try:
        result = (ops.restore if restoring else ops.backup)(settings.cloud.db_url, Path(args.dir))
    except ops.BackupError as exc:
        print(f"shelfsense: {'restore refused' if restoring else 'backup failed'}: {exc}", file=sys.stderr)
        return 1
    emit(args, {"dir": args.dir, **result})
    return 0


# --- edge ---------------------------------------------------------------------------------------


def cmd_edge_backup(args: argparse.Namespace) -> int:
    from cloud.backup import BackupError, backup_sqlite_file

    db_path = Path(args.db) if args.db else _settings_from(args).edge.db_path
    target = Path(args.dir) / "edge.db"
    try:
        backup_sqlite_file(db_path, target)
    except BackupError as exc:
        print(f"shelfsense: backup failed: {exc}", file=sys.stderr)
        return 1
    emit(args, {"db": str(db_path), "backup": str(target)})
    return 0


def cmd_edge_run(args: argparse.Namespace) -> int:
    from edge.agent import run_edge

    settings = _settings_from(args)
    require_edge_token(settings)
    return run_edge(settings)


def cmd_edge_status(args: argparse.Namespace) -> int:
    from edge.status import read_status

    db_path = Path(args.db) if args.db else _settings_from(args).edge.db_path
    emit(args, read_status(db_path), render.edge_status, indent=2, sort_keys=True)
    return 0


def cmd_edge_new_incarnation(args: argparse.Namespace) -> int:
    """After restoring an edge database from a backup (agent stopped): see edge.incarnation."""
    from edge.errors import OutboxError
    from edge.incarnation import start_new

    db_path = Path(args.db) if args.db else _settings_from(args).edge.db_path
    try:
        emit(args, {"db": str(db_path), "incarnation": start_new(db_path)})
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


# --- parser -------------------------------------------------------------------------------------


def _add_cloud_flags(parser: argparse.ArgumentParser) -> None:
    """Where the cloud's database is; only ``cloud serve`` also listens (``--host``/``--port``)."""
    parser.add_argument("--config", help="TOML config file")
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
    serve.add_argument("--host", help="listen address (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (0 picks a free one)")
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
    replenish = cloud.add_parser("replenish", help="run the restocking planner once (report of proposals)")
    replenish.add_argument("--dry-run", action="store_true", help="print the proposals, write nothing")
    replenish.add_argument("--site", help="only this site")
    replenish.add_argument("--today", help="plan as of this day (YYYY-MM-DD; default: today, UTC)")
    _add_cloud_flags(replenish)
    replenish.set_defaults(handler=cmd_cloud_replenish)
    lot_report = cloud.add_parser(
        "lot-report", help="a lot's cold-chain report (stays, readings, excursions, MKT)"
    )
    lot_report.add_argument("lot", help="SKU:LOT_CODE (or a lot code only one product uses)")
    lot_report.add_argument(
        "--format", choices=["json", "csv", "png"], help="full evidence (default: a human summary)"
    )
    lot_report.add_argument("--out", help="write to FILE instead of stdout (required for png)")
    _add_cloud_flags(lot_report)
    lot_report.set_defaults(handler=cmd_cloud_lot_report)
    backup = cloud.add_parser("backup", help="online backup of the database to DIR (SQLite API / pg_dump)")
    backup.add_argument("dir")
    _add_cloud_flags(backup)
    backup.set_defaults(handler=cmd_cloud_backup_restore)
    restore = cloud.add_parser("restore", help="load a backup from DIR into an empty database, then migrate")
    restore.add_argument("dir")
    _add_cloud_flags(restore)
    restore.set_defaults(handler=cmd_cloud_backup_restore)
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
    create_user.add_argument(
        "--sites",
        help="comma-separated sites the user may see and act on, or '*' for every site "
        "(default: every site for a new user, unchanged for an existing one)",
    )
    _add_cloud_flags(create_user)
    create_user.set_defaults(handler=cmd_cloud_create_user)
    revoke = admin.add_parser(
        "revoke-token", help="revoke one token (read from stdin) or, with --user, every token of a user"
    )
    revoke.add_argument("--user", help="revoke every token of this user")
    _add_cloud_flags(revoke)
    revoke.set_defaults(handler=cmd_cloud_revoke_token)
    for command, disabled, text in (
        ("disable-user", True, "disable a user: tokens refused, page sessions ended"),
        ("enable-user", False, "enable a disabled user again"),
    ):
        toggle = admin.add_parser(command, help=text)
        toggle.add_argument("name")
        _add_cloud_flags(toggle)
        toggle.set_defaults(handler=cmd_cloud_set_disabled, disabled=disabled)
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
    edge_backup = edge.add_parser("backup", help="online copy of the edge database (outbox, ledger) to DIR")
    edge_backup.add_argument("dir")
    edge_backup.add_argument("--config", help="TOML config file (to find the database)")
    edge_backup.add_argument("--db", help="edge database file")
    edge_backup.set_defaults(handler=cmd_edge_backup)

    config = commands.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", required=True
    )
    check = config.add_parser("check", help="validate a config file and print the effective config")
    check.add_argument("file")
    check.set_defaults(handler=cmd_config_check)

    add_analytics_commands(commands)  # coldchain, dashboards, forecast

    _add_optional_commands(commands)
    add_json_flags(parser)
    return parser


def _add_optional_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands owned by other packages (sim, decode) register themselves here."""
    from shelfsense.cli_tools import add_tool_commands

    add_tool_commands(commands)
    _add_whatif_command(commands)


def _add_whatif_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``whatif``: its arguments here, its code (cloud.whatif, numpy) imported only when it runs, so
    an edge gateway's CLI loads nothing of the cloud (install by role)."""
    parser = commands.add_parser(
        "whatif", help="stress-test restocking policies against a scenario (Monte Carlo simulation)"
    )
    parser.add_argument("scenario", help="scenario TOML file (see examples/whatif/ and docs/whatif.md)")
    parser.add_argument("--db", help="cloud database to load the scenario's site_id from")
    parser.add_argument("--config", help="TOML config file (replenish settings, database)")
    parser.add_argument("--json", action="store_true", help="print the full JSON report")
    parser.add_argument("--png", help="also write the chart (inventory and stock-outs per day) to FILE")
    parser.add_argument("--sku", help="per (SKU, location) rows for SKUs matching this pattern (JSON)")
    parser.set_defaults(handler=_cmd_whatif)


def _cmd_whatif(args: argparse.Namespace) -> int:
    from cloud.whatif.cli import cmd_whatif

    return cmd_whatif(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    install_log_masking()
    configure_logging(verbose=args.verbose)
    handler: Handler = args.handler
    try:
        with progress_bars():  # long jobs draw a bar on stderr when it is a terminal
            return handler(args)
    except user_errors() as exc:
        if args.verbose:
            raise  # -v: the traceback is for developers
        print(f"shelfsense: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
