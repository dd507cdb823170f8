"""Binance's order-book sequencing, one message at a time: the state machine a capture and a live feed share.

:class:`BookSequencer` turns decoded messages (:mod:`feeds.readers.binance_messages`)
into events exactly as "how to manage a local order book correctly" asks:
diffs are held until a REST snapshot, aligned on it (``U``/``u``, and ``pu``
on USD-M), and a break in the update ids clears the book and waits for the
next snapshot. It only ever looks at the message in hand and what came before,
so the file reader (:mod:`feeds.readers.binance`) and the live connector
(:mod:`feeds.binance_live`) run the same code over the same lines, and a
recording converts to the events the connector published.

Two things only a whole file knows are left to the subclass: whether a
snapshot will still come after a gap (:meth:`BookSequencer.snapshot_follows`;
live, one always does, as the connector asks for it) and the exchange time of
a message that carries none (:meth:`BookSequencer.estimate_exch_ts`: spot
bookTicker and REST snapshots).
"""
from __future__ import annotations

import itertools

import numpy as np

from common.errors import DataError
from feeds.events import BUY, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, EVENT_DTYPE, KIND_MASK, SELL, TRADE
from feeds.readers.binance_messages import BookTicker, DepthDiff, Message, Snapshot, Trade

MS = 1_000_000
BUFFER, ALIGN, SYNCED, PARTIAL = "buffer", "align", "synced", "partial"
NO_DEPTH = (np.inf, -np.inf)       # the deepest bid and ask seen before any level: none


def exchange_time(m: Message) -> int | None:
    """The message's own exchange time in ns (``T``, else ``E``), None when Binance sent none."""
    body = m.body
    if isinstance(body, Trade):
        return body.T * MS
    if isinstance(body, (DepthDiff, BookTicker, Snapshot)):
        if body.T is not None:
            return body.T * MS
        if body.E is not None:
            return body.E * MS
    return None


def continues(d: DepthDiff, prev_u: int) -> bool:
    """Whether diff ``d`` is the next after update id ``prev_u`` (USD-M: by ``pu``; spot: by ``U``)."""
    return d.pu == prev_u if d.pu is not None else d.U == prev_u + 1


class Columns:
    """Events as segments ``(ev, n, exch_ts, local_ts, order_id, ival)`` plus a flat (px, qty) list.

    A message adds a segment per side and extends the level list with the
    list msgspec decoded, so no Python runs per price level.
    """

    def __init__(self):
        self.segments: list[tuple[int, int, int, int, int, int]] = []
        self.levels: list[tuple[float, float]] = []

    def __len__(self) -> int:
        """Events so far."""
        return len(self.levels)

    def add(self, ev: int, exch_ts: int, local_ts: int, levels: list, ival: int = 0, order_id: int = 0):
        if levels:
            self.segments.append((ev, len(levels), exch_ts, local_ts, order_id, ival))
            self.levels.extend(levels)

    def one(self, ev: int, exch_ts: int, local_ts: int, px: float, qty: float, ival: int = 0,
            order_id: int = 0):
        self.segments.append((ev, 1, exch_ts, local_ts, order_id, ival))
        self.levels.append((px, qty))

    def events(self) -> np.ndarray:
        flat = itertools.chain.from_iterable
        seg = np.fromiter(flat(self.segments), np.int64, 6 * len(self.segments)).reshape(-1, 6)
        counts = seg[:, 1]
        out = np.zeros(int(counts.sum()), dtype=EVENT_DTYPE)
        out["ev"] = np.repeat(seg[:, 0], counts).astype(np.uint64)
        out["exch_ts"] = np.repeat(seg[:, 2], counts)
        out["local_ts"] = np.repeat(seg[:, 3], counts)
        out["order_id"] = np.repeat(seg[:, 4], counts).astype(np.uint64)
        out["ival"] = np.repeat(seg[:, 5], counts)
        levels = np.fromiter(flat(self.levels), np.float64, 2 * len(self.levels)).reshape(-1, 2)
        out["px"], out["qty"] = levels[:, 0], levels[:, 1]
        return out

    def take(self) -> np.ndarray:
        """The events so far, and forget them (a live feed publishes each message's as it comes)."""
        events = self.events()
        self.segments, self.levels = [], []
        return events


