"""LOBSTER reader: NASDAQ message + orderbook CSV pairs into L3 events and the exact L2 window.

LOBSTER writes, per ticker and day, a message file (one row per book event
inside the requested number of levels) and an orderbook file (the top-N
levels after each message). We keep both views, so a consumer can replay
either:

- **L3**, from the message row (``ival`` = LOBSTER's type, on every such event):
  1 add -> ADD_ORDER; 2 partial cancel and 3 delete -> CANCEL_ORDER with the
  size removed; 4 visible execution -> TRADE (aggressor side: executing a sell
  limit order is a buyer-initiated trade) then FILL of the resting order;
  5 hidden execution -> TRADE; 6 cross trade -> TRADE without a side;
  7 halt -> TRADING_STATUS with LOBSTER's price field (-1 halted, 0 quoting,
  1 trading) in ``fval``.
- **L2**, from the orderbook row: a DEPTH event for every level whose size
  differs from the previous row (0 when it emptied or left the window), after
  the message's L3 events. Each day opens with DEPTH_CLEAR on both sides and a
  DEPTH_SNAPSHOT of the book just before its first message (row 1 with that
  message undone); L2 events carry ``ival`` 0.

LOBSTER has one timestamp (NASDAQ's), so ``local_ts = exch_ts``; the engine
adds feed latency from its config. Times are seconds after midnight New York
time, on the date in the file name, converted exactly to UTC epoch ns.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import zipfile
from typing import Iterator, NamedTuple, Sequence
from zoneinfo import ZoneInfo

import numba as nb
import numpy as np

from feeds.readers import csvparse
from common.errors import DataError, SkipCounter
from feeds.events import (ADD_ORDER, BUY, CANCEL_ORDER, DEPTH, DEPTH_CLEAR, DEPTH_SNAPSHOT, EVENT_DTYPE,
                     FILL, SELL, TRADE, TRADING_STATUS)
from feeds.instrument import Instrument
from feeds.readers.base import Conversion, ReadOptions, Steps, instrument_with_overrides
from feeds.store import DatasetMeta
from feeds.readers.textio import iter_blocks

FORMAT = "lobster"

NEW_YORK = ZoneInfo("America/New_York")
PRICE_SCALE = 10_000            # LOBSTER prices are dollars x 10000
EMPTY_ASK = 9_999_999_999       # price of an unoccupied ask level (size 0)
EMPTY_BID = -9_999_999_999      # price of an unoccupied bid level (size 0)
HALT = 7

TYPE_NAMES = {1: "add", 2: "partial_cancel", 3: "delete", 4: "visible_execution",
              5: "hidden_execution", 6: "cross_trade", 7: "halt"}
MESSAGE_FIELDS = ("time", "type", "order_id", "size", "price", "direction")
# LOBSTER prints times as shortest float64 reprs, so a few carry float noise past the
# nanosecond ("43002.632812672004" in AMZN level 5). Times are therefore parsed as decimals and
# rounded to the nearest ns. That is exact for every time with at most 9 decimals: below one
# day, float64 seconds are within 0.01 ns of the decimal, far inside the 0.5 ns rounding margin.
MESSAGE_KINDS = (csvparse.FLOAT,) + (csvparse.INT,) * 5
DAY_SECONDS = 86_400
BOOK_FIELDS = ("ask_price", "ask_size", "bid_price", "bid_size")

_NAME = re.compile(r"(?P<ticker>.+?)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
                   r"(?P<kind>message|orderbook)_(?P<levels>\d+)\.csv$")
NAME_PATTERN = "TICKER_YYYY-MM-DD_start_end_message_LEVEL.csv"


class Pair(NamedTuple):
    """Where one day's message and orderbook files are."""

    source: str              # the input as given: a zip or a message CSV
    message: str             # zip member name, or CSV path
    orderbook: str
    in_zip: bool
    ticker: str
    date: dt.date
    levels: int

    def where(self, name: str) -> str:
        """How errors name a file: ``archive.zip[member]`` or the CSV path."""
        return f"{self.source}[{name}]" if self.in_zip else name

    def blocks(self, name: str) -> Iterator[tuple[int, bytes]]:
        """The file's text a block of whole lines at a time (memory follows its rows, not its size)."""
        return iter_blocks(self.source, name) if self.in_zip else iter_blocks(name)


