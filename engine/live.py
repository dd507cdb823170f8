"""The engine over rows that are still arriving: paper trading runs the backtest's kernel unchanged.

A backtest knows its whole event array up front; a live feed hands it over a
batch at a time, one row per event in the order we received it (the local
timeline). Two things make the kernel's answer independent of how the feed was
cut into batches:

- **Both timelines, streamed.** Each received row goes at once onto the local
  timeline (a LOCAL-only copy; a row that is also certain on the exchange
  timeline, as most are, goes in once with both flags). Its exchange-timeline
  copy (EXCH-only) must sit in ``exch_ts`` order, and a later row may carry an earlier ``exch_ts``; so the
  copies wait in a sorted buffer until no row still to come can precede them.
  With feed latency at most ``max_feed_latency_ns``, a row received later has
  ``exch_ts >= last local_ts - max_feed_latency_ns``: the *watermark*. Copies at
  or below it are released, in ``exch_ts`` order with ties in arrival order:
  exactly the stable sort that :func:`feeds.ordering.order_timelines` gives a
  whole file. A row later than the bound (``exch_ts`` below a copy already
  released) is moved up to that copy's time and counted as late.
- **A horizon.** Every row at or before ``watermark - 1`` is known, on both
  timelines, so :func:`engine.kernel.advance_until` may process everything up
  to it; a pending wake-up waits (``WOKE_WAIT``) for more rows, or for the
  feed's word that nothing came up to a later time (:meth:`StreamOrdering.advance`).

The usual batch of a feed with one clock (or whose rows are certain when they
arrive) is in order on both timelines, holds nothing back, stays inside the
book's range and fits the arrays: :func:`append_in_order` checks, orders and
appends it in one jitted call, from the feed's bytes, and leaves every other
batch, unchanged, to the general path (``feeds.validate.check_price_span``,
:meth:`StreamOrdering.push`, :meth:`LiveSim.append`); ``bench/paper_step.py``
times the two.

The engine's arrays are sized by the data in a backtest. Here they start at a
capacity, and the book's tick range is re-centred when prices come near its
edge. A paper session may run for days, so when the rows fill the arrays the
rows already *passed* are dropped first (:meth:`LiveSim._make_room`): those both
timelines' cursors are past and the reader (the :class:`~runtime.session.Session`:
the rows of its next wake-up) no longer needs, less the last LOCAL row and the
last tick's row, which the kernel reads back. Their ticks (tick-log rows) go to a
:class:`~common.spill.Spill` file, to be read back once for the results. The
arrays then double only if what is still held fills half of them, so they stay
within ``max(initial_rows, 4 x (rows held + one batch))`` rows however long the
session. Every array is copied into a new ``Sim`` whose scalars are the old ones,
with the row cursors shifted. Order-level (L3) queues need the whole file's order
count up front and are not offered live.
"""
from __future__ import annotations

import msgspec
import numba as nb
import numpy as np

from feeds.events import DEPTH, EVENT_DTYPE, EXCH, KIND_MASK, LOCAL
from feeds.validate import MAX_BOOK_TICKS, PRICED_BY_KIND

from common.config import ConfigError
from common.spill import Spill
from engine.state import (I_IE, I_IL, I_LB, I_LIVE, I_N, I_NTICKS, I_RECORD_TICKS, I_STARTED, I_TICKS_SPILLED, I_UB,
                          MODEL_FIELDS, SIM_FIELDS, EngineConfig, Sim, count_ticks, is_tick, make_sim, queue_model,
                          tick_times)

TIMELINES = np.uint64(EXCH | LOCAL)
TIMELINES_WORD = np.int64(EXCH | LOCAL)       # the same flags on an event row seen as 8-byte words

# The book arrays indexed by ``tick - lb``: re-centring moves their contents.
BOOK_ARRAYS = ("xbid", "xask", "lbid", "lask", "nbuy_at", "nsell_at")
# The arrays with a row per tick: growing copies their first rows.
ROW_ARRAYS = ("tk_mid", "tk_epnl", "tk_nq")
# A tick-log row moved out of the arrays: its time (from its event row, which goes too) and the tick log's columns.
SPILLED_TICK_DTYPE = np.dtype([("ts", "i8"), ("mid", "f8"), ("epnl", "f8"), ("nq", "i4")])


class LiveOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How big the live engine's arrays start; they grow as needed."""

    initial_rows: int = 1 << 16                # event capacity before the first growth
    tick_range: int = 20_000                   # ticks either side of the first price


