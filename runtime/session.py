"""Run a Python ``Strategy`` over the jitted engine.

The engine runs uninterrupted in Numba between wake-ups; at each wake-up this
module turns what happened since the previous one (our fills, order state
changes, market trades, depth changes) into the strategy's callbacks, and its
order calls into the engine's order API. Reads go through the engine's named
views (:class:`engine.views.SimView`: numpy views of its arrays, no copies), so
a wake-up costs a few microseconds of Python plus the strategy's own work.
Callbacks the strategy does not override are not prepared at all: a timer-only
strategy (CMM) pays nothing for the order-state scan, the trade arrays or the
depth check.

The callbacks' order exists once, in :class:`Dispatcher`. :class:`Session` is
the wake-up loop and the decision-time charge, for backtests and paper trading
alike; who runs a step's callbacks is its ``decisions``: :class:`LocalDecisions`
here, or the strategy process of ``--transport zmq`` (:mod:`runtime.link.engine_side`),
which runs the same ``LocalDecisions`` and ``Dispatcher`` over its copy of this
context (:mod:`runtime.link.strategy_process`).
"""
from __future__ import annotations

import gc
import time
from collections import deque

import numpy as np

from engine import views as engine
from engine.codes import (BUY, INVALID_MAX, INVALID_MIN, REASON_NAMES, REQUEST_NAMES, SELL,
                          SIDE_NAMES, STATUS_NAMES, TIF_NAMES, TIFS_BY_NAME, TYPE_NAMES, TYPES_BY_NAME)
from engine.views import Sim, SimView
from analysis.results import RunResult, after_warmup, collect
from common.spill import Spill
from feeds.events import EVENT_DTYPE, KIND_MASK, LOCAL, TRADE
from feeds.events import BUY as BUY_FLAG, SELL as SELL_FLAG
from common.progress import Progress

from strategies.api import Book, Fill, Metrics, Order, OrderColumns, OrderRejected, Trades
from strategies.base import Strategy
from strategies.kernels.quoting import send_messages



