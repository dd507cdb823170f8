"""Binance raw websocket captures (USD-M and COIN-M futures, and spot) into L2 events.

A capture is gzip or plain text, one message per line: ``<local receive time
ns> <json>`` (see :mod:`feeds.readers.binance_messages`). Older collectors wrote
the time in µs: each file's unit is the one its first line's time is plausible
in (:mod:`feeds.timeunits`), every other line must agree, and a file not in ns
is scaled and noted. Several inputs are read in the order given as one stream:
each must continue the one before (its first diff the next update id, and no
more than a minute later), else the inputs are refused, as two captures joined
would drop or misplace a whole file's book. ``fresh_book_per_input`` reads them
as separate captures instead: each starts a fresh book (its own snapshot, or
diffs alone) and gets its own clock-skew shift, noted per input.

Events, with ``local_ts`` = the capture time:

- REST snapshot -> DEPTH_CLEAR on both sides, then DEPTH_SNAPSHOT per level
  (BUY bids, SELL asks). The clears reach the deepest level ever seen on their
  side, so nothing older survives a snapshot.
- depth diff -> DEPTH per level (size 0 removes it), bids then asks.
- trade -> TRADE, side = the aggressor (``m`` true: the buyer was the maker, so
  a seller hit the bid -> SELL); ``order_id`` = trade id. USD-M trades whose
  ``X`` is not MARKET (insurance fund, ADL) are not market trades: dropped.
- bookTicker -> DEPTH_BBO bid (BUY) then ask (SELL).

``ival`` is the update id an event brings the book to: a diff's ``u``, a
snapshot's ``lastUpdateId`` (on its clears too), a bookTicker's ``u``; 0 on
trades and on the clears of a sequence gap. ``exch_ts`` is the transaction time
``T`` where the message has one (trades; USD-M depth, bookTicker and snapshots),
as hftbacktest stamps them, else the event time ``E``, ms -> ns. Messages with
neither (spot bookTicker and REST snapshots) get ``local_ts`` minus the median
feed latency of their file's other messages.

Sequencing follows Binance's "how to manage a local order book correctly".
Diffs received before a snapshot are held; after it, diffs older than
``lastUpdateId`` are dropped and the first one applied must straddle it
(USD-M: ``U <= lastUpdateId <= u``; spot: ``U <= lastUpdateId + 1 <= u``).
Applied held diffs are restamped to the snapshot's ``local_ts``: we could not
have known the book they build any earlier. From then on each diff must
continue the previous one (USD-M: ``pu`` = previous ``u``; spot: ``U`` =
previous ``u`` + 1). A break is a DataError; under ``on_error="skip"`` both
sides are cleared and the book rebuilt, from the next snapshot if one follows,
else from diffs alone, and the window is noted. Without any snapshot the book
is built from diffs: ``meta.book_partial_until_ts`` is the ``local_ts`` from
which both sides hold levels; before it (and at any level no diff has touched
since) the book is missing levels.
"""
from __future__ import annotations

import bisect
import gzip
import itertools
import os
import re
import zlib
from typing import Callable, Sequence

import numpy as np

from feeds.readers.binance_messages import BookTicker, DepthDiff, Message, Snapshot, Trade, decode_line
from common.errors import DataError, SkipCounter
from feeds.events import (BUY, DEPTH, DEPTH_BBO, DEPTH_CLEAR, DEPTH_SNAPSHOT, EVENT_DTYPE, KIND_MASK, SELL,
                     TRADE)
from feeds.instrument import Instrument
from feeds.ordering import early_outlier_reason, early_outliers
from feeds.readers.base import Conversion, ReadOptions, Steps, instrument_with_overrides
from feeds.readers.binance_coinm import contradiction, implied
from feeds.store import DatasetMeta
from feeds.readers.textio import iter_lines
from feeds.timeunits import NS_PER_UNIT, plausible_range, unit_of

FORMAT = "binance"
MS = 1_000_000
MAX_JOIN_GAP_NS = 60 * 10**9      # inputs further apart are not one capture cut into files
MAX_DECIMALS = 12
# A lot is not made finer by this few of the distinct sizes: old orders far from the mid keep
# sizes of a step since coarsened (ETHUSDT spot 2024-08-08: 2 of 46,188, at 5000 and 5300 with the
# mid near 2683). Too coarse a lot only rounds our orders; too fine a lot makes them invalid.
ODD_SIZES_SHARE = 0.001
_CAPTURE_LINE = re.compile(rb"\s*\d+ \{")