class Day(NamedTuple):
    """One pair's rows, validated and aligned: row i of ``msg`` caused row i of ``book``."""

    pair: Pair
    lines: np.ndarray     # 1-based line of each row (the same in both files)
    ts: np.ndarray        # UTC epoch ns
    msg: np.ndarray       # (n, 6) int64: time ns after midnight, type, order id, size, price, direction
    book: np.ndarray      # (n, 4 * levels) int64, LOBSTER's columns
    pre: np.ndarray       # (4 * levels,) the book just before the first message


# ---------------------------------------------------------------- inputs


def _name_match(name: str, kind: str) -> re.Match | None:
    m = _NAME.match(os.path.basename(name))
    return m if m is not None and m.group("kind") == kind else None


def _sibling(name: str) -> str:
    """The orderbook file that belongs to a message file."""
    head, base = os.path.split(name)
    i = base.rfind("_message_")
    return os.path.join(head, base[:i] + "_orderbook_" + base[i + len("_message_"):])


def _pair(source: str, message: str, in_zip: bool) -> Pair:
    m = _name_match(message, "message")
    where = f"{source}[{message}]" if in_zip else message
    if m is None:
        raise DataError(f"expected LOBSTER's file name {NAME_PATTERN}: the date and the number of "
                        f"levels come from it", path=where, field="name")
    try:
        date = dt.date.fromisoformat(m.group("date"))
    except ValueError:
        raise DataError(f"bad date {m.group('date')!r} in the file name", path=where, field="name") from None
    levels = int(m.group("levels"))
    if levels < 1:
        raise DataError("expected at least 1 level in the file name", path=where, field="name")
    return Pair(source, message, _sibling(message), in_zip, m.group("ticker"), date, levels)


def _zip_names(path: str) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"corrupt or truncated zip archive: {e}", path=path) from None


def input_pairs(path: str) -> list[Pair]:
    """The message/orderbook pairs of one input, oldest day first."""
    path = os.fspath(path)
    if path.endswith(".zip"):
        names = _zip_names(path)
        messages = [n for n in names if _name_match(n, "message")]
        if not messages:
            raise DataError(f"no LOBSTER message file ({NAME_PATTERN}) in the zip", path=path)
        pairs = [_pair(path, name, in_zip=True) for name in messages]
        for pair in pairs:
            if pair.orderbook not in names:
                raise DataError(f"zip has the message file {pair.message!r} but not its orderbook file "
                                f"{pair.orderbook!r}", path=path)
        return sorted(pairs, key=lambda p: (p.date, p.message))
    if _name_match(path, "orderbook"):
        raise DataError("this is a LOBSTER orderbook file: give its message file (the orderbook is "
                        "found beside it)", path=path)
    pair = _pair(path, path, in_zip=False)
    if not os.path.exists(pair.message):
        raise DataError("no such file", path=pair.message)
    if not os.path.exists(pair.orderbook):
        raise DataError(f"orderbook file missing: the message file needs its orderbook "
                        f"{os.path.basename(pair.orderbook)} beside it", path=pair.orderbook)
    return [pair]


def sniff(path: str) -> bool:
    """A LOBSTER zip, or a CSV carrying LOBSTER's message or orderbook file name."""
    path = os.fspath(path)
    if path.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                return any(_name_match(n, "message") for n in zf.namelist())
        except (zipfile.BadZipFile, OSError, EOFError):
            return False
    return bool(_name_match(path, "message") or _name_match(path, "orderbook"))


# ---------------------------------------------------------------- parsing and validation


def _parse(blocks, kinds, names, where: str, counter: SkipCounter) -> csvparse.ParsedColumns:
    """Parse a whole file; every bad line raises or, under skip, is counted with its reason."""
    return csvparse.parse_located(blocks, kinds, names, where, counter)


def _book_field(col: int) -> str:
    return f"{BOOK_FIELDS[col % 4]}_{col // 4 + 1}"


class Rule(NamedTuple):
    """A per-row rule: ``bad[row, j]`` flags field ``fields[j]`` of that row."""

    bad: np.ndarray
    fields: list[str]
    expected: str