@nb.njit(cache=True)
def _latest_and_in_order(local_ts, exch_ts):
    """The latest ``local_ts`` of a batch, and whether its ``exch_ts`` never go back: one pass for the usual
    batch's test (:meth:`StreamOrdering.push`)."""
    latest = local_ts[0]
    for t in local_ts:
        latest = max(latest, t)
    for i in range(1, exch_ts.size):
        if exch_ts[i] < exch_ts[i - 1]:
            return latest, False
    return latest, True


@nb.njit(cache=True)
def _tick_span(px, tick):
    """``(any, lowest, highest)`` tick of the finite positive prices, in one pass: a live batch's prices
    are checked against the book's range at every step."""
    low, high = np.inf, -np.inf
    for p in px:
        if np.isfinite(p) and p > 0:
            low = min(low, p)
            high = max(high, p)
    if low > high:
        return False, 0, 0
    return True, np.int64(np.round(low / tick)), np.int64(np.round(high / tick))


@nb.njit(cache=True)
def _resume(ints, ev, n):
    """Make rows ``[old n, n)`` visible: each timeline's cursor moves to its next row if it had run out.
    Takes the ``Sim``'s arrays, not the ``Sim``: passing a structref from Python costs a microsecond more."""
    ints[I_N] = n
    if ints[I_STARTED] == 1:
        ie = ints[I_IE]
        while ie < n and (ev[ie] & EXCH) == 0:
            ie += 1
        ints[I_IE] = ie
        il = ints[I_IL]
        while il < n and (ev[il] & LOCAL) == 0:
            il += 1
        ints[I_IL] = il


@nb.njit(cache=True)
def _passed_rows(S, keep):
    """How many leading rows may be dropped: both cursors and ``keep`` (the reader's first row) are past
    them, and the kernel reads none of them back. It does read back the last LOCAL row (the clock of a
    run without timers ends there: ``kernel._last_local_ts``) and the newest tick's values (the running
    metrics, ``SimView.so_far``), so their rows stay."""
    ints = S.ints
    if ints[I_STARTED] == 0:
        return 0
    n = ints[I_N]
    cut = min(ints[I_IE], ints[I_IL], keep, n)
    i = n - 1
    while i >= 0 and (S.ev[i] & LOCAL) == 0:
        i -= 1
    cut = min(cut, max(i, 0))
    if ints[I_RECORD_TICKS] == 1 and ints[I_NTICKS] > 0:
        j = ints[I_IL] - 1
        while j >= 0 and not is_tick(S.ev[j]):
            j -= 1
        cut = min(cut, max(j, 0))
    return cut


# A received row as 8-byte words, in ``EVENT_DTYPE``'s order: the usual batch's kernel copies whole rows.
_WORDS = EVENT_DTYPE.itemsize // 8
_EV, _XTS, _LTS, _PX = (EVENT_DTYPE.names.index(f) for f in ("ev", "exch_ts", "local_ts", "px"))
_SPAN_SPARE = 2          # ticks the usual batch's span check leaves for rounding (it never refuses; the general path does)