def sniff(path: str) -> bool:
    """True when the first non-empty line looks like ``<digits> {``."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            head = f.read(4096)
    except (OSError, EOFError, zlib.error):
        return False
    return _CAPTURE_LINE.match(head) is not None


# ---------------------------------------------------------------- pass 1: decode every line


class Decoded:
    """Every input's messages in order, with what the events need to know about them."""

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)
        self.messages: list[Message] = []
        self.lines = 0
        self.by_kind: dict[str, int] = {}
        self.latency_by_file: list[int | None] = []   # median local_ts - exchange time, ns
        self.unit_by_file: list[str | None] = []       # the unit of each file's receive times
        self.ranges: list[tuple[int, int]] = []        # each file's messages: [start, end) in messages

    def where(self, m: Message) -> str:
        return self.paths[m.source]


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


class ReceiveTimes:
    """Puts one file's receive times in ns, in the unit its first timed line shows."""

    def __init__(self):
        self.unit: str | None = None
        self.low = self.high = self.scale = 0

    def to_ns(self, m: Message) -> None:
        if self.unit is None:
            unit = unit_of(m.local_ts)
            if unit is None:
                raise DataError(f"receive time {m.local_ts} is not between 2000 and 2100 in ns, µs, ms or s",
                                line=m.line, field="local_ts")
            self.unit, self.scale = unit, NS_PER_UNIT[unit]
            self.low, self.high = plausible_range(unit)
        elif not self.low <= m.local_ts < self.high:
            raise DataError(f"receive time {m.local_ts} is not in {self.unit} like the file's first line "
                            f"(between 2000 and 2100: {self.low} to {self.high})", line=m.line,
                            field="local_ts")
        m.local_ts *= self.scale


def decode(paths: Sequence[str], counter: SkipCounter, progress: Callable[[float, str], Steps]) -> Decoded:
    out = Decoded(paths)
    last_ts = None
    for source, path in enumerate(paths):
        latencies, timed = [], []     # feed latency of each message with an exchange time, its index
        first = len(out.messages)
        times = ReceiveTimes()
        with progress(1, f"binance {os.path.basename(path)}") as bar:
            for line, raw in iter_lines(path):
                out.lines += 1
                if not raw.strip():
                    out.by_kind["blank"] = out.by_kind.get("blank", 0) + 1
                    continue
                try:
                    m = decode_line(raw, source, line)
                    times.to_ns(m)
                except DataError as e:
                    counter.bad(e.located(path))
                    continue
                out.by_kind[m.kind] = out.by_kind.get(m.kind, 0) + 1
                exch = exchange_time(m)
                if exch is not None:
                    latencies.append(m.local_ts - exch)
                    timed.append(len(out.messages))
                out.messages.append(m)
            bar.update()
        latencies = drop_bad_clock_readings(out, np.array(latencies, dtype=np.int64), timed, counter, path)
        out.ranges.append((first, len(out.messages)))
        if len(out.messages) > first:
            if last_ts is not None and out.messages[first].local_ts < last_ts:
                raise DataError("starts before the previous input ends: give inputs in time order",
                                path=path, line=out.messages[first].line, field="local_ts")
            last_ts = out.messages[-1].local_ts
        out.latency_by_file.append(int(np.median(latencies)) if len(latencies) else None)
        out.unit_by_file.append(times.unit)
    return out


def drop_bad_clock_readings(out: Decoded, latencies: np.ndarray, timed: list[int], counter: SkipCounter,
                            path: str) -> np.ndarray:
    """Refuse (or, under skip, drop) the messages whose receive time is far earlier than the rest of
    their file puts it; return the file's other latencies.

    One such line would otherwise set the clock-skew shift of every event (:mod:`feeds.ordering`).
    """
    bad = early_outliers(latencies)
    if not bad.any():
        return latencies
    median = int(np.median(latencies[~bad]))
    for i in np.flatnonzero(bad):
        m = out.messages[timed[i]]
        counter.bad(DataError(early_outlier_reason(int(latencies[i]), median), path=path, line=m.line,
                              field="local_ts"))
        out.by_kind[m.kind] -= 1
    drop = {timed[i] for i in np.flatnonzero(bad)}
    out.messages = [m for k, m in enumerate(out.messages) if k not in drop]
    return latencies[~bad]


def continues(d: DepthDiff, prev_u: int) -> bool:
    """Whether diff ``d`` is the next after update id ``prev_u`` (USD-M: by ``pu``; spot: by ``U``)."""
    return d.pu == prev_u if d.pu is not None else d.U == prev_u + 1


