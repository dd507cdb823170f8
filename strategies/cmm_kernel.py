"""CMM's work after the model at each decision, in one jitted call: aggregate, ladder, risk cut, order diff.

The model's normalized output becomes the predicted mid, spread and volume
(:func:`aggregate`, the rule of :meth:`strategies.cmm.CMMStrategy.aggregate`),
then the ladder, its risk cut and the messages that make the live orders
match it (:func:`strategies.ladder.build_into`, :func:`~strategies.ladder.limit_into`,
:func:`~strategies.ladder.diff_into`). Live, a decision is a feed batch's
reaction, so every microsecond of it delays the orders; one call here
replaces what was a hundred Python lines a decision. A CMM variant that
overrides one of these hooks runs them one by one on the same kernels
(:mod:`strategies.cmm`), so both give the same quotes to the bit.

Only the sending stays in Python, through the context (the venue may be a
backtest, paper trading or the strategy process of ``--transport zmq``).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from bundle.loader import denormalized
from strategies.ladder import NO_ASK, NO_BID, build_into, diff_into, limit_into

# Slots of the float parameter vector (params_vector).
MIN_SPREAD, MAX_SPREAD, RHO, MIN_VOLUME, SLOPE, SKEW, MAX_POSITION, TICK, LOT = range(9)
# Slots of the int parameter vector: ladder level spacing (ticks), quotes kept at once.
SPACING, MAX_ORDERS = range(2)
# Slots of the prediction out-vector: predicted mid (price), spread (ticks), volume.
PRED_MID, PRED_SPREAD, PRED_VOLUME = range(3)


def params_vectors(p, tick_size: float, lot_size: float) -> tuple[np.ndarray, np.ndarray]:
    """CMMParams as the kernel's float and int vectors (the least volume as :meth:`build_ladder` computes it)."""
    min_volume = p.min_lots * lot_size / p.rho if p.rho > 0 else 0.0
    floats = np.array([p.min_spread_ticks, p.max_spread_ticks, p.rho, min_volume, p.size_slope, p.skew_ticks,
                       p.max_position, tick_size, lot_size], dtype=np.float64)
    return floats, np.array([p.level_spacing_ticks, p.max_orders], dtype=np.int64)


@nb.njit(cache=True, inline="always")
def _max(a, b):
    """Python's max(a, b): ``a`` unless ``b`` is greater (so NaN stays where Python keeps it)."""
    return b if b > a else a


@nb.njit(cache=True, inline="always")
def _min(a, b):
    return b if b < a else a


@nb.njit(cache=True)
def aggregate(y, target_std, target_mean, target_base, x, mid, tick, min_spread, max_spread):
    """``(mid, spread ticks, volume)`` from the model's normalized output ``y`` (float32) at the decision
    whose raw features are ``x``, and the mid now: ``mid + mid_change * tick``, the spread clipped to
    ``[min_spread, max_spread]``, ``expm1`` of the log volume (at least 0); each target back in its units
    as :meth:`bundle.loader.Bundle.denormalize` puts it."""
    mid_change = denormalized(y, target_std, target_mean, target_base, x, 0)
    spread = denormalized(y, target_std, target_mean, target_base, x, 1)
    log_volume = denormalized(y, target_std, target_mean, target_base, x, 2)
    return (mid + mid_change * tick, _min(_max(spread, min_spread), max_spread),
            math.expm1(_max(log_volume, 0.0)))


@nb.njit(cache=True)
def decide(quote, y, target_std, target_mean, target_base, x, mid, position, best_bid, best_ask, floats, ints, order_ints,
           order_floats, prediction, ladder, out, out_qty):
    """One decision after the model: with ``quote``, the prediction (into ``prediction``), the ladder
    within the limits (into ``ladder``, ``[4, levels]``); without, an empty ladder. Then the messages
    (into ``out`` / ``out_qty``, as :func:`strategies.ladder.diff_into`) that make the live orders
    (:class:`~strategies.api.OrderColumns`) match it. ``best_bid`` / ``best_ask`` are prices, NaN for an empty side.
    Returns ``(n_bid, n_ask, messages)``."""
    tick, lot = floats[TICK], floats[LOT]
    n_bid = n_ask = 0
    if quote:
        pmid, spread, volume = aggregate(y, target_std, target_mean, target_base, x, mid, tick, floats[MIN_SPREAD],
                                         floats[MAX_SPREAD])
        prediction[PRED_MID], prediction[PRED_SPREAD], prediction[PRED_VOLUME] = pmid, spread, volume
        rho = floats[RHO]
        if rho > 0:
            volume = _max(volume, floats[MIN_VOLUME])
        bid = NO_BID if math.isnan(best_bid) else round(best_bid / tick)
        ask = NO_ASK if math.isnan(best_ask) else round(best_ask / tick)
        n_bid, n_ask = build_into(pmid / tick, spread, volume, position, bid, ask, ints[SPACING],
                                  floats[SLOPE], rho, lot, floats[SKEW], floats[MAX_POSITION], ladder)
        n_bid, n_ask = limit_into(ladder, n_bid, n_ask, position, floats[MAX_POSITION], ints[MAX_ORDERS], lot)
    m = diff_into(ladder, n_bid, n_ask, order_ints, order_floats, lot, out, out_qty)
    return n_bid, n_ask, m