@nb.njit(cache=True)
def _append_in_order(ints, events, rows_f, n, last_local, released_exch, max_latency, check_tick, book_tick,
                     seen_lo, seen_hi):
    """Append a received batch in one pass when it is the usual one; else change nothing. Returns
    ``(appended, lowest, highest checked price, latest local_ts, last exch_ts)``.

    The usual batch: its prices stay within the span a book may hold (counted from ``seen_lo .. seen_hi``,
    the range seen so far, as :func:`feeds.validate.check_price_span` counts it, with ``_SPAN_SPARE`` ticks
    to spare) and inside the book's range less its margin (``LiveSim._fit_prices`` would not re-centre);
    it goes back on neither timeline (``local_ts[0] >= last_local``, ``exch_ts[0] >= released_exch``, its
    ``exch_ts`` never decrease), is certain on both at once (its last ``exch_ts`` at or below the
    watermark) and the arrays have room. Its rows then go in once with both flags, as
    :meth:`StreamOrdering.push` writes them, and become visible (:func:`_resume`). ``ints`` is the
    ``Sim``'s; ``rows_f`` and ``events`` are the records as 8-byte words (float64, int64: a view made
    in Python costs a microsecond, in here nothing).
    """
    rows = rows_f.view(np.int64)
    m = rows.size // _WORDS
    if m == 0 or (n + m) * _WORDS > events.size:
        return False, seen_lo, seen_hi, last_local, released_exch
    lo, hi = seen_lo, seen_hi                       # the checked range: priced kinds (check_price_span)
    low, high = np.inf, -np.inf                     # the book's: every finite positive price (_tick_span)
    latest, last_x = rows[_LTS], rows[_XTS]
    if latest < last_local or last_x < released_exch:
        return False, seen_lo, seen_hi, last_local, released_exch
    for i in range(m):
        w = i * _WORDS
        p = rows_f[w + _PX]
        if np.isfinite(p) and p > 0:
            low = min(low, p)
            high = max(high, p)
            if PRICED_BY_KIND[rows[w + _EV] & KIND_MASK]:
                lo = min(lo, p)
                hi = max(hi, p)
        latest = max(latest, rows[w + _LTS])
        if rows[w + _XTS] < last_x:
            return False, seen_lo, seen_hi, last_local, released_exch
        last_x = rows[w + _XTS]
    latest = max(latest, last_local)
    margin = (ints[I_UB] - ints[I_LB]) // 4
    if (last_x > latest - max_latency
            or (lo <= hi and np.round(hi / check_tick) - np.round(lo / check_tick) > MAX_BOOK_TICKS - _SPAN_SPARE)
            or (low <= high and (np.int64(np.round(low / book_tick)) < ints[I_LB] + margin
                                 or np.int64(np.round(high / book_tick)) > ints[I_UB] - margin))):
        return False, seen_lo, seen_hi, last_local, released_exch
    base = n * _WORDS
    for k in range(m * _WORDS):
        events[base + k] = rows[k]
    for i in range(m):
        events[base + i * _WORDS + _EV] |= TIMELINES_WORD
    _resume(ints, events[_EV::_WORDS], n + m)
    return True, lo, hi, latest, last_x


def append_in_order(live: LiveSim, ordering: StreamOrdering, records, check_tick: float,
                    seen: tuple[float, float]) -> tuple[float, float] | None:
    """The usual received batch, checked, ordered and appended in one jitted call: what
    :func:`feeds.validate.check_price_span`, :meth:`StreamOrdering.push` and :meth:`LiveSim.append` do to
    it, without their numpy temporaries (paper trading's tick to order). ``records``: the batch's
    ``EVENT_DTYPE`` rows, or their bytes as the feed sent them (read in place). Returns the prices' range
    so far (``check_price_span``'s), or None, having changed nothing, for any other batch: those take the
    general path, which refuses, holds back, re-centres or grows as it must.
    """
    if len(ordering.pending) or ordering.last_local is None:
        return None
    words = np.frombuffer(records, np.float64)
    ok, lo, hi, latest, last_x = _append_in_order(
        live.arrays["ints"], live.words, words, live.n, ordering.last_local,
        ordering.released_exch, ordering.max_latency, check_tick, live.cfg.tick_size, seen[0], seen[1])
    if not ok:
        return None
    live.n += words.size // _WORDS
    ordering.last_local, ordering.released_exch = latest, last_x
    return lo, hi