def join_breaks(decoded: Decoded) -> list[tuple[int, int, str]]:
    """``(input, line, why)`` for each input that does not continue the one before it."""
    msgs, breaks = decoded.messages, []
    prev_end: int | None = None
    prev_u: int | None = None
    for source, (a, b) in enumerate(decoded.ranges):
        if a == b:
            continue
        diffs = [i for i in range(a, b) if msgs[i].kind == "depth"][:1] + \
            [i for i in range(b - 1, a - 1, -1) if msgs[i].kind == "depth"][:1]
        if prev_end is not None:
            why = []
            gap = msgs[a].local_ts - prev_end
            if gap > MAX_JOIN_GAP_NS:
                why.append(f"it starts {gap / 1e9:,.1f} s after the previous input ends")
            if diffs and prev_u is not None and not continues(msgs[diffs[0]].body, prev_u):
                d = msgs[diffs[0]]
                ids = f"U={d.body.U}" + (f" pu={d.body.pu}" if d.body.pu is not None else "")
                why.append(f"its first depth diff (line {d.line}: {ids}) does not follow the previous "
                           f"input's last u={prev_u}")
            if why:
                breaks.append((source, msgs[a].line, "; ".join(why)))
        prev_end = msgs[b - 1].local_ts
        if diffs:
            prev_u = msgs[diffs[-1]].body.u
    return breaks


def symbol_of(decoded: Decoded) -> str:
    symbols = {m.symbol for m in decoded.messages if m.symbol is not None}
    if len(symbols) > 1:
        raise DataError(f"inputs hold several symbols ({', '.join(sorted(symbols))}); convert each "
                        f"separately", field="stream")
    if not symbols:
        raise DataError("no stream messages: cannot tell the symbol", path=", ".join(decoded.paths),
                        field="stream")
    return symbols.pop()


# ---------------------------------------------------------------- pass 2: events


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


BUFFER, ALIGN, SYNCED, PARTIAL = "buffer", "align", "synced", "partial"


