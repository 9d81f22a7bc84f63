"""``shelfsense whatif SCENARIO.toml [--db URL] [--json] [--png FILE] [--sku PATTERN]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_USAGE = 2


def cmd_whatif(args: argparse.Namespace) -> int:
    from cloud.whatif.chart import chart_png
    from cloud.whatif.errors import WhatIfError
    from cloud.whatif.results import table
    from cloud.whatif.scenario import load_scenario_text
    from cloud.whatif.service import run_sync
    from shelfsense.cli import _cloud_overrides, _settings_from

    settings = _settings_from(args, **_cloud_overrides(args))
    try:
        scenario = load_scenario_text(Path(args.scenario).read_text(encoding="utf-8"))
        db_url = settings.cloud.db_url if args.db else None
        result = run_sync(scenario, db_url, settings.cloud.replenish, sku_pattern=args.sku)
    except (OSError, WhatIfError) as exc:
        print(f"shelfsense: whatif: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.png:
        Path(args.png).write_bytes(chart_png(result))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['scenario']}: site {result['site']}, {result['skus']} SKUs x {len(result['locations'])}"
            f" locations, {result['days']} days, {result['runs']} runs (95 % interval of the fill rate)"
        )
        print(table(result["scenarios"]))
    return 0
