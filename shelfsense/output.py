"""What the CLI prints: human text by default, one JSON document with ``--json``; progress on stderr.

Stdlib only. Colours only when the stream is a terminal and ``NO_COLOR`` is unset
(https://no-color.org); a progress bar only when stderr is a terminal, so pipes, logs and tests
see clean output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

BOLD, DIM, RED, GREEN, YELLOW, RESET = "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[33m", "\033[0m"


def use_colour(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, code: str, stream: TextIO | None = None) -> str:
    return f"{code}{text}{RESET}" if use_colour(stream) else text


def cell(value: Any, unit: str = "") -> str:
    """One table cell: numbers trimmed, ``None`` as a dash, a unit appended to numbers."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.3g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value) or "-"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    else:
        text = str(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"{text} {unit}" if unit and numeric else text


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned; a bold header on a terminal."""
    body = [[cell(v) if not isinstance(v, str) else v for v in row] for row in rows]
    numeric = [all(_looks_numeric(row[i]) for row in body) and bool(body) for i in range(len(headers))]
    widths = [max([len(h), *(len(row[i]) for row in body)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    head = paint(line(list(headers)), BOLD)
    return "\n".join([head, *(line(row) for row in body)]) if body else head + "\n(none)"


def _looks_numeric(text: str) -> bool:
    first = text.split(" ", 1)[0].lstrip("-+")
    return first.replace(".", "", 1).isdigit() or text == "-"


def key_values(data: Mapping[str, Any], *, units: Mapping[str, str] | None = None) -> str:
    """``key  value`` lines for a flat report; nested mappings shown as ``a=b, c=d``."""
    units = units or {}
    if not data:
        return "(nothing)"
    width = max(len(str(k)) for k in data)
    return "\n".join(
        f"{paint(str(k).replace('_', ' ').ljust(width), BOLD)}  {cell(v, units.get(str(k), ''))}"
        for k, v in data.items()
    )


def emit(
    args: argparse.Namespace, data: Any, human: Callable[[Any], str] | None = None, **dumps: Any
) -> None:
    """Print ``data`` as JSON with ``--json``, else as text (``human(data)`` or key/value lines)."""
    if getattr(args, "json", False):
        print(json.dumps(data, default=str, **dumps))
    elif human is not None:
        print(human(data))
    elif isinstance(data, Mapping):
        print(key_values(data))
    else:
        print(data)


def add_json_flags(parser: argparse.ArgumentParser) -> None:
    """Give every leaf command a ``--json`` switch (a command that defines its own keeps it)."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        if "--json" not in parser._option_string_actions:
            parser.add_argument("--json", action="store_true", help="print one JSON document for machines")
        return
    for action in subparsers:
        for child in dict.fromkeys(action.choices.values()):
            add_json_flags(child)


class Progress:
    """``label [#####.....] 12/40`` redrawn on stderr; silent unless stderr is a terminal."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._drawn_at = 0.0

    def advance(self, step: int = 1) -> None:
        self.done += step
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at > 0.1 or self.done == self.total):
            self._drawn_at = now
            self.stream.write("\r" + self._bar())
            self.stream.flush()

    def _bar(self) -> str:
        if not self.total:
            return f"{self.label} {self.done}"
        filled = int(30 * min(self.done, self.total) / self.total)
        return f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}"

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self._bar() + "\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        if self.enabled:
            self.stream.write(self._bar())
            self.stream.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Sequence[T], label: str) -> Iterator[T]:
    """Iterate ``items`` with a progress bar on a terminal."""
    with Progress(label, len(items)) as bar:
        for item in items:
            yield item
            bar.advance()


# Long jobs (import, export, replenish, lot reports) report steps here; the CLI shows them as bars.
# A ContextVar reaches the job through asyncio.run and to_thread (both copy the context); with no
# hook installed (the API, the background jobs) a step costs one lookup.
ProgressHook = Callable[[str, int, "int | None"], None]
_progress_hook: ContextVar[ProgressHook | None] = ContextVar("shelfsense_progress", default=None)


def progress_step(label: str, done: int, total: int | None = None) -> None:
    """``done`` of ``total`` steps of the job ``label`` are finished."""
    hook = _progress_hook.get()
    if hook is not None:
        hook(label, done, total)


@contextmanager
def progress_bars(stream: TextIO | None = None) -> Iterator[None]:
    """Show the steps reported inside this block as progress bars on ``stream`` (a terminal only)."""
    bars: dict[str, Progress] = {}

    def show(label: str, done: int, total: int | None) -> None:
        bar = bars.get(label)
        if bar is None:
            bar = bars[label] = Progress(label, total, stream)
        bar.total = total if total is not None else bar.total
        bar.advance(done - bar.done)

    token = _progress_hook.set(show)
    try:
        yield
    finally:
        _progress_hook.reset(token)
        for bar in bars.values():
            bar.close()
