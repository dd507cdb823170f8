"""Latency percentiles: the one rule every report of a timing uses.

p50 and p99 with numpy's default (linear) interpolation, so a backtest, a
paper session, the training report and the benchmarks all mean the same
thing by "p99".
"""
from __future__ import annotations

import msgspec
import numpy as np


class LatencyStats(msgspec.Struct, frozen=True):
    """p50 and p99 of a set of durations, in microseconds."""

    p50: float
    p99: float


def p50_p99(values) -> tuple[float, float]:
    """The 50th and 99th percentiles of ``values`` (non-empty), in their own unit."""
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50), float(p99)


def latency_us(ns) -> LatencyStats | None:
    """p50 and p99 of durations given in ns, in us; None when there are none."""
    if ns is None or len(ns) == 0:
        return None
    p50, p99 = p50_p99(ns)
    return LatencyStats(p50=p50 / 1e3, p99=p99 / 1e3)
