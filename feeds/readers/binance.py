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

Sequencing follows Binance's "how to manage a local order book correctly"; the
state machine is :mod:`feeds.readers.binance_book`'s, which the live connector
runs too, message by message.
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
import os
import re
import zlib
from typing import Callable, Sequence

import numpy as np

from feeds.readers.binance_book import BUFFER, PARTIAL, BookSequencer, continues, exchange_time, finish_clears
from feeds.readers.binance_messages import Message, decode_line
from common.errors import DataError, SkipCounter
from feeds.events import DEPTH_CLEAR, KIND_MASK
from feeds.instrument import Instrument
from feeds.ordering import early_outlier_reason, early_outliers
from feeds.readers.base import Conversion, ReadOptions, Steps, instrument_with_overrides
from feeds.readers.binance_coinm import contradiction, implied
from feeds.store import DatasetMeta
from feeds.readers.textio import iter_lines
from feeds.timeunits import NS_PER_UNIT, plausible_range, unit_of

FORMAT = "binance"
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


class Builder(BookSequencer):
    """Runs the order-book sequencing state machine over a file's decoded messages, with the lookahead
    only a whole file has: where snapshots are, the file's median feed latency."""

    def __init__(self, decoded: Decoded, options: ReadOptions):
        super().__init__(options.on_error)
        self.decoded = decoded
        self.options = options
        self.snapshot_at = [i for i, m in enumerate(decoded.messages) if m.kind == "snapshot"]
        # Where a fresh book starts: at each input's first message, or only at the first.
        fresh = decoded.ranges if options.fresh_book_per_input else [(0, len(decoded.messages))]
        self.fresh_at = {a: b for a, b in fresh if a < b}
        self.fresh_end = len(decoded.messages)      # end of the stretch the current book lives in
        self.first_end = min(self.fresh_at.values(), default=0)
        self.input_starts: list[int] = []           # event index where each fresh book starts
        self.dropped_unsynced = 0
        self.pos = 0

    # ------------------------------------------------ what a whole file knows

    def estimate_exch_ts(self, m: Message) -> int:
        latency = self.decoded.latency_by_file[m.source]
        if latency is None:
            known = [x for x in self.decoded.latency_by_file if x is not None]
            latency = int(np.median(known)) if known else 0
        return m.local_ts - latency

    def path(self, m: Message) -> str:
        return self.decoded.where(m)

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

    def run(self) -> None:
        for self.pos, m in enumerate(self.decoded.messages):
            if self.pos in self.fresh_at:
                self.start_fresh(m)
            self.on_message(m)
        self.close_window(None)

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
