"""``shelfsense coldchain mkt``, ``dashboards export|push`` and ``forecast`` (moved from cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shelfsense import cli_render as render
from shelfsense.output import emit

if TYPE_CHECKING:
    from dashboards.provision import Flux

EXIT_USAGE = 2


# --- coldchain / dashboards ---------------------------------------------------------------------


def cmd_coldchain_mkt(args: argparse.Namespace) -> int:
    from cloud.coldchain.mkt import MktError, mean_kinetic_temperature, read_readings_csv

    try:
        times, temps = read_readings_csv(Path(args.file))
        mkt = mean_kinetic_temperature(times, temps, activation_energy_kj=args.activation_energy)
    except MktError as exc:
        print(f"shelfsense: {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    emit(
        args,
        {"mkt_c": round(mkt, 4), "readings": len(times)},
        lambda d: f"MKT {d['mkt_c']:.2f} °C over {d['readings']} readings",
    )
    return 0


def _flux(args: argparse.Namespace, *, token: str | None = None) -> Flux | None:
    from dashboards.provision import Flux

    if args.org is None:
        return None
    return Flux(args.org, args.bucket, token) if token else Flux(args.org, args.bucket)


def cmd_dashboards_export(args: argparse.Namespace) -> int:
    from dashboards.provision import export_provisioning

    try:
        paths = export_provisioning(
            Path(args.dir), influx_url=args.influx_url, database=args.database, flux=_flux(args)
        )
    except OSError as exc:
        print(f"shelfsense: cannot write to {args.dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    emit(args, {"files": [str(p) for p in paths]}, render.files_written)
    return 0


def cmd_dashboards_push(args: argparse.Namespace) -> int:
    from dashboards.provision import ProvisionError, push_to_grafana

    if args.org is not None and not args.influx_token:
        print(
            "shelfsense: --org (InfluxDB 2.x) needs --influx-token for Grafana's datasource", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        result = push_to_grafana(
            args.grafana_url,
            args.token,
            influx_url=args.influx_url,
            database=args.database,
            flux=_flux(args, token=args.influx_token),
        )
    except ProvisionError as exc:
        print(f"shelfsense: {exc}", file=sys.stderr)
        return 1
    emit(args, result)
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
    push.add_argument("--influx-token", help="InfluxDB 2.x API token for the datasource (with --org)")
    for sub in (export, push):
        sub.add_argument("--influx-url", default="http://127.0.0.1:8086", help="InfluxDB URL for Grafana")
        sub.add_argument("--database", default="shelfsense", help="InfluxDB 1.x database")
        sub.add_argument("--org", help="InfluxDB 2.x organisation: a Flux datasource and the Flux boards")
        sub.add_argument("--bucket", default="shelfsense", help="InfluxDB 2.x bucket (with --org)")
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
    emit(args, result.series(0), render.forecast)
    return 0


def add_analytics_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
