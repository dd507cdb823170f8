"""Paper trading's core: feed steps in, the backtest's engine and Session in between, journal records out.

:class:`PaperTrader` has no sockets and no clock. It takes one
:class:`~runtime.paper.journal.Step` at a time (a feed batch, a snapshot resync,
a stale-feed quote pull, the end of the stream), runs the strategy over it on
the same kernel a backtest uses (:mod:`engine.live` streams the rows onto the
two timelines), and returns the step with its outcome filled in: the orders
sent, the fills, the position and cash after it. Fed the same steps it gives
the same outcomes, which is what lets a killed trader resume from its journal
(:meth:`replay` checks that it does).
"""
from __future__ import annotations

import time
from collections import deque

import msgspec
import numpy as np

from engine import views as engine
from engine.views import END, LiveOptions, LiveSim, StreamOrdering, append_in_order
from analysis.results import RunResult, collect
from feeds.instrument import Instrument
from feeds.validate import NO_PRICES, check_price_span
from feeds.zmqfeed.messages import unpack

from runtime.session import Session
from common.config import ConfigError
from runtime.config import PaperConfig
from runtime.paper.journal import JournalError, JournalFill, JournalOrder, Step
from runtime.backtest import build_strategy, sim_config

NO_EXCH_YET = int(np.iinfo(np.int64).min)
_NO_ROWS = b""                 # an empty batch as the feed's bytes (rehearse())
# A step's clock (PaperTrader.marks): its start, its rows decoded and their prices checked, put in order
# for the two timelines, and appended to the engine (a clock, stale or end step marks only its start
# and the last; the usual batch, checked, ordered and appended in one call (engine.views.append_in_order),
# marks its start for the first three, so its whole cost is the append stage); the strategy's wake-ups follow
# (bench/tick_to_order.py prints the stages).
MARKS = ("step", "checked", "ordered", "appended")
STEP, CHECKED, ORDERED, APPENDED = range(len(MARKS))


