"""engine.book.price_tick_fast: the replay loop's price-to-tick conversion must give exactly what a division gives."""
from __future__ import annotations

import numba as nb
import numpy as np
from hypothesis import given, settings, strategies as st

from engine.book import price_tick_fast, tick_grid


@nb.njit(cache=True)
def _fast(px, tick_size):
    return price_tick_fast(px, tick_grid(tick_size, 1.0 / tick_size))


def _divided(px: float, tick_size: float) -> int:
    return int(np.round(px / tick_size))


def test_prices_on_the_grid_and_near_a_half():
    # 69.535 / 0.01 is 6953.499999999999 (rounds to 6953) but 69.535 * 100 is exactly 6953.5 (rounds to even,
    # 6954): a product this close to a half must take the division.
    assert 69.535 * 100.0 == 6953.5 and _fast(69.535, 0.01) == 6953
    assert _fast(26.474999999999998, 0.01) == 2647
    assert _fast(2035.37, 0.01) == 203537     # 2035.37 / 0.01 is 203536.99999999997
    assert _fast(586.6, 0.01) == 58660
    assert _fast(0.5, 1.0) == 0 and _fast(1.5, 1.0) == 2 and _fast(-2.5, 1.0) == -2
    # beyond 2**40 ticks the fast path is not trusted either: the division decides
    assert _fast(2.0 ** 41 + 1.0, 1.0) == 2 ** 41 + 1


@settings(max_examples=3000, deadline=None)
@given(px=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
       tick_size=st.sampled_from([1e-8, 1e-4, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]))
def test_same_as_the_division(px, tick_size):
    assert _fast(px, tick_size) == _divided(px, tick_size)


@settings(max_examples=2000, deadline=None)
@given(ticks=st.integers(min_value=-10 ** 9, max_value=10 ** 9), off=st.sampled_from([-0.5, -0.25, 0.0, 0.25, 0.5]),
       tick_size=st.sampled_from([0.01, 0.05, 0.1, 0.5]))
def test_same_as_the_division_at_the_bounds_of_the_fast_path(ticks, off, tick_size):
    # a quarter and a half tick off the grid: where ``d * d < 1/16`` must agree with ``abs(d) < 1/4``
    px = (ticks + off) * tick_size
    for p in (px, np.nextafter(px, np.inf), np.nextafter(px, -np.inf)):
        assert _fast(p, tick_size) == _divided(p, tick_size)
