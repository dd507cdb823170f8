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


def bootstrap_mean_ci(values, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap confidence interval of the mean of ``values`` (non-empty): resample them with
    replacement ``resamples`` times from a fixed seed, so the same values give the same interval."""
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
