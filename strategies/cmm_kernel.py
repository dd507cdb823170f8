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
backtest, paper trading or the strategy process of ``--transport zmq``), except
in :func:`run_timer`: a batched backtest knows the model's outputs of many
decisions ahead (:mod:`strategies.cmm_batch`), so that loop steps the engine
from one timer wake-up to the next itself and decides and sends at each, with
no Python between decisions.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

from bundle.features import apply_rows, snapshot
from bundle.loader import denormalized, normalize_into, regime_of
from engine.codes import INVALID_MAX, INVALID_MIN
from engine.views import (WOKE_END, WOKE_TIMER, WOKE_WAIT, advance_until, best_ask_tick, best_bid_tick, clear_inactive,
                          local_order_columns, now, position)
from strategies.kernels.quoting import send_messages
from strategies.ladder import ASK_TICKS, BID_TICKS, NO_ASK, NO_BID, build_into, diff_into, limit_into

# Slots of the float parameter vector (params_vector).
MIN_SPREAD, MAX_SPREAD, RHO, MIN_VOLUME, SLOPE, SKEW, MAX_POSITION, TICK, LOT = range(9)
# Slots of the int parameter vector: ladder level spacing (ticks), quotes kept at once.
SPACING, MAX_ORDERS = range(2)
# Slots of the prediction out-vector: predicted mid (price), spread (ticks), volume.
PRED_MID, PRED_SPREAD, PRED_VOLUME = range(3)
# Columns of run_timer's per-decision record: the mid, the inner bid and ask quoted (prices, NaN: none),
# and the quotes placed in all.
REC_MID, REC_BID, REC_ASK, REC_QUOTES = range(4)
# run_timer's reason when the engine woke at another time than the batch's next decision.
WOKE_ELSEWHERE = -1


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
def inputs_now(state, ev, local_ts, px, qty, apply, now, row, regime_column, low, high, mean, std, used,
               model_input):
    """Steps 1-2 and the model's input in one call: with ``apply``, the rows applied to the feature state;
    the features at ``now`` into ``row`` (:func:`bundle.features.advance` does both), the regime of its
    volatility column between the bundle's thresholds ``low`` and ``high`` (:func:`bundle.loader.regime_of`),
    and the row normalized into ``model_input`` (:func:`bundle.loader.normalize_into`, what
    :meth:`bundle.loader.Bundle.decide` does before the model). Returns ``(regime, largest |z|)``, the
    latter -1.0, and ``model_input`` untouched, when a feature is not finite. (Without ``apply``, the rows
    are only typed: a rehearsal passes the last decision's, so that the code it runs is that decision's.)"""
    if apply:
        apply_rows(state, ev, local_ts, px, qty)
    snapshot(state, now, row)
    return regime_of(row[regime_column], low, high), normalize_into(row, mean, std, used, model_input)


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


@nb.njit(cache=True)
def diff_room(n_orders, levels):
    """The most messages :func:`decide` may write with ``n_orders`` live and ``levels`` a side."""
    return 2 * n_orders + 2 * levels


@nb.njit(cache=True)
def decide_on(S, send, quote, y, target_std, target_mean, target_base, x, mid, floats, ints, prediction, ladder,
              messages, qty):
    """:func:`decide` against the engine ``S`` itself: its live orders, position and book; then, with ``send``,
    its messages sent (:func:`strategies.kernels.quoting.send_messages`). One decision of :func:`run_timer`,
    and a live decision's whole work after the model in one call (without ``send``: its rehearsal).
    ``messages`` / ``qty`` are scratch, used when they have room for the diff (else a larger pair is made
    for the call). Returns ``(n_bid, n_ask, best_bid, best_ask)``, the book's sides as prices (NaN: empty)."""
    order_ints, order_floats = local_order_columns(S)
    room = diff_room(order_ints.shape[1], ladder.shape[1])
    if qty.shape[0] < room:
        messages, qty = np.empty((room, 3), dtype=np.int64), np.empty(room)
    tick = floats[TICK]
    bid_tick, ask_tick = best_bid_tick(S), best_ask_tick(S)
    best_bid = np.nan if bid_tick == INVALID_MIN else bid_tick * tick
    best_ask = np.nan if ask_tick == INVALID_MAX else ask_tick * tick
    n_bid, n_ask, m = decide(quote, y, target_std, target_mean, target_base, x, mid, position(S), best_bid, best_ask,
                             floats, ints, order_ints, order_floats, prediction, ladder, messages, qty)
    if send:
        send_messages(S, messages[:m], qty[:m])
    return n_bid, n_ask, best_bid, best_ask


@nb.njit(cache=True)
def scratch(ints, levels):
    """:func:`decide_on`'s message scratch for ``levels`` a side, made once, with room for the diff of a
    decision that sees as many live orders as may be kept and as many again still awaiting their cancels
    (one that sees more makes a larger pair for itself)."""
    room = diff_room(2 * ints[MAX_ORDERS], levels)
    return np.empty((room, 3), dtype=np.int64), np.empty(room)


@nb.njit(cache=True)
def run_timer(S, every_ns, horizon, times, first, quote, y, x, mid_column, target_std, target_mean, target_base,
              floats, ints, prediction, ladder, predictions, record):
    """CMM's timer wake-ups ``times[first:]`` in one call, on the engine ``S`` itself: at each, what the
    session and :meth:`strategies.cmm.CMMStrategy.on_timer` do on the per-tick path, in their order.
    The engine runs to the wake-up (:func:`engine.views.advance_until`, a timer of ``every_ns`` alone,
    nothing later than ``horizon``), the finished orders leave the view (the session's dispatch), and
    decision ``k`` (``quote[k]``: whether it quotes, with the model's output ``y[k]`` at features
    ``x[k]``) is :func:`decide` against the live orders, position and book, its messages sent. Each
    decision's prediction goes into ``predictions[k]`` (left as it is when it does not quote) and its
    :data:`REC_MID`... columns into ``record[k]``.

    Returns ``(the next decision, the last wake-up's reason)``: it stops after the last decision, or at
    the end of the data (WOKE_END, with the view cleared as the session's dispatch does), a wait past
    ``horizon`` (WOKE_WAIT), or a wake-up at another time than the next decision's (:data:`WOKE_ELSEWHERE`,
    before deciding: the caller refuses the run)."""
    tick = floats[TICK]
    messages, qty = scratch(ints, ladder.shape[1])
    k = first
    reason = WOKE_TIMER
    while k < times.shape[0]:
        reason = advance_until(S, every_ns, 0, False, horizon)
        if reason == WOKE_WAIT:
            break
        clear_inactive(S)
        if reason == WOKE_END:
            break
        if now(S) != times[k]:
            reason = WOKE_ELSEWHERE
            break
        n_bid, n_ask, best_bid, best_ask = decide_on(S, True, quote[k], y[k], target_std, target_mean, target_base,
                                                     x[k], x[k, mid_column], floats, ints, prediction, ladder,
                                                     messages, qty)
        if quote[k]:
            predictions[k, :] = prediction
        record[k, REC_MID] = (best_bid + best_ask) / 2
        record[k, REC_BID] = ladder[BID_TICKS, 0] * tick if n_bid else np.nan
        record[k, REC_ASK] = ladder[ASK_TICKS, 0] * tick if n_ask else np.nan
        record[k, REC_QUOTES] = n_bid + n_ask
        k += 1
    return k, reason
