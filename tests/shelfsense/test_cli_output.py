"""The CLI for people: human text by default, ``--json`` for machines, one-line errors, no tracebacks.

Every command runs as a real ``python -m shelfsense`` child process, as a user would run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxBudget
from shelfsense.output import Progress, cell, table, use_colour


def shelfsense(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shelfsense", *args], capture_output=True, text=True, timeout=60, env=env
    )


def edge_db(tmp_path: Path) -> Path:
    """A real edge database (the agent's own schema) with one probe reading and some stock."""
    path = tmp_path / "edge.db"

    async def create() -> None:
        async with Outbox(path, "NORMAL", OutboxBudget()) as outbox:
            await outbox.add_counters({"tag_reads": 42})

    asyncio.run(create())
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO sensor_latest (sensor_id, quantity, value, unit, time, time_unix, zone) "
            "VALUES ('probe-1', 'temperature', 4.25, '°C', '2026-12-03T10:00:00+00:00', 1796292000, 'cold')"
        )
    return path


def test_edge_status_prints_tables_with_units_and_json_on_request(tmp_path: Path) -> None:
    db = edge_db(tmp_path)
    human = shelfsense("edge", "status", "--db", str(db))
    assert human.returncode == 0, human.stderr
    assert not human.stdout.lstrip().startswith("{")
    lines = human.stdout.splitlines()
    assert any(line.startswith("tag reads") and line.rstrip().endswith("42") for line in lines)
    assert any(line.startswith("sync lag") and line.rstrip().endswith(" s") for line in lines)
    header = next(line for line in lines if line.startswith("sensor"))
    assert header.split() == ["sensor", "zone", "quantity", "value", "time"]
    row = lines[lines.index(header) + 1]
    assert row.split()[:5] == ["probe-1", "cold", "temperature", "4.25", "°C"]
    assert "\033[" not in human.stdout  # not a terminal: no colour codes
    machine = shelfsense("edge", "status", "--json", "--db", str(db))
    report = json.loads(machine.stdout)
    assert report["tag_reads"] == 42 and report["sensors"][0]["unit"] == "°C"


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (["edge", "status", "--db", "missing.db"], "no edge database at missing.db", 2),
        (["config", "check", "nope.toml"], "not found", 2),
        (["cloud", "migrate", "--db", "postgresql://postgres@127.0.0.1:1/test"], "127.0.0.1", 2),
        (["cloud", "replenish", "--today", "31/12/2026", "--db", "sqlite:///x.db"], "31/12/2026", 2),
        (["forecast", "missing.csv"], "missing.csv", 2),
        # Refusals of an operation on its data (nothing written) keep exit status 1.
        (["edge", "backup", "out", "--db", "missing.db"], "missing.db", 1),
        (
            ["cloud", "import", "missing.csv", "--kind", "products", "--db", "sqlite:///x.db"],
            "missing.csv",
            1,
        ),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    tmp_path: Path, args: list[str], fragment: str, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = shelfsense(*args)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    # Besides the error, stderr may only carry log lines of state changes (a schema migrated).
    errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1 and errors[0].startswith("shelfsense: "), result.stderr
    assert fragment in errors[0]
    assert result.stdout == ""


def test_bad_config_and_bad_flags_exit_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[edge\nedge_id = 'x'\n")
    for args in (["config", "check", str(bad)], ["edge", "status", "--config", str(bad)]):
        result = shelfsense(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    flags = shelfsense("edge", "status", "--no-such-flag")
    assert flags.returncode == 2 and "Traceback" not in flags.stderr
    assert "error: unrecognized arguments: --no-such-flag" in flags.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "command",
    [
        ["cloud", "admin", "create-edge"],
        ["cloud", "admin", "create-user"],
        ["cloud", "import"],
        ["cloud", "export"],
        ["cloud", "migrate"],
        ["cloud", "replenish"],
        ["cloud", "lot-report"],
    ],
)
def test_admin_and_import_help_mentions_no_listen_address(command: list[str]) -> None:
    result = shelfsense(*command, "--help")
    assert result.returncode == 0
    assert "listen" not in result.stdout and "--port" not in result.stdout
    assert "--json" in result.stdout


def test_serve_help_keeps_its_listen_address() -> None:
    result = shelfsense("cloud", "serve", "--help")
    assert "--host" in result.stdout and "listen address" in result.stdout


def test_decode_epc_human_table_and_json_lines() -> None:
    # GS1 EPC Tag Data Standard 2.1, §E.3 example: SGTIN-96 3074257BF7194E4000001A85.
    sgtin = "3074257BF7194E4000001A85"
    human = shelfsense("decode", "epc", sgtin)
    assert human.returncode == 0
    head, row = human.stdout.splitlines()
    assert head.split() == ["scheme", "identity", "serial", "note", "hex"]
    assert row.split()[:3] == ["sgtin-96", "urn:epc:id:sgtin:0614141.812345.6789", "6789"]
    machine = shelfsense("decode", "epc", "--json", sgtin)
    assert json.loads(machine.stdout)["uri"] == "urn:epc:id:sgtin:0614141.812345.6789"


def test_table_aligns_numbers_and_shows_units() -> None:
    text = table(["sku", "qty"], [("MILK", cell(12, "units")), ("BUTTER", cell(3.5, "units"))])
    assert text.splitlines() == ["sku           qty", "MILK     12 units", "BUTTER  3.5 units"]
    assert table(["a"], []).endswith("(none)")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(_Terminal()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(_Terminal())


def test_progress_bar_only_on_a_terminal() -> None:
    quiet, shown = io.StringIO(), _Terminal()
    for stream in (quiet, shown):
        with Progress("import", 4, stream=stream) as bar:
            for _ in range(4):
                bar.advance()
    assert quiet.getvalue() == ""
    assert shown.getvalue().rstrip().endswith("import [" + "#" * 30 + "] 4/4")


def test_import_draws_a_progress_bar_on_a_terminal_and_prints_a_summary(tmp_path: Path) -> None:
    """A real import of 1200 products with stderr on a pseudo-terminal: the bar counts the rows."""
    rows = "".join(f"SKU-{n},,Product {n},,,\n" for n in range(1200))
    csv_file = tmp_path / "products.csv"
    csv_file.write_text("sku,gtin,name,shelf_life_days,storage_temp_min_c,storage_temp_max_c\n" + rows)
    primary, secondary = os.openpty()
    try:
        command = [
            "cloud",
            "import",
            str(csv_file),
            "--kind",
            "products",
            "--db",
            f"sqlite:///{tmp_path}/c.db",
        ]
        result = subprocess.run(
            [sys.executable, "-m", "shelfsense", *command],
            stdout=subprocess.PIPE,
            stderr=secondary,
            text=True,
            timeout=60,
        )
        os.close(secondary)
        drawn = b""
        with contextlib.suppress(OSError):  # EIO once the child's side is closed and drained
            while chunk := os.read(primary, 65536):
                drawn += chunk
    finally:
        os.close(primary)
    assert result.returncode == 0
    assert result.stdout.strip() == "imported 1200 products"
    text = drawn.decode(errors="replace")
    assert "import products [" in text and "] 1200/1200" in text, text
    assert b"Traceback" not in drawn