def _message_rules(msg: np.ndarray) -> list[Rule]:
    t, typ, oid, size, price, direction = (msg[:, [c]] for c in range(6))
    halt = typ == HALT
    return [
        Rule((t < 0) | (t >= DAY_SECONDS * 1_000_000_000), ["time"],
             f"expected seconds after midnight, 0 <= time < {DAY_SECONDS}"),
        Rule(~np.isin(typ, list(TYPE_NAMES)), ["type"],
             "expected a LOBSTER type: 1 add, 2 partial cancel, 3 delete, 4 visible execution, "
             "5 hidden execution, 6 cross trade, 7 halt"),
        Rule(oid < 0, ["order_id"], "expected an order id >= 0"),
        Rule((size < 0) | (~halt & (size == 0)), ["size"], "expected a positive number of shares"),
        Rule(np.where(halt, ~np.isin(price, (-1, 0, 1)), price <= 0), ["price"],
             "expected a positive price x10000 (on a halt row: -1, 0 or 1)"),
        Rule(~np.isin(direction, (-1, 1)), ["direction"], "expected 1 (buy order) or -1 (sell order)"),
    ]


def _book_rules(book: np.ndarray) -> list[Rule]:
    names = [_book_field(c) for c in range(book.shape[1])]
    rules = []
    for offset, empty, sign, side in ((0, EMPTY_ASK, 1, "ask"), (2, EMPTY_BID, -1, "bid")):
        px, sz = book[:, offset::4], book[:, offset + 1::4]
        vacant = px == empty
        px_names, sz_names = names[offset::4], names[offset + 1::4]
        rules += [
            Rule(~vacant & (px <= 0), px_names,
                 f"expected a positive price x10000, or {empty} for an empty level"),
            Rule(vacant[:, :-1] & ~vacant[:, 1:], px_names[1:],
                 f"expected {empty}: the level above is empty"),
            Rule(~vacant[:, 1:] & (sign * (px[:, 1:] - px[:, :-1]) <= 0), px_names[1:],
                 f"expected {side} prices to get worse level by level"),
            Rule(np.where(vacant, sz != 0, sz <= 0), sz_names,
                 "expected a positive size (0 on an empty level)"),
        ]
    crossed = (book[:, [0]] != EMPTY_ASK) & (book[:, [2]] != EMPTY_BID) & (book[:, [2]] >= book[:, [0]])
    rules.append(Rule(crossed, ["bid_price_1"], "crossed book: best bid >= best ask"))
    return rules