class LiveSim:
    """An engine ``Sim`` that rows are appended to; ``sim`` may be replaced as it grows (read it each time).

    ``arrays`` holds the same numpy arrays by name: reading a ``Sim``'s field from Python is a jitted call.
    Row indices are into the rows held now: ``dropped`` rows came before them. ``reader``, if set, is
    asked which rows it still needs (``keep_from()``: its first) and then told which go
    (``drop_rows(k)``: the first ``k``; shift your indices), while the old arrays are still in place.
    Without one, only the engine's own cursors hold rows back.
    """

    def __init__(self, cfg: EngineConfig, first_price: float, options: LiveOptions = LiveOptions(),
                 latency_table: tuple[np.ndarray, np.ndarray] | None = None):
        if queue_model(cfg).order_level:
            raise ConfigError("queue model 'l3' needs the whole file's orders up front; use an L2 queue model live")
        if not np.isfinite(first_price) or first_price <= 0:
            raise ConfigError(f"the feed's first price must be positive, got {first_price}")
        self.options = options
        self.cfg = cfg
        self.events = np.zeros(max(options.initial_rows, 16), dtype=EVENT_DTYPE)
        centre = int(round(first_price / cfg.tick_size))
        seed = np.zeros(2, dtype=EVENT_DTYPE)           # sizes the book's range around the first price
        seed["px"] = [(centre - options.tick_range) * cfg.tick_size, (centre + options.tick_range) * cfg.tick_size]
        seed["ev"] = DEPTH
        self.sim = make_sim(seed, msgspec.structs.replace(cfg, record_ticks=False, tick_range_pad=0),
                            latency_table)
        self.arrays = {name: getattr(self.sim, name) for name in SIM_FIELDS}   # read these, not sim's fields
        self.models = {name: self.sim.__dict__[name] for name in MODEL_FIELDS}
        self.arrays["ints"][I_N] = 0
        self.arrays["ints"][I_RECORD_TICKS] = int(cfg.record_ticks)
        self.arrays["ints"][I_LIVE] = 1
        self._rebuild(len(self.events))
        self.n = 0
        self.dropped = 0                                # rows dropped from the front, in all
        self.reader = None
        self.ticks_spilled = Spill(SPILLED_TICK_DTYPE)  # the tick log's rows for the rows dropped

    # ---- rows
    def append(self, rows: np.ndarray) -> None:
        """Append rows already flagged for their timelines (see :class:`StreamOrdering`)."""
        if len(rows) == 0:
            return
        if self.n + len(rows) > len(self.events):
            self._make_room(len(rows))
        self._fit_prices(rows)
        self.events[self.n:self.n + len(rows)] = rows
        self.n += len(rows)
        _resume(self.arrays["ints"], self.arrays["ev"], self.n)

    def finish(self) -> None:
        """No more rows: running out of them is now the end of the data."""
        self.arrays["ints"][I_LIVE] = 0

    def spilled_ticks(self) -> np.ndarray:
        """The tick-log rows moved out of the arrays so far (``SPILLED_TICK_DTYPE``), in order: the results
        read them before the ticks the arrays still hold (``SimView.tick_log``)."""
        return self.ticks_spilled.read()

    # ---- room for more rows
    def _make_room(self, extra: int) -> None:
        """Drop the rows passed, then double the capacity while the rows held and ``extra`` fill half of it."""
        keep = self.reader.keep_from() if self.reader is not None else self.n
        cut = int(_passed_rows(self.sim, keep))
        cap = len(self.events)
        while cap < 2 * (self.n - cut + extra):
            cap *= 2
        if cut:
            if self.reader is not None:
                self.reader.drop_rows(cut)
            self._spill_ticks(cut)
        held = self.n - cut
        events = np.zeros(cap, dtype=EVENT_DTYPE)
        events[:held] = self.events[cut:self.n]
        self.events = events
        self.n = held
        self.dropped += cut
        ints = self.arrays["ints"]
        for cursor in (I_N, I_IE, I_IL):
            ints[cursor] -= cut
        self._rebuild(cap)

    def _spill_ticks(self, cut: int) -> None:
        """Move the tick-log rows of the first ``cut`` rows (all replayed: ``cut`` is at most the local
        cursor) to the spill file, and the rest to the front of the tick arrays."""
        a, ints = self.arrays, self.arrays["ints"]
        if ints[I_RECORD_TICKS] == 0:
            return
        e = self.events[:cut]
        m, k = count_ticks(e), int(ints[I_NTICKS])
        if m > k:
            raise AssertionError(f"rows dropped hold {m} ticks but only {k} were recorded")
        out = np.zeros(m, dtype=SPILLED_TICK_DTYPE)
        out["ts"] = tick_times(e["ev"], e["local_ts"], m)
        out["mid"], out["epnl"], out["nq"] = a["tk_mid"][:m], a["tk_epnl"][:m], a["tk_nq"][:m]
        self.ticks_spilled.append(out)
        for name in ROW_ARRAYS:
            a[name][:k - m] = a[name][m:k].copy()
        ints[I_NTICKS] = k - m
        ints[I_TICKS_SPILLED] += m

    def _fit_prices(self, rows: np.ndarray) -> None:
        """Re-centre the book's tick range if these rows' prices come within a quarter of its edge."""
        priced, lo, hi = _tick_span(rows["px"], self.cfg.tick_size)
        if not priced:
            return
        ints = self.arrays["ints"]
        lb, ub = int(ints[I_LB]), int(ints[I_UB])
        margin = (ub - lb) // 4
        if lo >= lb + margin and hi <= ub - margin:
            return
        half = max(self.options.tick_range, (hi - lo) * 2)
        centre = (lo + hi) // 2
        new_lb, new_ub = centre - half, centre + half
        for name in BOOK_ARRAYS:
            old = self.arrays[name]
            new = np.zeros(new_ub - new_lb + 1, dtype=old.dtype)
            a, b = max(lb, new_lb), min(ub, new_ub)       # the ticks both ranges hold
            if a <= b:
                new[a - new_lb:b - new_lb + 1] = old[a - lb:b - lb + 1]
            self.arrays[name] = new
        ints[I_LB], ints[I_UB] = new_lb, new_ub
        self._rebuild(len(self.events))

    def _rebuild(self, cap: int) -> None:
        """A new ``Sim`` over the current arrays, the per-tick ones grown to ``cap`` rows (a tick per row at most)."""
        a = self.arrays
        if len(a["tk_mid"]) < cap:
            for name in ROW_ARRAYS:
                new = np.zeros(cap, dtype=a[name].dtype)
                new[:len(a[name])] = a[name]
                a[name] = new
        e = self.events
        self.words = e.view(np.int64)               # the rows as 8-byte words (append_in_order writes them)
        a.update(events=e, ev=e["ev"], exch_ts=e["exch_ts"], local_ts=e["local_ts"], px=e["px"], qty=e["qty"],
                 order_id=e["order_id"].view(np.int64))
        self.sim = Sim(**a, **self.models)


