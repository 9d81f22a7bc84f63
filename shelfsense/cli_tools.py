"""Device-engineer commands: ``shelfsense decode ...`` (cli_decode) and ``shelfsense sim ...`` (cli_sim).

Shared here: :class:`BadInput` and the guard turning it into a one-line error.

Every handler imports what it needs lazily, so ``shelfsense --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """User input the command cannot work with; printed as one line, exit status 2."""


def _fail(message: str) -> int:
    print(f"shelfsense: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn bad input (ours, the codecs' DecodeError / ValueError) into a one-line exit-2 error."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (BadInput, ValueError) as exc:  # DecodeError and ScenarioError are ValueErrors
            return _fail(str(exc))

    return run


def add_tool_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from shelfsense.cli_decode import _add_decode_commands
    from shelfsense.cli_sim import _add_sim_commands

    _add_decode_commands(commands)
    _add_sim_commands(commands)
