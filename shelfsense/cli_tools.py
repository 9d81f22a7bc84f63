"""Device-engineer commands: ``shelfsense decode ...`` and ``shelfsense sim ...``."""

from __future__ import annotations

import argparse


def add_tool_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registered by shelfsense.cli; filled in as devices/ and simulators/ land."""