class EngineContext:
    """The :class:`~strategies.api.Context` over one engine ``Sim``: a paper exchange's, and the base of a
    backtest's (:class:`BacktestContext`, which also knows the market's future)."""

    def __init__(self, sim: Sim, tick_size: float, lot_size: float):
        self.use(sim)
        self.tick_size = tick_size
        self.lot_size = lot_size
        self._unread = 0            # the first row new_events() has not returned yet
        self._fills_seen = 0        # the first fill-log row not reported to the strategy yet
        self._unread_dropped: Spill | None = None   # unread rows a live engine dropped (drop_rows)
        self.requested_ns = 0       # perf_counter_ns when the last order request was handed to the engine

    def use(self, sim: Sim) -> None:
        """Read ``sim`` from now on (a live engine's grown copy of the same state)."""
        self.sim = sim
        self.view = SimView(sim)

    # ---- views
    @property
    def now(self) -> int:
        return self.view.now

    def _price(self, tick: int, empty: int) -> float:
        return float("nan") if tick == empty else tick * self.tick_size

    @property
    def best_bid(self) -> float:
        return self._price(self.view.best_bid_tick, INVALID_MIN)

    @property
    def best_ask(self) -> float:
        return self._price(self.view.best_ask_tick, INVALID_MAX)

    @property
    def mid(self) -> float:
        return (self.best_bid + self.best_ask) / 2

    @property
    def position(self) -> float:
        return self.view.position

    def book(self, depth: int = 5) -> Book:
        bid_px, bid_qty, ask_px, ask_qty = self.view.book_levels(depth)
        return Book(bid_px * self.tick_size, bid_qty, ask_px * self.tick_size, ask_qty)

    def orders(self) -> list[Order]:
        return [self._order_of(o, q) for o, q in self.view.local_orders(engine.visible_slots(self.sim))]

    def order_columns(self) -> OrderColumns:
        return OrderColumns(*engine.local_order_columns(self.sim))

    def _order_of(self, order: tuple, sizes: tuple) -> Order:
        """One order from the tuples of :meth:`engine.views.SimView.local_orders`."""
        oid, side, tick, status, tif, type_, reason, pending = order
        qty, leaves, executed = sizes
        return Order(
            id=oid, side=SIDE_NAMES[side], price=tick * self.tick_size, qty=qty, leaves=leaves, executed=executed,
            status=STATUS_NAMES[status], tif=TIF_NAMES[tif], type=TYPE_NAMES[type_], reason=REASON_NAMES[reason],
            pending=REQUEST_NAMES.get(pending, ""))

    def metrics(self) -> Metrics:
        r = self.view.so_far()
        k = r.n_ticks
        return Metrics(epnl=r.epnl, map=r.sum_abs_position / k if k else 0.0,
                       rpt=r.epnl / r.tick_fills if r.tick_fills else 0.0,
                       n_fills=r.n_fills, volume=r.volume, fees=r.fees)

    def new_events(self) -> np.ndarray:
        """The LOCAL rows replayed since the previous call: rows [previous stop, the local replay position).

        Only the slice since the last call is touched, so a call per wake-up costs
        in proportion to the rows that wake-up saw.
        """
        start, stop = self._unread, self.view.next_local_row
        self._unread = stop
        rows = self.view.local_rows(start, stop)
        if self._unread_dropped is not None and self._unread_dropped.rows:
            rows = np.concatenate([self._unread_dropped.take(), rows])
        return rows

    def new_event_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`new_events` as the engine's own columns ``ev, local_ts, px, qty`` over the same rows, without
        building the records: views, no copy. Rows without the LOCAL flag among them are the engine's
        exchange-timeline copies, which a reader of local rows skips (as :func:`bundle.features.apply_rows`
        does)."""
        if self._unread_dropped is not None and self._unread_dropped.rows:
            rows = self.new_events()
            return rows["ev"], rows["local_ts"], rows["px"], rows["qty"]
        start, stop = self._unread, self.view.next_local_row
        self._unread = stop
        return self._window(start, stop)

    def drop_rows(self, k: int) -> None:
        """A live engine drops its first ``k`` rows: those :meth:`new_events` has not returned yet go to a
        spill file (a strategy that never asks for them does not make memory grow), and the unread
        position shifts."""
        if self._unread < k:
            if self._unread_dropped is None:
                self._unread_dropped = Spill(EVENT_DTYPE)
            self._unread_dropped.append(self.view.local_rows(self._unread, k))
            self._unread = k
        self._unread -= k

    # ---- what the wake-up's dispatch reads and does besides the strategy's own calls
    def _new_fills(self, now: int) -> list[Fill]:
        """Our fills that reached the local side by ``now`` and were not reported yet, in order."""
        v, seen = self.view, self._fills_seen
        self._fills_seen = stop = v.fills_known(seen, now)
        if stop == seen:
            return []
        return [Fill(order_id=oid, side=SIDE_NAMES[side], price=price, qty=qty, fee=fee, maker=maker,
                     exch_ts=exch_ts, local_ts=local_ts)
                for oid, side, exch_ts, local_ts, maker, price, qty, fee in v.fills(seen, stop).tolist()]

    def _window(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """Rows [start, stop) of the replay, as the columns a wake-up's dispatch reads."""
        v = self.view
        return v.ev[start:stop], v.local_ts[start:stop], v.px[start:stop], v.qty[start:stop]

    def _clear_inactive(self) -> None:
        engine.clear_inactive(self.sim)   # finished orders are reported once, then leave the view

    # ---- orders
    def _tick(self, price: float) -> int:
        return int(round(price / self.tick_size))

    def _submit(self, side: int, price: float, qty: float, tif: str, type: str) -> int:
        tick = 0 if type == "market" else self._tick(price)
        oid = self._requested(int(engine.submit(self.sim, side, tick, float(qty), TIFS_BY_NAME[tif],
                                                TYPES_BY_NAME[type])))
        if oid < 0:
            raise OrderRejected(f"{SIDE_NAMES[side]} {qty} @ {price}: "
                                f"{REASON_NAMES.get(-oid, 'refused')}")
        return oid

    def buy(self, price: float, qty: float, tif: str = "gtx", type: str = "limit") -> int:
        return self._submit(BUY, price, qty, tif, type)

    def sell(self, price: float, qty: float, tif: str = "gtx", type: str = "limit") -> int:
        return self._submit(SELL, price, qty, tif, type)

    def cancel(self, order_id: int) -> bool:
        return self._requested(engine.cancel(self.sim, order_id) == 0)

    def modify(self, order_id: int, price: float, qty: float) -> bool:
        return self._requested(engine.modify(self.sim, order_id, self._tick(price), float(qty)) == 0)

    def cancel_all(self) -> int:
        return self._requested(int(engine.cancel_all(self.sim)))

    def _requested(self, result):
        """``result``, after noting the clock: the request is in the engine (paper trading's tick to order)."""
        self.requested_ns = time.perf_counter_ns()
        return result

    def send_messages(self, messages: np.ndarray, qty: np.ndarray) -> None:
        """Send the messages of :func:`strategies.ladder.diff_into`, in order, in one jitted call: what
        ``cancel``, ``modify`` and :func:`strategies.api.place` would send one by one (a new order the
        engine refuses is skipped, and counted in ``refused_orders``)."""
        self._requested(send_messages(self.sim, messages, qty))

    def on_engine(self, kernel, *args):
        """``kernel(sim, *args)``: a jitted call that reads this engine and may send its order requests on it
        too (:func:`strategies.kernels.quoting.send_messages`), so that a live decision's work and its orders
        are one call; what it returns. A venue whose order calls go elsewhere does not offer it."""
        return self._requested(kernel(self.sim, *args))