class StreamOrdering:
    """Received rows (local order) -> rows for the engine's two timelines, released as they become certain."""

    def __init__(self, max_feed_latency_ns: int):
        if max_feed_latency_ns < 0:
            raise ConfigError("max_feed_latency_ns must be >= 0")
        self.max_latency = int(max_feed_latency_ns)
        self.pending = np.zeros(0, dtype=EVENT_DTYPE)   # EXCH-only copies not yet released, in release order
        self.last_local = None                          # local_ts of the last row received
        self.released_exch = np.iinfo(np.int64).min     # exch_ts of the last EXCH copy released
        self.late = 0                                   # rows whose exch_ts came after the bound allowed

    @property
    def horizon(self) -> int:
        """Every row at or before this time is known on both timelines (the kernel may process up to it)."""
        if self.last_local is None:
            return int(np.iinfo(np.int64).min)
        return self.last_local - self.max_latency - 1

    def push(self, rows: np.ndarray) -> np.ndarray:
        """Take received rows; return the rows to append to the engine now (LOCAL copies, released EXCH ones)."""
        if len(rows) == 0:
            return rows[:0]
        exch_ts, local_ts = rows["exch_ts"], rows["local_ts"]
        latest, in_order = _latest_and_in_order(local_ts, exch_ts)
        last_local = max(self.last_local or int(local_ts[0]), latest)
        if (len(self.pending) == 0 and exch_ts[0] >= self.released_exch
                and exch_ts[-1] <= last_local - self.max_latency and in_order):
            # The usual case: nothing held, and the batch is certain and in order on both timelines at
            # once, so each row goes in once with both flags (as a whole file's ordering writes it).
            self.last_local = last_local
            self.released_exch = int(exch_ts[-1])
            both = rows.copy()
            both["ev"] |= TIMELINES
            return both
        local = rows.copy()
        local["ev"] = (local["ev"] & ~TIMELINES) | np.uint64(LOCAL)
        exch = rows.copy()
        exch["ev"] = (exch["ev"] & ~TIMELINES) | np.uint64(EXCH)
        late = exch["exch_ts"] < self.released_exch
        if late.any():
            self.late += int(late.sum())
            exch["exch_ts"][late] = self.released_exch
        pending = np.concatenate([self.pending, exch])
        pending = pending[np.argsort(pending["exch_ts"], kind="stable")]
        self.last_local = last_local
        cut = int(np.searchsorted(pending["exch_ts"], self.horizon + 1, side="right"))
        return self._release(local, pending, cut)

    def advance(self, clock: int) -> np.ndarray:
        """Every row up to local time ``clock`` has been received (the feed's heartbeat says so): the
        watermark moves on without a row, and the copies it passes are released."""
        if self.last_local is None or clock <= self.last_local:
            return self.pending[:0]
        self.last_local = int(clock)
        cut = int(np.searchsorted(self.pending["exch_ts"], self.horizon + 1, side="right"))
        return self._release(np.zeros(0, dtype=EVENT_DTYPE), self.pending, cut)

    def flush(self) -> np.ndarray:
        """The stream ended: release every copy still held."""
        return self._release(np.zeros(0, dtype=EVENT_DTYPE), self.pending, len(self.pending))

    def _release(self, local: np.ndarray, pending: np.ndarray, cut: int) -> np.ndarray:
        out, self.pending = pending[:cut], pending[cut:]
        if cut:
            self.released_exch = int(out["exch_ts"][-1])
        return np.concatenate([local, out])
