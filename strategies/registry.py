"""Strategies by the name a config uses, each with its Python class and, where one exists, its kernel.

A kernel runner takes the engine state, the strategy's Params and its wake
policy, and runs the whole backtest inside Numba.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from .avellaneda_stoikov import AvellanedaStoikov
from .base import Strategy
from .cmm import CMMStrategy
from .fixed_spread import FixedSpread


class Entry(NamedTuple):
    python: type[Strategy]
    kernel: Callable | None


def _fixed_spread_kernel(sim, p, wake, tick_size):
    from .kernels.fixed_spread import fixed_spread
    return fixed_spread(sim, wake.every_ns, p.half_spread_ticks, p.qty, p.max_position)


def _avellaneda_stoikov_kernel(sim, p, wake, tick_size):
    from .kernels.avellaneda_stoikov import avellaneda_stoikov
    return avellaneda_stoikov(sim, wake.every_ns, tick_size, p.gamma, p.kappa, p.horizon_s, p.sigma0,
                              p.sigma_window, p.qty, p.max_position)


STRATEGIES: dict[str, Entry] = {
    "fixed_spread": Entry(FixedSpread, _fixed_spread_kernel),
    "avellaneda_stoikov": Entry(AvellanedaStoikov, _avellaneda_stoikov_kernel),
    "cmm": Entry(CMMStrategy, None),
}
