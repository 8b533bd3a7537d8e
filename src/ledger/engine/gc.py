"""Garbage-collector settings of a long-running ledger process (``ledger serve``, ``ledger
projector``). What they make fast: the slowest requests (fewer, shorter collector pauses).

Garbage collection: CPython's full collection walks every tracked object; in a server that
holds the aggregate cache and the read models' row caches, one took up to 110 ms in
``benchmarks/api.py`` — the slowest requests were simply those that met it. A server
process therefore

- collects once and *freezes* what exists after start-up (modules, classes, the
  application): those objects are never walked again;
- collects the young generation every ``GC_GEN0_THRESHOLD`` allocations instead of 700, and
  the older ones less often: request garbage is freed by reference counting; cycles still
  are collected, in fewer, shorter pauses.

Tests and one-shot commands keep the interpreter's defaults.
"""

from __future__ import annotations

import gc

GC_GEN0_THRESHOLD = 20_000
GC_GEN1_THRESHOLD = 20
GC_GEN2_THRESHOLD = 50


def tune_gc_for_server() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, GC_GEN1_THRESHOLD, GC_GEN2_THRESHOLD)