def finish_clears(events: np.ndarray, deepest: tuple[float, float] = NO_DEPTH) -> tuple[float, float]:
    """Each DEPTH_CLEAR reaches the deepest level its side has held so far (0 when it held none).

    ``deepest`` is the (lowest bid, highest ask) of the events before these ones;
    the return value is the same after them, so a stream finished a chunk at a
    time gets the values a whole file finished at once gets.
    """
    kind = events["ev"] & np.uint64(KIND_MASK)
    book = (kind == DEPTH) | (kind == DEPTH_SNAPSHOT)
    is_bid = (events["ev"] & np.uint64(BUY)) != 0
    px = events["px"]
    if len(events) and not (kind == DEPTH_CLEAR).any():     # a live message's events, most often: no clear
        bids, asks = px[book & is_bid], px[book & ~is_bid]
        return (min(deepest[0], float(bids.min())) if len(bids) else deepest[0],
                max(deepest[1], float(asks.max())) if len(asks) else deepest[1])
    after = []
    for side, extreme, empty, start in ((is_bid, np.minimum, np.inf, deepest[0]),
                                        (~is_bid, np.maximum, -np.inf, deepest[1])):
        seen = extreme.accumulate(np.concatenate(([start], np.where(book & side, px, empty))))
        before = seen[:-1]
        clears = np.flatnonzero((kind == DEPTH_CLEAR) & side)
        reach = extreme(px[clears], before[clears])
        px[clears] = np.where(np.isfinite(reach), reach, 0.0)
        after.append(float(seen[-1]))
    return after[0], after[1]