class BacktestContext(EngineContext):
    """A backtest's context: the engine's, plus the whole replay ahead of it (and its ``sim``, which a
    strategy's :meth:`~strategies.base.Strategy.run_timer_wakeups` may step itself)."""

    def market_ahead(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """The whole replay's ``ev, local_ts, px, qty`` and the first row :meth:`new_events` has not returned.

        A backtest knows the market's future; a strategy whose features read
        market data only may replay it ahead of the engine (CMM's batched
        inference), from that row on. A live context has no such method.
        """
        v = self.view
        return v.ev, v.local_ts, v.px, v.qty, self._unread


def _trades(ev: np.ndarray, local_ts: np.ndarray, px: np.ndarray, qty: np.ndarray) -> Trades:
    """The local trades among a wake-up's rows (columns of the same rows)."""
    rows = np.flatnonzero(((ev & np.uint64(LOCAL)) != 0) & ((ev & np.uint64(KIND_MASK)) == TRADE))
    e = ev[rows]
    side = np.where(e & np.uint64(BUY_FLAG), 1, np.where(e & np.uint64(SELL_FLAG), -1, 0)).astype(np.int8)
    return Trades(local_ts[rows], px[rows], qty[rows], side)


def overrides(strategy: Strategy, name: str) -> bool:
    """Whether ``strategy`` replaces the base class's (no-op) callback ``name``, in its class or itself."""
    return getattr(type(strategy), name) is not getattr(Strategy, name) or name in vars(strategy)


class Dispatcher:
    """One wake-up's callbacks, in the documented order, over any context that keeps the engine's order view;
    only those the strategy overrides are prepared.

    The in-process backtest and paper trading run it over the engine's ``Sim``;
    the strategy process of ``--transport zmq`` over its copy of the strategy's
    view (:mod:`runtime.link.strategy_process`), so all of them call the strategy alike.
    A wake-up's market rows are given as columns (``ev``, ``local_ts``, ``px``,
    ``qty``): the engine's arrays between two replay positions, or the rows a
    wake-up message brought. Positions, not timestamps, delimit them, because a
    wake-up on events can fall between two events with the same timestamp. A strategy that reads no rows
    (``reads_rows`` false: no ``on_trade``, no ``on_depth``) may be woken with ``None`` for each column.
    """

    def __init__(self, ctx: EngineContext, strategy: Strategy):
        self.ctx = ctx
        self.strategy = strategy
        self.order_state: dict[int, tuple] = {}
        self.wants = {name: overrides(strategy, name) for name in ("on_fill", "on_order_update", "on_trade",
                                                                   "on_depth")}
        self.reads_rows = self.wants["on_trade"] or self.wants["on_depth"]    # the only readers of a wake-up's rows

    def wake(self, reason: int, ev: np.ndarray | None, local_ts: np.ndarray | None, px: np.ndarray | None,
             qty: np.ndarray | None) -> None:
        ctx, strategy, wants = self.ctx, self.strategy, self.wants
        if wants["on_fill"]:
            for fill in ctx._new_fills(ctx.now):
                strategy.on_fill(ctx, fill)
        if wants["on_order_update"]:
            self.order_updates()
        ctx._clear_inactive()             # finished orders are reported once, then leave the view
        if self.reads_rows:
            n_trades, book_changed = engine.window(ev)
            if n_trades and wants["on_trade"]:
                strategy.on_trade(ctx, _trades(ev, local_ts, px, qty))
            if book_changed and wants["on_depth"]:
                strategy.on_depth(ctx)
        if reason & engine.WOKE_TIMER:
            strategy.on_timer(ctx)

    def order_updates(self) -> None:
        """``on_order_update`` for each order whose state changed since the last wake-up."""
        ctx = self.ctx
        seen = {}
        for order, sizes in ctx.view.local_orders(engine.visible_slots(ctx.sim)):
            oid, _, tick, status, _, _, _, pending = order
            qty, leaves, _ = sizes
            state = (status, tick, qty, leaves, pending)
            seen[oid] = state
            if self.order_state.get(oid) != state:
                self.strategy.on_order_update(ctx, ctx._order_of(order, sizes))
        self.order_state = seen


# A wake-up's market rows for a strategy that reads none of them (Dispatcher.reads_rows).
NO_ROWS = (None, None, None, None)


def timed(callbacks, *args) -> int:
    """Run ``callbacks(*args)``; their wall time in ns (a measured decision time). The arguments, not a
    closure: one Python call fewer on paper trading's tick to order."""
    t0 = time.perf_counter_ns()
    callbacks(*args)
    return time.perf_counter_ns() - t0


class LocalDecisions:
    """The strategy runs in this process: each step is its callbacks, timed (as the strategy says to charge)."""

    def __init__(self, ctx: EngineContext, strategy: Strategy):
        self.ctx = ctx
        self.strategy = strategy
        self.calls = Dispatcher(ctx, strategy)

    def start(self) -> int:
        return self.strategy.charged_ns(timed(self.strategy.on_start, self.ctx))

    def wake(self, reason: int, start: int, stop: int) -> int:
        # The rows' columns only for a strategy that reads them (on_trade, on_depth): four slices are
        # microseconds on paper trading's tick to order.
        rows = self.ctx._window(start, stop) if self.calls.reads_rows else NO_ROWS
        t0 = time.perf_counter_ns()       # timed() inline: a Python call is a microsecond of the reaction
        self.calls.wake(reason, *rows)
        return self.strategy.charged_ns(time.perf_counter_ns() - t0)

    def stop(self) -> None:
        self.strategy.on_stop(self.ctx)


class Session:
    """One strategy driven by one engine: the wake-up loop that backtests and paper trading share.

    :meth:`run` replays up to a horizon: all the data for a backtest, the rows
    received so far for paper trading (whose ``LiveSim`` may swap in a grown
    ``Sim`` between calls: :meth:`use`). A wake-up's callbacks run in the
    documented order, and a measured decision time is charged to the requests
    they sent.

    ``decisions`` makes the object that runs each step's callbacks: by default
    :class:`LocalDecisions`, the strategy in this process; ``--transport zmq``
    passes one that asks a strategy process (:mod:`runtime.link.engine_side`).
    ``context`` is the strategy's view: the engine's (:class:`EngineContext`),
    or a backtest's, which also sees the replay ahead (:class:`BacktestContext`).
    The loop, the clock and the charge are this class's either way. In a backtest
    whose wake-ups run nothing but ``on_timer`` and whose decision time is
    declared, the strategy may run a stretch of timer wake-ups on the engine
    itself (:meth:`~strategies.base.Strategy.run_timer_wakeups`); the loop then
    counts them and goes on from where the stretch stopped.
    """

    def __init__(self, strategy: Strategy, sim: Sim, tick_size: float, lot_size: float,
                 decisions=LocalDecisions, context: type[EngineContext] = EngineContext):
        self.strategy = strategy
        self.ctx = context(sim, tick_size, lot_size)
        self.decisions = decisions(self.ctx, strategy)
        self.measured = strategy.compute_ns is None
        self.wakeups = 0
        self.ended = False
        self.on_wake = None         # called after each wake-up (a progress bar, a status line)
        self.charges: list[int] | None = None       # measured decision times, appended as charged (a journal)
        self.replay_charges: deque[int] | None = None   # decision times to charge instead of measuring (resume)
        self._prev = 0
        self.warm_ticks = 0         # tick rows of the warm-up before a window's start (start(warm_until))
        # In a backtest where nothing but on_timer and the clearing of finished orders runs at a wake-up, and
        # nothing is measured, the strategy may run a stretch of timer wake-ups itself
        # (Strategy.run_timer_wakeups); paper trading never asks, so its reactions pay nothing for it.
        self.stretches = (not self.measured and isinstance(self.ctx, BacktestContext)
                          and isinstance(self.decisions, LocalDecisions)
                          and not any(self.decisions.calls.wants.values()))

    @property
    def sim(self) -> Sim:
        return self.ctx.sim

    @property
    def view(self) -> SimView:
        return self.ctx.view

    def use(self, sim: Sim) -> None:
        """Continue on ``sim``, a grown copy of the current state."""
        self.ctx.use(sim)

    # ---- the reader of a live engine (engine.views.LiveSim.reader): rows it may drop, rows it drops
    def keep_from(self) -> int:
        """The first row still needed: the next wake-up's rows start at the previous one's stop."""
        return self._prev

    def drop_rows(self, k: int) -> None:
        """The engine drops its first ``k`` rows (at most :meth:`keep_from`): shift the row positions held."""
        self._prev -= k
        self.ctx.drop_rows(k)

    def start(self, warm_until: int | None = None) -> None:
        """Start the engine and the strategy; with ``warm_until`` (exchange ns), replay the events up to it
        first, with no strategy awake: the books fill, and the strategy's first :meth:`~EngineContext.new_events`
        returns them all, so features warm up causally on the data before a window (:mod:`runtime.window`)."""
        sim = self.sim
        engine.set_compute_ns(sim, 0 if self.measured else int(self.strategy.compute_ns))
        engine.start(sim)
        if warm_until is not None:
            self.warm_ticks = warm_up(sim, warm_until)
        self._prev = self.ctx.view.next_local_row
        self._decide(self.decisions.start)

    def _decide(self, step, *args) -> None:
        mark = self.ctx.view.requests_sent if self.measured else 0
        ns = step(*args)
        if self.measured:
            if self.replay_charges:
                ns = self.replay_charges.popleft()
            if self.charges is not None:
                self.charges.append(ns)
            engine.charge_compute(self.sim, mark, ns)

    def run(self, horizon: int = int(engine.END) - 1) -> bool:
        """Wake the strategy as due up to ``horizon``; False once the data has ended."""
        wake = self.strategy.wake
        every_ns, every_events, on_top = wake.every_ns or 0, wake.every_events or 0, wake.on_top_change
        while not self.ended:
            if self.stretches:
                ran = self.strategy.run_timer_wakeups(self.ctx, horizon)
                if ran is not None:
                    wakeups, reason = ran
                    self._prev = self.ctx.view.next_local_row
                    self.wakeups += wakeups
                    self.ended = reason == engine.WOKE_END
                    if self.on_wake is not None:
                        self.on_wake()
                    if reason == engine.WOKE_WAIT:
                        return True
                    continue
            reason = engine.advance_until(self.ctx.sim, every_ns, every_events, on_top, horizon)
            if reason == engine.WOKE_WAIT:
                return True
            here = self.ctx.view.next_local_row     # the next local row to replay
            self._decide(self.decisions.wake, reason, self._prev, here)
            self._prev = here
            self.wakeups += 1
            self.ended = reason == engine.WOKE_END
            if self.on_wake is not None:
                self.on_wake()
        return False

    def stop(self) -> None:
        self.decisions.stop()


def warm_up(sim: Sim, until: int) -> int:
    """Replay ``sim`` up to ``until`` (ns, inclusive) with no strategy awake; the tick rows it logged."""
    engine.start(sim)
    if until > engine.now(sim):
        engine.elapse(sim, until - engine.now(sim))
    return SimView(sim).so_far().n_ticks


def run(strategy: Strategy, sim: Sim, tick_size: float, lot_size: float, *, progress: bool = False,
        decisions=LocalDecisions, warm_until: int | None = None) -> RunResult:
    """Replay ``sim``'s events with ``strategy`` waking per its policy; returns the run's results.

    ``decisions``: who runs the callbacks (see :class:`Session`). ``warm_until``: a window's start; the
    events up to it only warm up, and the results leave out their tick rows (:func:`after_warmup`)."""
    session = Session(strategy, sim, tick_size, lot_size, decisions, BacktestContext)
    # What exists now (modules, the model, the events) lives for the whole run: kept out of the
    # collector's full passes, which would otherwise walk it all (~0.1 s with torch loaded) inside
    # some wake-up and charge that to its decision.
    gc.freeze()
    try:
        with Progress(len(sim.ev), "backtest", enabled=progress) as bar:
            if bar.enabled:
                session.on_wake = lambda: bar.set(engine.progress_rows(sim))
            session.start(warm_until)
            session.run()
            session.stop()
    finally:
        gc.unfreeze()
    return after_warmup(collect(sim), session.warm_ticks)
