"""A server process's garbage-collector settings (in a subprocess: they are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

from ledger.engine.gc import GC_GEN0_THRESHOLD, GC_GEN1_THRESHOLD, GC_GEN2_THRESHOLD


def test_a_server_process_freezes_its_start_up_objects_and_collects_less_often() -> None:
    code = (
        "import gc, json; from ledger.engine.gc import tune_gc_for_server; "
        "before = gc.get_freeze_count(); tune_gc_for_server(); "
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    before, after, threshold = json.loads(out)
    assert before == 0
    assert after > 1000  # the modules' objects are no longer walked by collections
    assert threshold == [GC_GEN0_THRESHOLD, GC_GEN1_THRESHOLD, GC_GEN2_THRESHOLD]