class Builder:
    """Runs the order-book sequencing state machine over the decoded messages."""

    def __init__(self, decoded: Decoded, options: ReadOptions):
        self.decoded = decoded
        self.options = options
        self.cols = Columns()
        self.snapshot_at = [i for i, m in enumerate(decoded.messages) if m.kind == "snapshot"]
        # Where a fresh book starts: at each input's first message, or only at the first.
        fresh = decoded.ranges if options.fresh_book_per_input else [(0, len(decoded.messages))]
        self.fresh_at = {a: b for a, b in fresh if a < b}
        self.fresh_end = len(decoded.messages)      # end of the stretch the current book lives in
        self.first_end = min(self.fresh_at.values(), default=0)
        self.input_starts: list[int] = []           # event index where each fresh book starts
        self.dropped_unsynced = 0
        self.mode = PARTIAL
        self.pos = 0
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

    # ------------------------------------------------ helpers

    def exch_ts(self, m: Message) -> int:
        """The message's exchange time, or its estimate (counted for the notes) when it has none."""
        self.estimated += exchange_time(m) is None
        return self.exch_ts_or_estimate(m)

    def exch_ts_or_estimate(self, m: Message) -> int:
        exch = exchange_time(m)
        if exch is not None:
            return exch
        latency = self.decoded.latency_by_file[m.source]
        if latency is None:
            known = [x for x in self.decoded.latency_by_file if x is not None]
            latency = int(np.median(known)) if known else 0
        return m.local_ts - latency

    def where(self, m: Message) -> str:
        return f"{self.decoded.where(m)}:{m.line}"

    def snapshot_follows(self) -> bool:
        """A snapshot after the current message, in the stretch of the current book."""
        k = bisect.bisect_right(self.snapshot_at, self.pos)
        return k < len(self.snapshot_at) and self.snapshot_at[k] < self.fresh_end

    def has_snapshot(self, a: int, b: int) -> bool:
        k = bisect.bisect_left(self.snapshot_at, a)
        return k < len(self.snapshot_at) and self.snapshot_at[k] < b

    def start_fresh(self, m: Message) -> None:
        """Forget the book: clear both sides if anything came before, then wait for this stretch's
        snapshot, or build from diffs if it has none."""
        self.input_starts.append(len(self.cols))
        if len(self.input_starts) > 1:
            self.close_window(m.local_ts)
            self.dropped_unsynced += len(self.held)
            self.clear(self.exch_ts_or_estimate(m), m.local_ts, np.inf, -np.inf, 0)
        self.fresh_end = self.fresh_at[self.pos]
        self.held, self.prev_u, self.bids, self.asks = [], None, {}, {}
        self.mode = BUFFER if self.has_snapshot(self.pos, self.fresh_end) else PARTIAL

    def open_partial(self, local_ts: int, m: Message) -> None:
        if self.open_window is None:
            self.open_window = (local_ts, self.where(m))

    def close_window(self, until: int | None) -> None:
        if self.open_window is not None:
            self.windows.append((*self.open_window, until))
            self.open_window = None

    def clear(self, exch_ts: int, local_ts: int, bid_px: float, ask_px: float, ival: int):
        """Both sides; px is provisional (the side's deepest known level), finished in ``events``."""
        self.cols.one(DEPTH_CLEAR | BUY, exch_ts, local_ts, bid_px, 0.0, ival)
        self.cols.one(DEPTH_CLEAR | SELL, exch_ts, local_ts, ask_px, 0.0, ival)

    # ------------------------------------------------ messages

    def run(self) -> None:
        for self.pos, m in enumerate(self.decoded.messages):
            if self.pos in self.fresh_at:
                self.start_fresh(m)
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
        self.close_window(None)

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
        error = DataError(f"sequence gap: {reason}", path=self.decoded.where(m), line=m.line, field=field)
        if self.options.on_error == "raise":
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

    # ------------------------------------------------ results

    def events(self) -> np.ndarray:
        events = self.cols.events()
        finish_clears(events)
        return events

    def notes(self) -> list[str]:
        notes = []
        if self.estimated:
            notes.append(f"{self.estimated:,} messages carry no exchange time (spot bookTicker, spot REST "
                         f"snapshot): their exch_ts is local_ts minus the median feed latency of the "
                         f"other messages in their file")
        if self.dropped_old or self.restamped:
            notes.append(f"snapshot alignment: {self.dropped_old:,} depth diffs older than the snapshot "
                         f"dropped; {self.restamped:,} diffs received before the snapshot applied after "
                         f"it, restamped to its local_ts")
        if self.non_market:
            notes.append(f"{self.non_market:,} trades with X != MARKET (insurance fund, ADL) dropped")
        if self.dropped_unsynced:
            notes.append(f"{self.dropped_unsynced:,} depth diffs dropped: their input ended before a "
                         f"snapshot they could follow")
        if self.unused_snapshots:
            notes.append(f"snapshots not used, the book being in sync: {', '.join(self.unused_snapshots)}")
        windows = list(self.windows)
        if not self.has_snapshot(0, self.first_end) and windows:
            start, where, until = windows.pop(0)
            notes.append(f"no depth snapshot: the book is built from diffs alone (first at {where}) and is "
                         f"partial before local_ts {until} (both sides first hold levels); levels no diff "
                         f"has touched are missing throughout" if until is not None else
                         f"no depth snapshot: the book is built from diffs alone (first at {where}) and "
                         f"never holds levels on both sides")
        if self.gaps:
            notes.append(f"{len(self.gaps)} sequence gap{'s' if len(self.gaps) != 1 else ''}, each clearing the book: " + "; ".join(self.gaps))
        notes += [f"book partial from local_ts {start} ({where}) until "
                  f"{'the end' if until is None else f'local_ts {until}'}" for start, where, until in windows]
        return notes

    def book_partial_until_ts(self) -> int | None:
        """Without a snapshot: when both sides first hold levels (after the last message if never)."""
        if self.has_snapshot(0, self.first_end) or not self.windows:
            return None
        until = self.windows[0][2]
        return self.decoded.messages[-1].local_ts + 1 if until is None else until


def finish_clears(events: np.ndarray) -> None:
    """Each DEPTH_CLEAR reaches the deepest level its side has held so far (0 when it held none)."""
    kind = events["ev"] & np.uint64(KIND_MASK)
    book = (kind == DEPTH) | (kind == DEPTH_SNAPSHOT)
    is_bid = (events["ev"] & np.uint64(BUY)) != 0
    px = events["px"]
    for side, extreme, empty in ((is_bid, np.minimum, np.inf), (~is_bid, np.maximum, -np.inf)):
        seen = extreme.accumulate(np.where(book & side, px, empty))
        before = np.concatenate(([empty], seen[:-1]))
        clears = np.flatnonzero((kind == DEPTH_CLEAR) & side)
        deepest = extreme(px[clears], before[clears])
        px[clears] = np.where(np.isfinite(deepest), deepest, 0.0)


