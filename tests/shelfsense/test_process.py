"""tune_gc changes the interpreter it runs in: checked in a fresh one."""

from __future__ import annotations

import subprocess
import sys


def test_tune_gc_freezes_start_up_objects_and_raises_the_threshold() -> None:
    code = (
        "import gc; from shelfsense.process import GC_THRESHOLD, tune_gc; "
        "before = gc.get_threshold()[0]; tune_gc(); "
        "print(before, gc.get_threshold()[0] == GC_THRESHOLD, gc.get_freeze_count() > 1000)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["700", "True", "True"]
