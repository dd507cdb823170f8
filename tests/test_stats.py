"""The one percentile rule: p50 and p99 by linear interpolation, latencies reported in us."""
from __future__ import annotations

import numpy as np
import pytest

from common.stats import LatencyStats, latency_us, p50_p99


def test_p50_p99_interpolate_between_the_samples():
    # Four samples: the 50th percentile sits halfway between 2 and 3; the 99th at 0.99 * 3 = 2.97 of the
    # way along the sorted list, i.e. 97% of the way from 3 to 4.
    assert p50_p99([4, 1, 3, 2]) == (2.5, pytest.approx(3.97))
    assert p50_p99(np.array([7])) == (7.0, 7.0)


def test_latency_in_us_from_ns_and_none_without_samples():
    stats = latency_us(np.array([1_000, 3_000], dtype=np.int64))
    assert stats.p50 == 2.0 and stats.p99 == pytest.approx(2.98)
    assert isinstance(stats, LatencyStats) and type(stats.p50) is float
    assert latency_us(None) is None and latency_us([]) is None
