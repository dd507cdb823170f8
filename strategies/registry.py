"""Strategies by the name a config uses, each with its Python class and, where one exists, its kernel.

The CMM family (``cmm``, ``teacher``, ``single_student``, ``cmm_mean``,
``cmm_gating``, ``cmm_no_regime``, ``cmm_no_layer``) is one strategy on
different bundles: each takes ``[strategy.params] bundle``, the directory of
its model (``data/bundles/goog_sample/`` for ``cmm``, its ``<variant>/``
subdirectory for the others), and refuses another model's bundle.

A kernel runner takes the engine state, the strategy's Params and its wake
policy, and runs the whole backtest inside Numba.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from strategies.avellaneda_stoikov import AvellanedaStoikov
from strategies.base import Strategy
from strategies.cmm import CMMStrategy
from strategies.cmm_variants import CMMGating, CMMMean, CMMNoLayer, CMMNoRegime, SingleStudent
from strategies.fixed_spread import FixedSpread
from strategies.teacher_strategy import TeacherStrategy


class Entry(NamedTuple):
    python: type[Strategy]
    kernel: Callable | None


def _fixed_spread_kernel(sim, p, wake, tick_size):
    from strategies.kernels.fixed_spread import fixed_spread
    return fixed_spread(sim, wake.every_ns, p.half_spread_ticks, p.qty, p.max_position)


def _avellaneda_stoikov_kernel(sim, p, wake, tick_size):
    from strategies.kernels.avellaneda_stoikov import avellaneda_stoikov
    return avellaneda_stoikov(sim, wake.every_ns, tick_size, p.gamma, p.kappa, p.horizon_s, p.sigma0,
                              p.sigma_window, p.qty, p.max_position)


STRATEGIES: dict[str, Entry] = {
    "fixed_spread": Entry(FixedSpread, _fixed_spread_kernel),
    "avellaneda_stoikov": Entry(AvellanedaStoikov, _avellaneda_stoikov_kernel),
    "cmm": Entry(CMMStrategy, None),
    "teacher": Entry(TeacherStrategy, None),
    "single_student": Entry(SingleStudent, None),
    "cmm_mean": Entry(CMMMean, None),
    "cmm_gating": Entry(CMMGating, None),
    "cmm_no_regime": Entry(CMMNoRegime, None),
    "cmm_no_layer": Entry(CMMNoLayer, None),
}
