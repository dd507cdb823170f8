"""The trapezoidal quote ladder and the order diff: pure functions in ticks and lots.

:func:`build` turns a prediction (mid m, spread s in ticks, volume V) into K
levels per side. With ``c = m - skew_ticks * position / max_position`` (the
inventory skew moves both sides against the position: long -> lower, so the
ask fills sooner and the bid later), the inner bid is ``floor(c - s/2)`` and
the inner ask ``ceil(c + s/2)``; further levels step ``spacing`` ticks out
(bids down, asks up). Quotes are post-only, so the inner bid is kept at least
one tick below the current best ask and the inner ask one above the best bid;
the outer levels follow the inner one. Each side's size is
``round(rho * V / lot)`` lots, shared across the levels in proportion to
``1 + slope * k`` (k = 0 innermost: a positive slope puts more size further
out) by largest remainder, so the lots add up exactly; a level left with no
lot is dropped.

:func:`limit` is the risk cut: it trims each side so that if every quote on
it filled, ``|position|`` would stay within ``max_position`` (the innermost
levels keep their size, the outer ones give it up), then keeps at most
``max_orders`` quotes, innermost first, bid before ask at each level.

:func:`diff` is the rule that turns a wanted ladder into order messages:

- a live order at a wanted price with the wanted remaining size is left alone;
- a live order at a wanted price with another size is modified to it (a
  smaller size keeps its queue place, a larger one loses it);
- a second order at one price, and any order at a price no longer wanted, is
  cancelled;
- a wanted price with no order gets a new one.

An order with a request in flight is not touched (the venue refuses a second
one) and holds its price, except a pending cancel, which counts as gone. When
the ladder matches the live orders, no message is sent.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

from strategies.api import Order

EPS = 1e-7     # in ticks or lots: absorbs float error from prices and sizes that are on the grid


class Ladder(NamedTuple):
    """Quotes per side, innermost first: prices in ticks, sizes in lots."""

    bid_ticks: tuple[int, ...] = ()
    bid_lots: tuple[int, ...] = ()
    ask_ticks: tuple[int, ...] = ()
    ask_lots: tuple[int, ...] = ()


class Actions(NamedTuple):
    """The messages that turn the live orders into a ladder."""

    cancel: list[int]                          # order ids
    modify: list[tuple[int, int, float]]       # (order id, tick, new total qty incl. executed)
    place: list[tuple[str, int, float]]        # (side, tick, qty)

    def __len__(self) -> int:
        return len(self.cancel) + len(self.modify) + len(self.place)


def level_lots(total: int, levels: int, slope: float) -> list[int]:
    """``total`` lots over ``levels`` in proportion to ``1 + slope * k``, largest remainder first (ties: inner)."""
    weights = [1.0 + slope * k for k in range(levels)]
    scale = total / sum(weights)
    ideal = [w * scale for w in weights]
    lots = [int(x) for x in ideal]
    by_remainder = sorted(range(levels), key=lambda k: (lots[k] - ideal[k], k))
    for k in by_remainder[: total - sum(lots)]:
        lots[k] += 1
    return lots


def build(mid_ticks: float, spread_ticks: float, volume: float, position: float, best_bid: int | None,
          best_ask: int | None, *, levels: int, spacing: int, slope: float, rho: float, lot: float,
          skew_ticks: float, max_position: float) -> Ladder:
    """The ladder for one prediction; ``best_bid``/``best_ask`` in ticks, None for an empty side."""
    center = mid_ticks - skew_ticks * position / max_position
    bid = math.floor(center - spread_ticks / 2 + EPS)
    ask = math.ceil(center + spread_ticks / 2 - EPS)
    if best_ask is not None:
        bid = min(bid, best_ask - 1)
    if best_bid is not None:
        ask = max(ask, best_bid + 1)
    lots = level_lots(math.floor(max(rho * volume, 0.0) / lot + 0.5), levels, slope)
    kept = [k for k in range(levels) if lots[k] > 0]
    return Ladder(tuple(bid - k * spacing for k in kept), tuple(lots[k] for k in kept),
                  tuple(ask + k * spacing for k in kept), tuple(lots[k] for k in kept))


def _within(lots: Sequence[int], room: int) -> tuple[int, ...]:
    """Sizes cut, innermost first, so they add up to at most ``room``."""
    out = []
    for n in lots:
        take = min(n, room)
        if take <= 0:
            break
        out.append(take)
        room -= take
    return tuple(out)


def limit(ladder: Ladder, position: float, max_position: float, max_orders: int, lot: float) -> Ladder:
    """The ladder within the position limit (if all of a side filled) and the order count."""
    bid_lots = _within(ladder.bid_lots, math.floor((max_position - position) / lot + EPS))
    ask_lots = _within(ladder.ask_lots, math.floor((max_position + position) / lot + EPS))
    n_bid = n_ask = 0
    for k in range(max(len(bid_lots), len(ask_lots))):
        if k < len(bid_lots) and n_bid + n_ask < max_orders:
            n_bid += 1
        if k < len(ask_lots) and n_bid + n_ask < max_orders:
            n_ask += 1
    return Ladder(ladder.bid_ticks[:n_bid], bid_lots[:n_bid], ladder.ask_ticks[:n_ask], ask_lots[:n_ask])


def diff(orders: Sequence[Order], ladder: Ladder, tick_size: float, lot: float) -> Actions:
    """The messages that make ``orders`` (the venue's view of ours) match ``ladder``; see the module doc."""
    actions = Actions([], [], [])
    for side, ticks, lots in (("buy", ladder.bid_ticks, ladder.bid_lots), ("sell", ladder.ask_ticks, ladder.ask_lots)):
        wanted = dict(zip(ticks, lots))
        held: set[int] = set()
        for o in orders:
            if o.side != side or o.pending == "cancel":
                continue
            tick = round(o.price / tick_size)
            if o.pending:                  # in flight: leave it, and let it hold its price
                held.add(tick)
            elif not o.is_live:
                continue
            elif tick in wanted and tick not in held:
                held.add(tick)
                if round(o.leaves / lot) != wanted[tick]:
                    actions.modify.append((o.id, tick, o.executed + wanted[tick] * lot))
            else:
                actions.cancel.append(o.id)
        actions.place.extend((side, tick, n * lot) for tick, n in wanted.items() if tick not in held)
    return actions