def _first_broken(rules: list[Rule], n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row: the first rule it breaks (-1: none) and the column of the field."""
    which = np.full(n, -1, dtype=np.int64)
    col = np.zeros(n, dtype=np.int64)
    for r, rule in enumerate(rules):
        new = rule.bad.any(axis=1) & (which < 0)
        if new.any():
            which[new] = r
            col[new] = np.argmax(rule.bad[new], axis=1)
    return which, col


def _validate_rows(pair: Pair, lines, msg, book, counter: SkipCounter) -> np.ndarray:
    """Mask of the rows to keep; a row bad in either file is raised or skipped whole."""
    files = [(rules, pair.where(name), *_first_broken(rules, len(lines)))
             for rules, name in ((_message_rules(msg), pair.message), (_book_rules(book), pair.orderbook))]
    bad_rows = np.flatnonzero((files[0][2] >= 0) | (files[1][2] >= 0))
    for row in bad_rows:
        rules, where, which, col = next(f for f in files if f[2][row] >= 0)
        rule = rules[which[row]]
        counter.bad(DataError(rule.expected, path=where, line=int(lines[row]), field=rule.fields[col[row]]))
    keep = np.ones(len(lines), dtype=bool)
    keep[bad_rows] = False
    return keep


def _aligned_rows(pair: Pair, m: csvparse.ParsedColumns, b: csvparse.ParsedColumns):
    """Pair message and orderbook rows by line; a missing row is never skipped quietly."""
    n_msg, n_book = len(m) + m.n_bad, len(b) + b.n_bad
    if n_msg != n_book:
        raise DataError(f"the orderbook has {n_book:,} rows but the message file {n_msg:,}: LOBSTER "
                        f"writes one orderbook row per message", path=pair.where(pair.orderbook),
                        line=min(n_msg, n_book) + 1, field="rows")
    if m.n_bad or b.n_bad:    # skip mode: keep the lines good in both files
        lines, mi, bi = np.intersect1d(m.lines, b.lines, assume_unique=True, return_indices=True)
        return lines, m.ints[mi], b.ints[bi]
    if not np.array_equal(m.lines, b.lines):
        first = int(np.setxor1d(m.lines, b.lines)[0])
        raise DataError("line is blank in one file but not in the other: rows no longer pair up",
                        path=pair.where(pair.orderbook), line=first, field="rows")
    return m.lines, m.ints, b.ints


def _midnight_ns(date: dt.date) -> int:
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=NEW_YORK).timestamp()) * 1_000_000_000


def _side_levels(row: np.ndarray, offset: int, empty: int) -> list[list[int]]:
    return [[int(row[c]), int(row[c + 1])] for c in range(offset, len(row), 4) if row[c] != empty]


def _book_before(row: np.ndarray, first_msg: np.ndarray) -> np.ndarray:
    """Orderbook row 1 with message 1 undone: the window as it stood before the day's first event."""
    levels = len(row) // 4
    _, typ, _, size, price, direction = (int(v) for v in first_msg)
    asks, bids = _side_levels(row, 0, EMPTY_ASK), _side_levels(row, 2, EMPTY_BID)
    side, sign = (bids, -1) if direction == 1 else (asks, 1)
    at = next((lv for lv in side if lv[0] == price), None)
    if typ == 1 and at is not None and at[1] >= size:
        at[1] -= size
        side[:] = [lv for lv in side if lv[1] > 0]
    elif typ in (2, 3, 4):
        if at is None:
            side.append([price, size])
            side.sort(key=lambda lv: sign * lv[0])
        else:
            at[1] += size
    out = row.copy()
    for offset, levels_of_side, empty in ((0, asks, EMPTY_ASK), (2, bids, EMPTY_BID)):
        for lv in range(levels):
            px, sz = levels_of_side[lv] if lv < len(levels_of_side) else (empty, 0)
            out[4 * lv + offset], out[4 * lv + offset + 1] = px, sz
    return out


def _nanoseconds(seconds: np.ndarray) -> np.ndarray:
    """Seconds to the nearest ns; out-of-day values are clipped (and then rejected as out of range)."""
    return np.rint(np.clip(seconds, -1.0, DAY_SECONDS) * 1e9).astype(np.int64)


def load_day(pair: Pair, counter: SkipCounter, progress: Steps | None = None) -> Day:
    """Read, parse and validate one pair; bad rows raise or are skipped in both files together."""
    msg_where, book_where = pair.where(pair.message), pair.where(pair.orderbook)
    m = _parse(pair.blocks(pair.message), MESSAGE_KINDS, MESSAGE_FIELDS, msg_where, counter)
    m.ints[:, 0] = _nanoseconds(m.floats[:, 0])
    if progress is not None:
        progress.update()
    book_names = [_book_field(c) for c in range(4 * pair.levels)]
    b = _parse(pair.blocks(pair.orderbook), (csvparse.INT,) * len(book_names), book_names, book_where, counter)
    if progress is not None:
        progress.update()
    lines, msg, book = _aligned_rows(pair, m, b)
    keep = _validate_rows(pair, lines, msg, book, counter)
    if not keep.all():
        lines, msg, book = lines[keep], msg[keep], book[keep]
    if len(lines) == 0:
        raise DataError("no message rows", path=msg_where)
    back = np.flatnonzero(np.diff(msg[:, 0]) < 0)
    if len(back):
        i = back[0] + 1
        raise DataError(f"time goes backwards: {msg[i, 0] / 1e9:.9f} s after {msg[i - 1, 0] / 1e9:.9f} s "
                        f"on line {lines[i - 1]}", path=msg_where, line=int(lines[i]), field="time")
    ts = msg[:, 0] + _midnight_ns(pair.date)
    return Day(pair, lines, ts, msg, book, _book_before(book[0], msg[0]))


# ---------------------------------------------------------------- events


@nb.njit(cache=True, inline="always")
def _put(out, k, write, ev, ts, px, qty, order_id, ival, fval):
    if write:
        r = out[k]
        r.ev = ev
        r.exch_ts = ts
        r.local_ts = ts
        r.px = px
        r.qty = qty
        r.order_id = order_id
        r.ival = ival
        r.fval = fval
    return k + 1


@nb.njit(cache=True)
def _side_changes(prev, cur, offset, empty, sign, flag, ts, out, k, write):
    """DEPTH events turning one side of row ``prev`` into row ``cur``, best price first.

    Both rows list the side best first, so one merge pass finds the levels that
    left (size 0), entered, or changed size. ``sign`` is 1 for asks, -1 for bids.
    """
    levels = prev.shape[0] // 4
    i = 0
    j = 0
    while True:
        in_prev = i < levels and prev[4 * i + offset] != empty
        in_cur = j < levels and cur[4 * j + offset] != empty
        if not in_prev and not in_cur:
            return k
        p_px = prev[4 * i + offset] if in_prev else 0
        c_px = cur[4 * j + offset] if in_cur else 0
        c_qty = float(cur[4 * j + offset + 1]) if in_cur else 0.0
        if in_prev and (not in_cur or sign * p_px < sign * c_px):      # left the window
            k = _put(out, k, write, DEPTH | flag, ts, p_px / PRICE_SCALE, 0.0, 0, 0, 0.0)
            i += 1
        elif in_cur and (not in_prev or sign * c_px < sign * p_px):    # entered the window
            k = _put(out, k, write, DEPTH | flag, ts, c_px / PRICE_SCALE, c_qty, 0, 0, 0.0)
            j += 1
        else:                                                          # same level
            if prev[4 * i + offset + 1] != cur[4 * j + offset + 1]:
                k = _put(out, k, write, DEPTH | flag, ts, c_px / PRICE_SCALE, c_qty, 0, 0, 0.0)
            i += 1
            j += 1


@nb.njit(cache=True)
def _day_events(ts, msg, book, pre, clear_ask, clear_bid, out):
    """Write one day's events into ``out``, or only count them when ``out`` is empty."""
    write = out.shape[0] > 0
    levels = pre.shape[0] // 4
    t0 = ts[0]
    k = _put(out, 0, write, DEPTH_CLEAR | SELL, t0, clear_ask, 0.0, 0, 0, 0.0)
    k = _put(out, k, write, DEPTH_CLEAR | BUY, t0, clear_bid, 0.0, 0, 0, 0.0)
    for offset, empty, flag in ((0, EMPTY_ASK, SELL), (2, EMPTY_BID, BUY)):
        for lv in range(levels):
            if pre[4 * lv + offset] != empty:
                k = _put(out, k, write, DEPTH_SNAPSHOT | flag, t0, pre[4 * lv + offset] / PRICE_SCALE,
                         float(pre[4 * lv + offset + 1]), 0, 0, 0.0)
    for i in range(ts.shape[0]):
        t = ts[i]
        typ = msg[i, 1]
        oid = msg[i, 2]
        qty = float(msg[i, 3])
        px = msg[i, 4] / PRICE_SCALE
        resting = BUY if msg[i, 5] == 1 else SELL
        aggressor = SELL if msg[i, 5] == 1 else BUY
        if typ == 1:
            k = _put(out, k, write, ADD_ORDER | resting, t, px, qty, oid, typ, 0.0)
        elif typ == 2 or typ == 3:
            k = _put(out, k, write, CANCEL_ORDER | resting, t, px, qty, oid, typ, 0.0)
        elif typ == 4:
            k = _put(out, k, write, TRADE | aggressor, t, px, qty, oid, typ, 0.0)
            k = _put(out, k, write, FILL | resting, t, px, qty, oid, typ, 0.0)
        elif typ == 5:
            k = _put(out, k, write, TRADE | aggressor, t, px, qty, oid, typ, 0.0)
        elif typ == 6:
            k = _put(out, k, write, TRADE, t, px, qty, oid, typ, 0.0)
        else:
            k = _put(out, k, write, TRADING_STATUS, t, 0.0, 0.0, 0, typ, float(msg[i, 4]))
        prev = pre if i == 0 else book[i - 1]
        k = _side_changes(prev, book[i], 0, EMPTY_ASK, 1, SELL, t, out, k, write)
        k = _side_changes(prev, book[i], 2, EMPTY_BID, -1, BUY, t, out, k, write)
    return k


def _deepest(rows, offset: int, empty: int, pick) -> float:
    """The deepest occupied price (dollars) over the given rows' side, 0 when the side is empty."""
    prices = [int(p) for row in rows for p in row[offset::4] if p != empty]
    return pick(prices) / PRICE_SCALE if prices else 0.0


def day_events(day: Day, previous_row: np.ndarray | None) -> np.ndarray:
    """The day's events; the opening DEPTH_CLEAR reaches every level the previous day left."""
    rows = [day.pre] if previous_row is None else [day.pre, previous_row]
    clear_ask = _deepest(rows, 0, EMPTY_ASK, max)
    clear_bid = _deepest(rows, 2, EMPTY_BID, min)
    empty = np.zeros(0, dtype=EVENT_DTYPE)
    n = _day_events(day.ts, day.msg, day.book, day.pre, clear_ask, clear_bid, empty)
    out = np.zeros(n, dtype=EVENT_DTYPE)
    _day_events(day.ts, day.msg, day.book, day.pre, clear_ask, clear_bid, out)
    return out


# ---------------------------------------------------------------- read


def _predating_orders(msg: np.ndarray) -> tuple[int, int]:
    """Orders whose first message in the file is not their submission, and their messages."""
    with_id = (msg[:, 2] != 0) & np.isin(msg[:, 1], (1, 2, 3, 4))
    oid, typ = msg[with_id, 2], msg[with_id, 1]
    ids, first = np.unique(oid, return_index=True)
    early = ids[typ[first] != 1]
    return len(early), int(np.count_nonzero(np.isin(oid, early)))


def _one_ticker(pairs: Sequence[Pair]) -> None:
    tickers = sorted({p.ticker for p in pairs})
    if len(tickers) > 1:
        raise DataError(f"inputs hold different tickers ({', '.join(tickers)}); convert each separately",
                        field="INPUT")


def read(paths: Sequence[str], options: ReadOptions = ReadOptions()) -> Conversion:
    counter = SkipCounter(options.on_error)
    pairs = [pair for path in paths for pair in input_pairs(path)]
    _one_ticker(pairs)
    chunks, rows_by_type, notes = [], np.zeros(8, dtype=np.int64), []
    last_row, last_ts = None, None      # the previous day's final book and time
    for pair in pairs:
        with options.progress(4, f"lobster {os.path.basename(pair.message)}") as bar:
            day = load_day(pair, counter, bar)
            if last_ts is not None and day.ts[0] < last_ts:
                raise DataError("starts before the previous input ends: give inputs in time order",
                                path=pair.where(pair.message), line=int(day.lines[0]), field="time")
            bar.update()
            chunks.append(day_events(day, last_row))
            bar.update()
        rows_by_type += np.bincount(day.msg[:, 1], minlength=8)
        orders, messages = _predating_orders(day.msg)
        if orders:
            notes.append(f"{os.path.basename(pair.message)}: {orders:,} orders predate the file "
                         f"({messages:,} cancel/execution messages for orders never added in it)")
        last_row, last_ts = day.book[-1], day.ts[-1]
    levels = sorted({p.levels for p in pairs})
    notes += [
        "LOBSTER has one timestamp per message: local_ts = exch_ts (zero feed latency; the engine "
        "adds its configured latency)",
        f"L2 is LOBSTER's exact top-{'/'.join(map(str, levels))} window; deeper levels are unknown, and "
        f"a level entering the window takes its size from the orderbook file",
        "L3 covers only messages inside that window: orders deeper in the book are never seen",
    ]
    default = Instrument(symbol=pairs[0].ticker, tick_size=0.01, lot_size=1.0, contract_multiplier=1.0)
    meta = DatasetMeta(
        source_format=FORMAT,
        sources=[p.where(p.message) for p in pairs],
        source_rows=int(rows_by_type.sum()),
        source_rows_by_kind={TYPE_NAMES[t]: int(n) for t, n in enumerate(rows_by_type) if n},
        skipped=counter.count,
        skipped_examples=list(counter.first),
        notes=notes,
    )
    return Conversion(events=np.concatenate(chunks), instrument=instrument_with_overrides(default, options),
                      meta=meta)