class BookSequencer:
    """The order-book sequencing state machine; feed it messages in receive order with :meth:`on_message`.

    Events accumulate in ``self.cols``. ``on_error`` "raise" makes a sequence gap
    a DataError; "skip" clears both sides and rebuilds the book.
    """

    def __init__(self, on_error: str = "raise", mode: str = PARTIAL):
        self.on_error = on_error
        self.cols = Columns()
        self.mode = mode
        self.prev_u: int | None = None
        self.snapshot_id = 0
        self.held: list[Message] = []
        self.bids: dict[float, float] = {}   # only while PARTIAL: which levels exist
        self.asks: dict[float, float] = {}
        self.open_window: tuple[int, str] | None = None     # partial since (local_ts, path:line)
        self.windows: list[tuple[int, str, int | None]] = []  # closed: until local_ts, None = never
        self.gaps: list[str] = []
        self.dropped_old = self.restamped = self.non_market = self.estimated = 0
        self.unused_snapshots: list[str] = []

    # ------------------------------------------------ what the subclass knows

    def snapshot_follows(self) -> bool:
        """Whether a snapshot will come after the current message (else a gap rebuilds from diffs alone)."""
        raise NotImplementedError

    def estimate_exch_ts(self, m: Message) -> int:
        """An exchange time for a message that carries none."""
        raise NotImplementedError

    def path(self, m: Message) -> str:
        """Where ``m`` came from, for error messages."""
        raise NotImplementedError

    # ------------------------------------------------ helpers

    def exch_ts(self, m: Message) -> int:
        """The message's exchange time, or its estimate (counted for the notes) when it has none."""
        self.estimated += exchange_time(m) is None
        return self.exch_ts_or_estimate(m)

    def exch_ts_or_estimate(self, m: Message) -> int:
        exch = exchange_time(m)
        return exch if exch is not None else self.estimate_exch_ts(m)

    def where(self, m: Message) -> str:
        return f"{self.path(m)}:{m.line}"

    def open_partial(self, local_ts: int, m: Message) -> None:
        if self.open_window is None:
            self.open_window = (local_ts, self.where(m))

    def close_window(self, until: int | None) -> None:
        if self.open_window is not None:
            self.windows.append((*self.open_window, until))
            self.open_window = None

    def clear(self, exch_ts: int, local_ts: int, bid_px: float, ask_px: float, ival: int):
        """Both sides; px is provisional (the side's deepest known level), finished by :func:`finish_clears`."""
        self.cols.one(DEPTH_CLEAR | BUY, exch_ts, local_ts, bid_px, 0.0, ival)
        self.cols.one(DEPTH_CLEAR | SELL, exch_ts, local_ts, ask_px, 0.0, ival)

    # ------------------------------------------------ messages

    def on_message(self, m: Message) -> None:
        if m.kind == "depth":
            self.on_diff(m, m.local_ts)
        elif m.kind == "trade":
            self.on_trade(m)
        elif m.kind == "bookTicker":
            b = m.body
            exch = self.exch_ts(m)
            self.cols.one(DEPTH_BBO | BUY, exch, m.local_ts, b.b, b.B, b.u)
            self.cols.one(DEPTH_BBO | SELL, exch, m.local_ts, b.a, b.A, b.u)
        elif m.kind == "snapshot":
            self.on_snapshot(m)

    def on_trade(self, m: Message) -> None:
        t = m.body
        if t.X != "MARKET":
            self.non_market += 1
            return
        self.cols.one(TRADE | (SELL if t.m else BUY), t.T * MS, m.local_ts, t.p, t.q, 0, t.t)

    def on_snapshot(self, m: Message) -> None:
        if self.mode not in (BUFFER, ALIGN):
            self.unused_snapshots.append(self.where(m))
            return
        s = m.body
        exch = self.exch_ts(m)
        self.clear(exch, m.local_ts, min((p for p, _ in s.bids), default=np.inf),
                   max((p for p, _ in s.asks), default=-np.inf), s.lastUpdateId)
        self.cols.add(DEPTH_SNAPSHOT | BUY, exch, m.local_ts, s.bids, s.lastUpdateId)
        self.cols.add(DEPTH_SNAPSHOT | SELL, exch, m.local_ts, s.asks, s.lastUpdateId)
        self.mode, self.snapshot_id = ALIGN, s.lastUpdateId
        self.close_window(m.local_ts)
        held, self.held = self.held, []
        for d in held:
            if self.on_diff(d, m.local_ts):
                self.restamped += 1

    def on_diff(self, m: Message, local_ts: int) -> bool:
        """Apply, hold or drop one diff; True when applied."""
        d: DepthDiff = m.body
        if self.mode == BUFFER:
            self.held.append(m)
            return False
        if self.mode == ALIGN:
            need = self.snapshot_id if d.pu is not None else self.snapshot_id + 1
            if d.u < need:
                self.dropped_old += 1
                return False
            if d.U > need:
                return self.gap(m, local_ts, "U", f"snapshot lastUpdateId {self.snapshot_id}: expected "
                                f"the first diff to have U <= {need} <= u, got U={d.U} u={d.u}")
            self.mode = SYNCED
        elif self.prev_u is not None:
            if d.pu is not None and d.pu != self.prev_u:
                return self.gap(m, local_ts, "pu",
                                f"expected pu={self.prev_u} (previous u), got pu={d.pu}")
            if d.pu is None and d.U != self.prev_u + 1:
                return self.gap(m, local_ts, "U",
                                f"expected U={self.prev_u + 1} (previous u + 1), got U={d.U}")
        self.apply(m, local_ts)
        return True

    def apply(self, m: Message, local_ts: int) -> None:
        d: DepthDiff = m.body
        exch = exchange_time(m)
        self.cols.add(DEPTH | BUY, exch, local_ts, d.b, d.u)
        self.cols.add(DEPTH | SELL, exch, local_ts, d.a, d.u)
        self.prev_u = d.u
        if self.mode == PARTIAL:
            self.open_partial(local_ts, m)
            for side, levels in ((self.bids, d.b), (self.asks, d.a)):
                for px, qty in levels:
                    if qty > 0:
                        side[px] = qty
                    else:
                        side.pop(px, None)
            if self.bids and self.asks:
                self.close_window(local_ts)
                self.mode = SYNCED
                self.bids, self.asks = {}, {}

    def gap(self, m: Message, local_ts: int, field: str, reason: str) -> bool:
        """A break in the update ids: raise, or clear the book and rebuild it."""
        error = DataError(f"sequence gap: {reason}", path=self.path(m), line=m.line, field=field)
        if self.on_error == "raise":
            raise error
        self.gaps.append(str(error))
        self.clear(exchange_time(m), local_ts, np.inf, -np.inf, 0)
        self.prev_u = None
        self.open_partial(local_ts, m)
        if self.snapshot_follows():
            self.mode = BUFFER
            self.held.append(m)
            return False
        self.mode = PARTIAL
        self.bids, self.asks = {}, {}
        self.apply(m, local_ts)
        return True