def off_step(values: np.ndarray, step: float) -> np.ndarray:
    """The distinct positive values that are not multiples of the power-of-ten ``step``."""
    values = np.unique(values[np.isfinite(values) & (values > 0)])
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = values / step
        return values[np.abs(scaled - np.rint(scaled)) > 1e-9 + 1e-12 * scaled]


def decimal_step(values: np.ndarray, odd_share: float = 0.0) -> float:
    """The largest power-of-ten step (10**-MAX_DECIMALS at most) that every value is a multiple of,
    but for at most ``odd_share`` of the distinct values."""
    values = np.unique(values[np.isfinite(values) & (values > 0)])
    allowed = int(odd_share * len(values))
    for decimals in range(MAX_DECIMALS):
        if len(off_step(values, 10.0 ** -decimals)) <= allowed:
            return 10.0 ** -decimals
    return 10.0 ** -MAX_DECIMALS


def inferred_instrument(events: np.ndarray, symbol: str, options: ReadOptions,
                        paths: Sequence[str]) -> tuple[Instrument, list[str]]:
    """The instrument a file that does not state one implies, and the notes saying how.

    Tick and lot are the finest decimal steps of the prices and sizes seen (sizes finer than the
    rest, if rare, do not set the lot: :data:`ODD_SIZES_SHARE`); a COIN-M symbol makes it inverse.
    Options override; a spec that contradicts the symbol is a DataError.
    """
    kind = events["ev"] & np.uint64(KIND_MASK)
    priced = kind != DEPTH_CLEAR
    default = implied(Instrument(symbol=symbol, tick_size=decimal_step(events["px"][priced]),
                                 lot_size=decimal_step(events["qty"][priced], ODD_SIZES_SHARE)))
    instrument = instrument_with_overrides(default, options)
    why = contradiction(instrument)
    if why:
        raise DataError(why, path=", ".join(paths), field="instrument")
    notes = [f"tick and lot sizes inferred as the finest decimal step of the prices and sizes seen "
             f"({default.tick_size:g}, {default.lot_size:g})"]
    odd = off_step(events["qty"][priced], default.lot_size)
    if len(odd):
        examples = ", ".join(f"{q:.12g}" for q in odd[:5])
        notes.append(f"{len(odd)} of {len(np.unique(events['qty'][priced])):,} distinct sizes are finer than "
                     f"the lot {default.lot_size:g} and did not set it: {examples}; give --lot-size if the "
                     f"exchange's step is finer")
    if default.inverse:
        notes.append(f"COIN-M symbol: inverse contracts of {default.contract_multiplier:g} USD, settled in "
                     f"{default.settlement}")
    return instrument, notes


def read(paths: Sequence[str], options: ReadOptions = ReadOptions()) -> Conversion:
    counter = SkipCounter(options.on_error)
    decoded = decode(paths, counter, options.progress)
    symbol = symbol_of(decoded)
    breaks = join_breaks(decoded)
    if breaks and not options.fresh_book_per_input:
        source, line, why = breaks[0]
        raise DataError(f"does not continue the previous input: {why}; convert each separately, or give "
                        f"--fresh-book-per-input to start each input with a fresh book", path=paths[source],
                        line=line, field="stream")
    builder = Builder(decoded, options)
    builder.run()
    events = builder.events()
    instrument, instrument_notes = inferred_instrument(events, symbol, options, paths)
    ignored = {k: n for k, n in decoded.by_kind.items() if k not in ("depth", "trade", "bookTicker",
                                                                       "snapshot", "blank")}
    notes = builder.notes()
    if options.fresh_book_per_input:
        why = {source: f": {reason}" for source, _, reason in breaks}
        notes += [f"{paths[source]} read as a capture of its own: a fresh book and clock-skew shift"
                  f"{why.get(source, '')}" for source, (a, b) in enumerate(decoded.ranges) if a < b]
    notes += [f"receive times of {path} are in {unit}: read as {unit} and put in ns"
              for path, unit in zip(decoded.paths, decoded.unit_by_file) if unit not in (None, "ns")]
    if ignored:
        notes.append(f"streams ignored: {ignored}")
    notes += instrument_notes
    meta = DatasetMeta(
        source_format=FORMAT,
        sources=list(paths),
        source_rows=decoded.lines,
        source_rows_by_kind=dict(decoded.by_kind),
        skipped=counter.count,
        skipped_examples=list(counter.first),
        notes=notes,
        book_partial_until_ts=builder.book_partial_until_ts(),
    )
    return Conversion(events=events, instrument=instrument, meta=meta,
                      input_starts=builder.input_starts if options.fresh_book_per_input else [])