class PaperTrader:
    """One strategy on one instrument's feed, advanced a step at a time."""

    def __init__(self, cfg: PaperConfig, config_path: str, instrument: Instrument, on_wake=None,
                 live: LiveOptions | None = None):
        """``on_wake()`` is called after each wake-up (the loop times its reactions with it); ``live`` sizes
        the engine's first arrays (tests make them tiny to exercise growth)."""
        self.cfg = cfg
        self.config_path = config_path
        self.on_wake = on_wake
        self.instrument = instrument
        self.strategy = build_strategy(cfg, config_path)
        self.engine_cfg, self.latency = sim_config(cfg, instrument)
        self.options = live or LiveOptions()
        self.ordering = StreamOrdering(cfg.paper.max_feed_latency_ns)
        self.live: LiveSim | None = None
        self.session: Session | None = None
        self.held: list[np.ndarray] = []      # rows that came before any price (the book's range needs one)
        self.started = False
        self.ended = False
        self.seq = 0                          # the feed position of the last step
        self.feed_session = 0
        self.quotes_pulled = 0
        self.rewound = 0                      # rows dropped for lying before the engine's clock
        self.prices = NO_PRICES               # the lowest and highest price the feed has sent
        self.marks = [0] * len(MARKS)         # this step's clock (perf_counter_ns) at each of MARKS
        self._counts = (0, 0)                 # our fills and order requests so far, after the last step

    # ---- steps
    def step(self, step: Step, charges: list[int] | None = None) -> Step:
        """Apply one step; returns it with its outcome. ``charges``: decision times to charge (a replay)."""
        if self.ended:
            raise JournalError(f"a {step.kind} step after the end of the stream")
        marks = self.marks
        marks[STEP] = marks[CHECKED] = marks[ORDERED] = time.perf_counter_ns()
        fills0, req0 = self._counts     # as the last step left them: nothing moves them between steps
        if step.kind in ("batch", "snapshot"):
            prices = None if self.live is None else append_in_order(self.live, self.ordering, step.events,
                                                                    self.instrument.tick_size, self.prices)
            if prices is not None:
                self.prices = prices
            else:
                self._general_batch(step, unpack(step.events))
        elif step.kind == "clock":
            self._take(self.ordering.advance(step.clock_ns))
        elif step.kind == "end":
            self._take(self.ordering.flush())
            if self.live is None:                  # a feed with no price at all: an empty book to report on
                self._open(self.instrument.tick_size * self.options.tick_range * 2)
            self.live.finish()
            self.ended = True
        marks[APPENDED] = time.perf_counter_ns()
        if self.session is not None:
            self.session.charges = []
            self.session.replay_charges = deque(charges) if charges is not None else None
        if step.kind == "stale" and self.started:
            self.quotes_pulled += int(engine.cancel_all(self.live.sim))
        self._run()
        self.seq, self.feed_session = step.seq, step.session
        return self._outcome(step, fills0, req0)

    def _general_batch(self, step: Step, rows: np.ndarray) -> None:
        """Any batch but the usual one: before the first price, held back, late, rewound, re-centring or
        growing the engine's arrays."""
        # A price the book's range cannot hold is refused before the engine allocates for it.
        self.prices = check_price_span(rows, self.instrument.tick_size, f"feed {step.kind} {step.seq}",
                                       seen=self.prices)
        self.marks[CHECKED] = time.perf_counter_ns()
        rows = self.ordering.push(self._in_time(rows, step.kind == "snapshot"))
        self.marks[ORDERED] = time.perf_counter_ns()
        self._take(rows)

    def rehearse(self) -> bool:
        """Between steps, while the feed is quiet: the strategy's rehearsal (:meth:`Strategy.rehearse`) on
        the engine as it is, then the step's own path with nothing to do: an empty batch offered to the
        engine (refused, as every empty one is) and the session run to the horizon the last step reached
        (a wait, at once). None of it changes what a step or the journal sees; whether it ran."""
        if not self.started or self.ended:
            return False
        self.strategy.rehearse(self.session.ctx)
        append_in_order(self.live, self.ordering, _NO_ROWS, self.instrument.tick_size, self.prices)
        self.session.run(self.ordering.horizon)
        return True

    def replay(self, step: Step) -> None:
        """Re-run a journaled step; its outcome must be the one journaled, else the journal cannot resume."""
        again = self.step(msgspec.structs.replace(step, charges_ns=[], orders=[], fills=[]),
                          charges=step.charges_ns)
        for what in ("fills", "orders", "position", "cash"):
            if getattr(again, what) != getattr(step, what):
                raise JournalError(f"replaying the journal diverged at seq {step.seq} ({what} differ): "
                                   f"was the config, the data or the code changed?")

    def _in_time(self, rows: np.ndarray, restamp: bool) -> np.ndarray:
        """Rows that do not go back in time. The feed's clock only goes back when a replaying publisher
        restarts: its batches before our clock are dropped (and counted); a snapshot is the book *now*,
        so its rows are stamped with our clock instead."""
        last = self.ordering.last_local
        if last is None or len(rows) == 0 or rows["local_ts"][0] >= last:
            return rows
        if restamp:
            rows = rows.copy()
            rows["local_ts"] = np.maximum(rows["local_ts"], last)
            rows["exch_ts"] = np.maximum(rows["exch_ts"], last - self.ordering.max_latency)
            return rows
        keep = rows["local_ts"] >= last
        self.rewound += int(len(rows) - keep.sum())
        return rows[keep]

    def _take(self, rows: np.ndarray) -> None:
        if self.live is None:
            if len(rows):
                self.held.append(rows)
            priced = [r["px"][(r["px"] > 0) & np.isfinite(r["px"])] for r in self.held]
            priced = [p for p in priced if len(p)]
            if not priced:
                return
            self._open(float(priced[0][0]))
            rows = np.concatenate(self.held)
            self.held = []
        self.live.append(rows)
        if self.live.sim is not self.session.sim:      # grown or re-centred: a new Sim over new arrays
            self.session.use(self.live.sim)

    def _open(self, first_price: float) -> None:
        self.live = LiveSim(self.engine_cfg, first_price, self.options, self.latency)
        self.session = Session(self.strategy, self.live.sim, self.instrument.tick_size, self.instrument.lot_size)
        self.session.on_wake = self.on_wake
        self.live.reader = self.session        # the engine drops rows passed, and the session shifts with it

    def _run(self) -> None:
        if self.session is None:
            return
        if not self.started:
            # The clock starts at the first row of either timeline (as in a backtest): wait for the first
            # exchange-timeline row, which the ordering holds back until it is certain to be first.
            if self.ordering.released_exch == NO_EXCH_YET and not self.ended:
                return
            try:
                self.session.start()
            except ConfigError as e:      # a strategy refusing its settings at start: name the config
                raise e.located(self.config_path) from None
            self.started = True
        self.session.run(int(END) - 1 if self.ended else self.ordering.horizon)

    # ---- outcome
    @property
    def requests_sent(self) -> int:
        """Order requests the strategy has sent so far."""
        return self.session.view.requests_sent if self.session is not None else 0

    def _engine_counts(self) -> tuple[int, int]:
        """Our fills and order requests in the engine now."""
        if self.live is None:
            return 0, 0
        view = self.session.view
        return view.n_fills, view.requests_sent

    def _outcome(self, step: Step, fills0: int, req0: int) -> Step:
        if self.live is None:
            return step
        view = self.session.view
        fills1, req1 = self._counts = self._engine_counts()
        fills = [JournalFill(order_id=oid, side=side, exch_ts=exch_ts, local_ts=local_ts, maker=maker, price=price,
                             qty=qty, fee=fee)
                 for oid, side, exch_ts, local_ts, maker, price, qty, fee in view.fills(fills0, fills1).tolist()]
        tick = self.instrument.tick_size
        orders = [JournalOrder(order_id=r.order_id, kind=r.kind, side=r.side,
                               price=float(r.tick) * tick if r.kind != "cancel" else 0.0, qty=r.qty,
                               arrives_ts=r.arrives_ts)
                  for r in view.requests(req0, req1)]
        account = view.account()
        return msgspec.structs.replace(
            step, charges_ns=list(self.session.charges or []), orders=orders, fills=fills,
            position=account.position, cash=account.cash, fees=account.fees)

    # ---- the end
    def close(self) -> RunResult:
        """Stop the strategy and return the run's results (the engine as far as the feed went)."""
        if self.live is None:
            self._open(self.instrument.tick_size * self.options.tick_range * 2)
        if self.started:
            self.session.stop()
        return collect(self.live.sim, self.live.spilled_ticks())

